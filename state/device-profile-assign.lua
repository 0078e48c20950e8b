-- Assigns a device profile to a session, atomically (state/device-profiles.ts).
-- ARGV: key prefix, sessionId, the session's proxy URL ('' when none).
-- Idempotent: a session that has a profile keeps it. Otherwise the least-used active (not retired) profile that no
-- other session on the same proxy presents; ties broken by the inventory order (`seq`). Returns {id, json}, or
-- {'', ''} when every active profile is taken on that proxy.
local p, sid, proxy = ARGV[1], ARGV[2], ARGV[3]
local held = redis.call('GET', p .. 'session:profile:' .. sid)
if held then return {held, redis.call('HGET', p .. 'device:profiles', held) or ''} end

local taken = {}
if proxy ~= '' then
  -- proxy:sessions:<proxy id> (common/redis-keys.ts): the proxy id is the first 16 hex of the URL's SHA-1.
  local members = redis.call('SMEMBERS', p .. 'proxy:sessions:' .. string.sub(redis.sha1hex(proxy), 1, 16))
  for _, other in ipairs(members) do
    if other ~= sid then
      local id = redis.call('GET', p .. 'session:profile:' .. other)
      if id then taken[id] = true end
    end
  end
end

local best, bestJson, bestUse, bestSeq = nil, nil, 0, 0
local all = redis.call('HGETALL', p .. 'device:profiles')
for i = 1, #all, 2 do
  local id, json = all[i], all[i + 1]
  if not taken[id] and redis.call('SISMEMBER', p .. 'device:profiles:retired', id) == 0 then
    local use = redis.call('SCARD', p .. 'device:profile:sessions:' .. id)
    local seq = tonumber(cjson.decode(json).seq) or 0
    if best == nil or use < bestUse or (use == bestUse and seq < bestSeq) then
      best, bestJson, bestUse, bestSeq = id, json, use, seq
    end
  end
end
if not best then return {'', ''} end
redis.call('SET', p .. 'session:profile:' .. sid, best)
redis.call('SADD', p .. 'device:profile:sessions:' .. best, sid)
return {best, bestJson}
