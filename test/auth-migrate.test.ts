/**
 * scripts/auth-migrate.ts on a real stack (orchestrator, API, Temporal, Redis, PostgreSQL, Baileys workers, the
 * simulator): 3 paired sessions move file → postgres → file; after each step the workers are started with the new
 * AUTH_STORE and every session logs in again WITHOUT a QR (no second registration at the simulator). Re-running a
 * step changes nothing (`done`), and a step interrupted half-way is finished by the next run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parseAuthFileName } from '../common/auth-keys.js';
import { ProcessRunner } from '../activities/runner/process-runner.js';
import { PgAuthStore } from '../state/auth-pg.js';
import { AUTH_SECRET, authDatabaseUrl } from './helpers/auth-db.js';
import { ROOT, Stack, waitFor } from './helpers/stack.js';

interface Report {
  sessions: Array<{ sessionId: string; outcome: string; entries?: number; error?: string }>;
}

describe('auth-migrate: file → postgres → file, each step without a QR', () => {
  let stack: Stack;
  let db: pg.Pool;
  let store: PgAuthStore;
  const url = authDatabaseUrl();
  const phones = ['15550008101', '15550008102', '15550008103'];
  let ids: string[] = [];

  before(async () => {
    db = new pg.Pool({ connectionString: url, max: 2 });
    store = new PgAuthStore(db, AUTH_SECRET);
    // The stack starts on the file store, so nothing else has created the tables on a fresh database.
    await store.migrate();
    stack = await new Stack({
      proxies: 2,
      extraEnv: { AUTH_STORE: 'file', AUTH_DATABASE_URL: url, AUTH_STORE_SECRET: AUTH_SECRET },
    }).start();
    ids = phones.map((_, i) => `mig${i}-${stack.id}`);
  });
  after(async () => {
    await stack?.stop();
    for (const id of ids) await store?.deleteSession(id).catch(() => undefined);
    await db?.end();
  });

  const keyFiles = (id: string) =>
    readdirSync(path.join(stack.sessionsDir, id)).filter((n) => parseAuthFileName(n) !== null);
  const registrations = (phone: string) => stack.sim.connections(phone).filter((c) => c.kind === 'registration').length;
  const logins = (phone: string) => stack.sim.connections(phone).filter((c) => c.kind === 'login').length;

  function runTool(to: 'file' | 'postgres', sessions: string[] = ids): Report {
    const res = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(ROOT, 'scripts/auth-migrate.ts'),
        '--to',
        to,
        '--json',
        // The test stops every worker itself before it runs the tool.
        '--idle-ms',
        '0',
        ...sessions.flatMap((s) => ['--session', s]),
      ],
      { cwd: ROOT, env: { ...stack.env }, encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(res.status, 0, `auth-migrate --to ${to} failed:\n${res.stdout}\n${res.stderr}`);
    return JSON.parse(res.stdout.trim().split('\n').at(-1)!) as Report;
  }

  const outcomes = (r: Report) => Object.fromEntries(r.sessions.map((s) => [s.sessionId, s.outcome]));

  /** Stops the orchestrator, the API and every worker; migrates; starts them with the new AUTH_STORE. */
  async function switchStore(to: 'file' | 'postgres', beforeStart?: () => Promise<void>) {
    await stack.killOrchestrator('SIGTERM');
    await stack.killApi('SIGTERM');
    const runner = new ProcessRunner({
      runDir: stack.runDir(),
      logDir: path.join(stack.dataDir, 'logs', 'workers'),
      command: ['true'],
      cwd: ROOT,
      stopGraceMs: 8000,
    });
    for (const id of ids) await runner.stop(id); // kept: the orchestrator starts it again at its start
    await runner.close();
    const loginsBefore = phones.map(logins);

    const report = runTool(to);
    assert.deepEqual(outcomes(report), Object.fromEntries(ids.map((id) => [id, 'moved'])), JSON.stringify(report));
    for (const s of report.sessions) assert.ok((s.entries ?? 0) > 10, `${s.sessionId}: ${s.entries} entries`);
    // Idempotent: a second run finds every session done.
    assert.deepEqual(outcomes(runTool(to)), Object.fromEntries(ids.map((id) => [id, 'done'])));
    await beforeStart?.();

    stack.env.AUTH_STORE = to;
    await stack.startOrchestrator();
    await stack.startApi();
    for (const [i, id] of ids.entries()) {
      await waitFor(
        `${id} to log in again on ${to}`,
        () => logins(phones[i]!) > loginsBefore[i]! && stack.sim.phones().find((p) => p.phone === phones[i])?.online,
        90_000,
        150,
      );
      const st = await stack.waitForStatus(id, 'connected', 60_000);
      assert.equal(st.phone, phones[i]);
      assert.equal(registrations(phones[i]!), 1, `${id}: no new registration (no QR) after the move to ${to}`);
    }
  }

  it('moves 3 paired sessions file → postgres → file; each logs in again without a QR after each step', async () => {
    for (const [i, id] of ids.entries()) {
      const res = await stack.call('POST', '/api/sessions/provision', { sessionId: id, phone: phones[i] });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      await stack.scan(id, phones[i]!, 60_000);
      await stack.waitForStatus(id, 'connected', 60_000);
      // A contact, so each session has a Signal session key besides its creds and pre-keys.
      await stack.sim.sendInbound(phones[i]!, `1555000920${i}`, 'hello');
    }
    await waitFor('Signal sessions on disk', () =>
      ids.every((id) => keyFiles(id).some((f) => f.startsWith('session-'))),
    );
    const fileSets = Object.fromEntries(ids.map((id) => [id, keyFiles(id).sort()]));

    // file → postgres. One session was half-done before (copied, never switched): it is copied again.
    await store.replaceAll(ids[0]!, [{ category: 'creds', keyId: 'creds', value: Buffer.from('{"stale":true}') }]);
    await switchStore('postgres', async () => {
      for (const id of ids) {
        assert.deepEqual(keyFiles(id), [], `${id}: no key left in its folder`);
        assert.ok(await store.hasCreds(id));
      }
      // An interrupted switch (creds removed, a key file left behind) is finished by the next run.
      writeFileSync(path.join(stack.sessionsDir, ids[1]!, 'pre-key-999999.json'), '{}');
      assert.equal(outcomes(runTool('postgres', [ids[1]!]))[ids[1]!], 'done');
      assert.deepEqual(keyFiles(ids[1]!), []);
    });
    for (const id of ids) assert.equal(keyFiles(id).length, 0, `${id}: the postgres worker wrote no key file`);

    // postgres → file: every entry back as the same files (plus what the postgres workers added meanwhile).
    await switchStore('file', async () => {
      for (const id of ids) {
        assert.equal((await store.readAll(id)).length, 0, `${id}: no entry left in PostgreSQL`);
        const files = keyFiles(id);
        assert.ok(files.includes('creds.json'));
        for (const f of fileSets[id]!) if (!f.startsWith('pre-key-')) assert.ok(files.includes(f), `${id}: ${f}`);
      }
    });
    for (const id of ids) assert.ok(keyFiles(id).includes('creds.json'));
  });
});
