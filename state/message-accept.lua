-- The gateway's one atomic step for POST /api/send (messages.ts accept): idempotency replay, per-tenant and global
-- sliding-window rate limits (both checked before either moves; Retry-After = when the oldest counted request
-- leaves the window), the message record, the session's pending queue, a first plan (queued, or scheduled past
-- the daily cap), whether the dispatcher needs a wake-up, and burst detection.
-- KEYS: [1] idem:<tenant>:<key> (not read without a key)  [2] ratelimit:tenant:<tenant>  [3] ratelimit:global
--       [4] antiban:limits:<session>  [5] dispatch:sent:<session>  [6] dispatch:pending:<session>
--       [7] message:<id>  [8] dispatch:sessions  [9] dispatch:state:<session>  [10] dispatch:enqueued:<session>
-- ARGV: [1] JSON {messageId, sessionId, tenant, to, fingerprint, idempotencyKey?, tenantMax, globalMax,
--           rateWindowMs, idemTtlMs, dailyCaps = {cold, warm, hot}, dayMs, burstCount, burstWindowMs,
--           burstPauseMs, staleBaseMs, maxGapMs, gapFactor, retentionMs}: the dispatcher counts as stuck after
--           staleBaseMs + gap · gapFactor without a step; retentionMs is the record's expiry
--       [2] the message text, apart: cjson refuses the lone UTF-16 surrogates that Node sends as U+FFFD
--       [3] a media message's descriptor JSON (common/media.ts: type, uploadId, MIME, size, SHA-256, name), or ''
--           (apart for the same reason: a file name is the client's text)
--       [4] a reaction / location / contact / edit / revoke / reply descriptor JSON (common/message-actions.ts
--           OutboxExtra), or ''
-- Returns {kind, payload, retryAfterMs, burst, wake}: kind accepted|replay (payload = the response JSON), conflict
-- (payload = the key's message id), limited (payload = tenant|global).
local idemKey, tenantRate, globalRate, limitsKey, sentKey, pendingKey, messageKey, sessionsKey, stateKey, enqueuedKey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local a, text = cjson.decode(ARGV[1]), ARGV[2]
local mid, sid, idem = a.messageId, a.sessionId, a.idempotencyKey
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if idem then
  local prev = redis.call('GET', idemKey)
  if prev then
    local rec = cjson.decode(prev)
    if rec.fingerprint ~= a.fingerprint then return {'conflict', rec.messageId, 0, 0} end
    return {'replay', rec.response, 0, 0}
  end
end
-- sliding-window logs: ZSETs of accepted message ids scored by time
redis.call('ZREMRANGEBYSCORE', tenantRate, '-inf', now - a.rateWindowMs)
redis.call('ZREMRANGEBYSCORE', globalRate, '-inf', now - a.rateWindowMs)
local function retryAfter(k, max)
  local e = redis.call('ZRANGE', k, -max, -max, 'WITHSCORES')
  return math.max(1, tonumber(e[2] or now) + a.rateWindowMs - now)
end
if redis.call('ZCARD', tenantRate) >= a.tenantMax then
  return {'limited', 'tenant', retryAfter(tenantRate, a.tenantMax), 0}
end
if redis.call('ZCARD', globalRate) >= a.globalMax then
  return {'limited', 'global', retryAfter(globalRate, a.globalMax), 0}
end
for _, k in ipairs({tenantRate, globalRate}) do
  redis.call('ZADD', k, now, mid)
  redis.call('PEXPIRE', k, a.rateWindowMs)
end

--- @include "message-shared.lua"

local level = redis.call('HGET', limitsKey, 'level') or 'cold'
local cap = tonumber(redis.call('HGET', limitsKey, 'dailyCap') or '') or a.dailyCaps[level] or a.dailyCaps.cold
redis.call('ZREMRANGEBYSCORE', sentKey, '-inf', now - a.dayMs)
local used = redis.call('ZCARD', sentKey)
local idx = used + redis.call('LLEN', pendingKey)
local status = 'queued'
local response
if idx >= cap then
  status = 'scheduled'
  local at = plannedAt(sentKey, now, a.dayMs, used, cap, idx)
  redis.call('HSET', messageKey, 'plannedAt', at)
  response = cjson.encode({messageId = mid, sessionId = sid, status = status, plannedAt = at})
else
  response = cjson.encode({messageId = mid, sessionId = sid, status = status})
end
redis.call('HSET', messageKey, 'id', mid, 'sessionId', sid, 'tenant', a.tenant, 'to', a.to, 'text', text,
  'status', status, 'createdAt', now, 'updatedAt', now)
if idem then redis.call('HSET', messageKey, 'idempotencyKey', idem) end
if ARGV[3] ~= '' then redis.call('HSET', messageKey, 'media', ARGV[3]) end
if ARGV[4] and ARGV[4] ~= '' then redis.call('HSET', messageKey, 'extra', ARGV[4]) end
-- Records do not live forever: kept MESSAGE_RETENTION_MS from the last change.
redis.call('PEXPIRE', messageKey, a.retentionMs)
redis.call('RPUSH', pendingKey, mid)
redis.call('SADD', sessionsKey, sid)
if idem then
  redis.call('SET', idemKey, cjson.encode({messageId = mid, fingerprint = a.fingerprint, response = response}),
    'PX', a.idemTtlMs)
end

-- Does the dispatcher need a wake-up? Only when it said it is idle (flag set by its step), has never run, or has
-- not stepped for longer than any gap it could be sleeping (a crashed or stuck dispatcher); not while it is pacing
-- or waiting for the window to open: it will see this message on its next step anyway.
local sv = redis.call('HMGET', stateKey, 'idle', 'stepAt', 'capUntil')
local wake = 0
local gap = tonumber(redis.call('HGET', limitsKey, 'gapMs') or '') or a.maxGapMs
local staleMs = a.staleBaseMs + gap * a.gapFactor
if sv[1] == '1' then
  wake = 1
  redis.call('HDEL', stateKey, 'idle')
elseif not sv[2] then
  wake = 1
elseif tonumber(sv[3] or '0') < now and now - tonumber(sv[2]) > staleMs then
  wake = 1
end

redis.call('ZADD', enqueuedKey, now, mid)
redis.call('ZREMRANGEBYSCORE', enqueuedKey, '-inf', now - a.burstWindowMs)
redis.call('PEXPIRE', enqueuedKey, a.burstWindowMs * 2)
local bc = tonumber(redis.call('HGET', limitsKey, 'burstCount') or '') or a.burstCount
local burst = 0
if redis.call('ZCARD', enqueuedKey) > bc and tonumber(redis.call('HGET', stateKey, 'burstUntil') or '0') < now then
  redis.call('HSET', stateKey, 'burstUntil', now + a.burstPauseMs)
  burst = 1
end
return {'accepted', response, 0, burst, wake}
