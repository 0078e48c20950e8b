/**
 * Every Lua script the product runs, beside the key schema they use (common/redis-keys.ts). Scripts build keys
 * from the prefix passed as ARGV[1], with the same names as redisKeys(); they run atomically, which is what
 * keeps proxy counters exact under concurrent provisioning.
 */

/** Shared helpers, pasted at the top of the pool scripts. `p` is the key prefix. */
const POOL_HELPERS = `
local p = ARGV[1]
local function counter(u) return tonumber(redis.call('GET', p .. 'counter:proxy:' .. u) or '0') end
local function healthy(u) return redis.call('GET', p .. 'proxy:status:' .. u) ~= 'BAD' end
local function registered(u) return redis.call('SISMEMBER', p .. 'proxies:all', u) == 1 end
`;

/**
 * Reserve a proxy slot for a session.
 * ARGV: prefix, sessionId, phone|'' , override|'', limit, excluded urls joined by '\n'.
 * Order: held slot (idempotent retry) → override (healthy, below limit) → the phone's sticky proxy →
 * the least-loaded healthy proxy below the limit (ties broken by URL, so the choice is deterministic).
 * Returns {proxyUrl, source, countAfter}; proxyUrl '' with source 'none' when nothing has capacity.
 * Also writes the temporary binding session:temp:<id> (SPEC §3.1) in the same atomic step.
 */
export const RESERVE_PROXY_LUA = `${POOL_HELPERS}
local sid, phone, override, limit = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local excluded = {}
for u in string.gmatch(ARGV[6], '[^\\n]+') do excluded[u] = true end
local function usable(u)
  return u ~= nil and u ~= '' and not excluded[u] and registered(u) and healthy(u) and counter(u) < limit
end

local held = redis.call('GET', p .. 'session:slot:' .. sid)
if held then
  redis.call('SET', p .. 'session:temp:' .. sid, held)
  return {held, 'held', counter(held)}
end

local chosen, source = nil, nil
if override ~= '' then
  if not registered(override) then
    redis.call('SADD', p .. 'proxies:all', override)
    redis.call('SET', p .. 'proxy:status:' .. override, 'OK', 'NX')
    if healthy(override) then redis.call('SADD', p .. 'proxies:available', override) end
  end
  if usable(override) then chosen, source = override, 'override' end
end
if chosen == nil and phone ~= '' then
  local sticky = redis.call('GET', p .. 'phone:proxy:' .. phone)
  if sticky and usable(sticky) then chosen, source = sticky, 'sticky' end
end
if chosen == nil then
  local best, bestLoad = nil, nil
  for _, u in ipairs(redis.call('SMEMBERS', p .. 'proxies:available')) do
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

redis.call('SADD', p .. 'proxy:sessions:' .. chosen, sid)
local after = redis.call('INCR', p .. 'counter:proxy:' .. chosen)
redis.call('SET', p .. 'session:slot:' .. sid, chosen)
redis.call('SET', p .. 'session:temp:' .. sid, chosen)
return {chosen, source, after}
`;

/**
 * Release the slot a session holds (if any). Idempotent; never drives a counter below zero.
 * ARGV: prefix, sessionId. Returns the released proxyUrl or ''.
 */
export const RELEASE_PROXY_LUA = `${POOL_HELPERS}
local sid = ARGV[2]
local held = redis.call('GET', p .. 'session:slot:' .. sid)
redis.call('DEL', p .. 'session:temp:' .. sid)
if not held then return '' end
if redis.call('SREM', p .. 'proxy:sessions:' .. held, sid) == 1 then
  if counter(held) > 0 then
    redis.call('DECR', p .. 'counter:proxy:' .. held)
  else
    redis.call('SET', p .. 'counter:proxy:' .. held, 0)
  end
end
redis.call('DEL', p .. 'session:slot:' .. sid)
return held
`;

/** Register a proxy (idempotent). A proxy already marked BAD stays BAD. ARGV: prefix, url. Returns 1 if new. */
export const REGISTER_PROXY_LUA = `${POOL_HELPERS}
local u = ARGV[2]
local added = redis.call('SADD', p .. 'proxies:all', u)
redis.call('SET', p .. 'proxy:status:' .. u, 'OK', 'NX')
redis.call('SETNX', p .. 'counter:proxy:' .. u, 0)
if healthy(u) then redis.call('SADD', p .. 'proxies:available', u) end
return added
`;

/** ARGV: prefix, url, status ('OK'|'BAD'), nowMs. Returns 0 when the proxy is not registered. */
export const SET_PROXY_STATUS_LUA = `${POOL_HELPERS}
local u, status, now = ARGV[2], ARGV[3], ARGV[4]
if not registered(u) then return 0 end
redis.call('SET', p .. 'proxy:status:' .. u, status)
if status == 'BAD' then
  redis.call('SET', p .. 'proxy:bad_at:' .. u, now)
  redis.call('SREM', p .. 'proxies:available', u)
else
  redis.call('DEL', p .. 'proxy:bad_at:' .. u)
  redis.call('SADD', p .. 'proxies:available', u)
end
return 1
`;

/** Remove a proxy only while no session holds a slot on it. ARGV: prefix, url. Returns 1, 0 (unknown) or -1 (in use). */
export const REMOVE_PROXY_LUA = `${POOL_HELPERS}
local u = ARGV[2]
if not registered(u) then return 0 end
if counter(u) > 0 or redis.call('SCARD', p .. 'proxy:sessions:' .. u) > 0 then return -1 end
redis.call('SREM', p .. 'proxies:all', u)
redis.call('SREM', p .. 'proxies:available', u)
redis.call('DEL', p .. 'counter:proxy:' .. u, p .. 'proxy:status:' .. u, p .. 'proxy:bad_at:' .. u, p .. 'proxy:sessions:' .. u)
return 1
`;

/** Delete KEYS[1] only while it still holds ARGV[1] (an owner releasing what it owns). Returns 1 when deleted. */
export const DELETE_IF_VALUE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
