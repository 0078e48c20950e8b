-- Moves a message's status forward only (messages.ts setStatus): queued/scheduled < sent < delivered < read;
-- failed only before delivery. Counts deliveries and failures for promotion, re-arms the record's expiry.
-- KEYS: [1] message:<id>
-- ARGV: [1] key prefix: antiban:stats:<session> is built from it, because the session is read from the record
--       [2] status  [3] waMessageId or ''  [4] reason or ''  [5] sessionId or '' (a worker's report: only its own
--       session's messages)  [6] retentionMs
-- Returns {applied 0|1, previous status, sessionId, tenant}.
local messageKey = KEYS[1]
local p, status, wa, reason, onlySession, retention = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', messageKey, 'status', 'sessionId', 'tenant')
if not cur[1] then return {0, '', '', ''} end
if onlySession ~= '' and cur[2] ~= onlySession then return {0, '', '', ''} end
local rank = {queued = 0, scheduled = 0, sent = 1, delivered = 2, read = 3}
local prev = cur[1]
if prev == 'failed' then return {0, prev, cur[2], cur[3]} end
if status == 'failed' then
  if rank[prev] >= 2 then return {0, prev, cur[2], cur[3]} end
elseif rank[status] <= rank[prev] then
  return {0, prev, cur[2], cur[3]}
end
redis.call('HSET', messageKey, 'status', status, status .. 'At', now, 'updatedAt', now)
if wa ~= '' then redis.call('HSET', messageKey, 'waMessageId', wa) end
if reason ~= '' then redis.call('HSET', messageKey, 'reason', reason) end
if retention and retention > 0 then redis.call('PEXPIRE', messageKey, retention) end
local stats = p .. 'antiban:stats:' .. cur[2]
if (status == 'delivered' or status == 'read') and rank[prev] < 2 then redis.call('HINCRBY', stats, 'delivered', 1) end
if status == 'failed' then redis.call('HINCRBY', stats, 'failed', 1) end
return {1, prev, cur[2], cur[3]}
