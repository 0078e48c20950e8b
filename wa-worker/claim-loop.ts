/**
 * The worker's pull loops (outbox sends, API commands): while a socket is open, claim the next item from the
 * orchestrator/API, process it, and claim again. A claim waits on the API up to `waitMs` for an item (a long-poll:
 * an idle worker costs one request per wait, and an item is claimed the moment it is queued); claims come at most
 * every `pollMs` (the polling of an API that answers at once). A failed claim backs off. `pause` (socket closed)
 * cancels a waiting claim, lets the item in progress finish and wakes any wait; `stop` also waits for it.
 */
import type { EngineSocket } from './engine.js';
import { backoffDelay } from './config.js';
import { errorText } from './connection.js';
import type { Logger } from './logger.js';

export interface ClaimLoopOptions {
  pollMs: number;
  /** How long a claim waits on the API for an item; 0: answered at once (plain polling every `pollMs`). */
  waitMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

export abstract class ClaimLoop<T> {
  protected sock: EngineSocket | undefined;
  protected stopped = false;
  private loop: Promise<void> | undefined;
  private wakeSleep: (() => void) | undefined;
  private claiming: AbortController | undefined;

  protected constructor(
    protected readonly logger: Logger,
    protected readonly opts: ClaimLoopOptions,
    /** what is claimed, for logs */
    private readonly what: string,
  ) {}

  protected abstract claim(waitMs: number, signal: AbortSignal): Promise<T | null>;
  protected abstract process(item: T): Promise<void>;

  /** Starts (or resumes) the loop with this socket. */
  start(sock: EngineSocket): void {
    if (this.stopped) return;
    this.sock = sock;
    if (!this.loop) {
      this.loop = this.run().finally(() => {
        this.loop = undefined;
      });
    }
  }

  /** Pauses after the current item (socket closed). */
  pause(): void {
    this.sock = undefined;
    this.claiming?.abort();
    this.wakeSleep?.();
  }

  /** Stops and waits for the item in progress to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pause();
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.sock && !this.stopped) {
      let item: T | null;
      const started = Date.now();
      const claiming = (this.claiming = new AbortController());
      try {
        item = await this.claim(this.opts.waitMs, claiming.signal);
        failures = 0;
      } catch (err) {
        if (claiming.signal.aborted) continue; // paused: the loop ends, or resumes with the next socket
        this.logger.warn({ err: errorText(err) }, `${this.what} claim failed`);
        await this.sleep(backoffDelay(failures++, this.opts.retryBaseMs, this.opts.retryMaxMs));
        continue;
      }
      if (!item) {
        const rest = this.opts.pollMs - (Date.now() - started);
        if (rest > 0) await this.sleep(rest);
        continue;
      }
      await this.process(item);
    }
  }

  /** Waits `ms`, cut short by `pause`; returns at once while paused unless `evenIfPaused`. */
  protected sleep(ms: number, evenIfPaused = false): Promise<void> {
    if (!evenIfPaused && !this.sock) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleep = done;
    });
  }
}
