-- Hands a claimed message back (outbox.ts release): its worker hung up before the claim's answer reached it. Back at
-- the head of the queue, the claim not counted (the attempt limit counts sends the worker tried).
-- KEYS: [1] session:outbox:<session> (queue)  [2] its :attempts  [3] its :inflight
-- ARGV: [1] messageId
-- Returns 1, or 0 when the message is not in flight (settled, or its lease ran out and it was claimed again).
local queue, attempts, inflight = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
if redis.call('ZREM', inflight, id) == 0 then return 0 end
redis.call('LPUSH', queue, id)
redis.call('HINCRBY', attempts, id, -1)
return 1
