/**
 * Stand-in session workers for control-plane benchmarks: thousands of sessions in one process, each speaking the
 * wa-worker's protocol to the API with the wa-worker's own classes (signed webhooks with their spool, PINGs, the
 * login gate, the outbox and command long-polls) but with no WhatsApp connection behind it: a fresh session shows
 * a QR and is "scanned" after STANDIN_SCAN_DELAY_MS; a paired one connects at once; a send is acked as sent.
 *
 * Driven over IPC by StandinRunner (bench/standin/runner.ts), which the orchestrator uses instead of Docker or
 * processes. One stand-in costs a few hundred KB instead of a ~64 MB worker, so one machine runs 10,000.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import pino from 'pino';
import { proxyFingerprint } from '../../common/proxy-id.js';
import { proxyEndpoint } from '../../common/proxy-url.js';
import { commandsUrlOf } from '../../common/worker-commands.js';
import { loginUrlOf } from '../../common/worker-login.js';
import type { WorkerInfo, WorkerSpec } from '../../activities/runner/types.js';
import { indexOf, type HostReply, type HostRequest } from './protocol.js';
import { CommandClient, CommandWorker } from '../../wa-worker/commands.js';
import { loadConfig, type WorkerConfig } from '../../wa-worker/config.js';
import type { EngineSocket } from '../../wa-worker/engine.js';
import { Liveness } from '../../wa-worker/keep-alive.js';
import { LoginGate } from '../../wa-worker/login-gate.js';
import { OutboxClient, OutboxLedger, OutboxWorker } from '../../wa-worker/outbox.js';
import { WebhookReporter } from '../../wa-worker/webhooks.js';

const SCAN_DELAY_MS = Number(process.env.STANDIN_SCAN_DELAY_MS ?? 200);
/** More API instances beside the one WEBHOOK_URL names, spread over as a load balancer would (by session). */
const EXTRA_API_PORTS = (process.env.STANDIN_API_PORTS ?? '').split(',').filter(Boolean);
const logger = pino({ level: process.env.STANDIN_LOG_LEVEL ?? 'warn' });

/** The worker's API URLs pointed at this session's API instance. */
function balanced(env: Record<string, string>, sessionId: string): Record<string, string> {
  const origins = [new URL(env.WEBHOOK_URL!).origin, ...EXTRA_API_PORTS.map((p) => `http://127.0.0.1:${p}`)];
  const origin = origins[indexOf(sessionId, origins.length)]!;
  const out = { ...env };
  for (const key of ['WEBHOOK_URL', 'OUTBOX_URL', 'AUTH_STATE_URL']) {
    if (out[key]) out[key] = origin + new URL(out[key]).pathname;
  }
  return out;
}

/** The stand-in for a Baileys socket: sends are acked after a short delay; nothing else is used by the loops. */
function standinSocket(phone: string): EngineSocket {
  let seq = 0;
  const unused = (name: string) => () => Promise.reject(new Error(`${name}: not available in a stand-in session`));
  const socket = {
    userJid: `${phone}:1@s.whatsapp.net`,
    hasPushName: true,
    sendText: async (_jid: string, _text: string, opts?: { messageId?: string }) => {
      await new Promise((r) => setTimeout(r, 5));
      return opts?.messageId ?? `3EB0${phone}${(seq++).toString(16).toUpperCase()}`;
    },
    sendChatState: () => Promise.resolve(),
    sendPresenceAvailable: () => Promise.resolve(),
    sendMedia: unused('sendMedia'),
    checkNumbers: unused('checkNumbers'),
    groupList: unused('groupList'),
    groupInfo: unused('groupInfo'),
    groupCreate: unused('groupCreate'),
    groupParticipants: unused('groupParticipants'),
    groupLeave: unused('groupLeave'),
    readMessages: unused('readMessages'),
    requestPairingCode: unused('requestPairingCode'),
    logout: () => Promise.resolve(),
    end: () => undefined,
  };
  return socket as unknown as EngineSocket;
}

/** A phone number per session id, stable across restarts (so a reconnect is the same account). */
function phoneOf(sessionId: string): string {
  const digits = BigInt(`0x${createHash('sha256').update(sessionId).digest('hex').slice(0, 12)}`) % 10n ** 9n;
  return `1555${digits.toString().padStart(9, '0')}`;
}

class StandinSession {
  readonly startedAt = Date.now();
  connected = false;
  private readonly reporter: WebhookReporter;
  private readonly liveness: Liveness;
  private readonly loginGate: LoginGate | undefined;
  private readonly outbox: OutboxWorker | undefined;
  private readonly ledger: OutboxLedger | undefined;
  private readonly commands: CommandWorker | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    readonly spec: WorkerSpec,
    readonly cfg: WorkerConfig,
    private readonly paired: Set<string>,
  ) {
    const fencing = { generation: cfg.generation };
    const log = logger.child({ sessionId: cfg.sessionId });
    this.reporter = new WebhookReporter({
      sessionId: cfg.sessionId,
      generation: cfg.generation,
      url: cfg.webhookUrl,
      secret: cfg.webhookSecret,
      dir: cfg.authDir,
      maxBytes: cfg.spoolMaxBytes,
      timeoutMs: cfg.webhookTimeoutMs,
      retryBaseMs: cfg.webhookRetryBaseMs,
      retryMaxMs: cfg.webhookRetryMaxMs,
      logger: log,
    });
    this.liveness = new Liveness(cfg.livenessIntervalMs, this.reporter);
    const loops = {
      pollMs: cfg.outboxPollMs,
      waitMs: cfg.outboxWaitMs,
      retryBaseMs: cfg.webhookRetryBaseMs,
      retryMaxMs: cfg.webhookRetryMaxMs,
    };
    if (cfg.outboxUrl) {
      this.ledger = new OutboxLedger(cfg.authDir);
      this.outbox = new OutboxWorker(
        cfg.sessionId,
        new OutboxClient(cfg.outboxUrl, cfg.webhookSecret, cfg.webhookTimeoutMs, fencing),
        this.ledger,
        this.reporter,
        log,
        loops,
      );
      this.commands = new CommandWorker(
        new CommandClient(commandsUrlOf(cfg.outboxUrl), cfg.webhookSecret, cfg.webhookTimeoutMs, fencing),
        log,
        loops,
      );
      this.loginGate = new LoginGate(loginUrlOf(cfg.outboxUrl), cfg.webhookSecret, cfg.webhookTimeoutMs, fencing, log, {
        pollMaxMs: cfg.loginPollMaxMs,
        timeoutMs: cfg.loginGateTimeoutMs,
        retryBaseMs: cfg.webhookRetryBaseMs,
      });
    }
  }

  async start(): Promise<void> {
    await mkdir(this.cfg.authDir, { recursive: true, mode: 0o700 });
    await this.reporter.open();
    await this.ledger?.open();
    this.liveness.start();
    if (!((await this.loginGate?.acquire()) ?? true) || this.stopped) return;
    const phone = phoneOf(this.cfg.sessionId);
    const connect = () => {
      if (this.stopped) return;
      this.paired.add(this.cfg.sessionId);
      this.connected = true;
      this.reporter.emit('CONNECTED', {
        phoneNumber: phone,
        jid: `${phone}:1@s.whatsapp.net`,
        fingerprint: createHash('sha256').update(phone).digest('hex').slice(0, 16),
      });
      this.loginGate?.release();
      const sock = standinSocket(phone);
      this.outbox?.start(sock);
      this.commands?.start(sock);
    };
    if (this.paired.has(this.cfg.sessionId)) return connect();
    this.reporter.emit('QR_CODE', { qr: `2@standin,${this.cfg.sessionId},${Date.now()}` });
    this.loginGate?.release(); // a QR shown settles the login, as in the wa-worker
    this.scanTimer = setTimeout(connect, SCAN_DELAY_MS);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.connected = false;
    clearTimeout(this.scanTimer);
    this.liveness.stop();
    this.loginGate?.close();
    await Promise.all([this.outbox?.stop(), this.commands?.stop()]);
    await this.ledger?.close();
    await this.reporter.flush(2_000).catch(() => false);
    await this.reporter.close();
  }

  get backlog() {
    return this.reporter.backlog;
  }
  get failedAttempts() {
    return this.reporter.stats.failedAttempts;
  }
}

const sessions = new Map<string, StandinSession>();
const paired = new Set<string>();

function info(s: StandinSession): WorkerInfo {
  return {
    sessionId: s.cfg.sessionId,
    running: true,
    proxyEndpoint: proxyEndpoint(s.spec.proxyUrl),
    proxyHash: proxyFingerprint(s.spec.proxyUrl),
    pid: process.pid,
    startedAt: s.startedAt,
  };
}

async function stop(sessionId: string, remove: boolean): Promise<void> {
  const s = sessions.get(sessionId);
  sessions.delete(sessionId);
  await s?.stop();
  if (remove && s) {
    paired.delete(sessionId);
    await rm(s.cfg.authDir, { recursive: true, force: true });
  }
}

async function start(spec: WorkerSpec): Promise<WorkerInfo> {
  const existing = sessions.get(spec.sessionId);
  if (existing) {
    const same =
      proxyFingerprint(existing.spec.proxyUrl) === proxyFingerprint(spec.proxyUrl) &&
      existing.spec.env.WORKER_GENERATION === spec.env.WORKER_GENERATION;
    if (same) return info(existing);
    await stop(spec.sessionId, false);
  }
  const cfg = loadConfig(balanced(spec.env, spec.sessionId));
  const s = new StandinSession(spec, cfg, paired);
  sessions.set(spec.sessionId, s);
  await s.start().catch((err: unknown) => logger.error({ err: String(err), sessionId: spec.sessionId }, 'start'));
  return info(s);
}

async function handle(req: HostRequest): Promise<unknown> {
  switch (req.op) {
    case 'start':
      return start(req.spec);
    case 'stop':
      return stop(req.sessionId, req.remove);
    case 'restart': {
      const s = sessions.get(req.sessionId);
      if (!s) return null;
      await stop(req.sessionId, false);
      return start(s.spec);
    }
    case 'inspect': {
      const s = sessions.get(req.sessionId);
      return s ? info(s) : null;
    }
    case 'list':
      return [...sessions.values()].map(info);
  }
}

process.on('message', (req: HostRequest) => {
  handle(req).then(
    (result) => process.send?.({ id: req.id, ok: true, result: result ?? null } satisfies HostReply),
    (err: unknown) => process.send?.({ id: req.id, ok: false, error: String(err) } satisfies HostReply),
  );
});
// The orchestrator that forked this host is gone: so are its stand-ins (as a rebooted host's workers are).
process.on('disconnect', () => process.exit(0));
logger.info({ dir: path.resolve('.') }, 'stand-in host ready');
