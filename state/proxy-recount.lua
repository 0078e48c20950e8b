-- Recomputes every proxy's session set and counter from the slots the known sessions hold (proxy-pool.ts
-- recomputeCounters, after a restore or a key migration). A session no longer known is not counted.
-- KEYS: [1] sessions:all  [2] proxies:all
-- ARGV: [1] key prefix: session:slot:<session> of each known session and the per-proxy keys (proxy:sessions:,
--           counter:proxy: + proxy id) of each proxy are built from it, because both lists are read here
-- Returns {proxyUrl, count, proxyUrl, count, ...}.
local sessionsKey, proxiesKey = KEYS[1], KEYS[2]
local p = ARGV[1]
local function slot(sid) return redis.call('GET', p .. 'session:slot:' .. sid) end
local held = {}
for _, sid in ipairs(redis.call('SMEMBERS', sessionsKey)) do
  local u = slot(sid)
  if u then
    held[u] = held[u] or {}
    table.insert(held[u], sid)
  end
end
local out = {}
for _, u in ipairs(redis.call('SMEMBERS', proxiesKey)) do
  -- The proxy id of a URL (common/proxy-id.ts).
  local id = string.sub(redis.sha1hex(u), 1, 16)
  local key = p .. 'proxy:sessions:' .. id
  for _, sid in ipairs(redis.call('SMEMBERS', key)) do
    if slot(sid) ~= u or redis.call('SISMEMBER', sessionsKey, sid) == 0 then redis.call('SREM', key, sid) end
  end
  for _, sid in ipairs(held[u] or {}) do redis.call('SADD', key, sid) end
  local n = redis.call('SCARD', key)
  redis.call('SET', p .. 'counter:proxy:' .. id, n)
  table.insert(out, u)
  table.insert(out, n)
end
return out
