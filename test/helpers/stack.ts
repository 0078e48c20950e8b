import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { codecDataConverter } from '../../common/codec.js';
import { Socks5Proxy, WhatsAppSimulator } from '../../simulator/index.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const API_KEY = 'test-admin-key-0123456789abcdef';
export const TENANT_KEY = 'test-tenant-key-0123456789abcdef';
export const WEBHOOK_SECRET = 'test-webhook-secret-0123456789abcdef';
export const METRICS_TOKEN = 'test-metrics-token-0123456789abcdef';
/** The payload codec key of every test stack (fixed, so recorded histories replay in a later run). */
export const CODEC_KEYS = `test1:${createHash('sha256').update('wa-test-codec-key').digest('base64')}`;
/** The data converter of test clients: the same codec as the stack's API and orchestrator. */
export const testDataConverter = () => codecDataConverter(CODEC_KEYS);
/** Headers of a /metrics scrape. */
export const metricsAuth = { authorization: `Bearer ${METRICS_TOKEN}` };

/** Anti-ban pacing and rate limits out of the way, for benches that measure the send path itself. */
export const PACING_OFF_ENV = {
  ANTIBAN_COLD_GAP_MS: '10',
  ANTIBAN_JITTER_PERCENT: '0',
  ANTIBAN_COLD_DAILY: '100000',
  ANTIBAN_BURST_COUNT: '100000',
  ANTIBAN_IDLE_POLL_MS: '200',
  RATE_LIMIT_MAX_REQUESTS: '100000',
  WORKER_ENV_OUTBOX_POLL_MS: '50',
};

/** A live-events URL with a fresh single-use ticket bought with `apiKey` (`query` appended, e.g. `types=qr`). */
export async function eventsUrl(apiUrl: string, apiKey: string, query = ''): Promise<string> {
  const res = await fetch(`${apiUrl}/api/events/ticket`, { method: 'POST', headers: { 'x-api-key': apiKey } });
  if (res.status !== 201) throw new Error(`ticket refused: ${res.status} ${await res.text()}`);
  const { ticket } = (await res.json()) as { ticket: string };
  return `${apiUrl}/api/events?ticket=${ticket}${query ? `&${query}` : ''}`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** The environment an API or orchestrator child process of a test gets: test keys, loopback, its own prefixes. */
export function serviceEnv(o: {
  apiPort: number;
  redisUrl: string;
  prefix: string;
  temporalAddress: string;
  taskQueue: string;
  workflowIdPrefix: string;
}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    LOG_LEVEL: 'info',
    API_KEY,
    TENANT_API_KEYS: `acme:${TENANT_KEY}`,
    WEBHOOK_SECRET,
    METRICS_TOKEN,
    TEMPORAL_CODEC_KEYS: CODEC_KEYS,
    // Test receivers of customer webhooks listen on loopback: the admin allow-list lets them through.
    CLIENT_WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
    API_HOST: '127.0.0.1',
    API_PORT: String(o.apiPort),
    WEBHOOK_URL: `http://127.0.0.1:${o.apiPort}/api/webhook`,
    REDIS_URL: o.redisUrl,
    REDIS_KEY_PREFIX: o.prefix,
    TEMPORAL_ADDRESS: o.temporalAddress,
    TEMPORAL_TASK_QUEUE: o.taskQueue,
    WORKFLOW_ID_PREFIX: o.workflowIdPrefix,
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value (or throws after `timeoutMs`, naming what it waited for). */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T> | T,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

export interface StackOptions {
  proxies?: number;
  maxSessionsPerProxy?: number;
  runner?: 'process' | 'docker';
  watchdogIntervalMs?: number;
  pingTimeoutMs?: number;
  extraEnv?: Record<string, string>;
  /** Environment of the local orchestrator only (e.g. its own REDIS_URL through a link a test can cut). */
  orchestratorEnv?: Record<string, string>;
  /** The orchestrator's entry file (default orchestrator/main.ts; bench/standin swaps in stand-in workers). */
  orchestratorEntry?: string;
  /** Options of the in-process WhatsApp simulator (e.g. `antiSpam`). */
  simOptions?: Parameters<typeof WhatsAppSimulator.start>[0];
}

/**
 * A real stack for end-to-end tests: the simulator and SOCKS5 proxies (in this process), the orchestrator and the
 * API as child processes (so tests can kill -9 them), the real Temporal dev server and Redis from
 * scripts/services.sh. Each stack has its own task queue, Redis prefix and sessions folder.
 */
/** A child killed by a signal has no exit code, only a signal code: either means it is gone. */
const isGone = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

export class Stack {
  sim!: WhatsAppSimulator;
  proxies: Socks5Proxy[] = [];
  redis!: Redis;
  temporal!: Client;
  apiUrl = '';
  readonly id = randomBytes(4).toString('hex');
  readonly prefix = `e2e:${this.id}:`;
  readonly taskQueue = `e2e-${this.id}`;
  readonly sessionsDir = mkdtempSync(path.join(os.tmpdir(), 'wa-sessions-'));
  readonly dataDir = mkdtempSync(path.join(os.tmpdir(), 'wa-data-'));
  orchestrator: ChildProcess | null = null;
  extraHosts: ChildProcess[] = [];
  api: ChildProcess | null = null;
  env: Record<string, string> = {};
  private connection!: Connection;

  constructor(readonly opts: StackOptions = {}) {}

  async start(): Promise<this> {
    this.sim = await WhatsAppSimulator.start(this.opts.simOptions ?? {});
    const n = this.opts.proxies ?? 3;
    for (let i = 0; i < n; i++) {
      this.proxies.push(
        await Socks5Proxy.start({
          username: `user${i}`,
          password: `pw-${this.id}-${i}`,
          bindAddress: `127.0.0.${20 + i}`,
        }),
      );
    }
    const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    this.redis = new Redis(redisUrl);
    await this.redis.ping();
    const temporalAddress = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
    this.connection = await Connection.connect({ address: temporalAddress });
    this.temporal = new Client({ connection: this.connection, dataConverter: testDataConverter() });
    const apiPort = await freePort();
    this.apiUrl = `http://127.0.0.1:${apiPort}`;
    this.env = {
      ...serviceEnv({
        apiPort,
        redisUrl,
        prefix: this.prefix,
        temporalAddress,
        taskQueue: this.taskQueue,
        workflowIdPrefix: `e2e-${this.id}`,
      }),
      MAX_SESSIONS_PER_PROXY: String(this.opts.maxSessionsPerProxy ?? 4),
      WATCHDOG_INTERVAL_MS: String(this.opts.watchdogIntervalMs ?? 1000),
      PING_TIMEOUT_MS: String(this.opts.pingTimeoutMs ?? 6000),
      PROXY_URLS: this.proxies.map((p) => p.url).join(','),
      SESSIONS_DIR: this.sessionsDir,
      WA_DATA_DIR: this.dataDir,
      RUNNER: this.opts.runner ?? 'process',
      WA_WEBSOCKET_URL: this.sim.url,
      WORKER_ENV_WA_CERT_ROOT_PUBLIC_KEY: Buffer.from(this.sim.certificateRootPublicKey).toString('hex'),
      // Workers upload media over HTTPS to the simulator's media host (self-signed certificate).
      WORKER_ENV_NODE_EXTRA_CA_CERTS: this.sim.media.certPath,
      MEDIA_DIR: path.join(this.dataDir, 'media'),
      LOW_PROXY_INVENTORY_THRESHOLD: '1',
      // Worker intervals shrunk for tests (passed through by the orchestrator).
      WORKER_ENV_PRESENCE_INTERVAL_MS: '1000',
      WORKER_ENV_WA_KEEPALIVE_INTERVAL_MS: '2000',
      WORKER_ENV_WA_CONNECT_TIMEOUT_MS: '5000',
      WORKER_ENV_WA_QUERY_TIMEOUT_MS: '5000',
      WORKER_ENV_RECONNECT_BASE_MS: '200',
      // Every lost connection reported at once, as the tests of the disconnect paths expect; test/history-growth
      // covers the grace that hides blips.
      WORKER_ENV_DISCONNECT_GRACE_MS: '0',
      WORKER_ENV_RECONNECT_MAX_MS: '2000',
      WORKER_ENV_PROXY_RECONNECT_MAX_MS: '2000',
      WORKER_ENV_PROXY_TIMEOUT_MS: '3000',
      WORKER_ENV_WEBHOOK_RETRY_BASE_MS: '100',
      WORKER_ENV_WEBHOOK_RETRY_MAX_MS: '1000',
      WORKER_ENV_OUTBOX_POLL_MS: '200',
      // Typing before sends (seconds per message) would stretch every pacing test; test/human-like turns it on.
      ANTIBAN_TYPING: 'false',
      ...this.opts.extraEnv,
    };
    await this.startOrchestrator();
    await this.startApi();
    return this;
  }

  private spawnService(name: string, entry: string, env: Record<string, string> = {}): ChildProcess {
    const log = openSync(path.join(this.dataDir, `${name}.log`), 'a');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
      cwd: ROOT,
      env: { ...this.env, ...env },
      stdio: ['ignore', log, log],
    });
    return child;
  }

  logPath(name: string) {
    return path.join(this.dataDir, `${name}.log`);
  }

  /** Where the process runner of a host keeps its pid files. */
  runDir(hostId = 'local') {
    return path.join(this.dataDir, 'run', `${this.taskQueue}@${hostId}`);
  }

  /** `readyTimeoutMs`: its start reconciles this host's workers first (a reboot with hundreds takes a while). */
  async startOrchestrator(readyTimeoutMs = 60_000): Promise<void> {
    this.orchestrator = await this.startHost('local', this.opts.orchestratorEnv, readyTimeoutMs);
  }

  /**
   * Starts an orchestrator acting as Docker host `hostId` (its own HOST_ID, host task queue and, when given,
   * its own SESSIONS_DIR — another machine's disk). Extra hosts are stopped by stop().
   */
  async startHost(hostId: string, env: Record<string, string> = {}, readyTimeoutMs = 60_000): Promise<ChildProcess> {
    const name = hostId === 'local' ? 'orchestrator' : `orchestrator-${hostId}`;
    const before = readFileSync(this.logPath(name), { flag: 'a+' }).length;
    const child = this.spawnService(name, this.opts.orchestratorEntry ?? 'orchestrator/main.ts', {
      HOST_ID: hostId,
      ...env,
    });
    if (hostId !== 'local') this.extraHosts.push(child);
    // Not ready in time: it must not outlive the stack that gave up on it.
    await waitFor(
      `orchestrator ${hostId} to poll its task queues`,
      async () => {
        if (isGone(child)) throw new Error(`orchestrator ${hostId} exited with ${child.exitCode ?? child.signalCode}`);
        return /orchestrator ready/.test(readFileSync(this.logPath(name), 'utf8').slice(before));
      },
      readyTimeoutMs,
      200,
    ).catch((err: unknown) => {
      child.kill('SIGKILL');
      throw err;
    });
    return child;
  }

  async startApi(): Promise<void> {
    this.api = this.spawnService('api', 'api/main.ts');
    const child = this.api;
    await waitFor(
      'the API to answer /readyz',
      async () => {
        if (isGone(child)) throw new Error(`api exited with ${child.exitCode ?? child.signalCode}`);
        const res = await fetch(`${this.apiUrl}/readyz`).catch(() => null);
        return res?.status === 200;
      },
      60_000,
      200,
    );
  }

  async killOrchestrator(signal: NodeJS.Signals = 'SIGKILL') {
    const child = this.orchestrator;
    if (!child || isGone(child)) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  async killApi(signal: NodeJS.Signals = 'SIGKILL') {
    const child = this.api;
    if (!child || isGone(child)) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  /** Calls the API with the admin key (or the given one); returns status and parsed JSON. */
  async call(method: string, url: string, body?: unknown, apiKey: string | null = API_KEY) {
    const headers: Record<string, string> = {};
    if (apiKey) headers['x-api-key'] = apiKey;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.apiUrl}${url}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, body: json };
  }

  /**
   * POST /api/v1/backups/restore/:id and, when it answers 202 (still running after RESTORE_ANSWER_WAIT_MS), waits on
   * GET /api/v1/backups/restore for the outcome: answers as the call would have had it waited (200 with the report).
   */
  async restore(backupId: string, body: unknown = {}, timeoutMs = 180_000) {
    const r = await this.call('POST', `/api/v1/backups/restore/${backupId}`, body);
    if (r.status !== 202) return r;
    const last = await this.restoreOutcome(r.body.restore.runId, timeoutMs);
    return last.status === 'completed'
      ? { status: 200, body: { restore: last.report } }
      : { status: 500, body: { error: { code: 'RESTORE_FAILED', message: last.error } } };
  }

  /** Waits on GET /api/v1/backups/restore until the restore of this run is no longer running; returns its state. */
  async restoreOutcome(runId: string, timeoutMs = 180_000): Promise<any> {
    return waitFor(
      `restore ${runId} to finish`,
      async () => {
        const s = await this.call('GET', '/api/v1/backups/restore');
        return s.status === 200 && s.body.restore.runId === runId && s.body.restore.status !== 'running'
          ? s.body.restore
          : null;
      },
      timeoutMs,
      100,
    );
  }

  async status(sessionId: string): Promise<any> {
    return (await this.call('GET', `/api/sessions/${sessionId}/status`)).body;
  }

  async waitForStatus(sessionId: string, status: string | string[], timeoutMs = 30_000): Promise<any> {
    const wanted = Array.isArray(status) ? status : [status];
    let last: any;
    try {
      return await waitFor(
        `session ${sessionId} to be ${wanted.join('|')}`,
        async () => {
          last = await this.status(sessionId);
          return wanted.includes(last?.status) ? last : null;
        },
        timeoutMs,
        150,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message} (last: ${JSON.stringify(last)})`, { cause: err });
    }
  }

  /** Waits for the session's QR in the API and lets the simulator's phone scan it. */
  async scan(sessionId: string, phone: string, timeoutMs = 30_000): Promise<string> {
    const qr = await waitFor(
      `a QR for ${sessionId}`,
      async () => {
        const r = await this.call('GET', `/api/sessions/${sessionId}/qr`);
        return r.status === 200 ? (r.body.qr as string) : null;
      },
      timeoutMs,
      100,
    );
    await this.sim.scan(qr, phone);
    return qr;
  }

  async proxyLoads(): Promise<Record<string, number>> {
    const r = await this.call('GET', '/api/v1/proxies');
    return Object.fromEntries(
      (r.body.proxies as Array<{ endpoint: string; load: number }>).map((p) => [p.endpoint, p.load]),
    );
  }

  async stop(): Promise<void> {
    // Delete every session still known, so no worker outlives the test.
    try {
      const list = await this.call('GET', '/api/v1/dashboard/sessions');
      for (const s of (list.body?.sessions ?? []) as Array<{ sessionId: string }>) {
        await this.call('DELETE', `/api/sessions/${s.sessionId}`).catch(() => undefined);
      }
    } catch {
      /* API already gone */
    }
    await this.killApi('SIGTERM').catch(() => undefined);
    await this.killOrchestrator('SIGTERM').catch(() => undefined);
    for (const child of this.extraHosts) {
      if (!isGone(child)) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    }
    // Any worker process left behind (e.g. after a kill -9 test) is stopped through its pid file, on every host.
    const { ProcessRunner } = await import('../../activities/runner/process-runner.js');
    const runRoot = path.join(this.dataDir, 'run');
    for (const dir of existsSync(runRoot) ? readdirSync(runRoot) : []) {
      const runner = new ProcessRunner({
        runDir: path.join(runRoot, dir),
        logDir: path.join(this.dataDir, 'logs', 'workers'),
        command: ['true'],
        cwd: ROOT,
        stopGraceMs: 3000,
      });
      for (const w of await runner.list()) await runner.stop(w.sessionId, { remove: true });
      await runner.close();
    }
    for (const p of this.proxies) await p.close().catch(() => undefined);
    await this.sim.close().catch(() => undefined);
    // Workflows and schedules are per deployment prefix: remove what this stack left on the shared server.
    await this.temporal.schedule
      .getHandle(`${this.env.WORKFLOW_ID_PREFIX}-backups`)
      .delete()
      .catch(() => undefined);
    for await (const wf of this.temporal.workflow.list({
      query: `TaskQueue = '${this.taskQueue}' AND ExecutionStatus = 'Running'`,
    })) {
      await this.temporal.workflow
        .getHandle(wf.workflowId, wf.runId)
        .terminate('test stack stopped')
        .catch(() => undefined);
    }
    await this.cleanRedis();
    this.redis.disconnect();
    await this.connection.close();
    if (!process.env.KEEP_TEST_DATA) {
      rmSync(this.sessionsDir, { recursive: true, force: true });
      rmSync(this.dataDir, { recursive: true, force: true });
    }
  }

  private async cleanRedis() {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await this.redis.del(...keys);
    } while (cursor !== '0');
  }
}
