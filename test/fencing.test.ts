/**
 * Fencing by worker generation, end to end (real orchestrator, API, Temporal, Redis, Baileys in the real wa-worker,
 * SOCKS5 proxies, the simulator; process runner):
 *  - a worker whose session folder has been fenced by a newer start writes no key (its next key write is refused,
 *    nothing in the folder changes) and exits; the runner leaves it down and the session comes back as the new
 *    generation, without a QR;
 *  - a restarted session's old worker, kept alive on purpose outside the runner's reach, is refused by the API and
 *    exits, while the session stays connected on its new worker.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WORKER_FENCE_FILE, writeWorkerFence } from '../common/worker-fence.js';
import { Stack, waitFor } from './helpers/stack.js';
import { WorkerProcess } from './helpers/worker-process.js';
import { processAlive } from './helpers/processes.js';

interface PidRecord {
  pid: number;
  env: Record<string, string>;
}

/** Generations of the worker processes running for a session of `sessionsDir`, found by their environment. */
function runningGenerations(sessionId: string, sessionsDir: string): string[] {
  const gens: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (!environ.includes(`SESSION_ID=${sessionId}`) || !environ.includes(`SESSIONS_DIR=${sessionsDir}`)) continue;
      if (!/wa-worker/.test(readFileSync(`/proc/${entry}/cmdline`, 'utf8'))) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue;
      gens.push(environ.find((e) => e.startsWith('WORKER_GENERATION='))?.split('=')[1] ?? '?');
    } catch {
      /* gone */
    }
  }
  return gens;
}

/** Name → content hash of the auth files (the keys). */
function authSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    // Dot files are the worker's own bookkeeping; `.tmp-` files are writes that never landed (removed at the next
    // start): a fenced write leaves its temp file behind, never the target.
    if (name.startsWith('.') || name.includes('.tmp-')) continue;
    out[name] = createHash('sha256')
      .update(readFileSync(path.join(dir, name)))
      .digest('hex');
  }
  return out;
}

describe('fencing by worker generation', () => {
  let stack: Stack;
  const zombies: WorkerProcess[] = [];
  before(async () => {
    stack = await new Stack({
      proxies: 2,
      extraEnv: process.env.FENCE_DEBUG ? { WORKER_ENV_LOG_LEVEL: 'debug' } : {},
    }).start();
  });
  after(async () => {
    for (const z of zombies) if (z.running) z.child.kill('SIGKILL');
    await stack?.stop();
  });

  const pidRecord = (sessionId: string) =>
    JSON.parse(readFileSync(path.join(stack.runDir(), `${sessionId}.json`), 'utf8')) as PidRecord;

  async function connectedSession(sessionId: string, phone: string) {
    const res = await stack.call('POST', '/api/sessions/provision', { sessionId, phone });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await stack.scan(sessionId, phone, 60_000);
    await stack.waitForStatus(sessionId, 'connected', 60_000);
    return path.join(stack.sessionsDir, sessionId);
  }

  it('a fenced worker writes no key, exits, stays down; the session comes back as the next generation', async () => {
    const dir = await connectedSession('fence1', '15550007001');
    const first = pidRecord('fence1');
    assert.equal(first.env.WORKER_GENERATION, '1');
    assert.equal(readFileSync(path.join(dir, WORKER_FENCE_FILE), 'utf8').trim(), '1', 'the runner fenced the start');
    // Before the fence, a first contact's message is stored like any other (a Signal session file appears).
    await stack.sim.sendInbound('15550007001', '15550009901', 'before the fence');
    await waitFor(
      'the Signal session of the first contact',
      () => Object.keys(authSnapshot(dir)).some((n) => n.startsWith('session-')),
      20_000,
    );

    // A newer start of this session fences the folder (what the runner does before it starts generation 2).
    writeWorkerFence(dir, 2);
    const snapshot = authSnapshot(dir);
    // A new contact: decrypting its first message makes the worker store a new Signal session (a key write).
    await stack.sim.sendInbound('15550007001', '15550009902', 'after the fence');
    await waitFor('the fenced worker to exit', () => !processAlive(first.pid), 30_000);
    const log = readFileSync(path.join(stack.dataDir, 'logs', 'workers', 'fence1.log'), 'utf8');
    assert.match(log, /replaced: the session folder is fenced at generation 2, this worker is generation 1/);
    const after = authSnapshot(dir);
    const changed = [...new Set([...Object.keys(after), ...Object.keys(snapshot)])].filter(
      (n) => after[n] !== snapshot[n],
    );
    assert.deepEqual(changed, [], 'the fenced worker changed no auth file');
    assert.ok(
      readdirSync(dir).some((n) => n.includes('.tmp-')),
      'it did try to write (its refused write left a temp file, not the key)',
    );

    // The watchdog (no more pings) restarts the worker as generation 2; generation 1 is never started again.
    await waitFor(
      'generation 2 to run',
      () => {
        const gens = runningGenerations('fence1', stack.sessionsDir);
        assert.ok(!gens.includes('1'), `generation 1 was started again: ${gens.join(',')}`);
        return pidRecord('fence1').env.WORKER_GENERATION === '2' && gens.includes('2');
      },
      60_000,
      100,
    );
    const st = await stack.waitForStatus('fence1', 'connected', 60_000);
    assert.equal(st.phone, '15550007001', 'reconnected as the same device, without a QR');
  });

  it("a restarted session's old worker, kept alive on purpose, is refused and exits; the new one stays", async () => {
    const dir = await connectedSession('fence2', '15550007002');
    const old = pidRecord('fence2');
    assert.equal(old.env.WORKER_GENERATION, '1');
    // Take the worker out of the runner's hands without the workflow knowing: the runner records it as stopped…
    const runFile = path.join(stack.runDir(), 'fence2.json');
    writeFileSync(runFile, JSON.stringify({ ...old, stopped: true }), { mode: 0o600 });
    process.kill(-old.pid, 'SIGTERM');
    await waitFor('the runner-started worker to stop', () => !processAlive(old.pid), 20_000);
    // …and the same generation runs on, from a path the runner does not recognise as its session folder (another
    // mount of the same folder): the "old worker kept alive" of a lost host or a half-finished stop.
    const alias = path.join(stack.dataDir, 'alias-sessions');
    symlinkSync(stack.sessionsDir, alias);
    const zombie = WorkerProcess.start({ ...old.env, SESSIONS_DIR: alias, HEALTH_INTERVAL_MS: '300' });
    zombies.push(zombie);
    await waitFor(
      'the kept-alive generation 1 to be connected',
      () => {
        try {
          const h = JSON.parse(readFileSync(path.join(dir, '.health.json'), 'utf8')) as { pid: number; state: string };
          return h.pid === zombie.pid && h.state === 'open';
        } catch {
          return false;
        }
      },
      60_000,
    );

    const restarted = await stack.call('POST', '/api/sessions/fence2/restart');
    assert.equal(restarted.status, 200, JSON.stringify(restarted.body));
    const exit = await Promise.race([
      zombie.exited,
      new Promise<null>((r) => setTimeout(() => r(null), 60_000).unref()),
    ]);
    assert.ok(exit, `the old worker did not exit:\n${zombie.tail()}`);
    assert.equal(exit.code, 3, `exit code 3 (replaced):\n${zombie.tail()}`);
    assert.match(zombie.output.join('\n'), /replaced: /);

    const st = await stack.waitForStatus('fence2', 'connected', 60_000);
    assert.equal(st.phone, '15550007002');
    const current = pidRecord('fence2');
    assert.equal(current.env.WORKER_GENERATION, '2');
    assert.ok(processAlive(current.pid), 'generation 2 runs');
    assert.deepEqual(runningGenerations('fence2', stack.sessionsDir), ['2'], 'only generation 2 runs');
    assert.equal(readFileSync(path.join(dir, WORKER_FENCE_FILE), 'utf8').trim(), '2');
  });
});
