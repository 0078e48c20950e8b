-- Retires a device profile unless a session presents it (device-profiles.ts retire), atomically with assignment.
-- KEYS: [1] device:profiles  [2] device:profile:sessions:<profile id>  [3] device:profiles:retired
-- ARGV: [1] profile id
-- Returns 'retired', 'in_use' or 'unknown'.
local profilesKey, sessionsKey, retiredKey = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
if redis.call('HEXISTS', profilesKey, id) == 0 then return 'unknown' end
if redis.call('SCARD', sessionsKey) > 0 then return 'in_use' end
redis.call('SADD', retiredKey, id)
return 'retired'
