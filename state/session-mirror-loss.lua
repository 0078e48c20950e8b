-- A worker's connection loss, mirrored by the webhook bridge before it signals the workflow (sessions.ts
-- mirrorLoss): connected → reconnecting, only while the record is connected and the event comes from the current
-- worker. The status-write count (`mirrorSeq`, moved by every status write, sessions.ts update) goes up by one;
-- the workflow, told the count this was written on top of, changes only its own state when that was its own last
-- write, and writes as usual otherwise.
-- KEYS: [1] session:<id>  [2] session:generation:<id>  [3] sessions:active
-- ARGV: [1] sessionId  [2] the event's worker generation  [3] lastError  [4] now (ms)
-- Returns the status-write count before this write, or false when nothing was written.
local record, generation, active = KEYS[1], KEYS[2], KEYS[3]
if redis.call('GET', generation) ~= ARGV[2] then return false end
if redis.call('HGET', record, 'status') ~= 'connected' then return false end
local from = tonumber(redis.call('HGET', record, 'mirrorSeq') or '0')
redis.call('HSET', record, 'status', 'reconnecting', 'lastError', ARGV[3], 'updatedAt', ARGV[4])
redis.call('HINCRBY', record, 'mirrorSeq', 1)
redis.call('SADD', active, ARGV[1])
return from
