-- Adds a message at the tail of a session's worker outbox (outbox.ts enqueue). Idempotent: an id already queued,
-- in flight, acked or failed is not added again.
-- KEYS: [1] session:outbox:<session> (queue)  [2] its :items  [3] its :acked  [4] its :failed
-- ARGV: [1] messageId  [2] item JSON
-- Returns 1 when added, else 0.
local queue, items, acked, failed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id = ARGV[1]
if redis.call('HEXISTS', items, id) == 1 or redis.call('HEXISTS', acked, id) == 1
  or redis.call('HEXISTS', failed, id) == 1 then return 0 end
redis.call('HSET', items, id, ARGV[2])
redis.call('RPUSH', queue, id)
return 1
