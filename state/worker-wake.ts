/**
 * Wakes a worker's long-poll (outbox and command claims) the moment it has something to claim. Whatever makes an
 * item claimable publishes the session id; every API process subscribes once and resolves the claims waiting on
 * that session. An idle worker then costs one request per wait instead of one per poll interval. A lost wake-up
 * (the subscriber reconnecting) costs at most one bounded wait, never an item: every wait ends and claims again.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../common/logger.js';
import { redisKeys, type RedisKeys } from '../common/redis-keys.js';

/** Tells the waiting claims of `sessionId` (in every API process) to claim again. */
export async function wakeWorker(redis: Redis, keys: RedisKeys, sessionId: string): Promise<void> {
  await redis.publish(keys.workerWake(), sessionId);
}

export interface Waiter {
  /** Resolves when woken (also by a wake-up that came before this call), after `ms`, or on abort. */
  wait(ms: number, signal?: AbortSignal): Promise<void>;
  cancel(): void;
}

export class WorkerWake {
  readonly keys: RedisKeys;
  private readonly waiters = new Map<string, Set<() => void>>();
  private subscriber: Redis | null = null;
  private subscribed = false;
  private isClosed = false;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly logger?: Logger,
    /** The longest wait while not subscribed (a wake-up could not reach this process). */
    private readonly unsubscribedMaxWaitMs = 1000,
  ) {
    this.keys = redisKeys(prefix);
  }

  /** Subscribes once; the subscriber reconnects and re-subscribes by itself (ioredis). */
  async start(): Promise<void> {
    if (this.subscriber || this.isClosed) return;
    const sub = this.redis.duplicate({ maxRetriesPerRequest: null });
    this.subscriber = sub;
    sub.on('error', (err: Error) => this.logger?.debug({ err: err.message }, 'worker wake subscriber error'));
    let dropped = false;
    sub.on('close', () => {
      dropped = true;
      this.subscribed = false;
    });
    sub.on('ready', () => {
      if (!dropped) return;
      // ioredis subscribes again by itself on reconnect; wake everyone, a wake-up may have been missed meanwhile.
      dropped = false;
      this.subscribed = true;
      for (const set of this.waiters.values()) for (const wake of [...set]) wake();
    });
    sub.on('message', (channel: string, sessionId: string) => {
      if (channel !== this.keys.workerWake()) return;
      for (const wake of [...(this.waiters.get(sessionId) ?? [])]) wake();
    });
    await sub.subscribe(this.keys.workerWake());
    this.subscribed = true;
  }

  /** Registered before the claim it guards, so a wake-up between that claim and the wait is not lost. */
  waiter(sessionId: string): Waiter {
    let woken = false;
    let resolveWait: (() => void) | undefined;
    const wake = () => {
      woken = true;
      resolveWait?.();
    };
    let set = this.waiters.get(sessionId);
    if (!set) this.waiters.set(sessionId, (set = new Set()));
    set.add(wake);
    const cancel = () => {
      set.delete(wake);
      if (set.size === 0 && this.waiters.get(sessionId) === set) this.waiters.delete(sessionId);
    };
    return {
      wait: (ms, signal) => {
        if (woken || signal?.aborted || this.isClosed) return Promise.resolve();
        const bounded = this.subscribed ? ms : Math.min(ms, this.unsubscribedMaxWaitMs);
        return new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', done);
            resolveWait = undefined;
            resolve();
          };
          const timer = setTimeout(done, bounded);
          signal?.addEventListener('abort', done, { once: true });
          resolveWait = done;
        });
      },
      cancel,
    };
  }

  /** Closed (the API is shutting down): claims answer at once. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Claims waiting now, over every session (metrics, tests). */
  get waiting(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  async close(): Promise<void> {
    this.isClosed = true;
    for (const set of this.waiters.values()) for (const wake of [...set]) wake();
    const sub = this.subscriber;
    this.subscriber = null;
    this.subscribed = false;
    sub?.disconnect();
  }
}
