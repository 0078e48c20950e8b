-- Claims the next message of a session's worker outbox with a lease (outbox.ts claim), expired leases first: they
-- go back to the head of the queue, oldest claim first, as in outbox-reclaim.lua.
-- KEYS: [1] session:outbox:<session> (queue)  [2] its :items  [3] its :attempts  [4] its :inflight
-- ARGV: [1] leaseMs
-- Returns {item JSON, attempt, lease deadline ms}, or nil when the outbox is empty.
local queue, items, attempts, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
--- @include "outbox-shared.lua"
local now = nowMs()
requeueExpired(queue, inflight, now)
while true do
  local id = redis.call('LPOP', queue)
  if not id then return nil end
  local item = redis.call('HGET', items, id)
  if item and redis.call('ZSCORE', inflight, id) == false then
    local attempt = redis.call('HINCRBY', attempts, id, 1)
    local deadline = now + tonumber(ARGV[1])
    redis.call('ZADD', inflight, deadline, id)
    return {item, attempt, deadline}
  end
end
