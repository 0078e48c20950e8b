/**
 * The Baileys socket, always through the session's SOCKS5 proxy (WebSocket, fetch agent and axios agents: never a
 * direct connection, never another proxy), and the disconnect policy:
 *
 *  - proxy error (classified from the error's data, not the status code) → PROXY_ERROR + DISCONNECTED
 *    {isProxyError: true}; keep retrying the SAME proxy with capped backoff (the orchestrator replaces us);
 *  - 401 logged out → AUTH_FAILURE + DISCONNECTED, stop (no reconnect);
 *  - 405 client_too_old → CLIENT_OUTDATED + DISCONNECTED, stop (a retry would be refused again);
 *  - 440 replaced → DISCONNECTED, stop;  403 forbidden (banned) → DISCONNECTED, stop;
 *  - QR refs exhausted before pairing → DISCONNECTED, stop (the orchestrator restarts the session);
 *  - 515 right after pairing → reconnect immediately, silently;
 *  - anything else (408, 428, 500, 515, …) → DISCONNECTED, reconnect with exponential backoff + jitter, capped.
 *    A connection back within DISCONNECT_GRACE_MS is a blip: neither its DISCONNECTED nor the CONNECTED that ends
 *    it is reported (the account, the jid and this process are the same), so a flaky network does not flap the
 *    session's status or grow its workflow history. Any other close in between reports the held DISCONNECTED first.
 */
import { createHash } from 'node:crypto';
import { SocksProxyAgent } from 'socks-proxy-agent';
import { disconnectStatusCode, isProxyError } from '../common/baileys-errors.js';
import { redactProxyUrl } from '../common/proxy-url.js';
import type { CrashSafeAuthState } from './auth-store.js';
import { backoffDelay, type WorkerConfig } from './config.js';
import type { InboundMediaEvent } from '../common/media.js';
import type { InboundPending } from './inbound-pending.js';
import { PreKeysAhead } from './pre-keys-ahead.js';
import {
  createEngineSocket,
  DEFAULT_WA_VERSION,
  storeInitialPreKeys,
  userOf,
  withKeyCache,
  type AuthenticationState,
  type EngineSocket,
  type InboundMedia,
  type InboundText,
} from './engine.js';
import { fetchWebVersion } from './web-version.js';
import type { Logger } from './logger.js';
import type { WebhookReporter } from './webhooks.js';

export type ConnectionState =
  | 'idle'
  | 'connecting'
  | 'qr'
  | 'open'
  | 'reconnecting'
  | 'logged_out'
  | 'replaced'
  | 'banned'
  | 'locked'
  | 'qr_timeout'
  | 'client_outdated'
  | 'pairing_failed'
  | 'stopped';

export const TERMINAL_STATES: ReadonlySet<ConnectionState> = new Set([
  'logged_out',
  'replaced',
  'banned',
  'locked',
  'qr_timeout',
  'client_outdated',
  'pairing_failed',
]);

export type DisconnectAction =
  | { kind: 'proxy'; reconnect: true }
  | { kind: 'logged_out'; reconnect: false }
  | { kind: 'replaced'; reconnect: false }
  | { kind: 'banned'; reconnect: false; until?: number }
  | { kind: 'locked'; reconnect: false }
  | { kind: 'qr_timeout'; reconnect: false }
  | { kind: 'client_outdated'; reconnect: false }
  | { kind: 'restart_after_pairing'; reconnect: true }
  | { kind: 'lost'; reconnect: true };

/** The disconnect policy as a pure function (unit-tested). */
export function classifyDisconnect(err: unknown, ctx: { justPaired: boolean; registered: boolean }): DisconnectAction {
  if (isProxyError(err)) return { kind: 'proxy', reconnect: true };
  const code = disconnectStatusCode(err);
  if (code === 401) return { kind: 'logged_out', reconnect: false };
  if (code === 405) return { kind: 'client_outdated', reconnect: false };
  if (code === 440) return { kind: 'replaced', reconnect: false };
  // WhatsApp's codes: 406 banned, 402 banned until `expire` (unix seconds), 403 account locked
  if (code === 406) return { kind: 'banned', reconnect: false };
  if (code === 402) {
    // a login failure carries its attributes as data, a stream error its whole node
    const data = (err as { data?: { expire?: unknown; attrs?: { expire?: unknown } } } | null)?.data;
    const expire = Number(data?.expire ?? data?.attrs?.expire);
    return Number.isFinite(expire) && expire > 0
      ? { kind: 'banned', reconnect: false, until: expire * 1000 }
      : { kind: 'banned', reconnect: false };
  }
  if (code === 403) return { kind: 'locked', reconnect: false };
  if (code === 515 && ctx.justPaired) return { kind: 'restart_after_pairing', reconnect: true };
  const message = err instanceof Error ? err.message : '';
  if (!ctx.registered && code === 408 && /QR refs attempts ended/i.test(message)) {
    return { kind: 'qr_timeout', reconnect: false };
  }
  return { kind: 'lost', reconnect: true };
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return redactProxyUrl(err.message);
  return redactProxyUrl(String(err ?? 'unknown'));
}

export interface OpenInfo {
  phoneNumber: string;
  jid: string;
}

export interface ConnectionHooks {
  onOpen?: (sock: EngineSocket, info: OpenInfo) => void;
  onClose?: () => void;
  /** Maps the WhatsApp id of a message we sent to the outbox message id, for MESSAGE_STATUS events. */
  outboxIdFor?: (waMessageId: string) => string | undefined;
  /** Text of a message this session sent recently (for retry receipts). */
  sentText?: (waMessageId: string) => string | undefined;
  /** The login of the current socket is over: it opened, shows a QR (a human's pace from here) or closed. */
  loginSettled?: () => void;
  /** Asked before every (re)connect: false = do not connect (a replaced worker must not take the device back). */
  beforeConnect?: () => Promise<boolean>;
  /** Downloads and stores an inbound media file; what the MESSAGE_RECEIVED event says about it. Never throws. */
  inboundMedia?: (sock: EngineSocket, waMessageId: string, media: InboundMedia) => Promise<InboundMediaEvent>;
  /** Durable record of media messages not reported yet (re-processed after a restart). */
  inboundPending?: InboundPending;
}

export class Connection {
  state: ConnectionState = 'idle';
  private sock: EngineSocket | undefined;
  private generation = 0;
  private attempt = 0;
  private justPaired = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly preKeysAhead: PreKeysAhead;
  private openTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Pairing by code: the socket generation a code was requested on, and the timer of its expiry. */
  private pairingCodeGen = -1;
  private pairingTimer: NodeJS.Timeout | undefined;
  private readonly statusSent = new Map<string, Set<string>>();
  /** A lost connection's DISCONNECTED, held for DISCONNECT_GRACE_MS; the jid last reported CONNECTED. */
  private heldDisconnect: { timer: NodeJS.Timeout; reason: string; code: number | null } | undefined;
  private reportedJid: string | undefined;
  /** Inbound messages are reported in the order they came, a media download holding back the ones after it. */
  private inbound: Promise<void> = Promise.resolve();
  /** media messages queued on `inbound` (a recorded one is not queued twice when the connection opens again) */
  private readonly inboundQueued = new Set<string>();
  readonly stats = { sockets: 0, opens: 0, proxyErrors: 0, blips: 0 };
  /** WhatsApp Web version announced: WA_VERSION, else the one WhatsApp serves now, else the engine's default. */
  version: [number, number, number];
  private readonly authState: AuthenticationState;

  constructor(
    private readonly cfg: WorkerConfig,
    private readonly auth: CrashSafeAuthState,
    private readonly reporter: WebhookReporter,
    private readonly logger: Logger,
    private readonly baileysLogger: Logger,
    private readonly hooks: ConnectionHooks = {},
  ) {
    this.version = cfg.waVersion ?? DEFAULT_WA_VERSION;
    this.authState = withKeyCache(auth.state, baileysLogger);
    this.preKeysAhead = new PreKeysAhead({
      store: () => storeInitialPreKeys(this.authState, this.auth.saveCreds),
      waiting: () => !this.stopped && this.state === 'qr' && !this.auth.state.creds.me,
      reported: () => this.reporter.flush(cfg.webhookTimeoutMs),
      maxCpuPressure: cfg.preKeysAheadMaxCpuPressure,
      retryMs: cfg.preKeysAheadRetryMs,
      logger,
    });
  }

  /** WA_VERSION, else the version fetched through the proxy, else the engine's default; logged with its source. */
  private async resolveVersion(): Promise<void> {
    let source = this.cfg.waVersion ? 'WA_VERSION' : 'engine default';
    let fetchError: string | undefined;
    if (!this.cfg.waVersion && this.cfg.waVersionUrl) {
      const agent = new SocksProxyAgent(this.cfg.proxy.url, { timeout: this.cfg.waVersionFetchTimeoutMs });
      try {
        this.version = await fetchWebVersion(this.cfg.waVersionUrl, agent, this.cfg.waVersionFetchTimeoutMs);
        source = 'fetched';
      } catch (err) {
        fetchError = errorText(err);
      } finally {
        agent.destroy();
      }
    }
    this.logger.info(
      { version: this.version.join('.'), source, ...(fetchError ? { fetchError } : {}) },
      'WhatsApp Web version',
    );
  }

  /** The open socket, or undefined when not connected. */
  get socket(): EngineSocket | undefined {
    return this.state === 'open' ? this.sock : undefined;
  }

  get isTerminal(): boolean {
    return TERMINAL_STATES.has(this.state);
  }

  start(): void {
    void this.resolveVersion().then(() => {
      if (!this.stopped) this.connect();
    });
  }

  /** Closes the socket WITHOUT logging out (the device stays linked) and stops reconnecting. */
  stop(): void {
    this.stopped = true;
    this.preKeysAhead.stop();
    this.dropHeldDisconnect();
    this.clearOpenTimer();
    this.clearPairingTimer();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const sock = this.sock;
    this.sock = undefined;
    this.generation++;
    this.hooks.loginSettled?.();
    if (this.state === 'open') this.hooks.onClose?.();
    this.state = 'stopped';
    if (sock) {
      try {
        sock.end(undefined);
      } catch (err) {
        this.logger.warn({ err: errorText(err) }, 'error while closing the socket');
      }
    }
  }

  private connect(): void {
    if (this.stopped) return;
    // A login must not start while the pre-keys it would generate itself are being stored.
    const ahead = this.preKeysAhead.running;
    const gate = this.hooks.beforeConnect;
    if (!gate && !ahead) return this.connectNow();
    void (ahead ?? Promise.resolve())
      .then(() => (gate ? gate() : true))
      .then(
        (ok) => {
          if (ok && !this.stopped) this.connectNow();
          else if (ok) this.hooks.loginSettled?.();
        },
        (err: unknown) => this.logger.error({ err: errorText(err) }, 'connect gate failed; not connecting'),
      );
  }

  /** Queues an inbound message's report; a media message is recorded durably first (see inbound-pending.ts). */
  private queueInbound(sock: EngineSocket, m: InboundText, recorded = false): void {
    const pending = m.media ? this.hooks.inboundPending : undefined;
    if (pending) {
      if (this.inboundQueued.has(m.waMessageId)) return;
      this.inboundQueued.add(m.waMessageId);
    }
    const durable =
      pending && !recorded
        ? pending.add(m as InboundText & { media: InboundMedia }).catch((err: unknown) => {
            this.logger.error({ err: errorText(err) }, 'could not record an inbound media message');
          })
        : undefined;
    this.inbound = this.inbound.then(async () => {
      await durable;
      const reported = await this.reportInbound(sock, m, Boolean(pending));
      if (!pending) return;
      this.inboundQueued.delete(m.waMessageId);
      // not reported: it stays recorded and the next connection tries again
      if (!reported) return;
      await pending
        .done(m.waMessageId)
        .catch((err: unknown) => this.logger.warn({ err: errorText(err) }, 'could not mark an inbound message done'));
    });
  }

  /**
   * Downloads (media) and reports an inbound message; false when a recorded media message is left for the next
   * connection: its download failed because this connection went away meanwhile.
   */
  private async reportInbound(sock: EngineSocket, m: InboundText, recorded: boolean): Promise<boolean> {
    try {
      const media =
        m.media && this.hooks.inboundMedia ? await this.hooks.inboundMedia(sock, m.waMessageId, m.media) : undefined;
      if (recorded && media?.error === 'download_failed' && (this.sock !== sock || this.state !== 'open')) {
        this.logger.info({ waMessageId: m.waMessageId }, 'inbound media download cut by a reconnect; retried later');
        return false;
      }
      this.reporter.emit('MESSAGE_RECEIVED', {
        messageId: m.waMessageId,
        from: m.from,
        fromPhone: m.fromPhone,
        fromLid: m.fromLid,
        chat: m.chat,
        ...(m.group ? { group: m.group } : {}),
        text: m.text,
        timestamp: m.timestamp,
        ...(media ? { media } : {}),
      });
    } catch (err) {
      this.logger.error({ err: errorText(err) }, 'could not report an inbound message');
    }
    return true;
  }

  private connectNow(): void {
    if (this.stopped) return;
    const gen = ++this.generation;
    this.state = 'connecting';
    const cfg = this.cfg;
    // One agent per socket: every byte to WhatsApp goes through the session's proxy. socks5h: the proxy resolves DNS.
    const agent = new SocksProxyAgent(cfg.proxy.url, { timeout: cfg.proxyTimeoutMs });
    let sock: EngineSocket;
    try {
      sock = createEngineSocket({
        ...(cfg.waWebSocketUrl ? { waWebSocketUrl: cfg.waWebSocketUrl } : {}),
        agent,
        auth: this.authState,
        logger: this.baileysLogger,
        connectTimeoutMs: cfg.waConnectTimeoutMs,
        keepAliveIntervalMs: cfg.waKeepAliveIntervalMs,
        defaultQueryTimeoutMs: cfg.waQueryTimeoutMs,
        ...(cfg.waQrTimeoutMs ? { qrTimeout: cfg.waQrTimeoutMs } : {}),
        version: this.version,
        ...(this.hooks.sentText ? { sentText: this.hooks.sentText } : {}),
        ...(cfg.browser ? { browser: cfg.browser } : {}),
      });
    } catch (err) {
      this.logger.error({ err: errorText(err) }, 'could not create the WhatsApp socket');
      this.hooks.loginSettled?.();
      this.scheduleReconnect(backoffDelay(this.attempt++, cfg.reconnectBaseMs, cfg.reconnectMaxMs));
      return;
    }
    this.sock = sock;
    this.stats.sockets++;
    this.logger.info({ proxy: cfg.proxy.redacted, attempt: this.attempt }, 'connecting to WhatsApp');
    // Baileys has no timeout between the login and `open` (a server that never answers leaves the socket hanging,
    // its keep-alive pings still answered): drop such a socket and reconnect.
    this.clearOpenTimer();
    this.openTimer = setTimeout(() => {
      if (gen !== this.generation || this.state !== 'connecting') return;
      this.logger.warn({ timeoutMs: cfg.waOpenTimeoutMs }, 'the connection did not open in time; dropping it');
      const err = Object.assign(new Error('Timed out waiting for the connection to open'), {
        isBoom: true,
        output: { statusCode: 408, payload: {} },
      });
      try {
        sock.end(err);
      } catch {
        this.onClose(err);
      }
    }, cfg.waOpenTimeoutMs);

    sock.onCredsUpdate(() => {
      this.auth.saveCreds().catch((err: unknown) => this.logger.error({ err: errorText(err) }, 'saving creds failed'));
    });

    sock.onConnectionUpdate((update) => {
      if (gen !== this.generation) return;
      try {
        if (update.qr && this.pairingByCode) {
          // Baileys keeps cycling QR refs while a code is pending: one code per socket, never a QR shown.
          this.clearOpenTimer();
          this.state = 'qr';
          if (this.pairingCodeGen !== gen) {
            this.pairingCodeGen = gen;
            void this.requestPairingCode(sock, gen);
          }
          this.preKeysAhead.schedule();
        } else if (update.qr) {
          this.clearOpenTimer();
          this.state = 'qr';
          this.reporter.emit('QR_CODE', { qr: update.qr });
          this.logger.info('QR code reported');
          this.preKeysAhead.schedule();
        }
        if (update.isNewLogin) {
          this.justPaired = true;
          this.logger.info('paired; waiting for the restart');
        }
        if (update.qr || update.connection === 'open' || update.connection === 'close') this.hooks.loginSettled?.();
        if (update.connection === 'open') this.onOpen(sock);
        if (update.connection === 'close') this.onClose(update.error);
      } catch (err) {
        this.logger.error({ err: errorText(err) }, 'connection.update handler failed');
      }
    });

    sock.onInboundText((m) => {
      this.queueInbound(sock, m);
    });

    sock.onInboundAction((a) => {
      const targetOutboxId = a.targetFromMe ? this.hooks.outboxIdFor?.(a.targetId) : undefined;
      this.reporter.emit('MESSAGE_ACTION', {
        kind: a.kind,
        messageId: a.waMessageId,
        targetId: a.targetId,
        targetFromMe: a.targetFromMe,
        ...(targetOutboxId ? { targetOutboxId } : {}),
        from: a.from,
        fromPhone: a.fromPhone,
        fromLid: a.fromLid,
        chat: a.chat,
        ...(a.group ? { group: a.group } : {}),
        ...(a.emoji !== undefined ? { emoji: a.emoji } : {}),
        ...(a.text !== undefined ? { text: a.text } : {}),
        timestamp: a.timestamp,
      });
    });

    sock.onOwnMessageStatus((waMessageId, status) => {
      const messageId = this.hooks.outboxIdFor?.(waMessageId);
      if (!messageId) return;
      const seen = this.statusSent.get(messageId) ?? new Set<string>();
      if (seen.has(status)) return;
      seen.add(status);
      this.statusSent.set(messageId, seen);
      if (this.statusSent.size > 5000) this.statusSent.delete(this.statusSent.keys().next().value!);
      this.reporter.emit('MESSAGE_STATUS', { messageId, waMessageId, status });
    });
  }

  /** Pairing by code: PAIRING_PHONE set and the device not linked yet (creds.account comes with pair-success). */
  private get pairingByCode(): boolean {
    return Boolean(this.cfg.pairingPhone) && !this.auth.state.creds.account;
  }

  private async requestPairingCode(sock: EngineSocket, gen: number): Promise<void> {
    const phone = this.cfg.pairingPhone!;
    try {
      const code = await sock.requestPairingCode(phone);
      if (gen !== this.generation || this.stopped) return;
      const expiresAt = Date.now() + this.cfg.pairingCodeTtlMs;
      // The code itself is a one-time secret for this link only: it goes to the orchestrator, never to the log.
      this.reporter.emit('PAIRING_CODE', { code, phone, expiresAt });
      this.logger.info({ expiresAt }, 'pairing code reported');
      if (!this.pairingTimer)
        this.pairingTimer = setTimeout(
          () => this.pairingFailed('expired', 'the pairing code expired before it was entered'),
          this.cfg.pairingCodeTtlMs,
        );
    } catch (err) {
      this.logger.error({ err: errorText(err) }, 'could not request a pairing code');
      if (gen === this.generation) sock.end(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private clearPairingTimer(): void {
    if (this.pairingTimer) clearTimeout(this.pairingTimer);
    this.pairingTimer = undefined;
  }

  /** Linking by code ended without a link: report it once, close the socket, never reconnect. */
  private pairingFailed(reason: 'expired' | 'refused', message: string): void {
    this.clearPairingTimer();
    if (this.stopped || this.isTerminal) return;
    this.reporter.emit('PAIRING_FAILED', { reason, message });
    this.logger.error({ reason }, `pairing by code failed: ${message}`);
    this.stopped = true;
    this.clearOpenTimer();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const sock = this.sock;
    this.sock = undefined;
    this.generation++;
    this.state = 'pairing_failed';
    sock?.end(undefined);
  }

  private clearOpenTimer(): void {
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = undefined;
  }

  private onOpen(sock: EngineSocket): void {
    this.clearOpenTimer();
    this.clearPairingTimer();
    const jid = sock.userJid ?? this.auth.state.creds.me?.id ?? '';
    const phoneNumber = jid ? userOf(jid) : '';
    this.state = 'open';
    this.attempt = 0;
    this.justPaired = false;
    this.stats.opens++;
    const identity = this.auth.state.creds.signedIdentityKey.public;
    const fingerprint = createHash('sha256').update(identity).digest('hex');
    const blip = this.heldDisconnect !== undefined && jid === this.reportedJid;
    if (blip) {
      this.dropHeldDisconnect();
      this.stats.blips++;
      this.logger.info({ phoneNumber }, 'connected again within the grace: not reported');
    } else {
      this.reportHeldDisconnect();
      this.reporter.emit('CONNECTED', { phoneNumber, jid, fingerprint });
      this.reportedJid = jid;
      this.logger.info({ phoneNumber }, 'connected');
    }
    this.hooks.onOpen?.(sock, { phoneNumber, jid });
    // media messages a previous run (or connection) received and did not report: download and report them now
    for (const m of this.hooks.inboundPending?.pending() ?? []) this.queueInbound(sock, m, true);
  }

  private onClose(err: unknown): void {
    this.clearOpenTimer();
    const wasOpen = this.state === 'open';
    this.sock = undefined;
    this.generation++;
    if (wasOpen) this.hooks.onClose?.();
    if (this.stopped) return;
    const code = disconnectStatusCode(err) ?? null;
    const reason = errorText(err);
    // A code was requested and the link never completed: WhatsApp refused it (a wrong code typed: 401) or its
    // refs ran out (408): a clear pairing failure, not a logout or a lost connection.
    if (this.pairingByCode && this.pairingCodeGen >= 0 && !this.justPaired && (code === 401 || code === 408)) {
      this.pairingFailed(
        code === 401 ? 'refused' : 'expired',
        code === 401
          ? 'WhatsApp refused the pairing code (wrong code typed?)'
          : 'the pairing code expired before it was entered',
      );
      return;
    }
    const action = classifyDisconnect(err, {
      justPaired: this.justPaired,
      registered: Boolean(this.auth.state.creds.me),
    });
    const cfg = this.cfg;
    this.logger.warn({ code, reason, action: action.kind }, 'disconnected');
    if (action.kind !== 'lost') this.reportHeldDisconnect();
    switch (action.kind) {
      case 'proxy':
        this.stats.proxyErrors++;
        this.reporter.emit('PROXY_ERROR', { error: reason });
        this.reporter.emit('DISCONNECTED', { reason, code, isProxyError: true });
        this.state = 'reconnecting';
        this.scheduleReconnect(backoffDelay(this.attempt++, cfg.reconnectBaseMs, cfg.proxyReconnectMaxMs));
        return;
      case 'logged_out':
        this.reporter.emit('AUTH_FAILURE', { reason: reason || 'logged out' });
        this.reporter.emit('DISCONNECTED', { reason, code, isProxyError: false });
        this.state = 'logged_out';
        this.logger.error('logged out by WhatsApp: not reconnecting (a new QR scan is needed)');
        return;
      case 'replaced':
        this.reporter.emit('DISCONNECTED', { reason: `replaced: ${reason}`, code, isProxyError: false });
        this.state = 'replaced';
        this.logger.error('connection replaced by another client: not reconnecting');
        return;
      case 'banned': {
        const until = action.until ? ` until ${new Date(action.until).toISOString()}` : '';
        this.reporter.emit('DISCONNECTED', { reason: `banned${until}: ${reason}`, code, isProxyError: false });
        this.state = 'banned';
        this.logger.error({ code, until: action.until }, `account banned by WhatsApp${until}: not reconnecting`);
        return;
      }
      case 'locked':
        this.reporter.emit('DISCONNECTED', { reason: `locked: ${reason}`, code, isProxyError: false });
        this.state = 'locked';
        this.logger.error('account locked (403): the primary phone must act; not reconnecting');
        return;
      case 'client_outdated':
        this.reporter.emit('CLIENT_OUTDATED', { reason: reason || 'client_too_old', version: this.version.join('.') });
        this.reporter.emit('DISCONNECTED', { reason: `client_outdated: ${reason}`, code, isProxyError: false });
        this.state = 'client_outdated';
        this.logger.error(
          { version: this.version.join('.') },
          'WhatsApp refused this client version (405): not reconnecting',
        );
        return;
      case 'qr_timeout':
        this.reporter.emit('DISCONNECTED', { reason: `qr_timeout: ${reason}`, code, isProxyError: false });
        this.state = 'qr_timeout';
        this.logger.error('no QR was scanned in time: not reconnecting (restart the session for new QRs)');
        return;
      case 'restart_after_pairing':
        this.justPaired = false;
        this.state = 'reconnecting';
        this.scheduleReconnect(0);
        return;
      case 'lost':
        if (this.heldDisconnect) {
          // still within the grace of an earlier loss: that one is reported if this lasts
        } else if (cfg.disconnectGraceMs > 0 && wasOpen && this.reportedJid) {
          const timer = setTimeout(() => this.reportHeldDisconnect(), cfg.disconnectGraceMs);
          this.heldDisconnect = { timer, reason, code };
        } else {
          this.reporter.emit('DISCONNECTED', { reason, code, isProxyError: false });
        }
        this.state = 'reconnecting';
        this.scheduleReconnect(backoffDelay(this.attempt++, cfg.reconnectBaseMs, cfg.reconnectMaxMs));
        return;
    }
  }

  private reportHeldDisconnect(): void {
    const held = this.heldDisconnect;
    if (!held) return;
    this.dropHeldDisconnect();
    this.reporter.emit('DISCONNECTED', { reason: held.reason, code: held.code, isProxyError: false });
  }

  private dropHeldDisconnect(): void {
    if (this.heldDisconnect) clearTimeout(this.heldDisconnect.timer);
    this.heldDisconnect = undefined;
  }

  private scheduleReconnect(delayMs: number): void {
    if (this.stopped) return;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.logger.info({ delayMs }, 'reconnecting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delayMs);
  }
}
