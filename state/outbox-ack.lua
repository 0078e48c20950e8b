-- Records a message's WhatsApp id (outbox.ts ack), idempotently: the same id again is a duplicate, another id for
-- an acked (or failed) message a conflict. Settled records (ACK / failure) are kept retentionMs: each settle notes
-- its time in :settled, drops up to 100 records older than that and re-arms the expiry of the three keys, so an
-- active session's hashes stay bounded and an idle one's vanish (the same as in outbox-nack.lua).
-- KEYS: [1] session:outbox:<session> (queue)  [2] its :items  [3] its :attempts  [4] its :inflight  [5] its :acked
--       [6] its :failed  [7] its :settled
-- ARGV: [1] messageId  [2] waMessageId  [3] retentionMs
-- Returns acked | duplicate | conflict | not_found.
local queue, items, attempts, inflight, acked, failed, settled = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id, wa, retention = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prev = redis.call('HGET', acked, id)
if prev then
  if prev == wa then return 'duplicate' end
  return 'conflict'
end
if redis.call('HEXISTS', items, id) == 0 then
  if redis.call('HEXISTS', failed, id) == 1 then return 'conflict' end
  return 'not_found'
end
redis.call('ZREM', inflight, id)
redis.call('LREM', queue, 0, id)
redis.call('HDEL', items, id)
redis.call('HDEL', attempts, id)
redis.call('HSET', acked, id, wa)
redis.call('ZADD', settled, now, id)
for _, old in ipairs(redis.call('ZRANGEBYSCORE', settled, '-inf', now - retention, 'LIMIT', 0, 100)) do
  redis.call('HDEL', acked, old)
  redis.call('HDEL', failed, old)
  redis.call('ZREM', settled, old)
end
for _, k in ipairs({acked, failed, settled}) do
  if redis.call('EXISTS', k) == 1 then redis.call('PEXPIRE', k, retention) end
end
return 'acked'
