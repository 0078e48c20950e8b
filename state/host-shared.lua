-- Shared by the placement scripts (included with `--- @include`).
local function sessionsKey(prefix, hostId) return prefix .. 'host:sessions:' .. hostId end

-- The host the session is placed on, or nil.
local function hostOf(prefix, hostsKey, sid)
  local ids = redis.call('HKEYS', hostsKey)
  for _, id in ipairs(ids) do
    if redis.call('SISMEMBER', sessionsKey(prefix, id), sid) == 1 then return id end
  end
  return nil
end

-- The live (heartbeat at most staleMs old), not draining, not excluded host with the most free capacity; ties by id.
local function bestHost(prefix, hostsKey, drainingKey, stale, now, exclude)
  local hosts = redis.call('HGETALL', hostsKey)
  local best, bestFree = '', -1
  for i = 1, #hosts, 2 do
    local id = hosts[i]
    local info = cjson.decode(hosts[i + 1])
    if not exclude[id] and now - info.heartbeatAt <= stale and redis.call('SISMEMBER', drainingKey, id) == 0 then
      local free = info.capacity - redis.call('SCARD', sessionsKey(prefix, id))
      if free > 0 and (free > bestFree or (free == bestFree and id < best)) then best, bestFree = id, free end
    end
  end
  return best
end
