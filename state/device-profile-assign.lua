-- Assigns a device profile to a session, atomically (device-profiles.ts assign). Idempotent: a session that has a
-- profile keeps it. Otherwise the least-used active (not retired) profile that no other session on the same proxy
-- presents; ties broken by the inventory order (`seq`).
-- KEYS: [1] session:profile:<session>  [2] device:profiles  [3] device:profiles:retired
--       [4] proxy:sessions:<proxy id> of the session's proxy (absent when it has none)
-- ARGV: [1] key prefix: session:profile:<other session> and device:profile:sessions:<profile id> are built from
--           it, because the sessions and profiles are read here  [2] sessionId
-- Returns {id, json}, or {'', ''} when every active profile is taken on that proxy.
local profileKey, profilesKey, retiredKey, proxySessionsKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local p, sid = ARGV[1], ARGV[2]
local held = redis.call('GET', profileKey)
if held then return {held, redis.call('HGET', profilesKey, held) or ''} end

local taken = {}
if proxySessionsKey then
  for _, other in ipairs(redis.call('SMEMBERS', proxySessionsKey)) do
    if other ~= sid then
      local id = redis.call('GET', p .. 'session:profile:' .. other)
      if id then taken[id] = true end
    end
  end
end

local best, bestJson, bestUse, bestSeq = nil, nil, 0, 0
local all = redis.call('HGETALL', profilesKey)
for i = 1, #all, 2 do
  local id, json = all[i], all[i + 1]
  if not taken[id] and redis.call('SISMEMBER', retiredKey, id) == 0 then
    local use = redis.call('SCARD', p .. 'device:profile:sessions:' .. id)
    local seq = tonumber(cjson.decode(json).seq) or 0
    if best == nil or use < bestUse or (use == bestUse and seq < bestSeq) then
      best, bestJson, bestUse, bestSeq = id, json, use, seq
    end
  end
end
if not best then return {'', ''} end
redis.call('SET', profileKey, best)
redis.call('SADD', p .. 'device:profile:sessions:' .. best, sid)
return {best, bestJson}
