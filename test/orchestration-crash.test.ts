import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCounterMonitor } from './helpers/counter-monitor.js';
import { Stack, waitFor } from './helpers/stack.js';
import { proxyIdOf } from '../common/proxy-id.js';

/** Worker processes running for a session, found by their environment (not by our own bookkeeping). */
function workerProcesses(sessionId: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (environ.includes(`SESSION_ID=${sessionId}`) && /wa-worker/.test(cmdline)) pids.push(Number(entry));
    } catch {
      /* gone or not ours */
    }
  }
  return pids;
}

describe('orchestrator crash and concurrent provisioning', () => {
  let stack: Stack;
  before(async () => {
    stack = await new Stack({ proxies: 10, maxSessionsPerProxy: 4 }).start();
  });
  after(async () => stack?.stop());

  it('kill -9 the orchestrator in the middle of a provision: the session completes, no duplicate worker, no leaked slot', async () => {
    const provision = stack.call('POST', '/api/sessions/provision', { sessionId: 'crash1', phone: '15550002001' });
    // Kill as soon as the workflow has reserved its slot, before the worker is confirmed running.
    await waitFor(
      'the reservation',
      async () => (await stack.redis.get(`${stack.prefix}session:slot:crash1`)) !== null,
      20_000,
      5,
    );
    await stack.killOrchestrator('SIGKILL');
    // The API call waits for the workflow; it completes once an orchestrator polls the task queue again.
    await stack.startOrchestrator();
    const res = await provision;
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await stack.scan('crash1', '15550002001', 60_000);
    await stack.waitForStatus('crash1', 'connected', 60_000);
    const pids = workerProcesses('crash1');
    const describe = (pid: number) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ');
        return `${pid} (parent ${stat[3]}): ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')}`;
      } catch {
        return `${pid} gone`;
      }
    };
    assert.equal(pids.length, 1, `exactly one worker process: ${pids.map(describe).join(' | ')}`);
    const loads = Object.values(await stack.proxyLoads());
    assert.equal(
      loads.reduce((a, b) => a + b, 0),
      1,
      `one slot in use: ${JSON.stringify(loads)}`,
    );
    assert.equal((await stack.call('DELETE', '/api/sessions/crash1')).status, 200);
    await waitFor('the worker to stop', () => workerProcesses('crash1').length === 0, 20_000);
  });

  it('60 concurrent provisions on 10 proxies: 40 sessions, 20 × 503, never more than 4 per proxy', async () => {
    const proxies = (await stack.call('GET', '/api/v1/proxies')).body.proxies as Array<{ id: string }>;
    assert.equal(proxies.length, 10);
    const urls = await stack.redis.smembers(`${stack.prefix}proxies:all`);
    const monitor = startCounterMonitor(
      process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      urls.map((u) => `${stack.prefix}counter:proxy:${proxyIdOf(u)}`),
    );
    await monitor.waitForSamples(2);
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => stack.call('POST', '/api/sessions/provision', { sessionId: `bulk${i}` })),
    );
    const { maxSeen, samples } = await monitor.stop();
    const created = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status === 503);
    const unhandled = readFileSync(stack.logPath('api'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('unhandled API error'));
    const codes = `${JSON.stringify(results.map((r) => (r.status === 201 ? 201 : `${r.status} ${r.body?.error?.code}`)))} ${unhandled.join('\n')}`;
    assert.equal(created.length, 40, `statuses: ${codes}`);
    assert.equal(refused.length, 20, `statuses: ${codes}`);
    for (const r of refused) {
      assert.equal(r.body.error.code, 'NO_PROXY_CAPACITY');
      assert.match(r.body.error.message, /no proxy capacity/);
    }
    assert.ok(maxSeen <= 4, `a proxy counter reached ${maxSeen} (${samples} samples)`);
    const loads = Object.values(await stack.proxyLoads());
    assert.deepEqual(loads, Array(10).fill(4));
    // Refused sessions left nothing behind.
    const refusedIds = results.flatMap((r, i) => (r.status === 503 ? [`bulk${i}`] : []));
    assert.equal(refusedIds.length, 20);
    for (const id of refusedIds) {
      assert.equal((await stack.call('GET', `/api/sessions/${id}/status`)).status, 404, `${id} is unknown`);
      assert.equal(await stack.redis.exists(`${stack.prefix}session:${id}`), 0, `${id}: no Redis record`);
      assert.equal(await stack.redis.get(`${stack.prefix}session:slot:${id}`), null, `${id}: no slot`);
      assert.equal(await stack.redis.sismember(`${stack.prefix}sessions:all`, id), 0, `${id}: not listed`);
      assert.ok(!existsSync(path.join(stack.runDir(), `${id}.json`)), `${id}: no worker`);
    }
    const listed = (await stack.call('GET', '/api/v1/dashboard/sessions')).body.sessions as unknown[];
    assert.equal(listed.length, 40);

    // Deleting them all gives every slot back.
    await Promise.all(created.map((r) => stack.call('DELETE', `/api/sessions/${r.body.sessionId}`)));
    assert.deepEqual(Object.values(await stack.proxyLoads()), Array(10).fill(0));
  });
});
