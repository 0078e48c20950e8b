-- Moves one proxy key named by URL (as older versions named them) to its proxy-id name (proxy-pool.ts
-- migrateLegacyKeys). Idempotent and safe beside new writes: session sets are merged, BAD wins over OK, an existing
-- new counter or bad_at is kept (the caller recomputes counters afterwards).
-- KEYS: [1] the old key (<family><url>)  [2] the new key (<family><proxy id>)  [3] proxies:all  [4] proxies:urls
-- ARGV: [1] family, e.g. 'counter:proxy:'  [2] proxyUrl  [3] proxy id
-- Returns 1 when a key moved, else 0.
local old, new, allKey, urlsKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local fam, u, id = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', old) == 0 then return 0 end
if fam == 'proxy:sessions:' then
  redis.call('SUNIONSTORE', new, new, old)
  redis.call('DEL', old)
elseif fam == 'proxy:status:' then
  if redis.call('GET', old) == 'BAD' then redis.call('SET', new, 'BAD') else redis.call('SET', new, 'OK', 'NX') end
  redis.call('DEL', old)
elseif redis.call('RENAMENX', old, new) == 0 then
  redis.call('DEL', old)
end
if redis.call('SISMEMBER', allKey, u) == 1 then redis.call('HSET', urlsKey, id, u) end
return 1
