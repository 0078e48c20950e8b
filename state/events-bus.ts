import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redactDeep } from '../common/redact.js';
import { redisKeys, type RedisKeys } from '../common/redis-keys.js';
import { execAll } from './redis.js';

/** Live event types (dashboard, `/api/events`). `status` covers every other lifecycle change. */
export const LIVE_EVENT_TYPES = [
  'status',
  'qr',
  'pairing_code',
  'connected',
  'disconnected',
  'message',
  'error',
  'logout',
  'reconnect_failed',
  'health_check_failed',
  'failover',
  'backup',
] as const;
export type LiveEventType = (typeof LIVE_EVENT_TYPES)[number];

export interface LiveEvent {
  id: string;
  type: LiveEventType;
  /** Null for events that belong to no session (backups, proxies): only the admin sees those. */
  sessionId: string | null;
  tenant: string | null;
  at: number;
  data: Record<string, unknown>;
}

export type LiveEventInput = Omit<LiveEvent, 'id' | 'at'> & { at?: number };

/** Counter fields (HINCRBY in Redis) an event moves; `/metrics` reads them at scrape time. */
export function counterFields(e: Pick<LiveEvent, 'type' | 'data'>): string[] {
  const out: string[] = [e.type];
  if (e.type === 'disconnected') out.push(`disconnected_reason:${reasonLabel(e.data.reason)}`);
  if (e.type === 'message') {
    const kind = e.data.direction === 'in' ? 'received' : String(e.data.status ?? 'unknown');
    out.push(`message:${reasonLabel(kind)}`);
  }
  if (typeof e.data.increment === 'string') out.push(`increment:${reasonLabel(e.data.increment)}`);
  if ((e.type === 'backup' || e.type === 'failover') && typeof e.data.phase === 'string')
    out.push(`${e.type}:${reasonLabel(e.data.phase)}`);
  return out;
}

/** A bounded label value: lower case, `[a-z0-9_]`, at most 40 chars (keeps metric cardinality small). */
export function reasonLabel(value: unknown): string {
  const s = String(value ?? 'unknown')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 40);
  return s || 'unknown';
}

/**
 * The live event bus: Redis pub/sub on `<prefix>events`. Any process (orchestrator activities, every API
 * process's webhook bridge, backup workflows) publishes; every API process subscribes once and fans events out
 * to its SSE/WebSocket clients. Publishing also bumps system-wide counters in one Redis hash, so metrics stay
 * right however many processes there are. Events carry no secrets (payloads are redacted before they leave).
 */
export class EventBus {
  readonly keys: RedisKeys;
  private subscriber: Redis | null = null;
  private subscribed: Promise<void> | null = null;
  private readonly handlers = new Set<(e: LiveEvent) => void>();

  private readonly logger: Logger | undefined;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    opts: { logger?: Logger } = {},
  ) {
    this.keys = redisKeys(prefix);
    this.logger = opts.logger;
  }

  /** Publishes an event and moves its counters (one MULTI). Throws on Redis errors: see {@link publishSafe}. */
  async publish(input: LiveEventInput): Promise<LiveEvent> {
    const event: LiveEvent = redactDeep({
      id: randomUUID(),
      type: input.type,
      sessionId: input.sessionId,
      tenant: input.tenant,
      at: input.at ?? Date.now(),
      data: input.data,
    });
    const tx = this.redis.multi().publish(this.keys.eventsChannel(), JSON.stringify(event));
    for (const field of counterFields(event)) tx.hincrby(this.keys.eventCounters(), field, 1);
    await execAll(tx);
    return event;
  }

  /** Bumps one deployment-wide counter of the events hash (read by /metrics) without publishing an event. */
  async count(field: string): Promise<void> {
    await this.redis.hincrby(this.keys.eventCounters(), field, 1);
  }

  /** Best effort: a live event must never fail the lifecycle step that produced it. */
  async publishSafe(input: LiveEventInput): Promise<void> {
    try {
      await this.publish(input);
    } catch (err) {
      this.logger?.warn({ err: String(err), type: input.type, sessionId: input.sessionId }, 'live event not published');
    }
  }

  /** System-wide counters (field → value), as moved by {@link publish}. */
  async counters(): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(this.keys.eventCounters());
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }

  /**
   * Subscribes `handler` to every event of this deployment. One Redis subscriber connection per bus, shared by
   * every handler; resolves once Redis confirmed the subscription. Returns the unsubscribe function.
   */
  async subscribe(handler: (e: LiveEvent) => void): Promise<() => void> {
    this.handlers.add(handler);
    if (!this.subscribed) {
      const sub = this.redis.duplicate({ maxRetriesPerRequest: null });
      this.subscriber = sub;
      sub.on('error', (err: Error) => this.logger?.debug({ err: err.message }, 'event bus subscriber error'));
      sub.on('message', (channel: string, message: string) => {
        if (channel !== this.keys.eventsChannel()) return;
        let event: LiveEvent;
        try {
          event = JSON.parse(message) as LiveEvent;
        } catch {
          return;
        }
        for (const h of this.handlers) {
          try {
            h(event);
          } catch (err) {
            this.logger?.warn({ err: String(err) }, 'live event handler failed');
          }
        }
      });
      this.subscribed = sub.subscribe(this.keys.eventsChannel()).then(() => undefined);
      this.subscribed.catch(() => {
        // Next subscribe() tries again with a fresh connection.
        if (this.subscriber === sub) {
          this.subscriber = null;
          this.subscribed = null;
        }
        sub.disconnect();
      });
    }
    try {
      await this.subscribed;
    } catch (err) {
      this.handlers.delete(handler);
      throw err;
    }
    return () => {
      this.handlers.delete(handler);
    };
  }

  get listeners(): number {
    return this.handlers.size;
  }

  async close(): Promise<void> {
    this.handlers.clear();
    const sub = this.subscriber;
    this.subscriber = null;
    this.subscribed = null;
    if (sub) sub.disconnect();
  }
}
