-- Sliding-window admission of n number lookups at once, all or none (worker-commands.ts admitLookups).
-- KEYS: [1] ratelimit:contactcheck:<session>
-- ARGV: [1] nowMs  [2] windowMs  [3] limit  [4] n  [5] member prefix (members are <prefix>:1 .. <prefix>:n)
-- Returns {1, 0} when admitted, {0, retryAfterMs} when not.
local key = KEYS[1]
local now, window, limit, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if n > limit then return {0, window} end
local count = redis.call('ZCARD', key)
if count + n > limit then
  -- the entry whose leaving makes room for n
  local freeing = redis.call('ZRANGE', key, count + n - limit - 1, count + n - limit - 1, 'WITHSCORES')
  return {0, math.max(1, tonumber(freeing[2]) + window - now)}
end
for i = 1, n do redis.call('ZADD', key, now, ARGV[5] .. ':' .. i) end
redis.call('PEXPIRE', key, window)
return {1, 0}
