-- Places a session on a host (hosts.ts place): the live host (heartbeat at most staleMs old), not draining, with the
-- most free capacity, ties broken by host id. Idempotent: a session already placed keeps its host.
-- KEYS: [1] hosts  [2] hosts being drained
-- ARGV: [1] key prefix: host:sessions:<host id> of each host is built from it, because the hosts are read here
--       [2] sessionId  [3] staleMs  [4] nowMs
-- Returns the host id, or '' when every live host is full (or none is alive).
local hostsKey, drainingKey = KEYS[1], KEYS[2]
local p, sid, stale, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
--- @include "host-shared.lua"
local current = hostOf(p, hostsKey, sid)
if current then return current end
local best = bestHost(p, hostsKey, drainingKey, stale, now, {})
if best ~= '' then redis.call('SADD', sessionsKey(p, best), sid) end
return best
