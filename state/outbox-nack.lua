-- A worker could not send a message (outbox.ts nack): it goes back to the head of the queue (retryable, until
-- maxAttempts claims) or to :failed for good (permanent). A failure is settled (outbox-shared.lua): noted in
-- :settled, records older than retentionMs dropped (up to 100), the expiry of the three keys re-armed.
-- KEYS: [1] session:outbox:<session> (queue)  [2] its :items  [3] its :attempts  [4] its :inflight  [5] its :acked
--       [6] its :failed  [7] its :settled
-- ARGV: [1] messageId  [2] reason  [3] permanent 1|0  [4] maxAttempts  [5] retentionMs
-- Returns requeued | failed | conflict (acked already) | not_found.
local queue, items, attempts, inflight, acked, failed, settled = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id, reason, permanent, maxAttempts, retention = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4]), tonumber(ARGV[5])
--- @include "outbox-shared.lua"
local now = nowMs()
if redis.call('HEXISTS', acked, id) == 1 then return 'conflict' end
if redis.call('HEXISTS', items, id) == 0 then
  if redis.call('HEXISTS', failed, id) == 1 then return 'failed' end
  return 'not_found'
end
redis.call('ZREM', inflight, id)
redis.call('LREM', queue, 0, id)
local n = tonumber(redis.call('HGET', attempts, id) or '0')
if not permanent and n < maxAttempts then
  redis.call('LPUSH', queue, id)
  return 'requeued'
end
redis.call('HDEL', items, id)
redis.call('HDEL', attempts, id)
redis.call('HSET', failed, id, cjson.encode({reason = reason, attempts = n, at = now, permanent = permanent}))
settle(acked, failed, settled, id, now, retention)
return 'failed'
