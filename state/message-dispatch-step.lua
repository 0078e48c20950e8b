-- One dispatcher step for a session (messages.ts step), idempotent per stepId: an activity retried after it ran
-- gets the same result and releases nothing more. Releases the head of the pending queue into the worker outbox
-- (the item format of outbox.ts) when the session is connected and under its rolling-window cap; past the cap,
-- marks the pending messages `scheduled` with their planned time. A deleted session's pending messages fail.
-- KEYS: [1] dispatch:state:<session>  [2] session:<session>  [3] dispatch:pending:<session>
--       [4] dispatch:sent:<session>  [5] dispatch:released:<session>  [6] antiban:stats:<session>
--       [7] session:outbox:<session> (queue)  [8] its :items  [9] its :acked  [10] its :failed
-- ARGV: [1] key prefix: message:<id> of each pending message is built from it, because the ids are read here
--       [2] stepId  [3] dayMs (the rolling window)  [4] cap (messages per window)
-- Returns {kind, messageId, ms}: kind released (ms = hand-off time) | cap (ms = when the window opens) | idle |
-- offline | gone | skipped.
local stateKey, sessionKey, pendingKey, sentKey, releasedKey, statsKey, outboxQueue, outboxItems, outboxAcked,
  outboxFailed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local p, step, dayMs, cap = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
--- @include "message-shared.lua"
local function messageKey(id) return p .. 'message:' .. id end

if redis.call('HGET', stateKey, 'step') == step then
  return cjson.decode(redis.call('HGET', stateKey, 'result'))
end
local function done(r)
  redis.call('HSET', stateKey, 'step', step, 'result', cjson.encode(r), 'stepAt', now)
  if r[1] == 'idle' then redis.call('HSET', stateKey, 'idle', '1') else redis.call('HDEL', stateKey, 'idle') end
  if r[1] == 'cap' then redis.call('HSET', stateKey, 'capUntil', r[3]) else redis.call('HDEL', stateKey, 'capUntil') end
  return r
end
local status = redis.call('HGET', sessionKey, 'status')
if not status or status == 'deleted' then
  -- the session is gone: its waiting messages fail with a reason instead of waiting forever
  for _, id in ipairs(redis.call('LRANGE', pendingKey, 0, -1)) do
    local mk = messageKey(id)
    if redis.call('EXISTS', mk) == 1 then
      redis.call('HSET', mk, 'status', 'failed', 'reason', 'session deleted before sending', 'failedAt', now, 'updatedAt', now)
    end
  end
  redis.call('DEL', pendingKey)
  return done({'gone', '', 0})
end
if status ~= 'connected' then return done({'offline', '', 0}) end
redis.call('ZREMRANGEBYSCORE', sentKey, '-inf', now - dayMs)
local used = redis.call('ZCARD', sentKey)
if redis.call('LLEN', pendingKey) == 0 then return done({'idle', '', 0}) end
if used >= cap then
  for i, id in ipairs(redis.call('LRANGE', pendingKey, 0, 999)) do
    local mk = messageKey(id)
    if redis.call('EXISTS', mk) == 1 then
      redis.call('HSET', mk, 'status', 'scheduled', 'plannedAt', plannedAt(sentKey, now, dayMs, used, cap, used + i - 1), 'updatedAt', now)
    end
  end
  local e = redis.call('ZRANGE', sentKey, used - cap, used - cap, 'WITHSCORES')
  return done({'cap', '', tonumber(e[2]) + dayMs})
end
local id = redis.call('LPOP', pendingKey)
local mk = messageKey(id)
if redis.call('EXISTS', mk) == 0 then return done({'skipped', id, 0}) end
local m = redis.call('HMGET', mk, 'to', 'text', 'media', 'extra')
if redis.call('HEXISTS', outboxItems, id) == 0 and redis.call('HEXISTS', outboxAcked, id) == 0
  and redis.call('HEXISTS', outboxFailed, id) == 0 then
  local item = {messageId = id, to = m[1], text = m[2], enqueuedAt = now}
  -- a media message carries its descriptor JSON (never the bytes: they stay in MEDIA_DIR)
  if m[3] then item.media = m[3] end
  -- a reaction, location, contact, edit, revoke or reply carries its descriptor JSON the same way
  if m[4] then item.extra = m[4] end
  redis.call('HSET', outboxItems, id, cjson.encode(item))
  redis.call('RPUSH', outboxQueue, id)
end
redis.call('ZADD', sentKey, now, id)
redis.call('ZADD', releasedKey, now, id)
redis.call('HSET', mk, 'status', 'queued', 'dispatchedAt', now, 'updatedAt', now)
redis.call('HDEL', mk, 'plannedAt')
redis.call('HINCRBY', statsKey, 'released', 1)
redis.call('HSET', stateKey, 'lastReleaseAt', now)
return done({'released', id, now})
