import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseProxyUrl } from '../common/proxy-url.js';
import { replayRecorded } from './helpers/replay.js';
import { Stack, waitFor } from './helpers/stack.js';
import { proxyIdOf } from '../common/proxy-id.js';

describe('session lifecycle on Temporal (process runner, real worker, simulator, SOCKS5)', () => {
  let stack: Stack;
  before(async () => {
    stack = await new Stack({ proxies: 3 }).start();
  });
  after(async () => stack?.stop());

  it('provision → QR → scan → connected, with the sticky binding and counters in Redis', async () => {
    const t0 = Date.now();
    const res = await stack.call('POST', '/api/sessions/provision', { sessionId: 'alpha', phone: '15550001001' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.sessionId, 'alpha');
    assert.match(res.body.proxy, /^127\.0\.0\.1:\d+$/, 'proxy shown as host:port, no credentials');
    await stack.scan('alpha', '15550001001');
    const tQr = Date.now();
    const s = await stack.waitForStatus('alpha', 'connected');
    assert.equal(s.phone, '15550001001');
    const k = (suffix: string) => `${stack.prefix}${suffix}`;
    const sticky = await stack.redis.get(k('phone:proxy:15550001001'));
    assert.ok(sticky && parseProxyUrl(sticky).endpoint === s.proxy, 'sticky binding phone → proxy');
    assert.equal(await stack.redis.get(k('session:temp:alpha')), null, 'temporary binding removed');
    assert.equal(await stack.redis.sismember(k('sessions:active'), 'alpha'), 1);
    assert.equal(await stack.redis.hget(k('session:alpha'), 'status'), 'connected');
    assert.equal(await stack.redis.get(k(`counter:proxy:${proxyIdOf(sticky)}`)), '1');
    const authDir = path.join(stack.sessionsDir, 'alpha');
    assert.ok(existsSync(path.join(authDir, 'creds.json')));
    assert.equal(statSync(authDir).mode & 0o777, 0o700);
    console.log(`provision→connected ${Date.now() - t0} ms (QR visible after ${tQr - t0} ms)`);
  });

  it('restart through the API: connected again with no QR and the same source IP', async () => {
    const before = stack.sim.connections('15550001001').length;
    const qrBefore = Number(await stack.redis.hget(`${stack.prefix}session:alpha`, 'qrCount'));
    const r = await stack.call('POST', '/api/sessions/alpha/restart');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitFor('a new login', () => stack.sim.connections('15550001001').length > before, 30_000);
    await stack.waitForStatus('alpha', 'connected');
    assert.equal(Number(await stack.redis.hget(`${stack.prefix}session:alpha`, 'qrCount')), qrBefore, 'no new QR');
    assert.equal(stack.sim.sourceAddresses('15550001001').length, 1, 'same source address');
  });

  it('kill the session proxy → failover to a new proxy without a scan, one IP change', async () => {
    const s = await stack.status('alpha');
    const old = stack.proxies.find((p) => `${p.host}:${p.port}` === s.proxy)!;
    const t0 = Date.now();
    await old.close();
    const after = await waitFor(
      'failover to another proxy',
      async () => {
        const st = await stack.status('alpha');
        return st.status === 'connected' && st.proxy !== s.proxy ? st : null;
      },
      40_000,
      150,
    );
    console.log(`failover: proxy killed → connected on the new proxy in ${Date.now() - t0} ms`);
    const loads = await stack.proxyLoads();
    assert.equal(loads[s.proxy], 0, 'old proxy slot released');
    assert.equal(loads[after.proxy], 1, 'new proxy slot taken');
    const proxies = (await stack.call('GET', '/api/v1/proxies')).body.proxies as Array<{
      endpoint: string;
      status: string;
    }>;
    assert.equal(proxies.find((p) => p.endpoint === s.proxy)!.status, 'BAD');
    const sticky = await stack.redis.get(`${stack.prefix}phone:proxy:15550001001`);
    assert.equal(parseProxyUrl(sticky!).endpoint, after.proxy, 'sticky binding moved');
    assert.equal(stack.sim.sourceAddresses('15550001001').length, 2, 'exactly one IP change');
    assert.equal(after.failovers, 1);
  });

  it('phone unlinks → logged_out, auth files gone; a new provision shows a QR', async () => {
    stack.sim.fault('15550001001', 'unlink');
    await stack.waitForStatus('alpha', 'logged_out');
    assert.ok(!existsSync(path.join(stack.sessionsDir, 'alpha')), 'auth folder removed');
    const loads = await stack.proxyLoads();
    assert.ok(
      Object.values(loads).every((n) => n === 0),
      `all slots free: ${JSON.stringify(loads)}`,
    );
    const again = await stack.call('POST', '/api/sessions/provision', { sessionId: 'alpha' });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    await waitFor('a new QR', async () => (await stack.call('GET', '/api/sessions/alpha/qr')).status === 200, 30_000);
    const del = await stack.call('DELETE', '/api/sessions/alpha');
    assert.equal(del.status, 200, JSON.stringify(del.body));
    assert.equal((await stack.call('GET', '/api/sessions/alpha/status')).status, 404);
  });

  it('hung worker (SIGSTOP) → the watchdog restarts it within PING_TIMEOUT + WATCHDOG_INTERVAL', async () => {
    const res = await stack.call('POST', '/api/sessions/provision', { sessionId: 'hang', phone: '15550001002' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await stack.scan('hang', '15550001002');
    await stack.waitForStatus('hang', 'connected');
    const runDir = stack.runDir();
    const { pid } = JSON.parse((await import('node:fs')).readFileSync(path.join(runDir, 'hang.json'), 'utf8')) as {
      pid: number;
    };
    const t0 = Date.now();
    process.kill(pid, 'SIGSTOP');
    await waitFor(
      'a watchdog restart',
      async () => Number(await stack.redis.hget(`${stack.prefix}session:hang`, 'watchdogRestarts')) >= 1,
      30_000,
    );
    const detected = Date.now() - t0;
    await stack.waitForStatus('hang', 'connected', 30_000);
    console.log(`watchdog: hung worker restarted after ${detected} ms (bound ${6000 + 1000} ms)`);
    assert.ok(detected <= 6000 + 1000 + 2000, `restart within the bound (took ${detected} ms)`);
    const files = readdirSync(runDir);
    assert.ok(files.includes('hang.json'));
  });

  it('replays the recorded histories of these sessions with the current workflow code (determinism guard)', async () => {
    const ids: string[] = [];
    for await (const wf of stack.temporal.workflow.list({ query: `TaskQueue = '${stack.taskQueue}'` })) {
      if (wf.type === 'sessionWorkflow' || wf.type === 'failoverWorkflow') ids.push(wf.workflowId);
    }
    assert.ok(ids.length >= 3, `histories to replay: ${ids.join(', ')}`);
    assert.equal(await replayRecorded([...new Set(ids)]), new Set(ids).size);
  });
});
