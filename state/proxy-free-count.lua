-- Counts the shared pool's healthy proxies with a free slot (proxy-pool.ts freeHealthyProxies), the inventory that
-- low-inventory alerts watch. One step in Redis: every provision checks it, and a round trip per proxy would make
-- each check cost O(proxies) calls (12,500 at 2,500 proxies).
-- KEYS: [1] proxies:all  [2] proxies:private
-- ARGV: [1] key prefix: the per-proxy keys (counter:proxy:, proxy:status: + proxy id) are built from it
--       [2] the sessions limit per proxy
-- Returns the count.
local allKey, privateKey = KEYS[1], KEYS[2]
local p, limit = ARGV[1], tonumber(ARGV[2])
local free = 0
for _, u in ipairs(redis.call('SMEMBERS', allKey)) do
  -- The proxy id of a URL (common/proxy-id.ts), as in proxy-reserve.lua.
  local id = string.sub(redis.sha1hex(u), 1, 16)
  if redis.call('HEXISTS', privateKey, id) == 0
    and redis.call('GET', p .. 'proxy:status:' .. id) ~= 'BAD'
    and tonumber(redis.call('GET', p .. 'counter:proxy:' .. id) or '0') < limit then
    free = free + 1
  end
end
return free
