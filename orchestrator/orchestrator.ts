import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Redis } from 'ioredis';
import { Alerts } from '../activities/alerts.js';
import { reconcileWorkers } from '../activities/reconcile.js';
import { DockerRunner } from '../activities/runner/docker-runner.js';
import { ProcessRunner } from '../activities/runner/process-runner.js';
import type { WorkerRunner } from '../activities/runner/types.js';
import { createSessionActivities } from '../activities/session-activities.js';
import { createBackupActivities } from '../activities/backup.js';
import { createDispatchActivities } from '../activities/dispatch-activities.js';
import { createHostActivities } from '../activities/host-activities.js';
import { failOverDeadHosts } from '../workflows/host-failover-client.js';
import { ensureDispatchers } from '../workflows/dispatcher-client.js';
import { ensureBackupSchedule } from './backup-schedule.js';
import { WORKER_NODE_ENV, WORKER_NODE_FLAGS } from '../wa-worker/runtime-options.js';
import { codecDataConverter } from '../common/codec.js';
import type { Config } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { hostQueueFor } from '../state/hosts.js';
import { createRedis } from '../state/redis.js';
import { createStores, prepareStores } from '../state/stores.js';
import { PgAuthStore } from '../state/auth-pg.js';
import { WATCHDOG_WORKFLOW_ID, watchdogWorkflow } from '../workflows/watchdog.js';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * How the process runner starts a worker: the esbuild bundle staged by scripts/build-images.sh when present
 * (starts faster and uses less memory), else the TypeScript source via tsx.
 */
export function defaultWorkerCommand(): string[] {
  const bundle = path.join(PROJECT_ROOT, 'node_modules', '.cache', 'wa-worker-image', 'app', 'main.mjs');
  if (existsSync(bundle)) return [process.execPath, ...WORKER_NODE_FLAGS, bundle];
  return [process.execPath, ...WORKER_NODE_FLAGS, '--import', 'tsx', path.join(PROJECT_ROOT, 'wa-worker', 'main.ts')];
}

export function createRunner(config: Config): WorkerRunner {
  const dataDir = path.resolve(process.env.WA_DATA_DIR ?? path.join(PROJECT_ROOT, 'data'));
  if (config.RUNNER === 'docker') {
    return new DockerRunner({
      image: config.WORKER_IMAGE,
      network: config.DOCKER_NETWORK,
      memoryMb: config.WORKER_MEMORY_MB,
      sessionsDir: path.resolve(config.SESSIONS_DIR),
      workerUid: Number(process.env.WORKER_UID ?? 1000),
      workerGid: Number(process.env.WORKER_GID ?? 1000),
      hostId: config.HOST_ID,
    });
  }
  return new ProcessRunner({
    runDir: path.join(dataDir, 'run', hostQueueFor(config.TEMPORAL_TASK_QUEUE, config.HOST_ID)),
    logDir: path.join(dataDir, 'logs', 'workers'),
    command: process.env.WORKER_COMMAND ? (JSON.parse(process.env.WORKER_COMMAND) as string[]) : defaultWorkerCommand(),
    env: WORKER_NODE_ENV,
    cwd: PROJECT_ROOT,
  });
}

/** Environment variables `WORKER_ENV_<NAME>` of the orchestrator are passed to every worker as `<NAME>`. */
export function workerEnvFromProcess(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env)
      .filter(([k, v]) => k.startsWith('WORKER_ENV_') && v !== undefined)
      .map(([k, v]) => [k.slice('WORKER_ENV_'.length), v!]),
  );
}

export interface Orchestrator {
  worker: Worker;
  redis: Redis;
  runner: WorkerRunner;
  run(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * The orchestrator process: a Temporal Worker hosting the workflows and activities, plus the start-up duties
 * (register the configured proxy pool, ensure the watchdog runs, reconcile workers).
 */
export interface OrchestratorOptions {
  /** Starts session workers some other way than RUNNER says (bench/standin: thousands of stand-ins in one process). */
  runner?: WorkerRunner;
}

export async function createOrchestrator(
  config: Config,
  logger: Logger,
  options: OrchestratorOptions = {},
): Promise<Orchestrator> {
  const redis = createRedis(config.REDIS_URL);
  const stores = createStores(redis, config, logger.child({ component: 'activities' }));
  const { sessions, hosts } = stores;
  const migrated = await prepareStores(stores, config);
  if (migrated) logger.info({ migrated }, 'proxy keys renamed from URL to proxy id');

  const runner = options.runner ?? createRunner(config);
  const alerts = new Alerts(redis, logger.child({ component: 'alerts' }), {
    botToken: config.TELEGRAM_BOT_TOKEN,
    chatId: config.TELEGRAM_CHAT_ID,
    apiBaseUrl: config.TELEGRAM_API_BASE_URL,
    keyPrefix: config.REDIS_KEY_PREFIX,
    retryBaseMs: config.ALERT_RETRY_BASE_MS,
  });
  const stopAlertDelivery = alerts.startDelivery();
  const clientConnection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  // Every payload to and from Temporal is encrypted (common/codec.ts): no secret in any history.
  const dataConverter = codecDataConverter(config.TEMPORAL_CODEC_KEYS);
  const client = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE, dataConverter });
  // AUTH_STORE=postgres: the orchestrator fences each worker start and deletes a deleted session's entries.
  const authStore =
    config.AUTH_STORE === 'postgres'
      ? PgAuthStore.connect(config.AUTH_DATABASE_URL!, config.AUTH_STORE_SECRET!, 4)
      : undefined;
  await authStore?.migrate();
  const activityDeps = {
    authStore,
    config,
    stores,
    runner,
    alerts,
    logger: logger.child({ component: 'activities' }),
    temporal: client,
    workerEnv: workerEnvFromProcess(),
  };
  const activities = createSessionActivities(activityDeps);
  const backupActivities = createBackupActivities(activityDeps, activities);

  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    dataConverter,
    workflowsPath: path.join(PROJECT_ROOT, 'workflows', 'index.ts'),
    activities: {
      ...activities,
      ...backupActivities,
      ...createDispatchActivities({ config, stores, logger: logger.child({ component: 'dispatcher' }), alerts }),
      ...createHostActivities(activityDeps),
    },
    maxCachedWorkflows: 2000,
    shutdownGraceTime: '10s',
  });

  try {
    await client.workflow.start(watchdogWorkflow, {
      workflowId: `${config.WORKFLOW_ID_PREFIX}:${WATCHDOG_WORKFLOW_ID}:${config.TEMPORAL_TASK_QUEUE}`,
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      args: [{ intervalMs: config.WATCHDOG_INTERVAL_MS, pingTimeoutMs: config.PING_TIMEOUT_MS }],
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }

  await ensureBackupSchedule(client, config, logger);

  const dispatchers = await ensureDispatchers(client, config, stores.messages, logger);
  if (dispatchers) logger.info({ dispatchers }, 'dispatchers woken for sessions with pending messages');

  // This host's own queue: container activities of the sessions placed here (their auth volumes are here), and
  // the backup/restore steps that read or write this host's session folders or start its workers.
  const hostQueue = hostQueueFor(config.TEMPORAL_TASK_QUEUE, config.HOST_ID);
  const hostWorker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: hostQueue,
    dataConverter,
    activities: { ...activities, ...backupActivities },
    shutdownGraceTime: '10s',
  });
  const host = { hostId: config.HOST_ID, queue: hostQueue, capacity: config.HOST_CAPACITY };
  await hosts.heartbeat(host);
  // Each beat also looks for dead hosts: any live orchestrator starts their failover (one per death).
  const heartbeat = setInterval(() => {
    hosts.heartbeat(host).catch((err: unknown) => logger.warn({ err: String(err) }, 'host heartbeat failed'));
    failOverDeadHosts(client, config, hosts, logger).catch((err: unknown) =>
      logger.warn({ err: String(err) }, 'dead host check failed'),
    );
  }, config.HOST_HEARTBEAT_MS);

  const reconciled = await reconcileWorkers({ runner, sessions, activities, logger, hostId: config.HOST_ID });
  if (runner instanceof ProcessRunner) runner.startSupervisor();
  logger.info(
    { ...reconciled, runner: runner.kind, taskQueue: config.TEMPORAL_TASK_QUEUE, hostQueue },
    'orchestrator ready',
  );

  let closed = false;
  return {
    worker,
    redis,
    runner,
    run: async () => {
      await Promise.all([worker.run(), hostWorker.run()]);
    },
    async shutdown() {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      stopAlertDelivery();
      if (worker.getState() === 'RUNNING') worker.shutdown();
      if (hostWorker.getState() === 'RUNNING') hostWorker.shutdown();
      await authStore?.close().catch(() => undefined);
    },
  };
}
