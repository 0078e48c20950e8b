import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ProcessRunner } from '../activities/runner/process-runner.js';
import { waitFor } from './helpers/stack.js';
import { processAlive } from './helpers/processes.js';

/** A process that looks like a worker for `sessionId` on `sessionsDir`, started behind the runner's back. */
function stray(sessionId: string, sessionsDir: string) {
  const child = spawn('sleep', ['60'], {
    env: { PATH: process.env.PATH, SESSION_ID: sessionId, SESSIONS_DIR: sessionsDir },
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  return child.pid!;
}

describe('process runner', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'runner-'));
  const sessionsDir = path.join(dir, 'sessions');
  const runner = new ProcessRunner({
    runDir: path.join(dir, 'run'),
    logDir: path.join(dir, 'logs'),
    command: ['sleep', '60'],
    cwd: dir,
    stopGraceMs: 500,
  });
  const spawned: number[] = [];
  after(async () => {
    for (const pid of spawned) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    await runner.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a worker no pid file knows about (same session, same auth folder) is killed before a new one starts', async () => {
    const orphan = stray('s1', sessionsDir);
    const elsewhere = stray('s1', path.join(dir, 'other-deployment'));
    spawned.push(orphan, elsewhere);
    const env = { SESSION_ID: 's1', SESSIONS_DIR: sessionsDir };
    const info = await runner.start({ sessionId: 's1', proxyUrl: 'socks5h://127.0.0.1:1080', env });
    spawned.push(info.pid!);
    assert.ok(info.running);
    await waitFor('the orphan to die', () => !processAlive(orphan), 5000);
    assert.ok(processAlive(elsewhere), "another deployment's worker with the same id is not ours");
    // Idempotent: a second start keeps the worker it started.
    const again = await runner.start({ sessionId: 's1', proxyUrl: 'socks5h://127.0.0.1:1080', env });
    assert.equal(again.pid, info.pid);
    assert.ok(processAlive(info.pid!));
    await runner.stop('s1', { remove: true });
    assert.ok(!processAlive(info.pid!));
  });
});
