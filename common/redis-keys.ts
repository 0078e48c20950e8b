/**
 * Every Redis key the product uses, in one place (SPEC §9). A prefix lets several deployments (or test runs)
 * share one Redis. Proxy keys are named by the proxy id (common/proxy-id.ts), never the URL: the URL with its
 * credentials lives only in the `proxies:urls` hash (and the pool's sets and slot values).
 */
import { proxyIdOf } from './proxy-id.js';

export type RedisKeys = ReturnType<typeof redisKeys>;

const PROXY_KEY_FAMILIES = ['counter:proxy:', 'proxy:status:', 'proxy:bad_at:', 'proxy:sessions:'] as const;
export type ProxyKeyFamily = (typeof PROXY_KEY_FAMILIES)[number];

export function redisKeys(prefix = '') {
  const p = prefix;
  return {
    prefix: p,
    /** proxyUrl held for a session between provision and CONNECTED. */
    sessionTemp: (sessionId: string) => `${p}session:temp:${sessionId}`,
    /** THE sticky binding: phone → proxyUrl. */
    phoneProxy: (phone: string) => `${p}phone:proxy:${phone}`,
    /** HASH { phone, proxy, status, createdAt, connectedAt, lastPing, ... } */
    session: (sessionId: string) => `${p}session:${sessionId}`,
    /** SET of session ids that are connected (or being kept connected). */
    sessionsActive: () => `${p}sessions:active`,
    /** SET of every session id the product knows (any status except deleted). */
    sessionsAll: () => `${p}sessions:all`,
    /** The proxy slot a session holds (proxyUrl); makes reserve/release idempotent under retries. */
    sessionSlot: (sessionId: string) => `${p}session:slot:${sessionId}`,
    proxiesAll: () => `${p}proxies:all`,
    /** SET of healthy (status OK) proxies. */
    proxiesAvailable: () => `${p}proxies:available`,
    /** HASH proxyId → canonical proxy URL (with credentials): the one place a key maps back to its URL. */
    proxyUrls: () => `${p}proxies:urls`,
    /** HASH proxyId → tenant: a tenant's own proxies (proxyOverride), never in the shared pool. */
    proxiesPrivate: () => `${p}proxies:private`,
    proxyCounter: (proxyUrl: string) => `${p}counter:proxy:${proxyIdOf(proxyUrl)}`,
    proxyStatus: (proxyUrl: string) => `${p}proxy:status:${proxyIdOf(proxyUrl)}`,
    proxyBadAt: (proxyUrl: string) => `${p}proxy:bad_at:${proxyIdOf(proxyUrl)}`,
    /** SET of session ids holding a slot on the proxy (the counter is kept equal to its size). */
    proxySessions: (proxyUrl: string) => `${p}proxy:sessions:${proxyIdOf(proxyUrl)}`,
    /** Key families named by proxy id; older versions named them by the URL (migrated at start). */
    proxyKeyFamilies: () => PROXY_KEY_FAMILIES,
    /** A proxy key of one of those families, by proxy id; and its older name by URL (the start-up migration). */
    proxyKeyOf: (family: ProxyKeyFamily, proxyUrl: string) => `${p}${family}${proxyIdOf(proxyUrl)}`,
    legacyProxyKey: (family: ProxyKeyFamily, proxyUrl: string) => `${p}${family}${proxyUrl}`,
    sessionQr: (sessionId: string) => `${p}session:qr:${sessionId}`,
    /**
     * STRING: the generation of the session's current worker (mirror of the workflow's, set at each worker start):
     * signed worker calls of an older generation are refused (fencing).
     */
    sessionWorkerGeneration: (sessionId: string) => `${p}session:generation:${sessionId}`,
    /** STRING JSON {code, phone, expiresAt, at}: the pairing code to type on the phone (TTL = its expiry). */
    sessionPairingCode: (sessionId: string) => `${p}session:pairing:${sessionId}`,
    sessionEvents: (sessionId: string) => `${p}session:events:${sessionId}`,
    sessionOutbox: (sessionId: string) => `${p}session:outbox:${sessionId}`,
    /** phone → the session id that owns it (at most one live session per phone). */
    phoneSession: (phone: string) => `${p}phone:session:${phone}`,
    /** SET of a tenant's session ids. */
    tenantSessions: (tenant: string) => `${p}tenant:sessions:${tenant}`,
    /** Marker of a webhook event already turned into a signal (de-duplication by eventId). */
    webhookEventSeen: (eventId: string) => `${p}webhook:seen:${eventId}`,
    /** ZSET of alerts waiting for delivery (JSON member, score = when the next attempt is due). */
    alertOutbox: () => `${p}alert:outbox`,
    /** HASH hostId → JSON {queue, capacity, heartbeatAt}: the Docker hosts (orchestrators) of the deployment. */
    hosts: () => `${p}hosts`,
    /** SET of the session ids placed on a host (its load). */
    hostSessions: (hostId: string) => `${p}host:sessions:${hostId}`,
    /** SET of host ids being drained: they keep running their sessions but take no new ones. */
    hostsDraining: () => `${p}hosts:draining`,
    /** ZSET session id → lease expiry (ms): the logins in flight on a host, at most MAX_CONCURRENT_LOGINS. */
    loginSlots: (hostId: string) => `${p}login:slots:${hostId}`,
    phoneQueue: (phone: string) => `${p}queue:session:${phone}`,
    gatewayJobs: () => `${p}gateway:jobs`,
    // --- outbound messages, anti-ban dispatcher, customer webhooks ---
    /** HASH: one outbound message {id, sessionId, tenant, to, text, status, plannedAt, ...}. */
    message: (messageId: string) => `${p}message:${messageId}`,
    /** STRING JSON {messageId, fingerprint, response}: an idempotency key of a tenant (TTL). */
    idempotency: (tenant: string, key: string) => `${p}idem:${tenant}:${key}`,
    /** ZSETs messageId → accept time: sliding-window logs of accepted sends (TTL = window). */
    rateLimitTenant: (tenant: string) => `${p}ratelimit:tenant:${tenant}`,
    rateLimitGlobal: () => `${p}ratelimit:global`,
    /** LIST: message ids waiting for the session's dispatcher, in order. */
    dispatchPending: (sessionId: string) => `${p}dispatch:pending:${sessionId}`,
    /** ZSET messageId → hand-off time: the rolling 24 h window of the daily cap. */
    dispatchSent: (sessionId: string) => `${p}dispatch:sent:${sessionId}`,
    /** ZSET messageId → hand-off time: handed off, final outcome not yet read back from the outbox. */
    dispatchReleased: (sessionId: string) => `${p}dispatch:released:${sessionId}`,
    /** ZSET messageId → enqueue time: recent enqueues (burst detection). */
    dispatchEnqueued: (sessionId: string) => `${p}dispatch:enqueued:${sessionId}`,
    /** HASH {step, result, burstUntil, lastReleaseAt}: dispatcher bookkeeping. */
    dispatchState: (sessionId: string) => `${p}dispatch:state:${sessionId}`,
    /** SET of session ids that ever had messages (restart sweep). */
    dispatchSessions: () => `${p}dispatch:sessions`,
    /** HASH: per-session pacing overrides {level, dailyCap, gapMs, burstCount, burstWindowMs, auto}. */
    antibanLimits: (sessionId: string) => `${p}antiban:limits:${sessionId}`,
    /** HASH: per-session counters {firstConnectedAt, released, delivered, failed} for promotion. */
    antibanStats: (sessionId: string) => `${p}antiban:stats:${sessionId}`,
    /** HASH {url, secret, events}: a tenant's customer webhook. */
    clientWebhook: (tenant: string) => `${p}clienthook:config:${tenant}`,
    /** ZSET deliveryId → due time; HASH deliveryId → JSON delivery. */
    clientWebhookDue: () => `${p}clienthook:due`,
    clientWebhookItems: () => `${p}clienthook:items`,
    /** LIST of dead-lettered deliveries of a tenant (newest first, capped). */
    clientWebhookDead: (tenant: string) => `${p}clienthook:dead:${tenant}`,
    /** Pub/sub channel of live events (dashboard, /api/events): every API process subscribes. */
    eventsChannel: () => `${p}events`,
    /** HASH of system-wide event counters (HINCRBY by every process; read by /metrics at scrape time). */
    eventCounters: () => `${p}metrics:events`,
    // --- device profiles (the Lua files beside state/device-profiles.ts build the same names) ---
    /** HASH profile id → JSON {id, os, browser, osVersion, seq}: the inventory (retired ones stay, flagged below). */
    deviceProfiles: () => `${p}device:profiles`,
    /** SET of retired profile ids (never assigned again). */
    deviceProfilesRetired: () => `${p}device:profiles:retired`,
    /** SET of the session ids presenting a profile. */
    deviceProfileSessions: (profileId: string) => `${p}device:profile:sessions:${profileId}`,
    /** STRING: the profile id a session presents, for life. */
    sessionDeviceProfile: (sessionId: string) => `${p}session:profile:${sessionId}`,
    // --- tenant isolation ---
    /** Marker of an alert sent within the dedupe window, named by the SHA-256 of its dedupe key (TTL). */
    alertDedupe: (dedupeKeyHash: string) => `${p}alert:dedupe:${dedupeKeyHash}`,
    /** STRING JSON principal: a live-events ticket, named by the SHA-256 of the ticket (single use, short TTL). */
    eventsTicket: (ticketHash: string) => `${p}events:ticket:${ticketHash}`,
    /** STRING counter behind generated session ids (`worker_<n>`). */
    sessionSequence: () => `${p}session:seq`,
    /** Marker of a worker request nonce already used (replay guard of the signed outbox calls; TTL). */
    workerNonce: (sessionId: string, nonce: string) => `${p}worker:nonce:${sessionId}:${nonce}`,
    /** ZSET sessionId → provision time: a tenant's recent provisions (sliding window; TTL = window). */
    provisionRate: (tenant: string) => `${p}ratelimit:provision:${tenant}`,
    /** ZSET sessionId → admission time: a tenant's provisions admitted and not yet recorded (quota; TTL). */
    tenantProvisioning: (tenant: string) => `${p}tenant:provisioning:${tenant}`,
    /** ZSET sessionId → time: a tenant's recent manual failovers (sliding window; TTL = window). */
    failoverRate: (tenant: string) => `${p}ratelimit:failover:${tenant}`,
    // --- human-like sending: worker commands, number checks, read receipts ---
    /** ZSET command JSON → due time (ms): commands waiting for the session's worker (checks, read receipts). */
    sessionCommands: (sessionId: string) => `${p}session:commands:${sessionId}`,
    /** Pub/sub channel: a session id whose worker has something to claim now (wakes its long-poll). */
    workerWake: () => `${p}worker:wake`,
    /** STRING JSON: a worker's answer to its session's command (short TTL; the waiting API request reads it). */
    commandResult: (sessionId: string, commandId: string) => `${p}command:result:${sessionId}:${commandId}`,
    /** STRING JSON {exists, jid?, lid?, checkedAt}: whether a number is on WhatsApp (TTL CONTACT_CHECK_CACHE_TTL_MS). */
    contactCheck: (phone: string) => `${p}contact:wa:${phone}`,
    /** ZSET → lookup time: a session's recent number lookups sent to WhatsApp (sliding window; TTL = window). */
    contactCheckRate: (sessionId: string) => `${p}ratelimit:contactcheck:${sessionId}`,
    /** HASH WhatsApp message id → chat JID: a session's inbound messages (mark-as-read; TTL MESSAGE_RETENTION_MS). */
    sessionInbound: (sessionId: string) => `${p}session:inbound:${sessionId}`,
    // --- media: metadata only, the bytes stay in the media store (MEDIA_DIR or a bucket) ---
    /** HASH {tenant, mimeType, size, sha256, fileName, createdAt}: one upload (TTL MEDIA_UPLOAD_TTL_MS). */
    mediaUpload: (uploadId: string) => `${p}media:upload:${uploadId}`,
    /** STRING (JSON record {tenant, sessionId, type, mimetype, size, sha256, …}): one inbound file (TTL MEDIA_RETENTION_HOURS). */
    mediaInbound: (mediaId: string) => `${p}media:inbound:${mediaId}`,
  };
}
