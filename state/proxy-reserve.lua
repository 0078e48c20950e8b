-- Reserves a proxy slot for a session (proxy-pool.ts reserve), in one atomic step: a counter never passes the limit
-- however many orchestrators provision at once.
-- KEYS: [1] session:slot:<session>  [2] session:temp:<session>  [3] proxies:all  [4] proxies:available
--       [5] proxies:urls  [6] proxies:private  [7] phone:proxy:<phone> (not read without a phone)
-- ARGV: [1] key prefix: the per-proxy keys (counter:proxy:, proxy:status:, proxy:sessions: + proxy id) are built
--           from it, because the proxy is chosen here
--       [2] JSON {sessionId, tenant, limit, exclude = [url, ...], phone?, override?}
-- Order: the slot already held (idempotent retry) → the override (healthy, below the limit) → the phone's sticky
-- proxy → the least-loaded healthy proxy below the limit (ties broken by URL: the choice is deterministic).
-- Writes the temporary binding session:temp (SPEC §3.1) in the same step.
-- Returns {proxyUrl, source, countAfter}: source held|override|sticky|pool; proxyUrl '' with source none (no
-- capacity) or override_unavailable|override_bad|override_full (an override that cannot be honoured).
local slotKey, tempKey, allKey, availableKey, urlsKey, privateKey, stickyKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local p, a = ARGV[1], cjson.decode(ARGV[2])
local sid, tenant, limit, override = a.sessionId, a.tenant, a.limit, a.override
local excluded = {}
for _, u in ipairs(a.exclude) do excluded[u] = true end

-- The proxy id of a URL (common/proxy-id.ts): key names carry it, never the URL and its credentials.
local function pid(u) return string.sub(redis.sha1hex(u), 1, 16) end
local function counter(u) return tonumber(redis.call('GET', p .. 'counter:proxy:' .. pid(u)) or '0') end
local function healthy(u) return redis.call('GET', p .. 'proxy:status:' .. pid(u)) ~= 'BAD' end
local function registered(u) return redis.call('SISMEMBER', allKey, u) == 1 end
local function privateTo(u) return redis.call('HGET', privateKey, pid(u)) end
local function usable(u)
  return u and not excluded[u] and registered(u) and healthy(u) and counter(u) < limit
end

local held = redis.call('GET', slotKey)
if held then
  redis.call('SET', tempKey, held)
  return {held, 'held', counter(held)}
end

local chosen, source = nil, nil
if override then
  if not registered(override) then
    -- A tenant's own proxy stays private to it: registered, never in proxies:available (the shared pool).
    redis.call('SADD', allKey, override)
    redis.call('HSET', urlsKey, pid(override), override)
    redis.call('HSET', privateKey, pid(override), tenant)
    redis.call('SET', p .. 'proxy:status:' .. pid(override), 'OK', 'NX')
    redis.call('SETNX', p .. 'counter:proxy:' .. pid(override), 0)
  end
  local owner = privateTo(override)
  -- SPEC §3.1: an override that cannot be honoured is refused, never silently replaced by another proxy.
  if owner and owner ~= tenant then return {'', 'override_unavailable', 0} end
  if not healthy(override) then return {'', 'override_bad', 0} end
  if counter(override) >= limit then return {'', 'override_full', 0} end
  if not excluded[override] then chosen, source = override, 'override' end
end
if chosen == nil and a.phone then
  local sticky = redis.call('GET', stickyKey)
  if usable(sticky) then
    local owner = privateTo(sticky)
    if not owner or owner == tenant then chosen, source = sticky, 'sticky' end
  end
end
if chosen == nil then
  local best, bestLoad = nil, nil
  for _, u in ipairs(redis.call('SMEMBERS', availableKey)) do
    if not excluded[u] and healthy(u) then
      local c = counter(u)
      if c < limit and (bestLoad == nil or c < bestLoad or (c == bestLoad and u < best)) then
        best, bestLoad = u, c
      end
    end
  end
  if best then chosen, source = best, 'pool' end
end
if chosen == nil then return {'', 'none', 0} end

redis.call('SADD', p .. 'proxy:sessions:' .. pid(chosen), sid)
local after = redis.call('INCR', p .. 'counter:proxy:' .. pid(chosen))
redis.call('SET', slotKey, chosen)
redis.call('SET', tempKey, chosen)
return {chosen, source, after}
