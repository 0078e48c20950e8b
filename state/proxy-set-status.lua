-- Marks a registered proxy OK or BAD (proxy-pool.ts markOk, markBad). A BAD proxy leaves the shared pool's
-- available set; an OK one returns to it unless it is a tenant's private proxy.
-- KEYS: [1] proxies:all  [2] proxy:status:<id>  [3] proxy:bad_at:<id>  [4] proxies:available  [5] proxies:private
-- ARGV: [1] proxyUrl  [2] proxy id  [3] status OK|BAD  [4] nowMs (kept as bad_at)
-- Returns 1, or 0 when the proxy is not registered.
local allKey, statusKey, badAtKey, availableKey, privateKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local u, id, status, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('SISMEMBER', allKey, u) == 0 then return 0 end
redis.call('SET', statusKey, status)
if status == 'BAD' then
  redis.call('SET', badAtKey, now)
  redis.call('SREM', availableKey, u)
else
  redis.call('DEL', badAtKey)
  if redis.call('HEXISTS', privateKey, id) == 0 then redis.call('SADD', availableKey, u) end
end
return 1
