-- Releases the slot a session holds, if any (proxy-pool.ts release). Idempotent; never drives a counter below zero.
-- A tenant's private proxy goes with its last session (it never served anyone else).
-- KEYS: [1] session:slot:<session>  [2] session:temp:<session>  [3] proxies:all  [4] proxies:available
--       [5] proxies:urls  [6] proxies:private
-- ARGV: [1] key prefix: the held proxy's keys (counter:proxy:, proxy:sessions:, proxy:status:, proxy:bad_at: +
--           proxy id) are built from it, because the proxy is read here  [2] sessionId
-- Returns the released proxyUrl, or '' when the session held none.
local slotKey, tempKey, allKey, availableKey, urlsKey, privateKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local p, sid = ARGV[1], ARGV[2]
local held = redis.call('GET', slotKey)
redis.call('DEL', tempKey)
if not held then return '' end

-- The proxy id of a URL (common/proxy-id.ts).
local id = string.sub(redis.sha1hex(held), 1, 16)
local counterKey, sessionsKey = p .. 'counter:proxy:' .. id, p .. 'proxy:sessions:' .. id
local function count() return tonumber(redis.call('GET', counterKey) or '0') end
if redis.call('SREM', sessionsKey, sid) == 1 then
  if count() > 0 then redis.call('DECR', counterKey) else redis.call('SET', counterKey, 0) end
end
redis.call('DEL', slotKey)
if redis.call('HEXISTS', privateKey, id) == 1 and count() == 0 and redis.call('SCARD', sessionsKey) == 0 then
  redis.call('SREM', allKey, held)
  redis.call('SREM', availableKey, held)
  redis.call('HDEL', privateKey, id)
  redis.call('HDEL', urlsKey, id)
  redis.call('DEL', counterKey, p .. 'proxy:status:' .. id, p .. 'proxy:bad_at:' .. id)
end
return held
