-- A sliding-window limit on a tenant's manual failovers (quotas.ts admitFailover): admits one unless max entries
-- are younger than windowMs.
-- KEYS: [1] ratelimit:failover:<tenant>
-- ARGV: [1] max  [2] windowMs  [3] member (the session id; stored as <member>:<now>)
-- Returns {1, 0} when admitted, {0, retryAfterMs} when not.
local key = KEYS[1]
local max, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= max then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', key, now, ARGV[3] .. ':' .. now)
redis.call('PEXPIRE', key, window)
return {1, 0}
