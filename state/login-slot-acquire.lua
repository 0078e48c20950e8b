--[[
  Takes a login slot of a host for a session, or says how long to wait.
  KEYS[1] the host's login slots (ZSET session id → lease expiry, ms)
  ARGV[1] session id   ARGV[2] slots per host   ARGV[3] lease (ms)   ARGV[4] now (ms)
  Returns {1, 0} when the session holds a slot (again: a retried call renews its lease), else {0, ms until the
  earliest lease runs out}.
]]
local key = KEYS[1]
local now = tonumber(ARGV[4])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZSCORE', key, ARGV[1]) or redis.call('ZCARD', key) < tonumber(ARGV[2]) then
  redis.call('ZADD', key, now + lease, ARGV[1])
  redis.call('PEXPIRE', key, lease)
  return {1, 0}
end
local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(first[2]) - now)}
