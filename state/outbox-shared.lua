-- Helpers of the outbox scripts (included with `--- @include "outbox-shared.lua"`; not a script of its own).

-- The Redis server's clock in ms: every lease and settle time of an outbox is on this one clock.
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Expired leases go back to the head of the queue, oldest claim first. Returns how many expired.
local function requeueExpired(queue, inflight, now)
  local expired = redis.call('ZRANGEBYSCORE', inflight, '-inf', now)
  for i = #expired, 1, -1 do
    redis.call('ZREM', inflight, expired[i])
    redis.call('LPUSH', queue, expired[i])
  end
  return #expired
end

-- A record was settled (ACK or failure): note its time in :settled, drop up to 100 records older than retention and
-- re-arm the expiry of the three keys, so an active session's hashes stay bounded and an idle one's vanish.
local function settle(acked, failed, settled, id, now, retention)
  redis.call('ZADD', settled, now, id)
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', settled, '-inf', now - retention, 'LIMIT', 0, 100)) do
    redis.call('HDEL', acked, old)
    redis.call('HDEL', failed, old)
    redis.call('ZREM', settled, old)
  end
  for _, k in ipairs({acked, failed, settled}) do
    if redis.call('EXISTS', k) == 1 then redis.call('PEXPIRE', k, retention) end
  end
end
