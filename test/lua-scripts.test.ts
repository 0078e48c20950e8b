/**
 * The Lua scripts as files (state/lua.ts): each is defined once per client with ioredis `defineCommand`, so calls
 * go as EVALSHA (the source crosses the wire once per connection) and survive a SCRIPT FLUSH (NOSCRIPT → re-sent).
 * And every key a script touches, passed or derived, lives under the key prefix: with a hash-tag prefix every
 * script runs on a Redis Cluster node (one slot), without one the cluster refuses them (CROSSSLOT).
 * Both on private redis-servers (never the shared one: MONITOR, SCRIPT FLUSH and cluster mode are theirs alone).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { TenantQuotas } from '../api/quotas.js';
import { loadConfig } from '../common/config.js';
import { ClientWebhookStore } from '../state/client-webhooks.js';
import { DeviceProfileStore } from '../state/device-profiles.js';
import { HostRegistry } from '../state/hosts.js';
import { LoginSlots } from '../state/login-slots.js';
import { MessageStore } from '../state/messages.js';
import { OutboxStore } from '../state/outbox.js';
import { ProxyPool } from '../state/proxy-pool.js';
import { SessionStore } from '../state/sessions.js';
import { WorkerCommandStore } from '../state/worker-commands.js';
import { freePort, waitFor } from './helpers/stack.js';

const PROXY_A = 'socks5h://user:pw@127.0.0.1:1081';
const PROXY_B = 'socks5h://user:pw@127.0.0.1:1082';

async function privateRedis(extra: string[]): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wa-lua-redis-'));
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  const server: ChildProcess = spawn('redis-server', [...args, ...extra], { stdio: 'ignore' });
  await waitFor('a private redis-server', async () => {
    const probe = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => undefined); // not up yet: the next probe tries again
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } catch {
      return null;
    } finally {
      probe.disconnect();
    }
  });
  return {
    port,
    async stop() {
      if (server.exitCode === null) {
        const exited = new Promise((r) => server.once('exit', r));
        server.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const client = (port: number) => new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });

describe('Lua scripts: EVALSHA after the first call, re-sent after SCRIPT FLUSH', () => {
  let server: Awaited<ReturnType<typeof privateRedis>>;
  before(async () => {
    server = await privateRedis([]);
  });
  after(async () => server.stop());

  it('the source crosses once per connection; later calls are EVALSHA; a flushed cache costs one NOSCRIPT', async () => {
    // As createRedis (state/redis.ts) makes them: commands of one tick are batched in one pipeline.
    const redis = new Redis({
      port: server.port,
      host: '127.0.0.1',
      maxRetriesPerRequest: 1,
      enableAutoPipelining: true,
    });
    const monitorClient = client(server.port);
    let monitor: Redis | null = null;
    try {
      const addr = /addr=(\S+)/.exec(String(await redis.client('INFO')))![1]!;
      const seen: string[] = [];
      monitor = await monitorClient.monitor();
      monitor.on('monitor', (_time: string, args: string[], source: string) => {
        if (source === addr && /^eval/i.test(args[0] ?? '')) seen.push(String(args[0]).toLowerCase());
      });
      const pool = new ProxyPool(redis, 'evalsha:', { maxSessionsPerProxy: 4 });
      // A command batched in this tick before the script's first call: the batch must not swallow the script.
      await Promise.all([redis.get('evalsha:nothing'), pool.register(PROXY_A)]);
      const first = await pool.reserve({ sessionId: 's1' });
      const second = await pool.reserve({ sessionId: 's2' });
      assert.deepEqual([first.load, second.load], [1, 2]);
      await waitFor('the three script calls in MONITOR', () => seen.length >= 3);
      // register: eval (its first call); reserve: eval, then evalsha.
      assert.deepEqual(seen, ['eval', 'eval', 'evalsha']);

      seen.length = 0;
      await monitorClient.script('FLUSH'); // as a restarted Redis: the script cache is empty
      const third = await pool.reserve({ sessionId: 's3' });
      assert.deepEqual([third.proxyUrl, third.load], [PROXY_A, 3]);
      await waitFor('the reservation after the flush in MONITOR', () => seen.length >= 2);
      assert.deepEqual(seen, ['evalsha', 'eval'], 'NOSCRIPT, then the source once more');
    } finally {
      monitor?.disconnect();
      redis.disconnect();
      monitorClient.disconnect();
    }
  });
});

describe('Lua scripts: every key under the prefix (a one-node Redis Cluster)', () => {
  let server: Awaited<ReturnType<typeof privateRedis>>;
  let redis: Redis;
  before(async () => {
    const nodes = path.join(os.tmpdir(), `wa-lua-nodes-${process.pid}-${Date.now()}.conf`);
    server = await privateRedis(['--cluster-enabled', 'yes', '--cluster-config-file', nodes]);
    redis = client(server.port);
    await redis.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    await waitFor('the cluster to be ok', async () =>
      /cluster_state:ok/.test(String(await redis.call('CLUSTER', 'INFO'))),
    );
  });
  after(async () => {
    redis.disconnect();
    await server.stop();
  });

  /** Runs every script of the product once under `prefix`. */
  async function runEveryScript(prefix: string): Promise<void> {
    const config = loadConfig({
      API_KEY: 'a'.repeat(32),
      WEBHOOK_SECRET: 'b'.repeat(32),
      TEMPORAL_CODEC_KEYS: `k1:${'A'.repeat(43)}=`,
      REDIS_KEY_PREFIX: prefix,
    });
    const pool = new ProxyPool(redis, prefix, { maxSessionsPerProxy: 4 });
    await pool.register(PROXY_A, PROXY_B);
    assert.equal(await pool.freeHealthyProxies(), 2);
    await redis.sadd(`${prefix}sessions:all`, 's1', 's2');
    await pool.setSticky('491700000001', PROXY_B);
    assert.equal((await pool.reserve({ sessionId: 's1', phone: '491700000001' })).proxyUrl, PROXY_B);
    const tenantProxy = 'socks5h://t:pw@127.0.0.1:1083';
    assert.equal((await pool.reserve({ sessionId: 's2', override: tenantProxy, tenant: 't1' })).source, 'override');
    assert.equal(await pool.markBad(PROXY_A), true);
    assert.equal(await pool.markOk(PROXY_A), true);
    assert.deepEqual(await pool.recomputeCounters(), { [PROXY_A]: 0, [PROXY_B]: 1, [tenantProxy]: 1 });
    assert.equal(await pool.release('s2'), tenantProxy);
    await redis.set(`${prefix}counter:proxy:${PROXY_A}`, '0'); // a key named the old way
    assert.equal(await pool.migrateLegacyKeys(), 1);
    assert.equal(await pool.remove(PROXY_A), true);

    const profiles = new DeviceProfileStore(redis, prefix);
    await profiles.seed();
    const profile = await profiles.assign('s1', PROXY_B);
    assert.ok(profile);
    assert.equal(await profiles.retire(profile.id), 'in_use');

    const sessions = new SessionStore(redis, prefix);
    assert.equal(await sessions.claimPhone('491700000001', 's1'), null);
    await sessions.releasePhone('491700000001', 's1');
    assert.equal(await sessions.phoneOwner('491700000001'), null);
    await sessions.setWorkerGeneration('s1', 1);
    await sessions.update('s1', { status: 'connected', phone: '491700000001', connectedAt: 1 });
    assert.equal(typeof (await sessions.mirrorLoss('s1', 1, 'lost')), 'number');
    assert.equal(await sessions.mirrorReconnect('s1', 1, '491700000001', 'j'), null, 'the phone is not bound to it');

    const hosts = new HostRegistry(redis, prefix);
    await hosts.heartbeat({ hostId: 'h1', queue: 'q@h1', capacity: 2 });
    assert.equal((await hosts.place('s1', 60_000))?.hostId, 'h1');
    await hosts.heartbeat({ hostId: 'h2', queue: 'q@h2', capacity: 2 });
    await hosts.setDraining('h2', true);
    assert.equal(await hosts.move('s1', 'h1', { staleMs: 60_000 }), null, 'no other host that is not draining');
    assert.equal((await hosts.place('s2', 60_000))?.hostId, 'h1', 'a draining host takes no new session');
    await hosts.setDraining('h2', false);
    await redis.hset(`${prefix}session:s1`, 'host', 'h1');
    assert.equal((await hosts.move('s1', 'h1', { staleMs: 60_000 }))?.hostId, 'h2');
    assert.equal(await redis.hget(`${prefix}session:s1`, 'host'), 'h2', "the record's host follows");
    assert.equal((await hosts.move('s1', 'h1', { staleMs: 60_000 }))?.hostId, 'h2', 'idempotent');
    assert.equal((await hosts.move('s1', 'h2', { staleMs: 60_000, to: 'h1' }))?.hostId, 'h1', 'the way back');
    assert.deepEqual(await hosts.sessionsOn('h1'), ['s1', 's2']);
    assert.deepEqual(await hosts.sessionsOn('h2'), []);

    const outbox = new OutboxStore(redis, prefix);
    const messages = new MessageStore(redis, config.REDIS_KEY_PREFIX, config);
    await redis.hset(`${prefix}session:s1`, 'status', 'connected');
    const accepted = await messages.accept({
      tenant: 't1',
      sessionId: 's1',
      messageId: 'm1',
      to: '491700000002',
      text: 'hi',
      idempotencyKey: 'k1',
      fingerprint: 'f1',
    });
    assert.equal(accepted.kind, 'accepted');
    assert.equal((await messages.step('s1', 'step1', 10, outbox)).kind, 'released');
    const claimed = await outbox.claim('s1');
    assert.equal(claimed?.messageId, 'm1');
    assert.equal(await outbox.ack('s1', 'm1', 'WA1'), 'acked');
    assert.equal(await outbox.enqueue('s1', { messageId: 'm2', to: '491700000002', text: 'x' }), true);
    await outbox.claim('s1', 1);
    assert.equal(await outbox.release('s1', 'm2'), true);
    await outbox.claim('s1', 1);
    assert.ok((await outbox.reclaimExpired('s1')) >= 0);
    assert.equal(await outbox.nack('s1', 'm2', 'refused', true), 'failed');
    assert.equal((await messages.setStatus('m1', 'delivered', 'WA1', null))?.previous, 'queued');
    assert.equal(await messages.recordSendOutcome('s1', true), 0);
    await messages.maybePromote('s1');

    const hooks = new ClientWebhookStore(redis, prefix);
    await hooks.setConfig('t1', { url: 'http://127.0.0.1:1/h', secret: 's'.repeat(16), events: ['message.status'] });
    assert.ok(await hooks.enqueue('t1', 'message.status', {}));
    assert.equal((await hooks.claim(10, 1000)).length, 1);

    const commands = new WorkerCommandStore(redis, prefix);
    const cmd = await commands.enqueue('s1', { kind: 'check', phones: ['491700000002'] }, 0, Date.now() + 60_000);
    assert.equal((await commands.claim('s1'))?.id, cmd.id);
    await commands.release('s1', cmd);
    assert.equal((await commands.claim('s1'))?.id, cmd.id, 'a released command is claimed again');
    assert.deepEqual(await commands.admitLookups('s1', 2, 5), { ok: true });

    const logins = new LoginSlots(redis, prefix);
    const slots = { max: 1, leaseMs: 60_000 };
    assert.deepEqual(await logins.acquire('h1', 's1', slots, 1000), { granted: true });
    assert.deepEqual(await logins.acquire('h1', 's1', slots, 1001), { granted: true }, 'a retried ask renews');
    assert.deepEqual(await logins.acquire('h1', 's2', slots, 1002), { granted: false, retryAfterMs: 59_999 });
    assert.deepEqual(await logins.acquire('h1', 's2', slots, 61_002), { granted: true }, "an expired lease's slot");
    await logins.release('h1', 's2');
    assert.equal(await logins.inFlight('h1', 61_003), 0);

    const quotas = new TenantQuotas(redis, config);
    assert.deepEqual(await quotas.admitProvision('t1', 's9'), { ok: true });
    assert.equal((await quotas.admitFailover('t1', 's1')).ok, true);
  }

  it('with a hash-tag prefix every script runs: passed and derived keys share the slot', async () => {
    await runEveryScript('{lua1}:');
  });

  it('without one the cluster refuses a script whose keys are spread over slots', async () => {
    await assert.rejects(runEveryScript('lua2:'), /CROSSSLOT|same slot|non local key/);
  });
});
