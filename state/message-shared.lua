-- Helpers of the message scripts (included with `--- @include "message-shared.lua"`; not a script of its own).

-- Planned time of entry idx (0-based) of a session's send sequence: the rolling-window entries of sentKey (oldest
-- first) followed by the pending queue; `used` entries are in the window, at most `cap` per `dayMs`. Entry idx may
-- go one window after entry idx - cap.
local function plannedAt(sentKey, now, dayMs, used, cap, idx)
  local r = idx % cap
  local base = now
  if r < used then
    local e = redis.call('ZRANGE', sentKey, r, r, 'WITHSCORES')
    if e[2] then base = tonumber(e[2]) end
  end
  return base + dayMs * math.floor(idx / cap)
end
