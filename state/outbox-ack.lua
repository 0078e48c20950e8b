-- Records a message's WhatsApp id (outbox.ts ack), idempotently: the same id again is a duplicate, another id for
-- an acked (or failed) message a conflict. Settled records (ACK / failure) are kept retentionMs: each settle notes
-- its time in :settled, drops up to 100 records older than that and re-arms the expiry of the three keys, so an
-- active session's hashes stay bounded and an idle one's vanish (settle, outbox-shared.lua).
-- KEYS: [1] session:outbox:<session> (queue)  [2] its :items  [3] its :attempts  [4] its :inflight  [5] its :acked
--       [6] its :failed  [7] its :settled
-- ARGV: [1] messageId  [2] waMessageId  [3] retentionMs
-- Returns acked | duplicate | conflict | not_found.
local queue, items, attempts, inflight, acked, failed, settled = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id, wa, retention = ARGV[1], ARGV[2], tonumber(ARGV[3])
--- @include "outbox-shared.lua"
local now = nowMs()
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
settle(acked, failed, settled, id, now, retention)
return 'acked'
