-- Places a session on a host (hosts.ts place): the live host (heartbeat at most staleMs old) with the most free
-- capacity, ties broken by host id. Idempotent: a session already placed keeps its host.
-- KEYS: [1] hosts
-- ARGV: [1] key prefix: host:sessions:<host id> of each host is built from it, because the hosts are read here
--       [2] sessionId  [3] staleMs  [4] nowMs
-- Returns the host id, or '' when every live host is full (or none is alive).
local hostsKey = KEYS[1]
local p, sid, stale, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local function sessionsKey(id) return p .. 'host:sessions:' .. id end
local hosts = redis.call('HGETALL', hostsKey)
local best, bestFree = '', -1
for i = 1, #hosts, 2 do
  local id = hosts[i]
  local info = cjson.decode(hosts[i + 1])
  if redis.call('SISMEMBER', sessionsKey(id), sid) == 1 then return id end
  if now - info.heartbeatAt <= stale then
    local free = info.capacity - redis.call('SCARD', sessionsKey(id))
    if free > 0 and (free > bestFree or (free == bestFree and id < best)) then best, bestFree = id, free end
  end
end
if best ~= '' then redis.call('SADD', sessionsKey(best), sid) end
return best
