/**
 * Outbound messages in Redis: the gateway's atomic accept (idempotency, rate limits, plan, burst), the
 * dispatcher's atomic step (pending queue → worker outbox), forward-only status updates, pacing overrides and
 * the per-session counters that drive promotion. Every multi-key change is one Lua script (the message-*.lua
 * files beside this one); keys are in common/redis-keys.ts.
 */
import type { Redis } from 'ioredis';
import {
  effectiveLimits,
  overridesFromHash,
  promotion,
  type EffectiveLimits,
  type LimitsOverride,
  type SessionSendStats,
} from '../common/anti-ban.js';
import type { Config } from '../common/config.js';
import { redisKeys, type RedisKeys } from '../common/redis-keys.js';
import { luaCommand } from './lua.js';
import type { OutboxMedia } from '../common/media.js';
import type { OutboxExtra } from '../common/message-actions.js';
import type { OutboxStore } from './outbox.js';
import { execAll } from './redis.js';
import { wakeWorker } from './worker-wake.js';

/** The named arguments of message-accept.lua (its header says what each means). */
interface AcceptArgs {
  messageId: string;
  sessionId: string;
  tenant: string;
  to: string;
  fingerprint: string;
  idempotencyKey?: string;
  tenantMax: number;
  globalMax: number;
  rateWindowMs: number;
  idemTtlMs: number;
  dailyCaps: { cold: number; warm: number; hot: number };
  dayMs: number;
  burstCount: number;
  burstWindowMs: number;
  burstPauseMs: number;
  staleBaseMs: number;
  maxGapMs: number;
  gapFactor: number;
  retentionMs: number;
}

const acceptScript = luaCommand<
  [
    idempotency: string,
    tenantRate: string,
    globalRate: string,
    limits: string,
    sent: string,
    pending: string,
    message: string,
    dispatchSessions: string,
    dispatchState: string,
    enqueued: string,
  ],
  [args: AcceptArgs, text: string, media: string, extra: string],
  [kind: string, payload: string, retryAfterMs: number, burst: number, wake?: number]
>(new URL('./message-accept.lua', import.meta.url));
const stepScript = luaCommand<
  [
    dispatchState: string,
    session: string,
    pending: string,
    sent: string,
    released: string,
    stats: string,
    outboxQueue: string,
    outboxItems: string,
    outboxAcked: string,
    outboxFailed: string,
  ],
  [prefix: string, stepId: string, dayMs: number, cap: number],
  [kind: string, messageId: string, ms: number]
>(new URL('./message-dispatch-step.lua', import.meta.url));
const statusScript = luaCommand<
  [message: string],
  [prefix: string, status: string, waMessageId: string, reason: string, onlySession: string, retentionMs: number],
  [applied: number, previous: string, sessionId: string, tenant: string]
>(new URL('./message-status.lua', import.meta.url));
const promoteScript = luaCommand<[limits: string], [from: string, to: string], 0 | 1>(
  new URL('./message-promote-level.lua', import.meta.url),
);
const rejectionRunScript = luaCommand<
  [dispatchState: string],
  [rejected: '1' | '0', run: number, pauseMs: number],
  number
>(new URL('./message-rejection-run.lua', import.meta.url));

export const MESSAGE_STATUSES = ['queued', 'scheduled', 'sent', 'delivered', 'read', 'failed'] as const;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

export interface MessageRecord {
  messageId: string;
  sessionId: string;
  tenant: string;
  to: string;
  text: string;
  /** a media message: what it sends (the text is its caption) */
  media?: OutboxMedia;
  /** a reaction, location, contact, edit or revoke (`action`) and/or the message it replies to (`quoted`) */
  extra?: OutboxExtra;
  status: MessageStatus;
  plannedAt: number | null;
  createdAt: number;
  dispatchedAt: number | null;
  sentAt: number | null;
  deliveredAt: number | null;
  readAt: number | null;
  failedAt: number | null;
  waMessageId: string | null;
  reason: string | null;
  idempotencyKey: string | null;
}

export type AcceptResult =
  | { kind: 'accepted' | 'replay'; response: Record<string, unknown>; burst: boolean; wake: boolean }
  | { kind: 'conflict'; messageId: string }
  | { kind: 'limited'; scope: 'tenant' | 'global'; retryAfterMs: number };

export type StepResult =
  | { kind: 'released'; messageId: string; releasedAt: number }
  | { kind: 'skipped'; messageId: string }
  | { kind: 'idle' | 'offline' | 'gone' }
  | { kind: 'cap'; untilMs: number };

export interface StatusChange {
  messageId: string;
  sessionId: string;
  tenant: string;
  status: MessageStatus;
  previous: string;
  waMessageId: string | null;
  reason: string | null;
}

/** The `message.status` customer webhook's data for a status change. */
export function statusEventData(ch: StatusChange): Record<string, unknown> {
  return {
    messageId: ch.messageId,
    sessionId: ch.sessionId,
    status: ch.status,
    previous: ch.previous,
    waMessageId: ch.waMessageId,
    ...(ch.reason ? { reason: ch.reason } : {}),
  };
}

const num = (s: string | undefined) => (s === undefined || s === '' ? null : Number(s));

export class MessageStore {
  readonly keys: RedisKeys;
  private readonly prefix: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    /** Anti-ban limits, rate limits and retention (the options of this store). */
    private readonly config: Config,
  ) {
    this.prefix = prefix;
    this.keys = redisKeys(this.prefix);
  }

  async accept(a: {
    tenant: string;
    sessionId: string;
    messageId: string;
    to: string;
    text: string;
    idempotencyKey?: string;
    fingerprint: string;
    /** media descriptor (common/media.ts OutboxMedia); the text is then the caption, possibly empty */
    media?: OutboxMedia;
    extra?: OutboxExtra;
  }): Promise<AcceptResult> {
    const c = this.config;
    const k = this.keys;
    const [kind, payload, retry, burst, wake] = await acceptScript(
      this.redis,
      [
        k.idempotency(a.tenant, a.idempotencyKey ?? ''),
        k.rateLimitTenant(a.tenant),
        k.rateLimitGlobal(),
        k.antibanLimits(a.sessionId),
        k.dispatchSent(a.sessionId),
        k.dispatchPending(a.sessionId),
        k.message(a.messageId),
        k.dispatchSessions(),
        k.dispatchState(a.sessionId),
        k.dispatchEnqueued(a.sessionId),
      ],
      [
        {
          messageId: a.messageId,
          sessionId: a.sessionId,
          tenant: a.tenant,
          to: a.to,
          fingerprint: a.fingerprint,
          // absent, not '': the script tests presence
          ...(a.idempotencyKey ? { idempotencyKey: a.idempotencyKey } : {}),
          tenantMax: c.RATE_LIMIT_MAX_REQUESTS,
          globalMax: c.RATE_LIMIT_GLOBAL_MAX_REQUESTS,
          rateWindowMs: c.RATE_LIMIT_WINDOW_MS,
          idemTtlMs: c.IDEMPOTENCY_TTL_MS,
          dailyCaps: { cold: c.ANTIBAN_COLD_DAILY, warm: c.ANTIBAN_WARM_DAILY, hot: c.ANTIBAN_HOT_DAILY },
          dayMs: c.ANTIBAN_WINDOW_MS,
          burstCount: c.ANTIBAN_BURST_COUNT,
          burstWindowMs: c.ANTIBAN_BURST_WINDOW_MS,
          burstPauseMs: c.ANTIBAN_BURST_PAUSE_MS,
          staleBaseMs: 3 * c.ANTIBAN_IDLE_POLL_MS + 5_000,
          maxGapMs: Math.max(c.ANTIBAN_COLD_GAP_MS, c.ANTIBAN_WARM_GAP_MS, c.ANTIBAN_HOT_GAP_MS),
          gapFactor: ((100 + c.ANTIBAN_JITTER_PERCENT) / 100) * c.ANTIBAN_BURST_SLOWDOWN,
          retentionMs: c.MESSAGE_RETENTION_MS,
        },
        a.text,
        a.media ? JSON.stringify(a.media) : '',
        a.extra ? JSON.stringify(a.extra) : '',
      ],
    );
    if (kind === 'conflict') return { kind, messageId: payload };
    if (kind === 'limited') return { kind, scope: payload as 'tenant' | 'global', retryAfterMs: Number(retry) };
    return {
      kind: kind as 'accepted' | 'replay',
      response: JSON.parse(payload) as Record<string, unknown>,
      burst: Number(burst) === 1,
      wake: Number(wake) === 1,
    };
  }

  async get(messageId: string): Promise<MessageRecord | null> {
    const h = await this.redis.hgetall(this.keys.message(messageId));
    if (!h.id) return null;
    return {
      messageId: h.id,
      sessionId: h.sessionId ?? '',
      tenant: h.tenant ?? '',
      to: h.to ?? '',
      text: h.text ?? '',
      ...(h.media ? { media: JSON.parse(h.media) as OutboxMedia } : {}),
      ...(h.extra ? { extra: JSON.parse(h.extra) as OutboxExtra } : {}),
      status: (h.status ?? 'queued') as MessageStatus,
      plannedAt: num(h.plannedAt),
      createdAt: Number(h.createdAt),
      dispatchedAt: num(h.dispatchedAt),
      sentAt: num(h.sentAt),
      deliveredAt: num(h.deliveredAt),
      readAt: num(h.readAt),
      failedAt: num(h.failedAt),
      waMessageId: h.waMessageId ?? null,
      reason: h.reason ?? null,
      idempotencyKey: h.idempotencyKey ?? null,
    };
  }

  /**
   * Forward-only status change; returns the change when it applied. `sessionId` (a worker's report) limits it to
   * that session's own messages.
   */
  async setStatus(
    messageId: string,
    status: Exclude<MessageStatus, 'queued' | 'scheduled'>,
    waMessageId: string | null,
    reason: string | null,
    sessionId?: string,
  ): Promise<StatusChange | null> {
    const [applied, previous, owner, tenant] = await statusScript(
      this.redis,
      [this.keys.message(messageId)],
      [this.prefix, status, waMessageId ?? '', reason ?? '', sessionId ?? '', this.config.MESSAGE_RETENTION_MS],
    );
    if (Number(applied) !== 1) return null;
    return { messageId, sessionId: owner, tenant, status, previous, waMessageId, reason };
  }

  async step(sessionId: string, stepId: string, cap: number, outbox: OutboxStore): Promise<StepResult> {
    const k = this.keys;
    const ok = outbox.keys(sessionId);
    const [kind, messageId, until] = await stepScript(
      this.redis,
      [
        k.dispatchState(sessionId),
        k.session(sessionId),
        k.dispatchPending(sessionId),
        k.dispatchSent(sessionId),
        k.dispatchReleased(sessionId),
        k.antibanStats(sessionId),
        ok.queue,
        ok.items,
        ok.acked,
        ok.failed,
      ],
      [this.prefix, stepId, this.config.ANTIBAN_WINDOW_MS, cap],
    );
    if (kind === 'released') {
      await wakeWorker(this.redis, this.keys, sessionId);
      return { kind, messageId, releasedAt: Number(until) };
    }
    if (kind === 'skipped') return { kind, messageId };
    if (kind === 'cap') return { kind, untilMs: Number(until) };
    return { kind: kind as 'idle' | 'offline' | 'gone' };
  }

  /**
   * Reads back the outcome of handed-off messages from the outbox (ACK → sent, failed → failed), so a status is
   * right even when the worker's MESSAGE_STATUS webhook was lost. Returns the changes that applied.
   */
  async reconcile(sessionId: string, outbox: OutboxStore, limit = 100): Promise<StatusChange[]> {
    const ids = await this.redis.zrange(this.keys.dispatchReleased(sessionId), 0, limit - 1);
    const changes: StatusChange[] = [];
    for (const id of ids) {
      const wa = await outbox.ackedId(sessionId, id);
      if (wa) {
        const ch = await this.setStatus(id, 'sent', wa, null, sessionId);
        if (ch) changes.push(ch);
        await this.redis.zrem(this.keys.dispatchReleased(sessionId), id);
        continue;
      }
      const failure = await outbox.failure(sessionId, id);
      if (failure) {
        const ch = await this.setStatus(id, 'failed', null, failure.reason, sessionId);
        if (ch) changes.push(ch);
        await this.redis.zrem(this.keys.dispatchReleased(sessionId), id);
      }
    }
    return changes;
  }

  async overrides(sessionId: string): Promise<LimitsOverride> {
    return overridesFromHash(await this.redis.hgetall(this.keys.antibanLimits(sessionId)));
  }

  async limits(sessionId: string): Promise<EffectiveLimits> {
    return effectiveLimits(this.config, await this.overrides(sessionId));
  }

  /** Replaces the overrides (fields absent from `o` are removed), in one transaction. */
  async setOverrides(sessionId: string, o: LimitsOverride): Promise<EffectiveLimits> {
    const key = this.keys.antibanLimits(sessionId);
    const fields = Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)]));
    const tx = this.redis.multi().del(key);
    if (Object.keys(fields).length) tx.hset(key, fields);
    await execAll(tx);
    return effectiveLimits(this.config, o);
  }

  async stats(sessionId: string): Promise<SessionSendStats> {
    const h = await this.redis.hgetall(this.keys.antibanStats(sessionId));
    return {
      firstConnectedAt: num(h.firstConnectedAt),
      released: Number(h.released ?? 0),
      delivered: Number(h.delivered ?? 0),
      failed: Number(h.failed ?? 0),
      lookups: Number(h.lookups ?? 0),
    };
  }

  async markConnectedOnce(sessionId: string, now = Date.now()): Promise<void> {
    await this.redis.hsetnx(this.keys.antibanStats(sessionId), 'firstConnectedAt', now);
  }

  /** Applies the automatic promotion rules (unless pinned); returns the promotion when one happened. */
  async maybePromote(sessionId: string, now = Date.now()) {
    const o = await this.overrides(sessionId);
    if (o.autoPromote === false) return null;
    const lim = effectiveLimits(this.config, o);
    const p = promotion(this.config, lim.level, await this.stats(sessionId), now);
    if (!p) return null;
    // A compare-and-set on the level: a concurrent manual PUT wins.
    const ok = await promoteScript(this.redis, [this.keys.antibanLimits(sessionId)], [lim.level, p.to]);
    return Number(ok) === 1 ? { from: lim.level, ...p } : null;
  }

  /** Counts number lookups the session asked WhatsApp (cache misses), for its anti-ban stats. */
  async countLookups(sessionId: string, n: number): Promise<void> {
    await this.redis.hincrby(this.keys.antibanStats(sessionId), 'lookups', n);
  }

  /** Messages handed to the worker and not yet acknowledged by it. */
  async inFlightCount(sessionId: string): Promise<number> {
    return this.redis.zcard(this.keys.dispatchReleased(sessionId));
  }

  async pendingCount(sessionId: string): Promise<number> {
    return this.redis.llen(this.keys.dispatchPending(sessionId));
  }

  /**
   * Counts WhatsApp's refusals (463/479) in a row on a session; an accepted send resets the run. Returns the run
   * length when it reached ANTIBAN_REJECTION_RUN (the session is now slowed like a burst), else 0.
   */
  async recordSendOutcome(sessionId: string, rejected: boolean): Promise<number> {
    const r = await rejectionRunScript(
      this.redis,
      [this.keys.dispatchState(sessionId)],
      [rejected ? '1' : '0', this.config.ANTIBAN_REJECTION_RUN, this.config.ANTIBAN_BURST_PAUSE_MS],
    );
    return Number(r);
  }

  /** A triggered rejection run not alerted yet (its length), cleared by this call. */
  async takeRejectionAlert(sessionId: string): Promise<number> {
    const key = this.keys.dispatchState(sessionId);
    const res = await execAll(this.redis.multi().hget(key, 'rejectAlert').hdel(key, 'rejectAlert'));
    return Number(res?.[0]?.[1] ?? 0);
  }

  async burstUntil(sessionId: string): Promise<number> {
    return Number((await this.redis.hget(this.keys.dispatchState(sessionId), 'burstUntil')) ?? 0);
  }

  async sentInWindow(sessionId: string, now = Date.now()): Promise<number> {
    return this.redis.zcount(this.keys.dispatchSent(sessionId), now - this.config.ANTIBAN_WINDOW_MS, '+inf');
  }

  async sessionsWithPending(): Promise<string[]> {
    const ids = await this.redis.smembers(this.keys.dispatchSessions());
    const out: string[] = [];
    for (const id of ids) if ((await this.pendingCount(id)) > 0) out.push(id);
    return out;
  }
}
