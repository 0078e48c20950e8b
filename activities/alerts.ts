import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import { redactText } from '../common/redact.js';
import { redisKeys } from '../common/redis-keys.js';

export const ALERT_KINDS = [
  'session_connected',
  'session_unhealthy',
  'session_failed',
  'session_logged_out',
  /** WhatsApp refused ANTIBAN_REJECTION_RUN cold sends in a row (463/479): the session was slowed. */
  'session_sends_rejected',
  'proxy_burned',
  'low_proxy_inventory',
  'low_device_profile_inventory',
  'backup_done',
  'backup_failed',
  'restore_done',
  'restore_failed',
  /** A host stopped heartbeating: its sessions were moved to the live hosts (or why not). */
  'host_failover',
  'host_drained',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export interface AlertOptions {
  botToken?: string;
  chatId?: string;
  apiBaseUrl: string;
  /** The same dedupe key is sent at most once per window (a flapping session cannot flood the chat). */
  dedupeWindowMs?: number;
  /** At most this many alerts per minute in total; the rest are counted and logged. */
  maxPerMinute?: number;
  keyPrefix?: string;
  /** First retry delay of an undelivered queued alert; doubles per attempt up to 5 minutes. */
  retryBaseMs?: number;
}

interface QueuedAlert {
  id: string;
  kind: AlertKind;
  text: string;
  dedupeKey?: string;
  attempts: number;
}

/** A queued alert is dropped (and logged) after this many failed deliveries (~a day with the 5 min cap). */
const MAX_QUEUED_ATTEMPTS = 300;

/**
 * Telegram alerts (SPEC §11): real Bot API `sendMessage` calls to a configurable base URL, retried with backoff,
 * de-duplicated and rate-limited in Redis so that several orchestrators share the limits. Without a bot token,
 * alerts are only logged.
 *
 * The lifecycle never waits for Telegram: workflows call `enqueue` (one Redis write), and `deliverDue`, run on a
 * timer by every orchestrator, sends what is due and re-queues what failed with backoff. A down Telegram delays
 * alerts, never a failover, a restart or a provision.
 */
export class Alerts {
  constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
    private readonly opts: AlertOptions,
  ) {}

  /** Queues an alert for delivery by `deliverDue` (best effort for the caller: one Redis write). */
  async enqueue(kind: AlertKind, text: string, dedupeKey?: string): Promise<void> {
    const item: QueuedAlert = { id: randomUUID(), kind, text: redactText(text), dedupeKey, attempts: 0 };
    await this.redis.zadd(this.outboxKey(), Date.now(), JSON.stringify(item));
  }

  /**
   * Sends the queued alerts that are due; a failed one goes back with a doubled delay. Several orchestrators may
   * run this at once: ZREM decides who owns an entry. Returns how many were handed to Telegram (or logged).
   */
  async deliverDue(max = 20): Promise<number> {
    const key = this.outboxKey();
    const due = await this.redis.zrangebyscore(key, 0, Date.now(), 'LIMIT', 0, max);
    let done = 0;
    for (const raw of due) {
      if ((await this.redis.zrem(key, raw)) !== 1) continue; // another orchestrator took it
      const item = JSON.parse(raw) as QueuedAlert;
      try {
        await this.send(item.kind, item.text, item.dedupeKey ?? `${item.kind}:${item.text}`);
        done++;
      } catch {
        const next: QueuedAlert = { ...item, attempts: item.attempts + 1 };
        if (next.attempts >= MAX_QUEUED_ATTEMPTS) {
          this.logger.error({ kind: item.kind, attempts: next.attempts }, 'alert dropped after repeated failures');
          continue;
        }
        const delay = Math.min(300_000, (this.opts.retryBaseMs ?? 2000) * 2 ** item.attempts);
        await this.redis.zadd(key, Date.now() + delay, JSON.stringify(next));
      }
    }
    return done;
  }

  /** Runs `deliverDue` every `intervalMs` until the returned stop function is called; errors are only logged. */
  startDelivery(intervalMs = 1000): () => void {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      this.deliverDue()
        .catch((err: unknown) => this.logger.warn({ err: redactText(String(err)) }, 'alert delivery round failed'))
        .finally(() => (running = false));
    }, intervalMs);
    return () => clearInterval(timer);
  }

  private outboxKey(): string {
    return redisKeys(this.opts.keyPrefix ?? '').alertOutbox();
  }

  async send(
    kind: AlertKind,
    text: string,
    dedupeKey = `${kind}:${text}`,
  ): Promise<'sent' | 'logged' | 'deduped' | 'rate_limited'> {
    const safeText = redactText(text);
    // Named by a digest: dedupe keys may carry a proxy URL or alert text, which a key name must never show.
    const p = this.opts.keyPrefix ?? '';
    const dedupeRedisKey = redisKeys(p).alertDedupe(createHash('sha256').update(dedupeKey).digest('hex').slice(0, 32));
    const fresh = await this.redis.set(dedupeRedisKey, '1', 'PX', this.opts.dedupeWindowMs ?? 300_000, 'NX');
    if (fresh !== 'OK') return 'deduped';
    const minuteKey = `${p}alert:rate:${Math.floor(Date.now() / 60_000)}`;
    const count = await this.redis.incr(minuteKey);
    if (count === 1) await this.redis.pexpire(minuteKey, 120_000);
    if (count > (this.opts.maxPerMinute ?? 20)) {
      this.logger.warn({ kind }, 'alert rate limit reached; alert logged only');
      return 'rate_limited';
    }
    this.logger.info({ alert: kind, text: safeText }, 'alert');
    if (!this.opts.botToken || !this.opts.chatId) return 'logged';
    try {
      await this.postWithRetry(`${kind.replace(/_/g, ' ')}: ${safeText}`);
    } catch (err) {
      // Not delivered: forget the de-dupe marker so that a retry of the activity can send it.
      await this.redis.del(dedupeRedisKey).catch(() => undefined);
      throw err;
    }
    return 'sent';
  }

  private async postWithRetry(text: string, attempts = 4): Promise<void> {
    const url = `${this.opts.apiBaseUrl.replace(/\/$/, '')}/bot${this.opts.botToken}/sendMessage`;
    let delay = 250;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ chat_id: this.opts.chatId, text, disable_web_page_preview: true }),
          signal: AbortSignal.timeout(5000),
        });
        if (res.ok) return;
        // Telegram tells how long to wait on 429 in the body (parameters.retry_after) and/or the header.
        const body = (await res.json().catch(() => null)) as { parameters?: { retry_after?: number } } | null;
        const retryAfter =
          Math.max(Number(res.headers.get('retry-after') ?? 0), Number(body?.parameters?.retry_after ?? 0)) * 1000;
        if (res.status < 500 && res.status !== 429) {
          attempt = attempts; // a 4xx other than 429 (bad token, unknown chat): retrying cannot help
          throw new Error(`Telegram answered ${res.status}`);
        }
        delay = Math.max(delay, retryAfter);
        if (attempt >= attempts) throw new Error(`Telegram answered ${res.status}`);
      } catch (err) {
        if (attempt >= attempts) {
          this.logger.error({ err: redactText(String(err)) }, 'alert delivery failed');
          throw err;
        }
      }
      await new Promise((r) => setTimeout(r, delay));
      delay *= 2;
    }
  }
}
