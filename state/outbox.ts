/**
 * Per-session outbox in Redis (SPEC §9 `session:outbox:<id>`), every operation one atomic Lua script (the
 * outbox-*.lua files beside this one).
 *
 * Keys (base = `${prefix}session:outbox:<sessionId>`):
 *   base             LIST   message ids waiting, in order (head = next to claim)
 *   base:items       HASH   messageId → JSON {messageId, to, text, enqueuedAt}
 *   base:attempts    HASH   messageId → number of claims so far
 *   base:inflight    ZSET   messageId → lease deadline (ms, Redis server clock)
 *   base:acked       HASH   messageId → waMessageId (idempotent ACK record)
 *   base:failed      HASH   messageId → JSON {reason, attempts, at}
 *   base:settled     ZSET   messageId → settle time (ACK/failure records older than the retention are dropped)
 *
 * claim moves the head to the in-flight set with a lease; a lease that expires (crashed worker) goes back to the
 * head of the queue on the next claim or reclaimExpired(), so it is re-delivered (with attempt + 1). ack records
 * messageId → waMessageId and is idempotent; nack either re-queues at the head (retryable, until maxAttempts) or
 * moves the message to failed (permanent).
 */
import type { Redis } from 'ioredis';
import type { OutboxMedia } from '../common/media.js';
import type { OutboxExtra } from '../common/message-actions.js';
import { redisKeys } from '../common/redis-keys.js';
import { luaCommand } from './lua.js';
import { wakeWorker } from './worker-wake.js';

export interface OutboxMessage {
  messageId: string;
  to: string;
  text: string;
}

export interface ClaimedMessage extends OutboxMessage {
  /** a media message's descriptor */
  media?: OutboxMedia;
  /** a reaction, location, contact, edit, revoke or reply */
  extra?: OutboxExtra;
  attempt: number;
  leaseUntil: number;
}

export type AckResult = 'acked' | 'duplicate' | 'not_found' | 'conflict';
export type NackResult = 'requeued' | 'failed' | 'not_found' | 'conflict';

/** KEYS of the ACK and NACK scripts, in their order. */
type SettleKeys = [
  queue: string,
  items: string,
  attempts: string,
  inflight: string,
  acked: string,
  failed: string,
  settled: string,
];
function settleKeys(k: ReturnType<OutboxStore['keys']>): SettleKeys {
  return [k.queue, k.items, k.attempts, k.inflight, k.acked, k.failed, k.settled];
}

const enqueueScript = luaCommand<
  [queue: string, items: string, acked: string, failed: string],
  [messageId: string, itemJson: string],
  0 | 1
>(new URL('./outbox-enqueue.lua', import.meta.url));
const claimScript = luaCommand<
  [queue: string, items: string, attempts: string, inflight: string],
  [leaseMs: number],
  [itemJson: string, attempt: number, leaseUntil: number] | null
>(new URL('./outbox-claim.lua', import.meta.url));
const ackScript = luaCommand<SettleKeys, [messageId: string, waMessageId: string, retentionMs: number], AckResult>(
  new URL('./outbox-ack.lua', import.meta.url),
);
const nackScript = luaCommand<
  SettleKeys,
  [messageId: string, reason: string, permanent: '1' | '0', maxAttempts: number, retentionMs: number],
  NackResult
>(new URL('./outbox-nack.lua', import.meta.url));
const releaseScript = luaCommand<[queue: string, attempts: string, inflight: string], [messageId: string], 0 | 1>(
  new URL('./outbox-release.lua', import.meta.url),
);
const reclaimScript = luaCommand<[queue: string, inflight: string], [], number>(
  new URL('./outbox-reclaim.lua', import.meta.url),
);

export interface OutboxStoreOptions {
  /** How long a claim is leased before it is re-delivered (default 60 s). */
  leaseMs?: number;
  /** Retryable NACKs after which a message fails for good (default 5). */
  maxAttempts?: number;
  /** How long ACK and failure records are kept (default 7 days). */
  retentionMs?: number;
}

export class OutboxStore {
  private readonly prefix: string;
  readonly leaseMs: number;
  readonly maxAttempts: number;
  readonly retentionMs: number;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    opts: OutboxStoreOptions = {},
  ) {
    this.prefix = prefix;
    this.leaseMs = opts.leaseMs ?? 60_000;
    this.maxAttempts = opts.maxAttempts ?? 5;
    this.retentionMs = opts.retentionMs ?? 7 * 86_400_000;
  }

  keys(sessionId: string) {
    const base = redisKeys(this.prefix).sessionOutbox(sessionId);
    return {
      queue: base,
      items: `${base}:items`,
      attempts: `${base}:attempts`,
      inflight: `${base}:inflight`,
      acked: `${base}:acked`,
      failed: `${base}:failed`,
      settled: `${base}:settled`,
    };
  }

  /** Adds a message at the tail. Idempotent: an id already queued, in flight, acked or failed is not re-added. */
  async enqueue(sessionId: string, msg: OutboxMessage): Promise<boolean> {
    const k = this.keys(sessionId);
    const json = JSON.stringify({ messageId: msg.messageId, to: msg.to, text: msg.text, enqueuedAt: Date.now() });
    const added = (await enqueueScript(this.redis, [k.queue, k.items, k.acked, k.failed], [msg.messageId, json])) === 1;
    if (added) await wakeWorker(this.redis, redisKeys(this.prefix), sessionId);
    return added;
  }

  /** When the earliest lease in flight runs out (its message becomes claimable again), or null. */
  async nextDueAt(sessionId: string): Promise<number | null> {
    const first = await this.redis.zrange(this.keys(sessionId).inflight, 0, 0, 'WITHSCORES');
    return first.length === 2 ? Number(first[1]) : null;
  }

  /** Claims the next message (expired leases first), or null when the outbox is empty. */
  async claim(sessionId: string, leaseMs: number = this.leaseMs): Promise<ClaimedMessage | null> {
    const k = this.keys(sessionId);
    const r = await claimScript(this.redis, [k.queue, k.items, k.attempts, k.inflight], [leaseMs]);
    if (!r) return null;
    const item = JSON.parse(r[0]) as OutboxMessage & { media?: string; extra?: string };
    return {
      messageId: item.messageId,
      to: item.to,
      text: item.text,
      ...(item.media ? { media: JSON.parse(item.media) as OutboxMedia } : {}),
      ...(item.extra ? { extra: JSON.parse(item.extra) as OutboxExtra } : {}),
      attempt: Number(r[1]),
      leaseUntil: Number(r[2]),
    };
  }

  /** Records the WhatsApp id. Same id again → 'duplicate'; a different id for an acked message → 'conflict'. */
  async ack(sessionId: string, messageId: string, waMessageId: string): Promise<AckResult> {
    const k = this.keys(sessionId);
    return ackScript(this.redis, settleKeys(k), [messageId, waMessageId, this.retentionMs]);
  }

  async nack(sessionId: string, messageId: string, reason: string, permanent: boolean): Promise<NackResult> {
    const k = this.keys(sessionId);
    return nackScript(this.redis, settleKeys(k), [
      messageId,
      reason,
      permanent ? '1' : '0',
      this.maxAttempts,
      this.retentionMs,
    ]);
  }

  /**
   * Hands a claimed message back, at the head of the queue and its claim not counted: the worker hung up before
   * the claim's answer reached it, so it never saw the message. False when it is no longer in flight.
   */
  async release(sessionId: string, messageId: string): Promise<boolean> {
    const k = this.keys(sessionId);
    return (await releaseScript(this.redis, [k.queue, k.attempts, k.inflight], [messageId])) === 1;
  }

  /** Puts expired leases back at the head of the queue; returns how many. (claim does this too.) */
  async reclaimExpired(sessionId: string): Promise<number> {
    const k = this.keys(sessionId);
    return reclaimScript(this.redis, [k.queue, k.inflight], []);
  }

  async ackedId(sessionId: string, messageId: string): Promise<string | null> {
    return this.redis.hget(this.keys(sessionId).acked, messageId);
  }

  async failure(
    sessionId: string,
    messageId: string,
  ): Promise<{ reason: string; attempts: number; at: number; permanent: boolean } | null> {
    const raw = await this.redis.hget(this.keys(sessionId).failed, messageId);
    return raw ? (JSON.parse(raw) as { reason: string; attempts: number; at: number; permanent: boolean }) : null;
  }

  async counts(sessionId: string): Promise<{ queued: number; inflight: number; acked: number; failed: number }> {
    const k = this.keys(sessionId);
    const [queued, inflight, acked, failed] = await Promise.all([
      this.redis.llen(k.queue),
      this.redis.zcard(k.inflight),
      this.redis.hlen(k.acked),
      this.redis.hlen(k.failed),
    ]);
    return { queued, inflight, acked, failed };
  }

  /** Removes every outbox key of the session (session deleted). */
  async clear(sessionId: string): Promise<void> {
    await this.redis.del(...Object.values(this.keys(sessionId)));
  }
}
