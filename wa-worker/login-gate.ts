/**
 * Asks the API for a login slot before every connect and gives it back once the socket opened, showed a QR or
 * closed (contract: common/worker-login.ts). The gate paces logins; it must never keep a session offline, so a
 * worker that cannot ask (API down, or an API without login slots) connects anyway, after `timeoutMs` at most.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { LoginAcquireResponseSchema } from '../common/worker-login.js';
import { backoffDelay } from './config.js';
import { SignedClient, SignedHttpError, type Fencing } from './signed-post.js';

export class LoginGate {
  private readonly http: SignedClient;
  private held = false;
  private closed = false;
  /** The last release in flight: the next ask waits for it, so it can never free the slot that ask took. */
  private releasing: Promise<void> = Promise.resolve();
  readonly stats = { granted: 0, waits: 0, failedOpen: 0 };

  constructor(
    baseUrl: string,
    secret: string,
    requestTimeoutMs: number,
    fencing: Fencing,
    private readonly logger: Logger,
    private readonly opts: { pollMaxMs: number; timeoutMs: number; retryBaseMs: number },
  ) {
    this.http = new SignedClient(baseUrl, secret, requestTimeoutMs, 'login', fencing);
  }

  /** Resolves true when this worker may connect now, false when it must not (closed, or replaced). */
  async acquire(): Promise<boolean> {
    await this.releasing;
    const started = Date.now();
    let failures = 0;
    while (!this.closed) {
      try {
        const res = await this.http.post('acquire', {});
        const answer = LoginAcquireResponseSchema.parse(await res.json());
        if (answer.granted) {
          this.held = true;
          this.stats.granted++;
          return true;
        }
        this.stats.waits++;
        failures = 0;
        // Jittered, so the waiting workers of a host do not all ask again in the same millisecond.
        const wait = Math.min(answer.retryAfterMs, this.opts.pollMaxMs);
        await sleep(wait / 2 + Math.random() * wait);
        continue;
      } catch (err) {
        if (err instanceof SignedHttpError && err.status === 409) return false; // replaced: the fence handles it
        const refused = err instanceof SignedHttpError && err.status >= 400 && err.status < 500;
        if (refused || Date.now() - started >= this.opts.timeoutMs) {
          this.stats.failedOpen++;
          this.logger.warn({ err: (err as Error).message }, 'no login slot could be asked for; connecting anyway');
          return true;
        }
        await sleep(backoffDelay(failures++, this.opts.retryBaseMs, this.opts.pollMaxMs * 4));
      }
    }
    return false;
  }

  /** Gives the slot back (idempotent; best effort: the lease frees it anyway). */
  release(): void {
    if (!this.held) return;
    this.held = false;
    this.releasing = this.http
      .post('release', {})
      .then((res) => res.body?.cancel())
      .catch((err: unknown) => this.logger.debug({ err: (err as Error).message }, 'login slot release failed'));
  }

  close(): void {
    this.closed = true;
    this.release();
  }
}
