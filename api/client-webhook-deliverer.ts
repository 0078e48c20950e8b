/**
 * Delivers customer webhooks from the durable queue (state/client-webhooks.ts): claim due items with a lease,
 * POST them signed (HMAC-SHA256 over `${timestamp}.${body}`: `x-webhook-signature: sha256=<hex>`,
 * `x-webhook-timestamp`, `x-webhook-id`, `x-webhook-event`), then complete, reschedule with exponential backoff and
 * full jitter, or dead-letter after CLIENT_WEBHOOK_MAX_ATTEMPTS (at once on a 3xx, or a 4xx other than 408/429).
 * Requests go through common/net-policy.ts (no private addresses unless allow-listed, no redirects, capped body). Runs in every API process; the lease keeps two
 * processes from delivering the same item at once, and a killed process's items come due again.
 */
import type { Config } from '../common/config.js';
import { signWebhook } from '../common/events.js';
import type { Logger } from '../common/logger.js';
import { describeNetError, guardedRequest, type AddressPolicy } from '../common/net-policy.js';
import { redactText } from '../common/redact.js';
import type { ClientDelivery, ClientWebhookStore } from '../state/client-webhooks.js';

export const CLIENT_SIGNATURE_HEADER = 'x-webhook-signature';
export const CLIENT_TIMESTAMP_HEADER = 'x-webhook-timestamp';

/** Exponential backoff with full jitter: uniform in [base·2^n / 2, base·2^n], capped at max. */
export function clientRetryDelay(attempt: number, baseMs: number, maxMs: number, rnd = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + (rnd() * exp) / 2);
}

export class ClientWebhookDeliverer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  readonly stats = { delivered: 0, retried: 0, dead: 0 };
  private readonly policy: AddressPolicy;

  constructor(
    private readonly store: ClientWebhookStore,
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.policy = { allowHosts: config.CLIENT_WEBHOOK_ALLOW_HOSTS };
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.drain()
        .catch((err: unknown) => this.logger.warn({ err: redactText(String(err)) }, 'client webhook loop failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.config.CLIENT_WEBHOOK_POLL_MS);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One pass: deliver everything due now (in parallel, bounded). */
  async drain(): Promise<void> {
    for (;;) {
      const lease = this.config.CLIENT_WEBHOOK_TIMEOUT_MS + 5_000;
      const items = await this.store.claim(20, lease);
      if (items.length === 0) return;
      await Promise.all(items.map((i) => this.deliver(i)));
      if (this.stopped) return;
    }
  }

  private async deliver(item: ClientDelivery): Promise<void> {
    const cfg = await this.store.getConfig(item.tenant);
    const attempt = item.attempt + 1;
    if (!cfg) {
      await this.store.deadLetter({ ...item, attempt, lastError: 'webhook no longer configured' });
      this.stats.dead++;
      return;
    }
    const ts = Date.now();
    let error: string;
    try {
      // Through the address policy: the checked address is the one connected to, no redirects, a capped body.
      const res = await guardedRequest(cfg.url, this.policy, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-webhook-id': item.id,
          'x-webhook-event': item.event,
          [CLIENT_TIMESTAMP_HEADER]: String(ts),
          [CLIENT_SIGNATURE_HEADER]: signWebhook(cfg.secret, ts, item.body),
        },
        body: item.body,
        timeoutMs: this.config.CLIENT_WEBHOOK_TIMEOUT_MS,
        maxBodyBytes: this.config.CLIENT_WEBHOOK_MAX_RESPONSE_BYTES,
      });
      if (res.status >= 200 && res.status < 300) {
        await this.store.complete(item.id);
        this.stats.delivered++;
        return;
      }
      error = `HTTP ${res.status}`;
      // The receiver refused this payload for good (4xx other than 408/429), or redirected (never followed).
      if (
        (res.status >= 300 && res.status < 400) ||
        (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429)
      ) {
        await this.store.deadLetter({ ...item, attempt, lastError: `${error} (not retried)` });
        this.stats.dead++;
        this.logger.warn(
          { id: item.id, tenant: item.tenant, status: res.status },
          'client webhook refused: dead-lettered',
        );
        return;
      }
    } catch (err) {
      // Stored and shown to the tenant: the kind of failure only, never an internal address.
      error = describeNetError(err);
    }
    const next: ClientDelivery = { ...item, attempt, lastError: redactText(error).slice(0, 300) };
    if (attempt >= this.config.CLIENT_WEBHOOK_MAX_ATTEMPTS) {
      await this.store.deadLetter(next);
      this.stats.dead++;
      this.logger.warn(
        { id: item.id, tenant: item.tenant, attempt, error: next.lastError },
        'client webhook dead-lettered',
      );
      return;
    }
    const delay = clientRetryDelay(
      attempt,
      this.config.CLIENT_WEBHOOK_RETRY_BASE_MS,
      this.config.CLIENT_WEBHOOK_RETRY_MAX_MS,
    );
    await this.store.retryLater(next, Date.now() + delay);
    this.stats.retried++;
    this.logger.info(
      { id: item.id, tenant: item.tenant, attempt, delayMs: delay, error: next.lastError },
      'client webhook retry scheduled',
    );
  }
}
