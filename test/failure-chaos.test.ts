/**
 * Failure-path chaos (issue 13), long: keep-alive off for 5 minutes with the watchdog at 1 s, Telegram unreachable
 * during a failover, Redis stopped for 20 s during watchdog rounds. The stack runs on its OWN redis-server (free
 * port, own data dir): the shared Redis on 6379 is never touched.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { freePort, sleep, Stack, waitFor } from './helpers/stack.js';

const PING_TIMEOUT_MS = 6000;
const KEEPALIVE_OFF_WINDOW_MS = 5 * 60_000;

class OwnRedis {
  proc: ChildProcess | null = null;
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'wa-chaos-redis-'));
  constructor(readonly port: number) {}
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start() {
    const proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--save', ''],
      { stdio: 'ignore' },
    );
    this.proc = proc;
    const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    await waitFor(
      'own redis-server',
      async () =>
        (await probe
          .connect()
          .then(() => probe.ping())
          .catch(() => null)) === 'PONG',
      10_000,
      100,
    );
    probe.disconnect();
  }
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM'); // our own child, by its handle
    await exited;
    this.proc = null;
  }
}

describe('failure-path chaos (own Redis)', () => {
  let redis: OwnRedis;
  let stack: Stack;
  const savedUrl = process.env.REDIS_URL;
  const hget = (id: string, f: string) => stack.redis.hget(`${stack.prefix}session:${id}`, f);

  before(async () => {
    redis = new OwnRedis(await freePort());
    await redis.start();
    process.env.REDIS_URL = redis.url; // the stack (and its child processes) use our own Redis
    const deadTelegram = await freePort(); // nothing listens there: Telegram unreachable
    stack = await new Stack({
      proxies: 3,
      pingTimeoutMs: PING_TIMEOUT_MS,
      watchdogIntervalMs: 1000,
      extraEnv: {
        TELEGRAM_BOT_TOKEN: '123456:chaos-token',
        TELEGRAM_CHAT_ID: '42',
        TELEGRAM_API_BASE_URL: `http://127.0.0.1:${deadTelegram}`,
        ENABLE_KEEP_ALIVE: 'false',
        WORKER_ENV_LIVENESS_INTERVAL_MS: '1000',
      },
    }).start();
  });
  after(async () => {
    await stack?.stop().catch(() => undefined);
    process.env.REDIS_URL = savedUrl;
    await redis?.stop();
    rmSync(redis.dir, { recursive: true, force: true });
  });

  it('keep-alive off for 5 minutes, watchdog every second: connected throughout, no watchdog restart', async () => {
    const r = await stack.call('POST', '/api/sessions/provision', { sessionId: 'c1', phone: '15550014001' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await stack.scan('c1', '15550014001');
    await stack.waitForStatus('c1', 'connected', 60_000);
    const t0 = Date.now();
    let samples = 0;
    // Observed every second over the window: status connected, zero watchdog restarts, heartbeat fresh.
    while (Date.now() - t0 < KEEPALIVE_OFF_WINDOW_MS) {
      const [status, restarts, lastPing] = await Promise.all([
        hget('c1', 'status'),
        hget('c1', 'watchdogRestarts'),
        hget('c1', 'lastPing'),
      ]);
      assert.equal(status, 'connected', `status after ${Date.now() - t0} ms`);
      assert.equal(Number(restarts ?? 0), 0, `watchdog restarts after ${Date.now() - t0} ms`);
      assert.ok(Date.now() - Number(lastPing) < PING_TIMEOUT_MS, 'heartbeat fresh');
      samples++;
      await sleep(1000);
    }
    console.log(`keep-alive off: ${samples} samples over ${KEEPALIVE_OFF_WINDOW_MS} ms, 0 watchdog restarts`);
  });

  it('Telegram unreachable during a failover: the failover completes; the alert waits in the queue', async () => {
    const s = await stack.status('c1');
    const old = stack.proxies.find((p) => `${p.host}:${p.port}` === s.proxy)!;
    const t0 = Date.now();
    await old.close();
    await waitFor(
      'failover with Telegram unreachable',
      async () => {
        const st = await stack.status('c1');
        return st.status === 'connected' && st.proxy !== s.proxy;
      },
      60_000,
      200,
    );
    console.log(`failover with Telegram unreachable: ${Date.now() - t0} ms`);
    // While a delivery attempt runs (4 tries, ~2 s) the entry is out of the queue; it comes back with its backoff.
    await waitFor(
      'the proxy_burned alert queued for retry',
      async () =>
        (await stack.redis.zrange(`${stack.prefix}alert:outbox`, 0, -1)).some((q) => q.includes('proxy_burned')),
      15_000,
      100,
    );
  });

  it('Redis stopped for 20 s during watchdog rounds: the watchdog resumes by itself and catches a hung worker', async () => {
    await redis.stop();
    await sleep(20_000); // the outage itself (fault injection, not an assertion)
    await redis.start();
    await stack.waitForStatus('c1', 'connected', 60_000);
    const watchdogId = `${stack.env.WORKFLOW_ID_PREFIX}:watchdog:${stack.taskQueue}`;
    const d = await stack.temporal.workflow.getHandle(watchdogId).describe();
    assert.equal(d.status.name, 'RUNNING', 'the watchdog survived the outage');
    const before = Number((await hget('c1', 'watchdogRestarts')) ?? 0);
    const { pid } = JSON.parse(readFileSync(path.join(stack.runDir(), 'c1.json'), 'utf8')) as { pid: number };
    process.kill(pid, 'SIGSTOP');
    const t0 = Date.now();
    await waitFor(
      'a watchdog restart after the outage',
      async () => Number((await hget('c1', 'watchdogRestarts')) ?? 0) > before,
      PING_TIMEOUT_MS + 20_000,
    );
    console.log(`hung worker caught ${Date.now() - t0} ms after SIGSTOP, after a 20 s Redis outage`);
    await stack.waitForStatus('c1', 'connected', 60_000);
  });
});
