/**
 * A host reboot: every worker and the orchestrator die at once (kill -9). The new orchestrator brings every session
 * back without a QR, and the workers log in a few at a time (MAX_CONCURRENT_LOGINS), as the simulator — standing in
 * for WhatsApp, which sees each login — records.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Stack, waitFor } from './helpers/stack.js';
import { processAlive } from './helpers/processes.js';

const MAX_LOGINS = 2;
const SESSIONS = Array.from({ length: 6 }, (_, i) => ({ id: `fleet${i}`, phone: `1555001300${i}` }));

describe('fleet restart: every worker and the orchestrator killed at once', () => {
  let stack: Stack;
  before(async () => {
    stack = await new Stack({ proxies: 3, extraEnv: { MAX_CONCURRENT_LOGINS: String(MAX_LOGINS) } }).start();
  });
  after(async () => stack?.stop());

  it(`every session logs in again without a QR, never more than ${MAX_LOGINS} logins in flight`, async () => {
    for (const s of SESSIONS) {
      const res = await stack.call('POST', '/api/sessions/provision', { sessionId: s.id, phone: s.phone });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      await stack.scan(s.id, s.phone, 60_000);
    }
    for (const s of SESSIONS) await stack.waitForStatus(s.id, 'connected', 60_000);

    // Logins that take a while, as WhatsApp's do under load: a storm would show as many at once.
    stack.sim.loginDelayMs = 1500;
    let qrsShown = 0;
    stack.sim.events.on('qr-shown', () => qrsShown++);
    await stack.killOrchestrator('SIGKILL');
    const pids = readdirSync(stack.runDir())
      .filter((f) => f.endsWith('.json'))
      .map((f) => (JSON.parse(readFileSync(path.join(stack.runDir(), f), 'utf8')) as { pid: number }).pid);
    assert.equal(pids.length, SESSIONS.length);
    for (const pid of pids) process.kill(-pid, 'SIGKILL');
    await waitFor('every worker to be gone', () => pids.every((pid) => !processAlive(pid)), 10_000);
    const rebootAt = Date.now();
    stack.sim.resetLoginConcurrency();

    await stack.startOrchestrator();
    const relogged = () =>
      SESSIONS.filter((s) => stack.sim.connections(s.phone).some((c) => c.kind === 'login' && c.at >= rebootAt));
    await waitFor(
      `all ${SESSIONS.length} sessions to log in again`,
      () => relogged().length === SESSIONS.length,
      120_000,
    );
    for (const s of SESSIONS) await stack.waitForStatus(s.id, 'connected', 60_000);

    const { max } = stack.sim.loginConcurrency();
    assert.ok(max <= MAX_LOGINS, `${max} logins in flight at once (limit ${MAX_LOGINS})`);
    assert.ok(max >= 1);
    assert.equal(qrsShown, 0, 'no session showed a QR');
    const loads = Object.values(await stack.proxyLoads());
    assert.equal(
      loads.reduce((a, b) => a + b, 0),
      SESSIONS.length,
      `one slot per session: ${JSON.stringify(loads)}`,
    );
    assert.ok(
      loads.every((l) => l <= 4),
      JSON.stringify(loads),
    );
  });
});
