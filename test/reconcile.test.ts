import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Redis } from 'ioredis';
import { reconcileWorkers } from '../activities/reconcile.js';
import { Alerts } from '../activities/alerts.js';
import { ProcessRunner } from '../activities/runner/process-runner.js';
import { createSessionActivities } from '../activities/session-activities.js';
import { createLogger } from '../common/logger.js';
import { loadConfig } from '../common/config.js';
import { createStores, type Stores } from '../state/stores.js';
import { connectTestRedis } from './helpers/redis.js';

/**
 * What an orchestrator does to workers when it comes back after a crash, against real Redis and real processes
 * (the "worker" is a sleeping process carrying the session's environment, as the runner tells workers apart by it).
 */
describe('orchestrator start: reconcile, and a new worker generation', () => {
  let redis: Redis;
  let cleanup: () => Promise<void>;
  let stores: Stores;
  let runner: ProcessRunner;
  let dir: string;
  let activities: ReturnType<typeof createSessionActivities>;
  const proxyUrl = 'socks5h://user:pass@127.0.0.51:1080';
  const logger = createLogger('reconcile-test', 'silent');

  before(async () => {
    let prefix: string;
    ({ redis, prefix, cleanup } = await connectTestRedis());
    dir = mkdtempSync(path.join(tmpdir(), 'reconcile-'));
    const config = loadConfig({
      API_KEY: 'a'.repeat(32),
      WEBHOOK_SECRET: 'w'.repeat(32),
      WEBHOOK_URL: 'http://127.0.0.1:9/webhook',
      REDIS_KEY_PREFIX: prefix,
      SESSIONS_DIR: path.join(dir, 'sessions'),
      PROXY_URLS: proxyUrl,
      TEMPORAL_CODEC_KEYS: `k1:${Buffer.alloc(32, 7).toString('base64')}`,
    });
    stores = createStores(redis, config, logger);
    await stores.pool.register(proxyUrl);
    runner = new ProcessRunner({
      runDir: path.join(dir, 'run'),
      logDir: path.join(dir, 'logs'),
      command: ['sleep', '600'],
      cwd: dir,
      stopGraceMs: 1000,
    });
    activities = createSessionActivities({
      config,
      stores,
      runner,
      alerts: new Alerts(redis, logger, { apiBaseUrl: 'http://127.0.0.1:9', keyPrefix: prefix }),
      logger,
    });
  });
  after(async () => {
    for (const w of await runner.list()) await runner.stop(w.sessionId, { remove: true });
    await cleanup();
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  const pending = async (sessionId: string) => {
    await stores.sessions.create(sessionId, 'acme');
    await stores.sessions.update(sessionId, { status: 'pending', proxy: proxyUrl });
  };
  const start = (input: { sessionId: string; generation?: number }) =>
    new MockActivityEnvironment().run(activities.startWorker, { ...input, proxyUrl });

  it('a provision whose workflow has not started its worker yet is left to the workflow', async () => {
    await pending('inflight');
    const result = await reconcileWorkers({ runner, sessions: stores.sessions, activities, logger, hostId: 'local' });
    assert.deepEqual(result.started, []);
    assert.equal(await runner.inspect('inflight'), null, 'no worker without its generation');
  });

  it('a live session whose worker vanished gets it back, with the generation it had', async () => {
    await pending('vanished');
    await start({ sessionId: 'vanished', generation: 3 });
    await runner.stop('vanished', { remove: true });
    const result = await reconcileWorkers({ runner, sessions: stores.sessions, activities, logger, hostId: 'local' });
    assert.deepEqual(result.started, ['vanished']);
    assert.equal((await runner.inspect('vanished'))?.running, true);
    assert.equal(await stores.sessions.workerGeneration('vanished'), 3);
  });

  it("a new generation's worker never shows the old worker's QR; the same generation keeps it", async () => {
    await pending('gen');
    await start({ sessionId: 'gen', generation: 1 });
    await stores.sessions.setQr('gen', 'ref1,noise1,identity1,adv1');
    await start({ sessionId: 'gen', generation: 1 });
    assert.equal((await stores.sessions.getQr('gen'))?.qr, 'ref1,noise1,identity1,adv1', 'same worker, same QR');
    await start({ sessionId: 'gen', generation: 2 });
    assert.equal(await stores.sessions.getQr('gen'), null, 'the replaced worker showed it');
  });
});
