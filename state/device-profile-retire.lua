-- Retires a device profile unless a session presents it (state/device-profiles.ts), atomically with assignment.
-- ARGV: key prefix, profile id. Returns 'retired', 'in_use' or 'unknown'.
local p, id = ARGV[1], ARGV[2]
if redis.call('HEXISTS', p .. 'device:profiles', id) == 0 then return 'unknown' end
if redis.call('SCARD', p .. 'device:profile:sessions:' .. id) > 0 then return 'in_use' end
redis.call('SADD', p .. 'device:profiles:retired', id)
return 'retired'
