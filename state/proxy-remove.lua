-- Removes a proxy only while no session holds a slot on it (proxy-pool.ts remove).
-- KEYS: [1] proxies:all  [2] proxies:available  [3] proxies:urls  [4] proxies:private  [5] counter:proxy:<id>
--       [6] proxy:status:<id>  [7] proxy:bad_at:<id>  [8] proxy:sessions:<id>
-- ARGV: [1] proxyUrl  [2] proxy id
-- Returns 1 (removed), 0 (not registered) or -1 (in use).
local allKey, availableKey, urlsKey, privateKey, counterKey, statusKey, badAtKey, sessionsKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local u, id = ARGV[1], ARGV[2]
if redis.call('SISMEMBER', allKey, u) == 0 then return 0 end
if tonumber(redis.call('GET', counterKey) or '0') > 0 or redis.call('SCARD', sessionsKey) > 0 then return -1 end
redis.call('SREM', allKey, u)
redis.call('SREM', availableKey, u)
redis.call('HDEL', urlsKey, id)
redis.call('HDEL', privateKey, id)
redis.call('DEL', counterKey, statusKey, badAtKey, sessionsKey)
return 1
