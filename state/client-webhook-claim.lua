-- Claims due customer-webhook deliveries with a lease (client-webhooks.ts claim): the due time moves to
-- now + leaseMs, so a crashed deliverer's items come due again by themselves. An id without an item is dropped.
-- KEYS: [1] clienthook:due  [2] clienthook:items
-- ARGV: [1] limit (deliveries at most)  [2] leaseMs
-- Returns a flat list {id, json, id, json, ...}.
local dueKey, itemsKey = KEYS[1], KEYS[2]
local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', dueKey, '-inf', now, 'LIMIT', 0, limit)) do
  local item = redis.call('HGET', itemsKey, id)
  if item then
    redis.call('ZADD', dueKey, now + lease, id)
    table.insert(out, id)
    table.insert(out, item)
  else
    redis.call('ZREM', dueKey, id)
  end
end
return out
