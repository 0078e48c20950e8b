/**
 * Event reporter: every event is appended to a bounded on-disk spool in the session folder, then delivered by a
 * single loop strictly in order (head-of-line: event n+1 is never sent before event n was accepted). Delivery is
 * at-least-once: a redelivered event keeps its eventId. Failed attempts are retried forever with exponential
 * backoff and jitter (capped), so an orchestrator outage only delays events; a restart of the worker replays the
 * spool first.
 *
 * Spool layout (`.events-spool.jsonl`, mode 0600): a header line `{"spool":1,"generation":G}` then one envelope per
 * line. `.events-spool.offset` holds `{"generation":G,"delivered":n}`: the first n event lines of generation G were
 * accepted. Compaction rewrites the spool atomically under a new generation; an offset from another generation
 * counts as 0 (a crash between the two writes causes duplicates, never loss).
 */
import { randomUUID } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  EventDataSchemas,
  signedHeaders,
  WebhookEnvelopeSchema,
  type EventData,
  type EventType,
  type WebhookEnvelope,
} from '../common/events.js';
import { backoffDelay } from './config.js';
import { FILE_MODE, writeFileAtomic } from './auth-store.js';
import type { Logger } from './logger.js';
import { isStaleGeneration } from './signed-post.js';

export const SPOOL_FILE = '.events-spool.jsonl';
export const SPOOL_OFFSET_FILE = '.events-spool.offset';

export interface WebhookReporterOptions {
  sessionId: string;
  /**
   * WORKER_GENERATION, stamped on every event it produces (the workflow ignores events of replaced workers by it)
   * and signed into every delivery as the sender's (the API refuses deliveries of a replaced worker: 409).
   */
  generation?: number;
  /** Called on 409 STALE_GENERATION: a newer worker replaced this one (the event stays spooled). */
  onStale?: () => void;
  url: string;
  secret: string;
  dir: string;
  maxBytes: number;
  timeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  logger: Logger;
  fetchImpl?: typeof fetch;
}

interface Entry {
  env: WebhookEnvelope;
  line: string;
  persisted: Promise<void>;
}

type SendOutcome = 'delivered' | 'rejected' | 'retry';

export class WebhookReporter {
  private readonly spoolPath: string;
  private readonly offsetPath: string;
  private readonly queue: Entry[] = [];
  private fh: fs.FileHandle | undefined;
  private generation = '';
  private delivered = 0;
  private fileBytes = 0;
  private chain: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private idleWaiters: (() => void)[] = [];
  private closed = false;
  private loop: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryResolve: (() => void) | undefined;
  private readonly fetchImpl: typeof fetch;
  /** Counters for health reporting and tests. */
  readonly stats = { delivered: 0, failedAttempts: 0, rejected: 0, dropped: 0, replayed: 0 };

  constructor(private readonly opts: WebhookReporterOptions) {
    this.spoolPath = path.join(opts.dir, SPOOL_FILE);
    this.offsetPath = path.join(opts.dir, SPOOL_OFFSET_FILE);
    this.fetchImpl = opts.fetchImpl ?? fetch;
  }

  /** Loads undelivered events from a previous run (they are delivered first), compacts, starts delivery. */
  async open(): Promise<void> {
    const pending = await this.readSpool();
    for (const env of pending) this.queue.push({ env, line: JSON.stringify(env), persisted: Promise.resolve() });
    this.stats.replayed = pending.length;
    await this.compact();
    if (pending.length > 0) this.opts.logger.info({ events: pending.length }, 'replaying spooled events');
    this.loop = this.run();
  }

  get backlog(): number {
    return this.queue.length;
  }

  /** Records an event (durably, in order) and schedules its delivery. Never throws. */
  emit<T extends EventType>(type: T, data: EventData<T>): WebhookEnvelope | undefined {
    if (this.closed) {
      this.opts.logger.warn({ type }, 'event after close dropped');
      return undefined;
    }
    const checked = EventDataSchemas[type].safeParse(data);
    if (!checked.success) {
      this.opts.logger.error({ type, issues: checked.error.issues }, 'refusing to emit an invalid event');
      return undefined;
    }
    const env = WebhookEnvelopeSchema.parse({
      sessionId: this.opts.sessionId,
      type,
      timestamp: Date.now(),
      eventId: randomUUID(),
      ...(this.opts.generation !== undefined ? { generation: this.opts.generation } : {}),
      data: checked.data,
    });
    const line = JSON.stringify(env);
    const persisted = this.enqueueIo(() => this.append(line));
    this.queue.push({ env, line, persisted });
    this.opts.logger.debug({ type, eventId: env.eventId }, 'event queued');
    this.wake?.();
    return env;
  }

  /** Resolves when every queued event was delivered, or after timeoutMs (returns whether the queue drained). */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.queue.length === 0) return true;
    this.skipRetryWait();
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(this.queue.length === 0);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  /** Stops delivery; what is not delivered stays in the spool for the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    this.skipRetryWait();
    await this.loop?.catch(() => undefined);
    await this.chain.catch(() => undefined);
    await this.fh?.sync().catch(() => undefined);
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
  }

  // ---- delivery ----

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      const head = this.queue[0];
      if (!head) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      await head.persisted.catch(() => undefined);
      const outcome = await this.send(head);
      if (this.closed && outcome === 'retry') break;
      if (outcome === 'retry') {
        this.stats.failedAttempts++;
        const delay = backoffDelay(attempt++, this.opts.retryBaseMs, this.opts.retryMaxMs);
        await this.sleep(delay);
        continue;
      }
      attempt = 0;
      if (this.queue[0] === head) this.queue.shift();
      if (outcome === 'delivered') this.stats.delivered++;
      this.delivered++;
      const delivered = this.delivered;
      const generation = this.generation;
      // Offset writes and compaction go through the same I/O chain as appends.
      void this.enqueueIo(async () => {
        if (generation === this.generation) await this.writeOffset(generation, delivered);
        if (this.queue.length === 0 && this.fileBytes > 64 * 1024) await this.compact();
      });
    }
  }

  private async send(entry: Entry): Promise<SendOutcome> {
    const body = entry.line;
    const { logger } = this.opts;
    try {
      const res = await this.fetchImpl(this.opts.url, {
        method: 'POST',
        headers: signedHeaders(this.opts.secret, body, undefined, this.opts.generation),
        body,
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
      const text = res.status === 409 ? await res.text().catch(() => '') : '';
      await res.body?.cancel().catch(() => undefined);
      if (isStaleGeneration(res.status, text)) {
        logger.error({ type: entry.env.type, status: res.status }, 'webhook refused: this worker was replaced');
        this.opts.onStale?.();
        return 'retry';
      }
      if (res.ok) {
        logger.debug({ type: entry.env.type, eventId: entry.env.eventId, status: res.status }, 'event delivered');
        return 'delivered';
      }
      if (res.status === 400 || res.status === 413 || res.status === 422) {
        this.stats.rejected++;
        logger.error(
          { type: entry.env.type, eventId: entry.env.eventId, status: res.status },
          'webhook receiver rejected the event permanently; dropping it',
        );
        return 'rejected';
      }
      logger.warn({ type: entry.env.type, status: res.status, backlog: this.queue.length }, 'webhook delivery failed');
      return 'retry';
    } catch (err) {
      logger.warn(
        { type: entry.env.type, err: (err as Error).message, backlog: this.queue.length },
        'webhook delivery failed',
      );
      return 'retry';
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.retryResolve = resolve;
      this.retryTimer = setTimeout(resolve, ms);
    });
  }

  private skipRetryWait(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryResolve?.();
    this.retryResolve = undefined;
  }

  // ---- spool I/O (serialized) ----

  private enqueueIo(op: () => Promise<void>): Promise<void> {
    const next = this.chain.then(op).catch((err: unknown) => {
      this.opts.logger.error({ err: (err as Error).message }, 'event spool I/O failed');
    });
    this.chain = next;
    return next;
  }

  private async append(line: string): Promise<void> {
    const bytes = Buffer.byteLength(line) + 1;
    if (this.fileBytes + bytes > this.opts.maxBytes) {
      await this.compact();
      if (this.fileBytes + bytes > this.opts.maxBytes) {
        this.dropOldest(this.opts.maxBytes * 0.75 - bytes);
        await this.compact();
      }
    }
    if (!this.fh) return;
    await this.fh.write(`${line}\n`);
    await this.fh.datasync();
    this.fileBytes += bytes;
  }

  /** Drops the oldest undelivered events (PINGs first, never the one being sent) until the backlog fits `target`. */
  private dropOldest(target: number): void {
    let size = this.queue.reduce((n, e) => n + Buffer.byteLength(e.line) + 1, 0);
    let dropped = 0;
    for (const onlyPings of [true, false]) {
      for (let i = 1; i < this.queue.length && size > target;) {
        const e = this.queue[i]!;
        if (onlyPings && e.env.type !== 'PING') {
          i++;
          continue;
        }
        this.queue.splice(i, 1);
        size -= Buffer.byteLength(e.line) + 1;
        dropped++;
      }
    }
    this.stats.dropped += dropped;
    this.opts.logger.error({ dropped, maxBytes: this.opts.maxBytes }, 'event spool full: dropped the oldest events');
  }

  /** Rewrites the spool with only the undelivered events, under a new generation. */
  private async compact(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    const generation = randomUUID();
    const lines = [JSON.stringify({ spool: 1, generation }), ...this.queue.map((e) => e.line)];
    const content = `${lines.join('\n')}\n`;
    await writeFileAtomic(this.spoolPath, content);
    this.generation = generation;
    this.delivered = 0;
    this.fileBytes = Buffer.byteLength(content);
    await this.writeOffset(generation, 0);
    this.fh = await fs.open(this.spoolPath, fsConstants.O_WRONLY | fsConstants.O_APPEND, FILE_MODE);
  }

  private async writeOffset(generation: string, delivered: number): Promise<void> {
    await writeFileAtomic(this.offsetPath, JSON.stringify({ generation, delivered }));
  }

  private async readSpool(): Promise<WebhookEnvelope[]> {
    let text: string;
    try {
      text = await fs.readFile(this.spoolPath, 'utf8');
    } catch {
      return [];
    }
    let offset = { generation: '', delivered: 0 };
    try {
      const o = JSON.parse(await fs.readFile(this.offsetPath, 'utf8')) as { generation?: unknown; delivered?: unknown };
      if (typeof o.generation === 'string' && typeof o.delivered === 'number') {
        offset = { generation: o.generation, delivered: o.delivered };
      }
    } catch {
      // no offset: everything in the spool is undelivered
    }
    const lines = text.split('\n');
    let generation = '';
    const events: WebhookEnvelope[] = [];
    let torn = 0;
    for (const [i, line] of lines.entries()) {
      if (line.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        torn++;
        continue;
      }
      if (i === 0 && value && typeof value === 'object' && 'spool' in value) {
        generation = String((value as { generation?: unknown }).generation ?? '');
        continue;
      }
      const env = WebhookEnvelopeSchema.safeParse(value);
      if (env.success) events.push(env.data);
      else torn++;
    }
    if (torn > 0) this.opts.logger.warn({ lines: torn }, 'skipped unreadable spool lines (torn write)');
    const skip = generation !== '' && generation === offset.generation ? offset.delivered : 0;
    return events.slice(skip);
  }
}
