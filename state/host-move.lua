-- Moves a session off a host (hosts.ts move): to the best other host (see bestHost), in one step, so the session
-- is counted on exactly one host at any time. Idempotent: a session no longer on `from` stays where it is.
-- KEYS: [1] hosts  [2] hosts being drained  [3] the session's record (its `host` field follows the move)
-- ARGV: [1] key prefix  [2] sessionId  [3] from host id  [4] staleMs  [5] nowMs  [6] JSON array of hosts to skip
--       [7] a host to move to whatever its state ('' to pick the best): the way back of a move that failed
-- Returns the host id the session is on now, or '' when no other host can take it (nothing changed then).
local hostsKey, drainingKey, recordKey = KEYS[1], KEYS[2], KEYS[3]
local p, sid, from, stale, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
--- @include "host-shared.lua"
if redis.call('SISMEMBER', sessionsKey(p, from), sid) == 0 then return hostOf(p, hostsKey, sid) or '' end
local exclude = { [from] = true }
for _, id in ipairs(cjson.decode(ARGV[6])) do exclude[id] = true end
local best = ARGV[7]
if best == '' or redis.call('HEXISTS', hostsKey, best) == 0 then
  best = bestHost(p, hostsKey, drainingKey, stale, now, exclude)
end
if best == '' then return '' end
redis.call('SREM', sessionsKey(p, from), sid)
redis.call('SADD', sessionsKey(p, best), sid)
if redis.call('EXISTS', recordKey) == 1 then redis.call('HSET', recordKey, 'host', best) end
return best
