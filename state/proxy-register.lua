-- Registers a proxy in the shared pool (proxy-pool.ts register), idempotent. A proxy already marked BAD stays BAD;
-- a tenant's private proxy registered by the operator (config or admin API) joins the shared pool.
-- KEYS: [1] proxies:all  [2] proxies:urls  [3] proxies:private  [4] proxy:status:<id>  [5] counter:proxy:<id>
--       [6] proxies:available
-- ARGV: [1] proxyUrl  [2] proxy id
-- Returns 1 when the proxy is new, else 0.
local allKey, urlsKey, privateKey, statusKey, counterKey, availableKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local u, id = ARGV[1], ARGV[2]
local added = redis.call('SADD', allKey, u)
redis.call('HSET', urlsKey, id, u)
redis.call('HDEL', privateKey, id)
redis.call('SET', statusKey, 'OK', 'NX')
redis.call('SETNX', counterKey, 0)
if redis.call('GET', statusKey) ~= 'BAD' then redis.call('SADD', availableKey, u) end
return added
