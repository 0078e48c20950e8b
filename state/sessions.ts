import type { Redis } from 'ioredis';
import { redisKeys, type RedisKeys } from '../common/redis-keys.js';
import { LIVE_STATUSES, WATCHED_STATUSES, type SessionStatus } from '../common/session.js';
import { luaCommand } from './lua.js';
import { execAll } from './redis.js';

const releasePhoneScript = luaCommand<[phoneSession: string], [sessionId: string], 0 | 1>(
  new URL('./session-phone-release.lua', import.meta.url),
);
const mirrorLossScript = luaCommand<
  [record: string, generation: string, active: string],
  [sessionId: string, generation: number, lastError: string, now: number],
  number | null
>(new URL('./session-mirror-loss.lua', import.meta.url));
const mirrorReconnectScript = luaCommand<
  [
    record: string,
    generation: string,
    phoneSession: string,
    phoneProxy: string,
    slot: string,
    temp: string,
    qr: string,
    pairing: string,
    active: string,
  ],
  [sessionId: string, generation: number, phone: string, jid: string, now: number],
  [proxyUrl: string, from: number] | null
>(new URL('./session-mirror-reconnect.lua', import.meta.url));

/** The session hash (SPEC §9 `session:<id>`), as the API and dashboard read it. */
export interface SessionRecord {
  sessionId: string;
  tenant: string;
  status: SessionStatus;
  phone: string | null;
  /** Canonical proxy URL (internal: redact before it leaves the process). */
  proxy: string | null;
  jid: string | null;
  createdAt: number;
  connectedAt: number | null;
  lastPing: number | null;
  restarts: number;
  watchdogRestarts: number;
  failovers: number;
  lastError: string | null;
  /** The Docker host the session is placed on (its auth volume lives there). */
  host: string | null;
  /** Link by pairing code for this phone until the first CONNECTED (null: QR). */
  pairingPhone: string | null;
  /** The device profile id the session presents, and its triple `os|browser|version` (null: Baileys' default). */
  deviceProfile: string | null;
  device: string | null;
  updatedAt: number;
}

const NUMERIC = new Set([
  'createdAt',
  'connectedAt',
  'lastPing',
  'restarts',
  'watchdogRestarts',
  'failovers',
  'updatedAt',
]);

/** The pairing code a worker reported (kept until it expires; the code is a one-time secret: never logged). */
export interface PairingCodeRecord {
  code: string;
  phone: string;
  expiresAt: number;
  at: number;
}

export interface QrRecord {
  qr: string;
  at: number;
  count: number;
  /** The worker generation that showed it (absent: a worker from before generations). */
  generation?: number;
}

/**
 * Queryable session state in Redis. The workflow owns the lifecycle; this mirror exists so lists, stats, QR codes
 * and last pings are cheap to read without asking Temporal for every session.
 */
export class SessionStore {
  readonly keys: RedisKeys;

  constructor(
    private readonly redis: Redis,
    prefix = '',
  ) {
    this.keys = redisKeys(prefix);
  }

  async create(sessionId: string, tenant: string, now = Date.now()): Promise<void> {
    await execAll(
      this.redis
        .multi()
        .hset(this.keys.session(sessionId), {
          sessionId,
          tenant,
          status: 'pending',
          createdAt: now,
          updatedAt: now,
          restarts: 0,
          watchdogRestarts: 0,
          failovers: 0,
        })
        // A new session (or one re-provisioned after a delete) starts its generations over.
        .del(this.keys.sessionWorkerGeneration(sessionId))
        .sadd(this.keys.sessionsAll(), sessionId)
        .sadd(this.keys.tenantSessions(tenant), sessionId),
    );
  }

  /** Records the generation of the worker just started (the workflow's number; starts of a session are sequential). */
  async setWorkerGeneration(sessionId: string, generation: number): Promise<void> {
    await this.redis.set(this.keys.sessionWorkerGeneration(sessionId), String(generation));
  }

  /** The current worker's generation, null before any fenced start (one GET: read by every signed worker call). */
  async workerGeneration(sessionId: string): Promise<number | null> {
    const raw = await this.redis.get(this.keys.sessionWorkerGeneration(sessionId));
    return raw === null ? null : Number(raw);
  }

  /** Writes fields of the session hash; `null` deletes a field. Keeps sessions:active in step with the status. */
  /**
   * Writes record fields (null deletes one). A status write also moves the record's status-write count
   * (`mirrorSeq`), returned then (else null): the workflow tells by it whether a status the webhook bridge wrote
   * came straight after its own (sessions.ts mirrorLoss / mirrorReconnect).
   */
  async update(
    sessionId: string,
    fields: Partial<Omit<SessionRecord, 'sessionId'>>,
    now = Date.now(),
  ): Promise<number | null> {
    const set: Record<string, string | number> = { updatedAt: now };
    const del: string[] = [];
    for (const [k, v] of Object.entries(fields)) {
      if (v === null || v === undefined) del.push(k);
      else set[k] = v as string | number;
    }
    const tx = this.redis.multi().hset(this.keys.session(sessionId), set);
    if (del.length) tx.hdel(this.keys.session(sessionId), ...del);
    if (fields.status && WATCHED_STATUSES.includes(fields.status)) tx.sadd(this.keys.sessionsActive(), sessionId);
    else if (fields.status && !LIVE_STATUSES.includes(fields.status)) tx.srem(this.keys.sessionsActive(), sessionId);
    if (fields.status) tx.hincrby(this.keys.session(sessionId), 'mirrorSeq', 1);
    const results = await execAll(tx);
    return fields.status ? Number(results[results.length - 1]![1]) : null;
  }

  async increment(sessionId: string, field: 'restarts' | 'watchdogRestarts' | 'failovers'): Promise<number> {
    return this.redis.hincrby(this.keys.session(sessionId), field, 1);
  }

  /** The status alone (the dispatcher asks it at every step). */
  async statusOf(sessionId: string): Promise<string | null> {
    return this.redis.hget(this.keys.session(sessionId), 'status');
  }

  async get(sessionId: string): Promise<SessionRecord | null> {
    const raw = await this.redis.hgetall(this.keys.session(sessionId));
    return raw.sessionId ? toRecord(raw) : null;
  }

  async list(tenant?: string): Promise<SessionRecord[]> {
    const ids = await this.redis.smembers(tenant ? this.keys.tenantSessions(tenant) : this.keys.sessionsAll());
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.keys.session(id));
    const rows = (await pipeline.exec()) ?? [];
    return rows
      .map(([, raw]) => raw as Record<string, string>)
      .filter((raw) => raw && raw.sessionId)
      .map(toRecord)
      .sort((a, b) => a.createdAt - b.createdAt || a.sessionId.localeCompare(b.sessionId));
  }

  /** Removes every key of a deleted session (its hash stays, with status `deleted`, until purged). */
  async remove(sessionId: string, tenant: string | null): Promise<void> {
    const tx = this.redis
      .multi()
      .srem(this.keys.sessionsAll(), sessionId)
      .srem(this.keys.sessionsActive(), sessionId)
      .del(
        this.keys.session(sessionId),
        this.keys.sessionQr(sessionId),
        this.keys.sessionPairingCode(sessionId),
        this.keys.sessionTemp(sessionId),
        this.keys.sessionWorkerGeneration(sessionId),
      );
    if (tenant) tx.srem(this.keys.tenantSessions(tenant), sessionId);
    await execAll(tx);
  }

  /**
   * Stores the QR a worker shows. `firstOfGeneration`: no QR of this worker generation was stored before it (the
   * previous one is read in the same SET), i.e. not a rotation of a QR already shown; always true without a generation.
   */
  async setQr(
    sessionId: string,
    qr: string,
    generation?: number,
    ttlMs = 120_000,
    now = Date.now(),
  ): Promise<{ record: QrRecord; firstOfGeneration: boolean }> {
    const count = await this.redis.hincrby(this.keys.session(sessionId), 'qrCount', 1);
    const record: QrRecord = { qr, at: now, count, ...(generation !== undefined ? { generation } : {}) };
    const previous = await this.redis.set(this.keys.sessionQr(sessionId), JSON.stringify(record), 'PX', ttlMs, 'GET');
    const previousGeneration = previous ? (JSON.parse(previous) as QrRecord).generation : undefined;
    return { record, firstOfGeneration: generation === undefined || previousGeneration !== generation };
  }

  async getQr(sessionId: string): Promise<QrRecord | null> {
    const raw = await this.redis.get(this.keys.sessionQr(sessionId));
    return raw ? (JSON.parse(raw) as QrRecord) : null;
  }

  async clearQr(sessionId: string): Promise<void> {
    await this.redis.del(this.keys.sessionQr(sessionId));
  }

  async setPairingCode(sessionId: string, r: PairingCodeRecord, now = Date.now()): Promise<void> {
    const ttl = Math.max(1, r.expiresAt - now);
    await this.redis.set(this.keys.sessionPairingCode(sessionId), JSON.stringify(r), 'PX', ttl);
  }

  async getPairingCode(sessionId: string): Promise<PairingCodeRecord | null> {
    const raw = await this.redis.get(this.keys.sessionPairingCode(sessionId));
    return raw ? (JSON.parse(raw) as PairingCodeRecord) : null;
  }

  async clearPairingCode(sessionId: string): Promise<void> {
    await this.redis.del(this.keys.sessionPairingCode(sessionId));
  }

  async recordPing(sessionId: string, at: number): Promise<void> {
    await this.redis.hset(this.keys.session(sessionId), 'lastPing', at);
  }

  /**
   * Sessions with a running worker (any watched state, not only connected) whose last ping is older than
   * `timeoutMs` (the watchdog's question). Starting a worker records a ping: that is its grace period.
   */
  async staleSessions(timeoutMs: number, now = Date.now()): Promise<string[]> {
    const ids = await this.redis.smembers(this.keys.sessionsActive());
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hmget(this.keys.session(id), 'lastPing', 'connectedAt', 'status', 'createdAt');
    const rows = (await pipeline.exec()) ?? [];
    return ids.filter((_, i) => {
      const [lastPing, connectedAt, status, createdAt] = (rows[i]?.[1] ?? []) as Array<string | null>;
      if (!status || !WATCHED_STATUSES.includes(status as SessionStatus)) return false;
      // A session being provisioned has no ping yet: its creation time starts the grace period.
      const last = Math.max(Number(lastPing ?? 0), Number(connectedAt ?? 0), Number(createdAt ?? 0));
      return now - last > timeoutMs;
    });
  }

  /** Claims `phone` for `sessionId`; returns the current owner when another session holds it. */
  async claimPhone(phone: string, sessionId: string): Promise<string | null> {
    const ok = await this.redis.set(this.keys.phoneSession(phone), sessionId, 'NX');
    if (ok) return null;
    const owner = await this.redis.get(this.keys.phoneSession(phone));
    return owner === sessionId ? null : owner;
  }

  async phoneOwner(phone: string): Promise<string | null> {
    return this.redis.get(this.keys.phoneSession(phone));
  }

  /**
   * A reported connection loss of the current worker, mirrored ahead of the workflow: connected → reconnecting.
   * Returns the status-write count it wrote on top of, or null when the record is not connected or the generation
   * is not the current one (the workflow writes).
   */
  async mirrorLoss(sessionId: string, generation: number, lastError: string, now = Date.now()): Promise<number | null> {
    const k = this.keys;
    const keys = [k.session(sessionId), k.sessionWorkerGeneration(sessionId), k.sessionsActive()] as const;
    return mirrorLossScript(this.redis, [...keys], [sessionId, generation, lastError, now]);
  }

  /**
   * The current worker connected again after a reported loss, mirrored ahead of the workflow: reconnecting →
   * connected. Returns the proxy URL it is connected through and the status-write count it wrote on top of, or
   * null when the CONNECTED activity must write (a first link, another phone, a moved sticky proxy, an old worker).
   */
  async mirrorReconnect(
    sessionId: string,
    generation: number,
    phone: string,
    jid: string,
    now = Date.now(),
  ): Promise<{ proxyUrl: string; from: number } | null> {
    const k = this.keys;
    const r = await mirrorReconnectScript(
      this.redis,
      [
        k.session(sessionId),
        k.sessionWorkerGeneration(sessionId),
        k.phoneSession(phone),
        k.phoneProxy(phone),
        k.sessionSlot(sessionId),
        k.sessionTemp(sessionId),
        k.sessionQr(sessionId),
        k.sessionPairingCode(sessionId),
        k.sessionsActive(),
      ],
      [sessionId, generation, phone, jid, now],
    );
    return r ? { proxyUrl: r[0], from: Number(r[1]) } : null;
  }

  /** Releases the phone only if `sessionId` still owns it. */
  async releasePhone(phone: string, sessionId: string): Promise<void> {
    await releasePhoneScript(this.redis, [this.keys.phoneSession(phone)], [sessionId]);
  }

  /** True the first time an event id is seen (webhook de-duplication, kept for a day). */
  /** Claims a worker request's nonce once within `ttlMs` (replay protection of signed worker calls). */
  async claimWorkerNonce(sessionId: string, nonce: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.keys.workerNonce(sessionId, nonce), '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  /** The next number for a session id the caller did not choose (`worker_<n>`). */
  async nextSequence(): Promise<number> {
    return this.redis.incr(this.keys.sessionSequence());
  }

  async firstSighting(eventId: string, ttlMs = 24 * 3600_000): Promise<boolean> {
    return (await this.redis.set(this.keys.webhookEventSeen(eventId), '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  /**
   * Claims an event for processing: `claimed` — process it, then `completeEvent`; `done` — a duplicate
   * of a processed event; `pending` — another request is processing it (or crashed doing so: the claim expires
   * after `pendingTtlMs`, so the worker's retry goes through). Completion is recorded only after the effects.
   */
  async claimEvent(eventId: string, pendingTtlMs = 30_000): Promise<'claimed' | 'done' | 'pending'> {
    const key = this.keys.webhookEventSeen(eventId);
    if ((await this.redis.set(key, 'pending', 'PX', pendingTtlMs, 'NX')) === 'OK') return 'claimed';
    const v = await this.redis.get(key);
    if (v === null) return this.claimEvent(eventId, pendingTtlMs); // expired in between
    return v === 'pending' ? 'pending' : 'done';
  }

  async completeEvent(eventId: string, ttlMs = 24 * 3600_000): Promise<void> {
    await this.redis.set(this.keys.webhookEventSeen(eventId), 'done', 'PX', ttlMs);
  }

  async forgetSighting(eventId: string): Promise<void> {
    await this.redis.del(this.keys.webhookEventSeen(eventId));
  }
}

function toRecord(raw: Record<string, string>): SessionRecord {
  const out: Record<string, unknown> = {
    phone: null,
    proxy: null,
    jid: null,
    connectedAt: null,
    lastPing: null,
    lastError: null,
    host: null,
    pairingPhone: null,
    deviceProfile: null,
    device: null,
    restarts: 0,
    watchdogRestarts: 0,
    failovers: 0,
  };
  for (const [k, v] of Object.entries(raw)) out[k] = NUMERIC.has(k) ? Number(v) : v;
  return out as unknown as SessionRecord;
}
