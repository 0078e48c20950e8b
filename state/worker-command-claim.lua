-- Takes the earliest command that is due (worker-commands.ts claim), atomically: two claims never get the same one.
-- KEYS: [1] session:commands:<session>
-- ARGV: [1] nowMs
-- Returns the command JSON, or nil when none is due.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return false end
redis.call('ZREM', KEYS[1], due[1])
return due[1]
