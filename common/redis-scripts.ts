/**
 * Every Lua script the product runs, beside the key schema they use (common/redis-keys.ts). Scripts build keys
 * from the prefix passed as ARGV[1], with the same names as redisKeys(); they run atomically, which is what
 * keeps proxy counters exact under concurrent provisioning.
 */

/** Shared helpers, pasted at the top of the pool scripts. `p` is the key prefix. */
const POOL_HELPERS = `
local p = ARGV[1]
-- The proxy id of a URL (common/proxy-id.ts): key names carry it, never the URL and its credentials.
local function pid(u) return string.sub(redis.sha1hex(u), 1, 16) end
local function counter(u) return tonumber(redis.call('GET', p .. 'counter:proxy:' .. pid(u)) or '0') end
local function healthy(u) return redis.call('GET', p .. 'proxy:status:' .. pid(u)) ~= 'BAD' end
local function registered(u) return redis.call('SISMEMBER', p .. 'proxies:all', u) == 1 end
`;

/**
 * Reserve a proxy slot for a session.
 * ARGV: prefix, sessionId, phone|'' , override|'', limit, excluded urls joined by '\n', tenant.
 * Order: held slot (idempotent retry) → override (healthy, below limit) → the phone's sticky proxy →
 * the least-loaded healthy proxy below the limit (ties broken by URL, so the choice is deterministic).
 * Returns {proxyUrl, source, countAfter}; proxyUrl '' with source 'none' when nothing has capacity.
 * Also writes the temporary binding session:temp:<id> (SPEC §3.1) in the same atomic step.
 */
export const RESERVE_PROXY_LUA = `${POOL_HELPERS}
local sid, phone, override, limit, tenant = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[7]
local excluded = {}
for u in string.gmatch(ARGV[6], '[^\\n]+') do excluded[u] = true end
local function usable(u)
  return u ~= nil and u ~= '' and not excluded[u] and registered(u) and healthy(u) and counter(u) < limit
end

local held = redis.call('GET', p .. 'session:slot:' .. sid)
if held then
  redis.call('SET', p .. 'session:temp:' .. sid, held)
  return {held, 'held', counter(held)}
end

local chosen, source = nil, nil
local function privateTo(u) return redis.call('HGET', p .. 'proxies:private', pid(u)) end
if override ~= '' then
  if not registered(override) then
    -- A tenant's own proxy stays private to it: registered, never in proxies:available (the shared pool).
    redis.call('SADD', p .. 'proxies:all', override)
    redis.call('HSET', p .. 'proxies:urls', pid(override), override)
    redis.call('HSET', p .. 'proxies:private', pid(override), tenant)
    redis.call('SET', p .. 'proxy:status:' .. pid(override), 'OK', 'NX')
    redis.call('SETNX', p .. 'counter:proxy:' .. pid(override), 0)
  end
  local owner = privateTo(override)
  -- SPEC 3.1: an override that cannot be honoured is refused, never silently replaced by another proxy.
  if owner and owner ~= tenant then return {'', 'override_unavailable', 0} end
  if not healthy(override) then return {'', 'override_bad', 0} end
  if counter(override) >= limit then return {'', 'override_full', 0} end
  if not excluded[override] then chosen, source = override, 'override' end
end
if chosen == nil and phone ~= '' then
  local sticky = redis.call('GET', p .. 'phone:proxy:' .. phone)
  if sticky and usable(sticky) then
    local owner = privateTo(sticky)
    if not owner or owner == tenant then chosen, source = sticky, 'sticky' end
  end
end
if chosen == nil then
  local best, bestLoad = nil, nil
  for _, u in ipairs(redis.call('SMEMBERS', p .. 'proxies:available')) do
    if not excluded[u] and healthy(u) then
      local c = counter(u)
      if c < limit and (bestLoad == nil or c < bestLoad or (c == bestLoad and u < best)) then
        best, bestLoad = u, c
      end
    end
  end
  if best then chosen, source = best, 'pool' end
end
if chosen == nil then return {'', 'none', 0} end

redis.call('SADD', p .. 'proxy:sessions:' .. pid(chosen), sid)
local after = redis.call('INCR', p .. 'counter:proxy:' .. pid(chosen))
redis.call('SET', p .. 'session:slot:' .. sid, chosen)
redis.call('SET', p .. 'session:temp:' .. sid, chosen)
return {chosen, source, after}
`;

/**
 * Release the slot a session holds (if any). Idempotent; never drives a counter below zero.
 * ARGV: prefix, sessionId. Returns the released proxyUrl or ''.
 */
export const RELEASE_PROXY_LUA = `${POOL_HELPERS}
local sid = ARGV[2]
local held = redis.call('GET', p .. 'session:slot:' .. sid)
redis.call('DEL', p .. 'session:temp:' .. sid)
if not held then return '' end
if redis.call('SREM', p .. 'proxy:sessions:' .. pid(held), sid) == 1 then
  if counter(held) > 0 then
    redis.call('DECR', p .. 'counter:proxy:' .. pid(held))
  else
    redis.call('SET', p .. 'counter:proxy:' .. pid(held), 0)
  end
end
redis.call('DEL', p .. 'session:slot:' .. sid)
-- A tenant's private proxy goes with its last session (it never served anyone else).
if redis.call('HEXISTS', p .. 'proxies:private', pid(held)) == 1 and counter(held) == 0
  and redis.call('SCARD', p .. 'proxy:sessions:' .. pid(held)) == 0 then
  redis.call('SREM', p .. 'proxies:all', held)
  redis.call('SREM', p .. 'proxies:available', held)
  redis.call('HDEL', p .. 'proxies:private', pid(held))
  redis.call('HDEL', p .. 'proxies:urls', pid(held))
  redis.call('DEL', p .. 'counter:proxy:' .. pid(held), p .. 'proxy:status:' .. pid(held), p .. 'proxy:bad_at:' .. pid(held))
end
return held
`;

/** Register a proxy (idempotent). A proxy already marked BAD stays BAD. ARGV: prefix, url. Returns 1 if new. */
export const REGISTER_PROXY_LUA = `${POOL_HELPERS}
local u = ARGV[2]
local added = redis.call('SADD', p .. 'proxies:all', u)
redis.call('HSET', p .. 'proxies:urls', pid(u), u)
-- Registered by the operator (config or admin API): part of the shared pool from now on.
redis.call('HDEL', p .. 'proxies:private', pid(u))
redis.call('SET', p .. 'proxy:status:' .. pid(u), 'OK', 'NX')
redis.call('SETNX', p .. 'counter:proxy:' .. pid(u), 0)
if healthy(u) then redis.call('SADD', p .. 'proxies:available', u) end
return added
`;

/** ARGV: prefix, url, status ('OK'|'BAD'), nowMs. Returns 0 when the proxy is not registered. */
export const SET_PROXY_STATUS_LUA = `${POOL_HELPERS}
local u, status, now = ARGV[2], ARGV[3], ARGV[4]
if not registered(u) then return 0 end
redis.call('SET', p .. 'proxy:status:' .. pid(u), status)
if status == 'BAD' then
  redis.call('SET', p .. 'proxy:bad_at:' .. pid(u), now)
  redis.call('SREM', p .. 'proxies:available', u)
else
  redis.call('DEL', p .. 'proxy:bad_at:' .. pid(u))
  if redis.call('HEXISTS', p .. 'proxies:private', pid(u)) == 0 then redis.call('SADD', p .. 'proxies:available', u) end
end
return 1
`;

/** Remove a proxy only while no session holds a slot on it. ARGV: prefix, url. Returns 1, 0 (unknown) or -1 (in use). */
export const REMOVE_PROXY_LUA = `${POOL_HELPERS}
local u = ARGV[2]
if not registered(u) then return 0 end
if counter(u) > 0 or redis.call('SCARD', p .. 'proxy:sessions:' .. pid(u)) > 0 then return -1 end
redis.call('SREM', p .. 'proxies:all', u)
redis.call('SREM', p .. 'proxies:available', u)
redis.call('HDEL', p .. 'proxies:urls', pid(u))
redis.call('HDEL', p .. 'proxies:private', pid(u))
redis.call('DEL', p .. 'counter:proxy:' .. pid(u), p .. 'proxy:status:' .. pid(u), p .. 'proxy:bad_at:' .. pid(u), p .. 'proxy:sessions:' .. pid(u))
return 1
`;

/** Delete KEYS[1] only while it still holds ARGV[1] (an owner releasing what it owns). Returns 1 when deleted. */
export const DELETE_IF_VALUE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * Recompute every proxy's session set and counter from the slots the known sessions hold (restore).
 * ARGV: prefix. A session no longer known is not counted. Returns {proxyUrl, count, ...}.
 */
export const RECOMPUTE_PROXY_COUNTERS_LUA = `${POOL_HELPERS}
local held = {}
for _, sid in ipairs(redis.call('SMEMBERS', p .. 'sessions:all')) do
  local u = redis.call('GET', p .. 'session:slot:' .. sid)
  if u then
    held[u] = held[u] or {}
    table.insert(held[u], sid)
  end
end
local out = {}
for _, u in ipairs(redis.call('SMEMBERS', p .. 'proxies:all')) do
  local key = p .. 'proxy:sessions:' .. pid(u)
  for _, sid in ipairs(redis.call('SMEMBERS', key)) do
    if redis.call('GET', p .. 'session:slot:' .. sid) ~= u or redis.call('SISMEMBER', p .. 'sessions:all', sid) == 0 then
      redis.call('SREM', key, sid)
    end
  end
  for _, sid in ipairs(held[u] or {}) do redis.call('SADD', key, sid) end
  local n = redis.call('SCARD', key)
  redis.call('SET', p .. 'counter:proxy:' .. pid(u), n)
  table.insert(out, u)
  table.insert(out, n)
end
return out
`;

// --------------------------------------------------------------------------------------------------------------
// Outbound messages, the anti-ban dispatcher and customer webhooks. Keys as in redis-keys.ts.
// --------------------------------------------------------------------------------------------------------------

const NOW_MS = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Planned time of entry `idx` (0-based) of a session's send sequence: the rolling-window entries (oldest first)
 * followed by the pending queue. Entry idx may go one window after entry idx - cap.
 */
const PLAN_HELPER = `
local function planned(sentKey, used, cap, idx, dayMs, now)
  local r = idx % cap
  local base = now
  if r < used then
    local e = redis.call('ZRANGE', sentKey, r, r, 'WITHSCORES')
    if e[2] then base = tonumber(e[2]) end
  end
  return base + dayMs * math.floor(idx / cap)
end
`;

/**
 * The gateway's one atomic step for POST /api/send: idempotency replay, per-tenant and global sliding-window rate
 * limits (both checked before either moves; Retry-After = when the oldest counted request leaves the window), the message record, the session's pending queue, a first plan
 * (queued, or scheduled past today's cap) and burst detection.
 * ARGV: prefix, tenant, idemKey|'', fingerprint, messageId, sessionId, to, text, tenantMax, globalMax,
 *       rateWindowMs, idemTtlMs, coldCap, warmCap, hotCap, dayMs, burstCount, burstWindowMs, burstPauseMs,
 *       staleBaseMs, defaultMaxGapMs, gapFactor (dispatcher considered stuck after staleBase + gap · factor),
 *       retentionMs (the record's expiry), media descriptor JSON|'' (issue 16).
 * Returns {kind, payload, retryAfterMs, burst, wake}: kind accepted|replay (payload = response JSON),
 * conflict (payload = the key's message id), limited (payload = 'tenant'|'global').
 */
export const SEND_ACCEPT_LUA = `${NOW_MS}
${PLAN_HELPER}
local p, tenant, idem, fp, mid, sid, to, text = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local tenantMax, globalMax, rlWindow, idemTtl = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local caps = {cold = tonumber(ARGV[13]), warm = tonumber(ARGV[14]), hot = tonumber(ARGV[15])}
local dayMs, burstCount, burstWindow, burstPause = tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18]), tonumber(ARGV[19])
local idemKey = p .. 'idem:' .. tenant .. ':' .. idem
if idem ~= '' then
  local prev = redis.call('GET', idemKey)
  if prev then
    local rec = cjson.decode(prev)
    if rec.fingerprint ~= fp then return {'conflict', rec.messageId, 0, 0} end
    return {'replay', rec.response, 0, 0}
  end
end
-- sliding-window log: ZSETs of accepted message ids scored by time
local tk = p .. 'ratelimit:tenant:' .. tenant
local gk = p .. 'ratelimit:global'
redis.call('ZREMRANGEBYSCORE', tk, '-inf', now - rlWindow)
redis.call('ZREMRANGEBYSCORE', gk, '-inf', now - rlWindow)
local function retryAfter(k, max)
  local e = redis.call('ZRANGE', k, -max, -max, 'WITHSCORES')
  return math.max(1, tonumber(e[2] or now) + rlWindow - now)
end
if redis.call('ZCARD', tk) >= tenantMax then return {'limited', 'tenant', retryAfter(tk, tenantMax), 0} end
if redis.call('ZCARD', gk) >= globalMax then return {'limited', 'global', retryAfter(gk, globalMax), 0} end
redis.call('ZADD', tk, now, mid)
redis.call('PEXPIRE', tk, rlWindow)
redis.call('ZADD', gk, now, mid)
redis.call('PEXPIRE', gk, rlWindow)

local limits = p .. 'antiban:limits:' .. sid
local level = redis.call('HGET', limits, 'level') or 'cold'
local cap = tonumber(redis.call('HGET', limits, 'dailyCap') or '') or caps[level] or caps.cold
local sentKey = p .. 'dispatch:sent:' .. sid
redis.call('ZREMRANGEBYSCORE', sentKey, '-inf', now - dayMs)
local used = redis.call('ZCARD', sentKey)
local pending = p .. 'dispatch:pending:' .. sid
local idx = used + redis.call('LLEN', pending)
local status = 'queued'
local mk = p .. 'message:' .. mid
local response
if idx >= cap then
  status = 'scheduled'
  local at = planned(sentKey, used, cap, idx, dayMs, now)
  redis.call('HSET', mk, 'plannedAt', at)
  response = cjson.encode({messageId = mid, sessionId = sid, status = status, plannedAt = at})
else
  response = cjson.encode({messageId = mid, sessionId = sid, status = status})
end
redis.call('HSET', mk, 'id', mid, 'sessionId', sid, 'tenant', tenant, 'to', to, 'text', text, 'status', status,
  'createdAt', now, 'updatedAt', now)
if idem ~= '' then redis.call('HSET', mk, 'idempotencyKey', idem) end
if (ARGV[24] or '') ~= '' then redis.call('HSET', mk, 'media', ARGV[24]) end
-- Records do not live forever: kept MESSAGE_RETENTION_MS from the last change.
redis.call('PEXPIRE', mk, tonumber(ARGV[23]))
redis.call('RPUSH', pending, mid)
redis.call('SADD', p .. 'dispatch:sessions', sid)
if idem ~= '' then
  redis.call('SET', idemKey, cjson.encode({messageId = mid, fingerprint = fp, response = response}), 'PX', idemTtl)
end

-- Does the dispatcher need a wake-up? Only when it said it is idle (flag set by its step), has never run, or has
-- not stepped for longer than any gap it could be sleeping (a crashed or stuck dispatcher); not while it is pacing
-- or waiting for the window to open: it will see this message on its next step anyway.
local st = p .. 'dispatch:state:' .. sid
local sv = redis.call('HMGET', st, 'idle', 'stepAt', 'capUntil')
local wake = 0
local gap = tonumber(redis.call('HGET', limits, 'gapMs') or '') or tonumber(ARGV[21])
local staleMs = tonumber(ARGV[20]) + gap * tonumber(ARGV[22])
if sv[1] == '1' then
  wake = 1
  redis.call('HDEL', st, 'idle')
elseif not sv[2] then
  wake = 1
elseif tonumber(sv[3] or '0') < now and now - tonumber(sv[2]) > staleMs then
  wake = 1
end

local enq = p .. 'dispatch:enqueued:' .. sid
redis.call('ZADD', enq, now, mid)
redis.call('ZREMRANGEBYSCORE', enq, '-inf', now - burstWindow)
redis.call('PEXPIRE', enq, burstWindow * 2)
local bc = tonumber(redis.call('HGET', limits, 'burstCount') or '') or burstCount
local burst = 0
if redis.call('ZCARD', enq) > bc and tonumber(redis.call('HGET', st, 'burstUntil') or '0') < now then
  redis.call('HSET', st, 'burstUntil', now + burstPause)
  burst = 1
end
return {'accepted', response, 0, burst, wake}
`;

/**
 * One dispatcher step for a session, idempotent per stepId (an activity retried after it ran returns the same
 * result and releases nothing more). Releases the head of the pending queue into the worker outbox (same item
 * format as state/outbox.ts) when the session is connected and under its rolling-window cap; past the cap,
 * marks the pending messages `scheduled` with their planned time.
 * ARGV: prefix, sessionId, stepId, dayMs, cap, outboxQueue, outboxItems, outboxAcked, outboxFailed.
 * Returns {kind, messageId, ms}: kind released (ms = hand-off time) | cap (ms = when the window opens) |
 * idle | offline | gone | skipped.
 */
export const DISPATCH_STEP_LUA = `${NOW_MS}
${PLAN_HELPER}
local p, sid, step = ARGV[1], ARGV[2], ARGV[3]
local dayMs, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local oq, oitems, oacked, ofailed = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local st = p .. 'dispatch:state:' .. sid
if redis.call('HGET', st, 'step') == step then
  return cjson.decode(redis.call('HGET', st, 'result'))
end
local function done(r)
  redis.call('HSET', st, 'step', step, 'result', cjson.encode(r), 'stepAt', now)
  if r[1] == 'idle' then redis.call('HSET', st, 'idle', '1') else redis.call('HDEL', st, 'idle') end
  if r[1] == 'cap' then redis.call('HSET', st, 'capUntil', r[3]) else redis.call('HDEL', st, 'capUntil') end
  return r
end
local status = redis.call('HGET', p .. 'session:' .. sid, 'status')
if not status or status == 'deleted' then
  -- the session is gone: its waiting messages fail with a reason instead of waiting forever
  local pending = p .. 'dispatch:pending:' .. sid
  for _, id in ipairs(redis.call('LRANGE', pending, 0, -1)) do
    local mk = p .. 'message:' .. id
    if redis.call('EXISTS', mk) == 1 then
      redis.call('HSET', mk, 'status', 'failed', 'reason', 'session deleted before sending', 'failedAt', now, 'updatedAt', now)
    end
  end
  redis.call('DEL', pending)
  return done({'gone', '', 0})
end
if status ~= 'connected' then return done({'offline', '', 0}) end
local sentKey = p .. 'dispatch:sent:' .. sid
redis.call('ZREMRANGEBYSCORE', sentKey, '-inf', now - dayMs)
local used = redis.call('ZCARD', sentKey)
local pending = p .. 'dispatch:pending:' .. sid
if redis.call('LLEN', pending) == 0 then return done({'idle', '', 0}) end
if used >= cap then
  local ids = redis.call('LRANGE', pending, 0, 999)
  for i, id in ipairs(ids) do
    local mk = p .. 'message:' .. id
    if redis.call('EXISTS', mk) == 1 then
      redis.call('HSET', mk, 'status', 'scheduled', 'plannedAt', planned(sentKey, used, cap, used + i - 1, dayMs, now),
        'updatedAt', now)
    end
  end
  local e = redis.call('ZRANGE', sentKey, used - cap, used - cap, 'WITHSCORES')
  return done({'cap', '', tonumber(e[2]) + dayMs})
end
local id = redis.call('LPOP', pending)
local mk = p .. 'message:' .. id
if redis.call('EXISTS', mk) == 0 then return done({'skipped', id, 0}) end
local m = redis.call('HMGET', mk, 'to', 'text', 'media')
if redis.call('HEXISTS', oitems, id) == 0 and redis.call('HEXISTS', oacked, id) == 0
  and redis.call('HEXISTS', ofailed, id) == 0 then
  local item = {messageId = id, to = m[1], text = m[2], enqueuedAt = now}
  -- media: the descriptor JSON (type, uploadId, MIME, ...), never the bytes
  if m[3] then item.media = m[3] end
  redis.call('HSET', oitems, id, cjson.encode(item))
  redis.call('RPUSH', oq, id)
end
redis.call('ZADD', sentKey, now, id)
redis.call('ZADD', p .. 'dispatch:released:' .. sid, now, id)
redis.call('HSET', mk, 'status', 'queued', 'dispatchedAt', now, 'updatedAt', now)
redis.call('HDEL', mk, 'plannedAt')
redis.call('HINCRBY', p .. 'antiban:stats:' .. sid, 'released', 1)
redis.call('HSET', st, 'lastReleaseAt', now)
return done({'released', id, now})
`;

/**
 * Moves a message's status forward only (queued/scheduled < sent < delivered < read; failed before delivery).
 * ARGV: prefix, messageId, status, waMessageId|'', reason|''. Returns {applied 0|1, previous, sessionId, tenant}.
 */
/**
 * A run of WhatsApp refusals (463/479) on one session. KEYS: dispatchState. ARGV: rejected (1|0), run, pauseMs.
 * A refusal counts up `rejectRun`; an accepted send resets it. At `run` refusals in a row the session is slowed
 * (`burstUntil`, like a burst), `rejectAlert` is set for the dispatcher to raise, the run restarts. Returns the
 * run length that triggered, or 0.
 */
export const REJECTION_RUN_LUA = `${NOW_MS}
local st = KEYS[1]
if ARGV[1] ~= '1' then
  redis.call('HSET', st, 'rejectRun', 0)
  return 0
end
local n = redis.call('HINCRBY', st, 'rejectRun', 1)
if n < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', st, 'rejectRun', 0, 'burstUntil', now + tonumber(ARGV[3]), 'rejectAlert', n)
return n
`;

export const MESSAGE_STATUS_LUA = `${NOW_MS}
local p, id, status, wa, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local onlySession, retention = ARGV[6], tonumber(ARGV[7])
local mk = p .. 'message:' .. id
local cur = redis.call('HMGET', mk, 'status', 'sessionId', 'tenant')
if not cur[1] then return {0, '', '', ''} end
-- A worker reports only its own session's messages: another session's id changes nothing.
if onlySession ~= '' and cur[2] ~= onlySession then return {0, '', '', ''} end
local rank = {queued = 0, scheduled = 0, sent = 1, delivered = 2, read = 3}
local prev = cur[1]
if prev == 'failed' then return {0, prev, cur[2], cur[3]} end
if status == 'failed' then
  if rank[prev] >= 2 then return {0, prev, cur[2], cur[3]} end
elseif rank[status] <= rank[prev] then
  return {0, prev, cur[2], cur[3]}
end
redis.call('HSET', mk, 'status', status, status .. 'At', now, 'updatedAt', now)
if wa ~= '' then redis.call('HSET', mk, 'waMessageId', wa) end
if reason ~= '' then redis.call('HSET', mk, 'reason', reason) end
if retention and retention > 0 then redis.call('PEXPIRE', mk, retention) end
local stats = p .. 'antiban:stats:' .. cur[2]
if (status == 'delivered' or status == 'read') and rank[prev] < 2 then redis.call('HINCRBY', stats, 'delivered', 1) end
if status == 'failed' then redis.call('HINCRBY', stats, 'failed', 1) end
return {1, prev, cur[2], cur[3]}
`;

/**
 * Claims due customer-webhook deliveries with a lease (the due time moves to now + leaseMs, so a crashed
 * deliverer's items come back by themselves). ARGV: prefix, limit, leaseMs. Returns a flat list id, json, ...
 */
export const CLIENT_WEBHOOK_CLAIM_LUA = `${NOW_MS}
local p, limit, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local due = p .. 'clienthook:due'
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, id in ipairs(ids) do
  local item = redis.call('HGET', p .. 'clienthook:items', id)
  if item then
    redis.call('ZADD', due, now + lease, id)
    table.insert(out, id)
    table.insert(out, item)
  else
    redis.call('ZREM', due, id)
  end
end
return out
`;

/** Compare-and-set of a session's trust level (promotion loses to a concurrent manual change). KEYS: limits hash. ARGV: from, to. */
export const PROMOTE_LEVEL_LUA = `
if (redis.call('HGET', KEYS[1], 'level') or 'cold') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'autoPromote') == 'false' then return 0 end
redis.call('HSET', KEYS[1], 'level', ARGV[2])
return 1
`;

/**
 * Place a session on a host: the live host (heartbeat newer than ARGV[3] ms ago) with the most free capacity.
 * Idempotent: a session already placed keeps its host. ARGV: prefix, sessionId, staleMs, nowMs.
 * Returns the host id, or '' when every live host is full (or none is alive).
 */
export const PICK_HOST_LUA = `
local p, sid, stale, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local hosts = redis.call('HGETALL', p .. 'hosts')
local best, bestFree = '', -1
for i = 1, #hosts, 2 do
  local id = hosts[i]
  local info = cjson.decode(hosts[i + 1])
  if redis.call('SISMEMBER', p .. 'host:sessions:' .. id, sid) == 1 then return id end
  if now - info.heartbeatAt <= stale then
    local free = info.capacity - redis.call('SCARD', p .. 'host:sessions:' .. id)
    if free > 0 and (free > bestFree or (free == bestFree and id < best)) then best, bestFree = id, free end
  end
end
if best ~= '' then redis.call('SADD', p .. 'host:sessions:' .. best, sid) end
return best
`;

// ------------------------------------------------------------------------------------ worker outbox
// Per-session outbox (state/outbox.ts): a LIST of ids, a HASH of items, leases in a ZSET; see that file.

const OUTBOX_NOW = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// Moves expired leases back to the head of the queue, oldest claim first. KEYS: queue, inflight. Uses `now`.
const OUTBOX_RECLAIM = `
local function reclaim(queue, inflight, now)
  local expired = redis.call('ZRANGEBYSCORE', inflight, '-inf', now)
  for i = #expired, 1, -1 do
    redis.call('ZREM', inflight, expired[i])
    redis.call('LPUSH', queue, expired[i])
  end
  return #expired
end
`;

// KEYS: queue, items, acked, failed. ARGV: messageId, json
export const OUTBOX_ENQUEUE_LUA = `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1
  or redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
`;

// KEYS: queue, items, attempts, inflight. ARGV: leaseMs
export const OUTBOX_CLAIM_LUA = `${OUTBOX_NOW}
${OUTBOX_RECLAIM}
reclaim(KEYS[1], KEYS[4], now)
while true do
  local id = redis.call('LPOP', KEYS[1])
  if not id then return nil end
  local item = redis.call('HGET', KEYS[2], id)
  if item and redis.call('ZSCORE', KEYS[4], id) == false then
    local attempt = redis.call('HINCRBY', KEYS[3], id, 1)
    local deadline = now + tonumber(ARGV[1])
    redis.call('ZADD', KEYS[4], deadline, id)
    return {item, attempt, deadline}
  end
end
`;

// KEYS: queue, items, attempts, inflight, acked, failed. ARGV: messageId, waMessageId
/**
 * Settled records (ACK / failure) are kept MESSAGE_RETENTION_MS: each settle notes its time in KEYS[7] (settled
 * ZSET), drops up to 100 records older than the retention and re-arms the expiry of the three keys, so an active
 * session's hashes stay bounded and an idle one's vanish. ARGV[retentionArg] is the retention in ms.
 */
const OUTBOX_SETTLED = `
local function settled(id, retention)
  redis.call('ZADD', KEYS[7], now, id)
  local old = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now - retention, 'LIMIT', 0, 100)
  for _, o in ipairs(old) do
    redis.call('HDEL', KEYS[5], o)
    redis.call('HDEL', KEYS[6], o)
    redis.call('ZREM', KEYS[7], o)
  end
  for i = 5, 7 do
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], retention) end
  end
end
`;

// KEYS: queue, items, attempts, inflight, acked, failed, settled. ARGV: messageId, waMessageId, retentionMs
export const OUTBOX_ACK_LUA = `${OUTBOX_NOW}
${OUTBOX_SETTLED}
local id = ARGV[1]
local prev = redis.call('HGET', KEYS[5], id)
if prev then
  if prev == ARGV[2] then return 'duplicate' end
  return 'conflict'
end
if redis.call('HEXISTS', KEYS[2], id) == 0 then
  if redis.call('HEXISTS', KEYS[6], id) == 1 then return 'conflict' end
  return 'not_found'
end
redis.call('ZREM', KEYS[4], id)
redis.call('LREM', KEYS[1], 0, id)
redis.call('HDEL', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
redis.call('HSET', KEYS[5], id, ARGV[2])
settled(id, tonumber(ARGV[3]))
return 'acked'
`;

// KEYS: queue, items, attempts, inflight, acked, failed, settled. ARGV: messageId, reason, permanent(0/1), maxAttempts, retentionMs
export const OUTBOX_NACK_LUA = `${OUTBOX_NOW}
${OUTBOX_SETTLED}
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[5], id) == 1 then return 'conflict' end
if redis.call('HEXISTS', KEYS[2], id) == 0 then
  if redis.call('HEXISTS', KEYS[6], id) == 1 then return 'failed' end
  return 'not_found'
end
redis.call('ZREM', KEYS[4], id)
redis.call('LREM', KEYS[1], 0, id)
local attempts = tonumber(redis.call('HGET', KEYS[3], id) or '0')
if ARGV[3] == '1' or attempts >= tonumber(ARGV[4]) then
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('HSET', KEYS[6], id, cjson.encode({reason = ARGV[2], attempts = attempts, at = now, permanent = ARGV[3] == '1'}))
  settled(id, tonumber(ARGV[5]))
  return 'failed'
end
redis.call('LPUSH', KEYS[1], id)
return 'requeued'
`;

// KEYS: queue, inflight
export const OUTBOX_RECLAIM_LUA = `${OUTBOX_NOW}
${OUTBOX_RECLAIM}
return reclaim(KEYS[1], KEYS[2], now)
`;

/**
 * Admits one tenant provision atomically (parallel provisions cannot both pass): counts the tenant's live
 * sessions (terminal ones — logged out, failed, stopped, deleted — do not count) plus provisions admitted in the
 * last `reserveMs` that have no live record yet, refuses past `maxLive`, then the per-tenant provision rate
 * (sliding window), then records both. KEYS: tenant sessions SET, tenant provisioning ZSET, provision-rate ZSET.
 * ARGV: prefix, sessionId, maxLive, rateMax, windowMs, reserveMs.
 * Returns {'ok', 0} | {'sessions', count} | {'rate', retryAfterMs}.
 */
export const PROVISION_ADMIT_LUA = `${NOW_MS}
local p, sid = ARGV[1], ARGV[2]
local maxLive, rateMax, window, reserveMs = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local live = {pending = 1, qr_ready = 1, connected = 1, reconnecting = 1, unhealthy = 1, failing_over = 1}
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - reserveMs)
local counted, n = {}, 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= sid and live[redis.call('HGET', p .. 'session:' .. id, 'status') or ''] then
    counted[id] = true
    n = n + 1
  end
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if id ~= sid and not counted[id] then n = n + 1 end
end
if n >= maxLive then return {'sessions', n} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
if redis.call('ZCARD', KEYS[3]) >= rateMax then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return {'rate', tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[3], now, sid .. ':' .. now)
redis.call('PEXPIRE', KEYS[3], window)
redis.call('ZADD', KEYS[2], now, sid)
redis.call('PEXPIRE', KEYS[2], reserveMs)
return {'ok', 0}
`;

/**
 * A sliding-window limit: admits `member` unless `max` entries are younger than `windowMs`.
 * KEYS: the window ZSET. ARGV: max, windowMs, member. Returns {1, 0} or {0, retryAfterMs}.
 */
export const SLIDING_WINDOW_LUA = `${NOW_MS}
local max, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= max then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. now)
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
`;

/**
 * Move one proxy key named by URL (as older versions named them) to its proxy-id name. Idempotent and safe beside new writes:
 * session sets are merged, BAD wins over OK, an existing new counter/bad_at is kept (the caller recomputes
 * counters afterwards). ARGV: prefix, family (e.g. 'counter:proxy:'), proxyUrl. Returns 1 when a key moved.
 */
export const MIGRATE_PROXY_KEY_LUA = `${POOL_HELPERS}
local fam, u = ARGV[2], ARGV[3]
local old, new = p .. fam .. u, p .. fam .. pid(u)
if redis.call('EXISTS', old) == 0 then return 0 end
if fam == 'proxy:sessions:' then
  redis.call('SUNIONSTORE', new, new, old)
  redis.call('DEL', old)
elseif fam == 'proxy:status:' then
  if redis.call('GET', old) == 'BAD' then redis.call('SET', new, 'BAD') else redis.call('SET', new, 'OK', 'NX') end
  redis.call('DEL', old)
elseif redis.call('RENAMENX', old, new) == 0 then
  redis.call('DEL', old)
end
if redis.call('SISMEMBER', p .. 'proxies:all', u) == 1 then redis.call('HSET', p .. 'proxies:urls', pid(u), u) end
return 1
`;
