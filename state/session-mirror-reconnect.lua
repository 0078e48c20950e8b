-- A worker connected again after a reported loss, mirrored by the webhook bridge before it signals the workflow
-- (sessions.ts mirrorReconnect): reconnecting → connected, with what the CONNECTED activity would write, only when
-- that activity would change nothing else: the current worker, a session connected before as this phone, the phone
-- bound to it, its sticky proxy the one it holds (a failover's first connect moves the sticky binding: not here).
-- The status-write count moves as in session-mirror-loss.lua.
-- KEYS: [1] session:<id>  [2] session:generation:<id>  [3] phone:session:<phone>  [4] phone:proxy:<phone>
--       [5] session:slot:<id>  [6] session:temp:<id>  [7] session:qr:<id>  [8] session:pairing:<id>
--       [9] sessions:active
-- ARGV: [1] sessionId  [2] the event's worker generation  [3] phone  [4] jid  [5] now (ms)
-- Returns {proxy URL, the status-write count before this write}, or false when nothing was written.
local record, generation, phoneSession, phoneProxy, slot, temp, qr, pairing, active =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local sid, phone, now = ARGV[1], ARGV[3], ARGV[5]
if redis.call('GET', generation) ~= ARGV[2] then return false end
local fields = redis.call('HMGET', record, 'status', 'phone', 'connectedAt', 'mirrorSeq')
if fields[1] ~= 'reconnecting' or fields[2] ~= phone or not fields[3] then return false end
if redis.call('GET', phoneSession) ~= sid then return false end
local proxy = redis.call('GET', slot)
if not proxy or redis.call('GET', phoneProxy) ~= proxy then return false end
redis.call('HSET', record, 'status', 'connected', 'jid', ARGV[4], 'proxy', proxy, 'connectedAt', now, 'lastPing', now,
  'updatedAt', now)
redis.call('HDEL', record, 'lastError', 'pairingPhone')
redis.call('HINCRBY', record, 'mirrorSeq', 1)
redis.call('DEL', temp, qr, pairing)
redis.call('SADD', active, sid)
return {proxy, tonumber(fields[4] or '0')}
