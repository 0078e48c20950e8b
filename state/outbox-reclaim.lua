-- Moves expired leases back to the head of a session's worker outbox, oldest claim first (outbox.ts
-- reclaimExpired; outbox-claim.lua does the same before it claims).
-- KEYS: [1] session:outbox:<session> (queue)  [2] its :inflight
-- ARGV: none
-- Returns how many leases expired.
local queue, inflight = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', inflight, '-inf', now)
for i = #expired, 1, -1 do
  redis.call('ZREM', inflight, expired[i])
  redis.call('LPUSH', queue, expired[i])
end
return #expired
