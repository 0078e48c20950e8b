/**
 * AUTH_STORE=postgres end to end (real orchestrator, API, Temporal, Redis, PostgreSQL from scripts/services.sh,
 * Baileys in the real wa-worker, SOCKS5 proxies, the simulator; process runner):
 *  - a session pairs; its session folder holds no key; its entries in PostgreSQL are encrypted (no plaintext bytes);
 *  - its worker killed with SIGKILL comes back and logs in WITHOUT a QR (the keys came from PostgreSQL);
 *  - a signed auth call of an older generation is refused (409 STALE_GENERATION), by the API and by the store's
 *    own fence; session A's key cannot read session B's entries;
 *  - deleting the session removes its entries.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { CREDS_CATEGORY, parseAuthFileName } from '../common/auth-keys.js';
import { verifyArchive } from '../common/backup-archive.js';
import { signedRequestHeaders } from '../common/events.js';
import { sessionWebhookSecret } from '../common/session.js';
import { PgAuthStore, StaleAuthGenerationError } from '../state/auth-pg.js';
import { SessionStore } from '../state/sessions.js';
import { useRemoteAuthState } from '../wa-worker/auth-remote.js';
import { SignedClient } from '../wa-worker/signed-post.js';
import { AUTH_SECRET, authDatabaseUrl } from './helpers/auth-db.js';
import { terminateDispatchers } from './helpers/messaging.js';
import { Stack, waitFor, WEBHOOK_SECRET } from './helpers/stack.js';
import { processAlive } from './helpers/processes.js';

interface PidRecord {
  pid: number;
  env: Record<string, string>;
}

describe('auth state in PostgreSQL (AUTH_STORE=postgres)', () => {
  let stack: Stack;
  let db: pg.Pool;
  let store: PgAuthStore;
  const url = authDatabaseUrl();

  before(async () => {
    db = new pg.Pool({ connectionString: url, max: 2 });
    store = new PgAuthStore(db, AUTH_SECRET);
    stack = new Stack({
      proxies: 2,
      extraEnv: { AUTH_STORE: 'postgres', AUTH_DATABASE_URL: url, AUTH_STORE_SECRET: AUTH_SECRET },
    });
    stack.opts.extraEnv!.BACKUPS_DIR = path.join(stack.dataDir, 'backups');
    await stack.start();
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [sid('pga'), sid('pgb'), sid('pgd')]);
    await stack?.stop();
    await db?.end();
  });

  const sid = (name: string) => `${name}-${stack.id}`;
  const pidRecord = (sessionId: string) =>
    JSON.parse(readFileSync(path.join(stack.runDir(), `${sessionId}.json`), 'utf8')) as PidRecord;
  const rawRows = async (sessionId: string) =>
    (
      await db.query<{ category: string; key_id: string; value: Buffer }>(
        'SELECT category, key_id, value FROM wa_auth_entries WHERE session_id = $1',
        [sessionId],
      )
    ).rows;

  async function connectedSession(sessionId: string, phone: string) {
    const res = await stack.call('POST', '/api/sessions/provision', { sessionId, phone });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await stack.scan(sessionId, phone, 60_000);
    await stack.waitForStatus(sessionId, 'connected', 60_000);
  }

  /** A signed auth-state call as the worker makes it. */
  async function authCall(
    signAs: string,
    pathSession: string,
    op: 'read' | 'write',
    payload: object,
    generation?: number,
  ) {
    const body = JSON.stringify(payload);
    const urlPath = `/api/worker/sessions/${pathSession}/auth/${op}`;
    const res = await fetch(`${stack.apiUrl}${urlPath}`, {
      method: 'POST',
      headers: signedRequestHeaders(
        sessionWebhookSecret(WEBHOOK_SECRET, signAs),
        'POST',
        urlPath,
        body,
        undefined,
        undefined,
        generation,
      ),
      body,
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as any) : null };
  }

  it('pairs with its keys in PostgreSQL only, encrypted; a killed worker logs in again without a QR', async () => {
    const a = sid('pga');
    const phone = '15550008001';
    await connectedSession(a, phone);
    const dir = path.join(stack.sessionsDir, a);
    const keyFiles = readdirSync(dir).filter((n) => parseAuthFileName(n) !== null);
    assert.deepEqual(keyFiles, [], 'the session folder holds no key');

    const rows = await waitFor('the session entries in PostgreSQL', async () => {
      const r = await rawRows(a);
      return r.some((e) => e.category === CREDS_CATEGORY) && r.some((e) => e.category === 'pre-key') ? r : null;
    });
    // Plaintext that must not appear in any stored value: the creds' JSON and its raw key bytes.
    const creds = (await store.readAll(a)).find((e) => e.category === CREDS_CATEGORY)!;
    const credsText = creds.value!.toString('utf8');
    const parsed = JSON.parse(credsText) as { noiseKey: { private: { data: string } }; registrationId: number };
    const noisePrivate = Buffer.from(parsed.noiseKey.private.data, 'base64');
    assert.equal(noisePrivate.length, 32);
    for (const row of rows) {
      assert.equal(row.value.includes(noisePrivate), false, `${row.category} holds the raw noise key`);
      assert.equal(row.value.includes(Buffer.from(parsed.noiseKey.private.data)), false, 'base64 noise key');
      assert.equal(row.value.includes(Buffer.from('registrationId')), false, `${row.category} holds plaintext JSON`);
      assert.equal(row.value.includes(Buffer.from('"type":"Buffer"')), false, `${row.category} holds plaintext JSON`);
    }
    // Another session's key (or another secret) cannot decrypt them.
    const other = new PgAuthStore(db, AUTH_SECRET);
    const credsRow = rows.find((r) => r.category === CREDS_CATEGORY)!;
    assert.throws(() => other.decrypt(`${a}-x`, credsRow.category, credsRow.key_id, credsRow.value));

    // A first contact: its Signal session is written through the endpoint (a key write after pairing).
    await stack.sim.sendInbound(phone, '15550009911', 'hello postgres');
    await waitFor('the Signal session entry', async () => (await rawRows(a)).some((e) => e.category === 'session'));

    const registrations = () => stack.sim.connections(phone).filter((c) => c.kind === 'registration').length;
    const logins = () => stack.sim.connections(phone).filter((c) => c.kind === 'login').length;
    assert.equal(registrations(), 1);
    const loginsBefore = logins();
    const first = pidRecord(a);
    process.kill(first.pid, 'SIGKILL');
    await waitFor('the killed worker to be gone', () => !processAlive(first.pid), 20_000);
    await waitFor(
      'the worker to be started again and log in',
      () => pidRecord(a).pid !== first.pid && processAlive(pidRecord(a).pid) && logins() > loginsBefore,
      60_000,
      100,
    );
    const st = await stack.waitForStatus(a, 'connected', 60_000);
    assert.equal(st.phone, phone);
    assert.equal(registrations(), 1, 'no second registration (no QR scanned)');
    const qr = await stack.call('GET', `/api/sessions/${a}/qr`);
    assert.notEqual(qr.status, 200, 'no QR shown after the restart');
    const log = readFileSync(path.join(stack.dataDir, 'logs', 'workers', `${a}.log`), 'utf8');
    const starts = log.split('\n').filter((l) => l.includes('wa-worker starting'));
    assert.ok(starts.length >= 2, 'two starts in the worker log');
    assert.match(starts.at(-1)!, /"hadCreds":true/);
    assert.match(starts.at(-1)!, /"authStore":"postgres"/);
    assert.deepEqual(
      readdirSync(dir).filter((n) => parseAuthFileName(n) !== null),
      [],
      'still no key in the folder',
    );
    // The new worker sends with the keys the first one stored (the contact's Signal session, from PostgreSQL).
    const sent = await stack.call('POST', '/api/send', { sessionId: a, to: '15550009911', text: 'after the restart' });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    await waitFor(
      'the message at the simulator',
      () => stack.sim.messages(phone).some((m) => JSON.stringify(m).includes('after the restart')),
      60_000,
    );
  });

  it('refuses an older generation, and one session key for another session', async () => {
    const a = sid('pga');
    const b = sid('pgb');
    await connectedSession(b, '15550008002');
    const creds = [{ category: 'creds', keyId: 'creds' }];

    // The worker's own generation reads its creds.
    const current = Number(pidRecord(a).env.WORKER_GENERATION);
    assert.ok(current >= 1);
    const ok = await authCall(a, a, 'read', { keys: creds }, current);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.entries.length, 1);

    // Restart: generation current+1. The old generation can neither read nor write any more.
    const restarted = await stack.call('POST', `/api/sessions/${a}/restart`);
    assert.equal(restarted.status, 200, JSON.stringify(restarted.body));
    await waitFor('the next generation', () => Number(pidRecord(a).env.WORKER_GENERATION) === current + 1, 60_000);
    await stack.waitForStatus(a, 'connected', 60_000);
    const before = await rawRows(a);
    const staleWrite = await authCall(
      a,
      a,
      'write',
      { entries: [{ category: 'creds', keyId: 'creds', value: '{"forged":true}' }] },
      current,
    );
    assert.equal(staleWrite.status, 409, JSON.stringify(staleWrite.body));
    assert.equal(staleWrite.body.error.code, 'STALE_GENERATION');
    const staleRead = await authCall(a, a, 'read', { keys: creds }, current);
    assert.equal(staleRead.status, 409);
    const afterRows = await rawRows(a);
    const credsOf = (rows: typeof before) => rows.find((r) => r.category === CREDS_CATEGORY)!.value.toString('hex');
    assert.equal(credsOf(afterRows), credsOf(before), 'the refused write changed nothing');

    // The store fences on its own too (before the API's Redis mirror of the generation has moved on).
    await assert.rejects(
      store.write(a, [{ category: 'tctoken', keyId: 'stale-probe', value: Buffer.from('{}') }], current),
      StaleAuthGenerationError,
    );
    assert.equal(
      (await rawRows(a)).some((r) => r.key_id === 'stale-probe'),
      false,
      'the store wrote nothing for the stale generation',
    );
    // The current generation may write that very entry.
    await store.write(a, [{ category: 'tctoken', keyId: 'stale-probe', value: Buffer.from('{}') }], current + 1);
    assert.equal(
      (await rawRows(a)).some((r) => r.key_id === 'stale-probe'),
      true,
    );
    await store.write(a, [{ category: 'tctoken', keyId: 'stale-probe', value: null }], current + 1);

    // Session A's key on B's path: not verified (401), B's entries never answered.
    const cross = await authCall(a, b, 'read', { keys: creds }, 1);
    assert.equal(cross.status, 401, JSON.stringify(cross.body));
    assert.equal(cross.body.error.code, 'BAD_SIGNATURE');
    assert.equal(JSON.stringify(cross.body).includes('noiseKey'), false);
    const crossWrite = await authCall(
      a,
      b,
      'write',
      { entries: [{ category: 'creds', keyId: 'creds', value: null }] },
      1,
    );
    assert.equal(crossWrite.status, 401);
    assert.ok(await store.hasCreds(b), "B's creds are still there");

    // Validation names the field.
    const bad = await authCall(b, b, 'read', { keys: [{ category: 'nope', keyId: 'x' }] }, 1);
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.match(JSON.stringify(bad.body.error), /category/);
  });

  it("the worker's store batches writes into one request and one transaction, in order, and caches reads", async () => {
    // A session record of its own (the endpoint serves existing sessions only), driven by the worker's real store.
    const c = sid('pgc');
    await new SessionStore(stack.redis, stack.prefix).create(c, 'acme');
    const client = new SignedClient(
      `${stack.apiUrl}/api/worker/sessions/${c}/auth`,
      sessionWebhookSecret(WEBHOOK_SECRET, c),
      10_000,
      'auth state',
      { generation: 1 },
    );
    const auth = await useRemoteAuthState(client, undefined, { batchMs: 20 });
    assert.equal(auth.hadCreds, false);
    assert.equal(auth.stats.readRequests, 1, 'one read for the creds');

    // 30 keys written at once by 30 callers (one message's keys): one request.
    const writes = Array.from({ length: 30 }, (_, i) =>
      auth.state.keys.set({ 'pre-key': { [String(i)]: { public: Buffer.from([i]), private: Buffer.from([i, i]) } } }),
    );
    await Promise.all([...writes, auth.saveCreds()]);
    assert.equal(auth.stats.writeRequests, 1, 'one write request for 31 entries');
    assert.equal(auth.stats.writtenEntries, 31);
    assert.equal((await store.readAll(c)).length, 31, 'all of them stored');

    // Successive values of one key (and a delete) land in the order they were made.
    const ordered = [
      auth.state.keys.set({ session: { 'x.0': Buffer.from('v1') } }),
      auth.state.keys.set({ session: { 'x.0': Buffer.from('v2') } }),
      auth.state.keys.set({ 'pre-key': { '3': null } }),
    ];
    await auth.flush();
    await Promise.all(ordered);
    const stored = await store.readAll(c);
    const session = stored.find((e) => e.category === 'session' && e.keyId === 'x.0');
    assert.equal(Buffer.from(JSON.parse(session!.value!.toString()).data, 'base64').toString(), 'v2');
    assert.equal(
      stored.some((e) => e.category === 'pre-key' && e.keyId === '3'),
      false,
      'deleted',
    );

    // Reads: what it wrote or read before is served from the cache; only new keys are asked for, at once.
    const reads = auth.stats.readRequests;
    const got = await auth.state.keys.get('pre-key', ['1', '2', '3']);
    assert.deepEqual(Object.keys(got).sort(), ['1', '2']);
    assert.equal(auth.stats.readRequests, reads, 'no request for cached keys');
    await auth.state.keys.get('session', ['y.0', 'z.0']);
    await auth.state.keys.get('session', ['y.0', 'z.0']);
    assert.equal(auth.stats.readRequests, reads + 1, 'one request for two new keys, none the second time');

    // A new store (a restarted worker) reads everything back from PostgreSQL.
    const again = await useRemoteAuthState(client, undefined, {});
    assert.equal(again.hadCreds, true);
    const back = await again.state.keys.get('pre-key', ['7']);
    assert.deepEqual([...(back['7']!.private as Uint8Array)], [7, 7]);
    await store.deleteSession(c);
  });

  it('a backup archives the keys from PostgreSQL; a restore puts them back and the session logs in without a QR', async () => {
    const d = sid('pgd');
    const phone = '15550008004';
    await connectedSession(d, phone);
    await stack.sim.sendInbound(phone, '15550009944', 'before the backup');
    await waitFor('the Signal session entry', async () => (await rawRows(d)).some((e) => e.category === 'session'));
    const made = await stack.call('POST', '/api/v1/backups/create', {});
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const backup = made.body.backup;
    const inArchive = backup.sessions.find((x: { sessionId: string }) => x.sessionId === d);
    assert.equal(inArchive.phone, phone, 'the phone read from the creds in PostgreSQL');
    const manifest = await verifyArchive(backup.file);
    const files = manifest.files.map((f) => f.path).filter((f) => f.startsWith(`sessions/${d}/`));
    assert.ok(files.includes(`sessions/${d}/creds.json`), files.join(','));
    assert.ok(
      files.some((f) => f.startsWith(`sessions/${d}/session-`)),
      'its Signal session key',
    );
    assert.ok(
      files.some((f) => f.startsWith(`sessions/${d}/pre-key-`)),
      'its pre-keys',
    );

    // The database loses the session's keys (the running worker still has them cached).
    await store.deleteSession(d);
    const loginsBefore = stack.sim.connections(phone).filter((c) => c.kind === 'login').length;
    const restored = await stack.restore(backup.id, { sessionId: d });
    assert.equal(restored.status, 200, JSON.stringify(restored.body));
    assert.deepEqual(restored.body.restore.restored, [d]);
    await stack.waitForStatus(d, 'connected', 60_000);
    assert.ok(stack.sim.connections(phone).filter((c) => c.kind === 'login').length > loginsBefore, 'a new login');
    assert.equal(stack.sim.connections(phone).filter((c) => c.kind === 'registration').length, 1, 'no QR');
    assert.ok(await store.hasCreds(d), 'the keys are back in PostgreSQL');
    assert.deepEqual(
      readdirSync(path.join(stack.sessionsDir, d)).filter((n) => parseAuthFileName(n) !== null),
      [],
      'and not in the folder',
    );
  });

  it('deleting a session removes its entries', async () => {
    const a = sid('pga');
    assert.ok((await rawRows(a)).length > 0);
    const del = await stack.call('DELETE', `/api/sessions/${a}`);
    assert.equal(del.status, 200, JSON.stringify(del.body));
    await waitFor('the entries to be gone', async () => (await rawRows(a)).length === 0, 30_000);
    const gen = await db.query('SELECT 1 FROM wa_auth_sessions WHERE session_id = $1', [a]);
    assert.equal(gen.rowCount, 0);
    // Its signature reaches nothing any more.
    const late = await authCall(a, a, 'read', { keys: [{ category: 'creds', keyId: 'creds' }] });
    assert.equal(late.status, 404, JSON.stringify(late.body));
  });
});
