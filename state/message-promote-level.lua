-- Compare-and-set of a session's trust level (messages.ts maybePromote): a promotion loses to a concurrent manual
-- change of the level or of autoPromote.
-- KEYS: [1] antiban:limits:<session>
-- ARGV: [1] the level read before (from)  [2] the new level (to)
-- Returns 1 when promoted, else 0.
local limitsKey = KEYS[1]
if (redis.call('HGET', limitsKey, 'level') or 'cold') ~= ARGV[1] then return 0 end
if redis.call('HGET', limitsKey, 'autoPromote') == 'false' then return 0 end
redis.call('HSET', limitsKey, 'level', ARGV[2])
return 1
