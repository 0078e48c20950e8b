-- Admits one tenant provision atomically (quotas.ts admitProvision): parallel provisions cannot both pass. Counts
-- the tenant's live sessions (terminal ones — logged out, failed, stopped, deleted — do not count) plus provisions
-- admitted in the last reserveMs that have no live record yet, refuses past maxLive, then checks the per-tenant
-- provision rate (sliding window), then records both.
-- KEYS: [1] tenant:sessions:<tenant>  [2] tenant:provisioning:<tenant>  [3] ratelimit:provision:<tenant>
-- ARGV: [1] key prefix: session:<id> of each of the tenant's sessions is built from it, because the set is read
--           here  [2] sessionId  [3] maxLive  [4] rateMax  [5] windowMs  [6] reserveMs
-- Returns {'ok', 0} | {'sessions', count} | {'rate', retryAfterMs}.
local sessionsKey, provisioningKey, rateKey = KEYS[1], KEYS[2], KEYS[3]
local p, sid = ARGV[1], ARGV[2]
local maxLive, rateMax, window, reserveMs = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = {pending = 1, qr_ready = 1, connected = 1, reconnecting = 1, unhealthy = 1, failing_over = 1}
redis.call('ZREMRANGEBYSCORE', provisioningKey, '-inf', now - reserveMs)
local counted, n = {}, 0
for _, id in ipairs(redis.call('SMEMBERS', sessionsKey)) do
  if id ~= sid and live[redis.call('HGET', p .. 'session:' .. id, 'status') or ''] then
    counted[id] = true
    n = n + 1
  end
end
for _, id in ipairs(redis.call('ZRANGE', provisioningKey, 0, -1)) do
  if id ~= sid and not counted[id] then n = n + 1 end
end
if n >= maxLive then return {'sessions', n} end
redis.call('ZREMRANGEBYSCORE', rateKey, '-inf', now - window)
if redis.call('ZCARD', rateKey) >= rateMax then
  local oldest = redis.call('ZRANGE', rateKey, 0, 0, 'WITHSCORES')
  return {'rate', tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', rateKey, now, sid .. ':' .. now)
redis.call('PEXPIRE', rateKey, window)
redis.call('ZADD', provisioningKey, now, sid)
redis.call('PEXPIRE', provisioningKey, reserveMs)
return {'ok', 0}
