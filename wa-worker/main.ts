/**
 * wa-worker entry: one process = one WhatsApp session. Reads its configuration from the environment (exit 2 when
 * invalid), restores the auth state from the session folder, connects through the session's proxy, reports by
 * signed webhooks, keeps the session alive and sends what the outbox gives it. SIGTERM/SIGINT: close the socket
 * without logging out, flush auth and the event spool, exit 0 within SHUTDOWN_TIMEOUT_MS (≤ 9.5 s).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  AuthStateInvalidError,
  migrateAuthFolder,
  useCrashSafeAuthState,
  writeFileAtomic,
  type CrashSafeAuthState,
} from './auth-store.js';
import { useRemoteAuthState } from './auth-remote.js';
import { SignedClient } from './signed-post.js';
import { CONFIG_EXIT_CODE, ConfigError, loadConfig, type WorkerConfig } from './config.js';
import { Connection, errorText } from './connection.js';
import { ENGINE_NAME, ENGINE_VERSION, trustCertificateRoot } from './engine.js';
import { HEALTH_FILE, type HealthRecord } from './health.js';
import { KeepAlive, Liveness } from './keep-alive.js';
import { createLogger, type Logger } from './logger.js';
import { SentMessageStore } from './sent-store.js';
import { OutboxClient, OutboxLedger, OutboxWorker } from './outbox.js';
import { CommandClient, CommandWorker } from './commands.js';
import { commandsUrlOf } from '../common/worker-commands.js';
import { loginUrlOf } from '../common/worker-login.js';
import { LoginGate } from './login-gate.js';
import { WebhookReporter } from './webhooks.js';
import { InboundMediaHandler } from './inbound-media.js';
import { thumbnailsAvailable } from './thumbnails.js';
import { InboundPending } from './inbound-pending.js';
import { WorkerFence } from './fence.js';
import { FENCED_EXIT_CODE } from '../common/worker-fence.js';

async function run(cfg: WorkerConfig, logger: Logger): Promise<void> {
  const baileysLogger = logger.child({ component: 'baileys' }, { level: cfg.baileysLogLevel });

  // Nothing may kill the process: log, count and expose in the heartbeat file (read by the health check).
  const errors = { count: 0, last: null as string | null };
  process.on('unhandledRejection', (reason) => {
    errors.count++;
    errors.last = errorText(reason);
    logger.error({ err: errors.last }, 'unhandled rejection (ignored, the worker keeps running)');
  });
  process.on('uncaughtException', (err) => {
    errors.count++;
    errors.last = errorText(err);
    logger.error({ err: errors.last, stack: err.stack }, 'uncaught exception (ignored, the worker keeps running)');
  });

  if (cfg.waCertRootPublicKey) {
    trustCertificateRoot(Buffer.from(cfg.waCertRootPublicKey, 'hex'));
    logger.warn({ root: cfg.waCertRootPublicKey }, 'trusting a non-WhatsApp certificate root (simulator only)');
  }
  // Fencing: a worker replaced by a newer generation writes nothing more and exits (runners leave it down).
  const fence = new WorkerFence(cfg.authDir, cfg.generation, (err) => {
    logger.fatal({ generation: cfg.generation, newer: err.newer, source: err.source }, err.message);
    process.exit(FENCED_EXIT_CODE);
  });
  await fence.check().catch(() => undefined); // a fenced start exits here, before it touches the folder

  // The schema check runs before anything else touches the folder (the reporter's spool lives beside it).
  let invalid: AuthStateInvalidError | undefined;
  try {
    const m = await migrateAuthFolder(cfg.authDir);
    if (m.migrated) logger.info({ from: m.from, to: m.to }, 'auth folder migrated');
  } catch (err) {
    if (!(err instanceof AuthStateInvalidError)) throw err;
    invalid = err;
  }
  const reporter = new WebhookReporter({
    sessionId: cfg.sessionId,
    generation: cfg.generation,
    onStale: () => fence.refusedByApi(),
    url: cfg.webhookUrl,
    secret: cfg.webhookSecret,
    dir: cfg.authDir,
    maxBytes: cfg.spoolMaxBytes,
    timeoutMs: cfg.webhookTimeoutMs,
    retryBaseMs: cfg.webhookRetryBaseMs,
    retryMaxMs: cfg.webhookRetryMaxMs,
    logger: logger.child({ component: 'webhooks' }),
  });
  await reporter.open();
  if (invalid) return idleWithInvalidAuth(cfg, logger, reporter, invalid);
  const fencing = { generation: cfg.generation, onStale: () => fence.refusedByApi() };
  let auth: CrashSafeAuthState;
  if (cfg.authStore === 'postgres') {
    const remote = await useRemoteAuthState(
      new SignedClient(cfg.authStateUrl!, cfg.webhookSecret, cfg.webhookTimeoutMs, 'auth state', fencing),
      logger,
      {
        beforeCommit: () => fence.check(),
        batchMs: cfg.authWriteBatchMs,
        retryBaseMs: cfg.webhookRetryBaseMs,
        retryMaxMs: cfg.webhookRetryMaxMs,
      },
    );
    // Keys still in the folder belong to a session not moved yet (scripts/auth-migrate.ts): a new QR here would
    // link a second device and orphan the first.
    if (!remote.hadCreds && existsSync(path.join(cfg.authDir, 'creds.json'))) {
      return idleWithInvalidAuth(
        cfg,
        logger,
        reporter,
        new AuthStateInvalidError(
          'AUTH_STORE=postgres but the keys are in the session folder: run scripts/auth-migrate.ts',
        ),
      );
    }
    auth = remote;
  } else {
    auth = await useCrashSafeAuthState(cfg.authDir, logger, { beforeCommit: () => fence.check() });
  }

  const keepAlive = new KeepAlive(
    { presenceIntervalMs: cfg.presenceIntervalMs, hiddenMessageIntervalMs: cfg.hiddenMessageIntervalMs },
    reporter,
    logger.child({ component: 'keep-alive' }),
  );
  const liveness = new Liveness(cfg.livenessIntervalMs, reporter);
  let outbox: OutboxWorker | undefined;
  let ledger: OutboxLedger | undefined;
  const sentStore = new SentMessageStore(cfg.authDir);
  await sentStore.open();
  if (cfg.outboxUrl) {
    ledger = new OutboxLedger(cfg.authDir);
    await ledger.open();
    outbox = new OutboxWorker(
      cfg.sessionId,
      new OutboxClient(cfg.outboxUrl, cfg.webhookSecret, cfg.webhookTimeoutMs, fencing),
      ledger,
      reporter,
      logger.child({ component: 'outbox' }),
      {
        pollMs: cfg.outboxPollMs,
        waitMs: cfg.outboxWaitMs,
        retryBaseMs: cfg.webhookRetryBaseMs,
        retryMaxMs: cfg.webhookRetryMaxMs,
      },
      sentStore,
    );
  }

  // Number checks and read receipts, next to the outbox.
  const commands = cfg.outboxUrl
    ? new CommandWorker(
        new CommandClient(commandsUrlOf(cfg.outboxUrl), cfg.webhookSecret, cfg.webhookTimeoutMs, fencing),
        logger.child({ component: 'commands' }),
        {
          pollMs: cfg.outboxPollMs,
          waitMs: cfg.outboxWaitMs,
          retryBaseMs: cfg.webhookRetryBaseMs,
          retryMaxMs: cfg.webhookRetryMaxMs,
        },
      )
    : undefined;

  const loginGate = cfg.outboxUrl
    ? new LoginGate(
        loginUrlOf(cfg.outboxUrl),
        cfg.webhookSecret,
        cfg.webhookTimeoutMs,
        fencing,
        logger.child({ component: 'login-gate' }),
        { pollMaxMs: cfg.loginPollMaxMs, timeoutMs: cfg.loginGateTimeoutMs, retryBaseMs: cfg.webhookRetryBaseMs },
      )
    : undefined;

  // Inbound media files go to the API beside the session's outbox (`…/sessions/<id>/inbound-media`).
  const inboundMedia = new InboundMediaHandler(
    cfg.outboxUrl?.replace(/\/outbox$/, ''),
    cfg.webhookSecret,
    fencing,
    {
      maxBytes: cfg.inboundMediaMaxBytes,
      timeoutMs: cfg.inboundMediaTimeoutMs,
      retryBaseMs: cfg.webhookRetryBaseMs,
      retryMaxMs: cfg.webhookRetryMaxMs,
    },
    logger.child({ component: 'inbound-media' }),
  );

  const inboundPending = new InboundPending(cfg.authDir);
  await inboundPending.open();

  const connection = new Connection(cfg, auth, reporter, logger, baileysLogger, {
    inboundMedia: (sock, waMessageId, media) => inboundMedia.handle(sock, waMessageId, media),
    inboundPending,
    onOpen: (sock, info) => {
      if (cfg.enableKeepAlive) keepAlive.start(sock, info.jid);
      outbox?.start(sock);
      commands?.start(sock);
    },
    onClose: () => {
      keepAlive.stop();
      outbox?.pause();
      commands?.pause();
    },
    outboxIdFor: (id) => outbox?.outboxIdFor(id),
    sentText: (id) => sentStore.get(id),
    // A replaced worker never takes the device back from the newer one (WhatsApp would drop one of them: 440).
    beforeConnect: () =>
      fence.check().then(
        () => loginGate?.acquire() ?? true,
        () => false,
      ),
    loginSettled: () => loginGate?.release(),
  });

  const healthPath = path.join(cfg.authDir, HEALTH_FILE);
  const writeHealth = async () => {
    const record: HealthRecord = {
      pid: process.pid,
      at: Date.now(),
      state: connection.state,
      backlog: reporter.backlog,
      rssBytes: process.memoryUsage.rss(),
      unhandledErrors: errors.count,
      lastError: errors.last,
    };
    await writeFileAtomic(healthPath, JSON.stringify(record)).catch((err: unknown) =>
      logger.warn({ err: errorText(err) }, 'could not write the heartbeat file'),
    );
  };
  await writeHealth();
  const healthTimer = setInterval(() => void writeHealth(), cfg.healthIntervalMs);

  logger.info(
    {
      proxy: cfg.proxy.redacted,
      authDir: cfg.authDir,
      webhook: cfg.webhookUrl,
      outbox: cfg.outboxUrl ?? null,
      keepAlive: cfg.enableKeepAlive,
      hadCreds: auth.hadCreds,
      authStore: cfg.authStore,
      // no '@' in the value: the log redactor would read `…:…@` as credentials
      engine: ENGINE_NAME.replace(/^@/, ''),
      engineVersion: ENGINE_VERSION,
      thumbnails: thumbnailsAvailable(),
    },
    'wa-worker starting',
  );
  connection.start();
  liveness.start();

  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    const started = Date.now();
    logger.info({ signal }, 'shutting down (the device stays linked)');
    const hardExit = setTimeout(() => {
      logger.warn('shutdown timeout reached; exiting');
      process.exit(0);
    }, cfg.shutdownTimeoutMs);
    hardExit.unref();
    try {
      clearInterval(healthTimer);
      liveness.stop();
      keepAlive.stop();
      const budget = (fraction: number) => Math.max(0, (cfg.shutdownTimeoutMs - (Date.now() - started)) * fraction);
      if (outbox) await Promise.race([outbox.stop(), sleep(budget(0.3))]);
      if (commands) await Promise.race([commands.stop(), sleep(budget(0.1))]);
      connection.stop();
      loginGate?.close();
      await auth.flush();
      await ledger?.close();
      await sentStore.close();
      await inboundPending.close();
      const drained = await reporter.flush(budget(0.5));
      await reporter.close();
      logger.info({ drained, backlog: reporter.backlog, ms: Date.now() - started }, 'stopped');
    } catch (err) {
      logger.error({ err: errorText(err) }, 'error during shutdown');
    }
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/**
 * The auth folder cannot be used: report AUTH_STATE_INVALID once, never connect, never touch the files, and stay up
 * (healthy, idle) so neither Docker's restart policy nor the orchestrator turns it into a crash loop.
 */
async function idleWithInvalidAuth(
  cfg: WorkerConfig,
  logger: Logger,
  reporter: WebhookReporter,
  invalid: AuthStateInvalidError,
): Promise<void> {
  logger.error({ reason: invalid.reason, authDir: cfg.authDir }, 'auth state invalid: not connecting (files kept)');
  reporter.emit('AUTH_STATE_INVALID', { reason: invalid.reason });
  const timers: { health?: NodeJS.Timeout } = {};
  const stop = async () => {
    clearInterval(timers.health);
    await reporter.flush(cfg.shutdownTimeoutMs / 2).catch(() => false);
    await reporter.close().catch(() => undefined);
    process.exit(0);
  };
  // Handlers first: a SIGTERM may come as soon as the health file shows the idle state.
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  const healthPath = path.join(cfg.authDir, HEALTH_FILE);
  const writeHealth = async () => {
    const record: HealthRecord = {
      pid: process.pid,
      at: Date.now(),
      state: 'auth_invalid',
      backlog: reporter.backlog,
      rssBytes: process.memoryUsage.rss(),
      unhandledErrors: 0,
      lastError: invalid.message,
    };
    await writeFileAtomic(healthPath, JSON.stringify(record)).catch(() => undefined);
  };
  await writeHealth();
  timers.health = setInterval(() => void writeHealth(), cfg.healthIntervalMs);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function main(): void {
  let cfg: WorkerConfig;
  try {
    cfg = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`wa-worker: ${err.message}\n`);
      process.exit(CONFIG_EXIT_CODE);
    }
    throw err;
  }
  const logger = createLogger({
    level: cfg.logLevel,
    sessionId: cfg.sessionId,
    secrets: [cfg.proxy.password, cfg.webhookSecret],
  });
  run(cfg, logger).catch((err: unknown) => {
    logger.fatal({ err: errorText(err) }, 'wa-worker failed to start');
    process.exit(1);
  });
}

main();
