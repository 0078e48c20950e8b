/**
 * WhatsApp keep-alive while connected: presence `available` every PRESENCE_INTERVAL_MS (15 s), and every
 * HIDDEN_MESSAGE_INTERVAL_MS (10 min) a hidden message to the account's own number, disappearing after 24 h
 * (`ephemeralExpiration: 86400`). Started on `open`, stopped on close; failures are logged, never thrown.
 * The PING heartbeat to the orchestrator is not part of it (see `Liveness`): with keep-alive off the worker is
 * still seen alive.
 */
import { normalizeJid, type EngineSocket } from './engine.js';
import { errorText } from './connection.js';
import type { Logger } from './logger.js';
import type { WebhookReporter } from './webhooks.js';

export const HIDDEN_MESSAGE_TEXT = '\u200b';
export const HIDDEN_MESSAGE_EXPIRATION_S = 86_400;

export class KeepAlive {
  private presenceTimer: NodeJS.Timeout | undefined;
  private hiddenTimer: NodeJS.Timeout | undefined;
  readonly stats = { presences: 0, hiddenMessages: 0, failures: 0 };

  constructor(
    private readonly opts: { presenceIntervalMs: number; hiddenMessageIntervalMs: number },
    private readonly reporter: WebhookReporter,
    private readonly logger: Logger,
  ) {}

  start(sock: EngineSocket, ownJid: string): void {
    this.stop();
    let warnedNoName = false;
    const tickPresence = async () => {
      try {
        // Baileys only sends presence once the account's push name is known (it arrives with the app-state sync);
        // until then it would just log a warning every tick.
        if (sock.hasPushName) {
          await sock.sendPresenceAvailable();
          this.stats.presences++;
        } else if (!warnedNoName) {
          warnedNoName = true;
          this.logger.info('no push name known yet: presence updates wait for it');
        }
      } catch (err) {
        this.stats.failures++;
        this.logger.warn({ err: errorText(err) }, 'presence update failed');
      }
    };
    const tickHidden = async () => {
      try {
        await sock.sendText(normalizeJid(ownJid), HIDDEN_MESSAGE_TEXT, {
          ephemeralExpiration: HIDDEN_MESSAGE_EXPIRATION_S,
        });
        this.stats.hiddenMessages++;
      } catch (err) {
        this.stats.failures++;
        this.logger.warn({ err: errorText(err) }, 'hidden keep-alive message failed');
      }
    };
    void tickPresence();
    this.presenceTimer = setInterval(() => void tickPresence(), this.opts.presenceIntervalMs);
    this.hiddenTimer = setInterval(() => void tickHidden(), this.opts.hiddenMessageIntervalMs);
  }

  stop(): void {
    if (this.presenceTimer) clearInterval(this.presenceTimer);
    if (this.hiddenTimer) clearInterval(this.hiddenTimer);
    this.presenceTimer = undefined;
    this.hiddenTimer = undefined;
  }
}

/**
 * Liveness: a PING webhook every LIVENESS_INTERVAL_MS from start to shutdown, in every state (pending, QR,
 * connected, reconnecting). The watchdog restarts a worker whose PINGs stop, whatever its state; it is separate
 * from the WhatsApp keep-alive above, which may be switched off.
 */
export class Liveness {
  private timer: NodeJS.Timeout | undefined;
  pings = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly reporter: Pick<WebhookReporter, 'emit'>,
  ) {}

  start(): void {
    this.stop();
    const tick = () => {
      this.reporter.emit('PING', { timestamp: Date.now() });
      this.pings++;
    };
    tick();
    this.timer = setInterval(tick, this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
