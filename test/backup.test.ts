import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyArchive } from '../common/backup-archive.js';
import { FakeTelegram } from './helpers/fake-telegram.js';
import { Stack, sleep, waitFor } from './helpers/stack.js';
import { writeRawZip } from './helpers/zip-writer.js';
import { proxyIdOf } from '../common/proxy-id.js';

const PHONES = { bk1: '15550006001', bk2: '15550006002' } as const;
const IDS = Object.keys(PHONES) as Array<keyof typeof PHONES>;

describe('backups, restore and Telegram alerts (real stack: Temporal, Redis, workers, simulator)', () => {
  let stack: Stack;
  let tg: FakeTelegram;
  const backupsDir = mkdtempSync(path.join(os.tmpdir(), 'wa-backups-'));
  const k = (s: string) => `${stack.prefix}${s}`;

  /** The Redis state a restore must reproduce: bindings, phone owners, proxy counters and sets, session fields. */
  async function redisState() {
    const out: Record<string, unknown> = {};
    for (const [id, phone] of Object.entries(PHONES)) {
      out[`sticky:${phone}`] = await stack.redis.get(k(`phone:proxy:${phone}`));
      out[`owner:${phone}`] = await stack.redis.get(k(`phone:session:${phone}`));
      const h = await stack.redis.hgetall(k(`session:${id}`));
      out[`session:${id}`] = {
        phone: h.phone,
        status: h.status,
        proxy: h.proxy,
        restarts: h.restarts,
        failovers: h.failovers,
      };
      out[`slot:${id}`] = await stack.redis.get(k(`session:slot:${id}`));
    }
    for (const url of (await stack.redis.smembers(k('proxies:all'))).sort()) {
      out[`counter:${url}`] = (await stack.redis.get(k(`counter:proxy:${proxyIdOf(url)}`))) ?? '0';
      out[`members:${url}`] = (await stack.redis.smembers(k(`proxy:sessions:${proxyIdOf(url)}`))).sort();
    }
    return out;
  }
  const qrCounts = async () =>
    Object.fromEntries(
      await Promise.all(IDS.map(async (id) => [id, await stack.redis.hget(k(`session:${id}`), 'qrCount')])),
    );
  const authIntact = () => IDS.every((id) => existsSync(path.join(stack.sessionsDir, id, 'creds.json')));

  before(async () => {
    tg = await FakeTelegram.start();
    stack = await new Stack({
      proxies: 3,
      extraEnv: {
        TELEGRAM_BOT_TOKEN: '123456:test-bot-token-secret',
        TELEGRAM_CHAT_ID: '4242',
        TELEGRAM_API_BASE_URL: tg.url,
        BACKUPS_DIR: backupsDir,
        MAX_BACKUPS: '3',
        BACKUP_CRON: '15 4 * * *',
        BACKUP_TIMEZONE: 'Europe/Berlin',
        LOW_PROXY_INVENTORY_THRESHOLD: '4',
        RESTORE_CONNECT_TIMEOUT_MS: '30000',
        // Shorter than any whole restore: restore calls answer 202 and their outcome is read from GET .../restore.
        RESTORE_ANSWER_WAIT_MS: '500',
      },
    }).start();
  });
  after(async () => {
    await stack?.temporal.schedule
      .getHandle(`${stack.env.WORKFLOW_ID_PREFIX}-backups`)
      .delete()
      .catch(() => undefined);
    await stack?.stop();
    await tg?.close();
    rmSync(backupsDir, { recursive: true, force: true });
  });

  it('the orchestrator created the backup schedule with the configured cron, time zone and overlap SKIP', async () => {
    const d = await stack.temporal.schedule.getHandle(`${stack.env.WORKFLOW_ID_PREFIX}-backups`).describe();
    assert.equal(d.spec.timezone, 'Europe/Berlin');
    const cal = d.spec.calendars?.[0];
    assert.deepEqual(cal?.hour, [{ start: 4, end: 4, step: 1 }]);
    assert.deepEqual(cal?.minute, [{ start: 15, end: 15, step: 1 }]);
    assert.equal(d.policies.overlap, 'SKIP');
    assert.equal(d.action.type, 'startWorkflow');
    assert.equal(d.action.type === 'startWorkflow' && d.action.workflowType, 'backupWorkflow');
    assert.equal(d.memo?.cron, '15 4 * * *');
  });

  it('two connected sessions: connect and low-inventory alerts reach the Bot API', async () => {
    for (const id of IDS) {
      const r = await stack.call('POST', '/api/sessions/provision', { sessionId: id, phone: PHONES[id] });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await stack.scan(id, PHONES[id]);
      await stack.waitForStatus(id, 'connected');
    }
    await waitFor('connect alerts', () =>
      IDS.every((id) => tg.texts().some((t) => t.includes(`session ${id} connected`))),
    );
    await waitFor('low inventory alert', () => tg.texts().some((t) => t.startsWith('low proxy inventory')));
    assert.ok(tg.requests.every((r) => r.token === '123456:test-bot-token-secret' && r.body.chat_id === '4242'));
    assert.ok(!tg.texts().some((t) => /pw-/.test(t)), 'no proxy password in an alert');
  });

  let good = '';
  let baseline: Record<string, unknown> = {};
  it('backup while the workers are writing auth files: the archive verifies; copy time per session reported', async () => {
    // Inbound messages make the workers write session keys while the backup reads the folders.
    let writing = true;
    const writer = (async () => {
      let i = 0;
      while (writing) {
        for (const id of IDS)
          await stack.sim.sendInbound(PHONES[id], `1555000${7000 + (i % 5)}`, `msg ${i}`).catch(() => undefined);
        i++;
        await sleep(20);
      }
    })();
    await sleep(300);
    const backups = [];
    for (let i = 0; i < 2; i++) {
      const r = await stack.call('POST', '/api/v1/backups/create', {});
      assert.equal(r.status, 201, JSON.stringify(r.body));
      backups.push(r.body.backup);
    }
    writing = false;
    await writer;
    for (const b of backups) {
      assert.equal(b.verified, true);
      assert.deepEqual(b.sessions.map((s: { sessionId: string }) => s.sessionId).sort(), [...IDS].sort());
      for (const s of b.sessions) assert.equal(s.phone, PHONES[s.sessionId as keyof typeof PHONES]);
      const m = await verifyArchive(b.file);
      assert.ok(m.files.some((f) => f.path === 'sessions/bk1/creds.json'));
      assert.ok(
        !m.files.some((f) => /\.tmp-|\.health\.json|events-spool|outbox-ledger/.test(f.path)),
        'no transient files',
      );
      console.log(
        `backup ${b.id}: ${b.durationMs} ms, ${b.size} bytes, ${b.files} files; per-session copy ms: ` +
          b.sessions.map((s: { sessionId: string; copyMs: number }) => `${s.sessionId}=${s.copyMs}`).join(' '),
      );
    }
    const list = await stack.call('GET', '/api/v1/backups');
    assert.equal(list.status, 200);
    assert.ok(list.body.backups.length >= 2);
    assert.ok(list.body.backups.every((b: { verified: boolean; size: number }) => b.verified && b.size > 0));
    good = backups[1].id;
    for (const id of IDS) await stack.waitForStatus(id, 'connected');
    baseline = await redisState();
    await waitFor('backup alert', () => tg.texts().some((t) => t.startsWith(`backup done: backup ${good}`)));
    const tenant = await stack.call('GET', '/api/v1/backups', undefined, 'test-tenant-key-0123456789abcdef');
    assert.equal(tenant.status, 403, 'admin key only');
  });

  it('restore brings every session back connected without a scan, Redis state equal to the original', async () => {
    const qrs = await qrCounts();
    const logins = Object.fromEntries(IDS.map((id) => [id, stack.sim.connections(PHONES[id]).length]));
    // Redis drifted from the archive in several places (a crash, an operator's hand): a counter, a phone's sticky
    // binding and owner, session fields, a proxy's member set and a slot. The restore rebuilds all of it.
    const someProxy = (await stack.redis.smembers(k('proxies:all')))[0]!;
    await stack.redis.set(k(`counter:proxy:${proxyIdOf(someProxy)}`), '3');
    const [a, b] = IDS as [keyof typeof PHONES, keyof typeof PHONES];
    const stickyA = await stack.redis.get(k(`phone:proxy:${PHONES[a]}`));
    await stack.redis.del(k(`phone:proxy:${PHONES[a]}`), k(`phone:session:${PHONES[b]}`));
    // (restart and failover counts are history, not state: a restore does not roll them back)
    await stack.redis.hset(k(`session:${b}`), { phone: '15559999999' });
    await stack.redis.srem(k(`proxy:sessions:${proxyIdOf(stickyA!)}`), a);
    await stack.redis.del(k(`session:slot:${b}`));
    assert.notDeepEqual(await redisState(), baseline, 'the drift is visible before the restore');
    const t0 = Date.now();
    const first = await stack.call('POST', `/api/v1/backups/restore/${good}`, {});
    assert.equal(first.status, 202, `still running after RESTORE_ANSWER_WAIT_MS: ${JSON.stringify(first.body)}`);
    assert.equal(first.body.restore.status, 'running');
    const again = await stack.call('POST', `/api/v1/backups/restore/${good}`, {});
    assert.equal(again.status, 409, 'one restore at a time');
    const done = await stack.restoreOutcome(first.body.restore.runId, 120_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const r = { body: { restore: done.report } };
    assert.equal(r.body.restore.ok, true);
    assert.deepEqual(r.body.restore.restored, [...IDS].sort());
    assert.ok(r.body.restore.preRestoreBackup, 'automatic pre-restore backup');
    for (const id of IDS) await stack.waitForStatus(id, 'connected');
    console.log(
      `restore: ${Date.now() - t0} ms (workflow ${r.body.restore.durationMs} ms, steps ${JSON.stringify(r.body.restore.timings)})`,
    );
    for (const id of IDS) assert.ok(stack.sim.connections(PHONES[id]).length > logins[id]!, `${id} logged in again`);
    assert.deepEqual(await qrCounts(), qrs, 'no new QR: no scan');
    assert.deepEqual(await redisState(), baseline);
    assert.ok(authIntact());
    assert.ok(!readdirSync(stack.sessionsDir).some((n) => n.startsWith('.restore-')), 'journal removed');
    await waitFor('restore alert', () => tg.texts().some((t) => t.startsWith(`restore done: restore of ${good}`)));
  });

  it('a corrupted archive, a zip-slip archive, a symlink and a zip bomb are refused; sessions untouched', async () => {
    const creds = readFileSync(path.join(stack.sessionsDir, 'bk1', 'creds.json'));
    const credsBefore = Object.fromEntries(
      IDS.map((id) => [id, readFileSync(path.join(stack.sessionsDir, id, 'creds.json'), 'utf8')]),
    );
    const manifest = (files: Array<{ path: string; data: Buffer }>) =>
      Buffer.from(
        JSON.stringify({
          version: 1,
          id: 'x',
          createdAt: Date.now(),
          reason: 'test',
          sessions: [{ sessionId: 'bk1', phone: PHONES.bk1, files: files.length, bytes: 0, copyMs: 0 }],
          files: files.map((f) => ({
            path: f.path,
            size: f.data.length,
            sha256: require256(f.data),
          })),
          skipped: [],
          totalBytes: 0,
        }),
      );
    const cases: Array<[string, Buffer, RegExp]> = [];
    // corrupted: a good archive with bytes flipped in the middle
    const corrupt = Buffer.from(readFileSync(path.join(backupsDir, `${good}.zip`)));
    for (let i = 200; i < 260; i++) corrupt[i] = corrupt[i]! ^ 0xff;
    cases.push(['backup_2000-01-01_000001', corrupt, /corrupt|checksum|invalid|unreadable/i]);
    const slip = [{ path: 'sessions/bk1/../../../../tmp/evil.json', data: Buffer.from('{}') }];
    cases.push([
      'backup_2000-01-01_000002',
      writeRawZip([
        ...slip.map((f) => ({ name: f.path, data: f.data })),
        { name: 'manifest.json', data: manifest(slip) },
      ]),
      /escapes the archive/,
    ]);
    cases.push([
      'backup_2000-01-01_000003',
      writeRawZip([
        { name: '/etc/evil.json', data: Buffer.from('{}') },
        { name: 'manifest.json', data: manifest([]) },
      ]),
      /absolute path/,
    ]);
    const link = [{ path: 'sessions/bk1/creds.json', data: Buffer.from('/etc/passwd') }];
    cases.push([
      'backup_2000-01-01_000004',
      writeRawZip([
        { name: link[0]!.path, data: link[0]!.data, mode: 0o120777 },
        { name: 'manifest.json', data: manifest(link) },
      ]),
      /symbolic link/,
    ]);
    const bomb = [{ path: 'sessions/bk1/creds.json', data: Buffer.alloc(200 * 1024 * 1024) }];
    cases.push([
      'backup_2000-01-01_000005',
      writeRawZip([
        { name: bomb[0]!.path, data: bomb[0]!.data, deflate: true },
        { name: 'manifest.json', data: manifest([]) },
      ]),
      /zip bomb/,
    ]);
    for (const [id, buf, re] of cases) {
      writeFileSync(path.join(backupsDir, `${id}.zip`), buf);
      const r = await stack.call('POST', `/api/v1/backups/restore/${id}`, {});
      assert.equal(r.status, 422, `${id}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'BACKUP_INVALID');
      assert.match(r.body.error.message, re);
      console.log(`refused ${id}: ${r.body.error.message}`);
    }
    // The workflow refuses them too (defence in depth: the API check is not the only one).
    const direct = stack.temporal.workflow.execute('restoreWorkflow', {
      workflowId: `${stack.env.WORKFLOW_ID_PREFIX}:restore`,
      taskQueue: stack.taskQueue,
      args: [{ backupId: 'backup_2000-01-01_000002', sessionId: null, connectTimeoutMs: 10_000 }],
    });
    await assert.rejects(direct, (err: Error & { cause?: { message?: string } }) =>
      /escapes the archive/.test(err.cause?.message ?? ''),
    );
    const list = await stack.call('GET', '/api/v1/backups');
    assert.ok(
      list.body.backups.filter((b: { verified: boolean }) => !b.verified).length >= 5,
      'listed as not verified',
    );
    for (const id of IDS) await stack.waitForStatus(id, 'connected');
    for (const id of IDS)
      assert.equal(
        readFileSync(path.join(stack.sessionsDir, id, 'creds.json'), 'utf8'),
        credsBefore[id],
        'auth untouched',
      );
    assert.ok(!existsSync('/tmp/evil.json'));
    assert.ok(creds.length > 0);
    for (const [id] of cases) rmSync(path.join(backupsDir, `${id}.zip`));
  });

  it('orchestrator killed in the middle of a restore: the workflow completes after restart, auth files never lost', async () => {
    const started = await stack.call('POST', `/api/v1/backups/restore/${good}?wait=false`, {});
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const again = await stack.call('POST', `/api/v1/backups/restore/${good}?wait=false`, {});
    assert.equal(again.status, 409, 'one restore at a time');
    assert.equal(again.body.error.code, 'RESTORE_IN_PROGRESS');
    const runId = started.body.restore.runId as string;
    const state = await stack.call('GET', '/api/v1/backups/restore');
    assert.equal(state.status, 200, JSON.stringify(state.body));
    assert.deepEqual(state.body.restore, { workflowId: started.body.restore.workflowId, runId, status: 'running' });
    await waitFor(
      'the restore journal',
      () => readdirSync(stack.sessionsDir).some((n) => n.startsWith('.restore-')),
      20_000,
      5,
    );
    await stack.killOrchestrator('SIGKILL');
    const journal = readdirSync(stack.sessionsDir).find((n) => n.startsWith('.restore-'));
    for (const id of IDS) {
      const where = ['', `${journal}/old`, `${journal}/new`].map((d) =>
        path.join(stack.sessionsDir, d, id, 'creds.json'),
      );
      assert.ok(
        where.some((p) => existsSync(p)),
        `${id} has its auth files somewhere while the orchestrator is down`,
      );
    }
    await sleep(500);
    await stack.startOrchestrator();
    const t0 = Date.now();
    // The outcome of a restore that answered 202 is read from GET /api/v1/backups/restore.
    const done = await stack.restoreOutcome(runId, 120_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const report = done.report as { ok: boolean; restored: string[] };
    console.log(`restore completed ${Date.now() - t0} ms after the orchestrator restart`);
    assert.equal(report.ok, true);
    for (const id of IDS) await stack.waitForStatus(id, 'connected');
    assert.ok(authIntact());
    assert.deepEqual(await redisState(), baseline);
  });

  it('single-session restore replaces only that session', async () => {
    // The newest archive (MAX_BACKUPS=3: the automatic pre-restore backups have rotated the first ones out).
    const good = (await stack.call('GET', '/api/v1/backups')).body.backups[0].id as string;
    const other = readFileSync(path.join(stack.sessionsDir, 'bk2', 'creds.json'), 'utf8');
    const logins2 = stack.sim.connections(PHONES.bk2).length;
    const r = await stack.restore(good, { sessionId: 'bk1' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.restore.restored, ['bk1']);
    await stack.waitForStatus('bk1', 'connected');
    assert.equal(stack.sim.connections(PHONES.bk2).length, logins2, 'bk2 worker not restarted');
    assert.equal(readFileSync(path.join(stack.sessionsDir, 'bk2', 'creds.json'), 'utf8'), other);
    const bad = await stack.call('POST', `/api/v1/backups/restore/${good}`, { sessionId: 'nope' });
    assert.equal(bad.status, 404);
    const badField = await stack.call('POST', `/api/v1/backups/restore/${good}`, { sessionId: '../x' });
    assert.equal(badField.status, 400);
    assert.equal(badField.body.error.field, 'sessionId');
  });

  it('a worker that fails to start during a restore: rolled back to the pre-restore state, then recovers', async () => {
    const target = (await stack.call('GET', '/api/v1/backups')).body.backups.at(-1).id as string;
    // The orchestrator now starts workers with a command that exits at once ("a worker fails to start").
    await stack.killOrchestrator('SIGTERM');
    stack.env.WORKER_COMMAND = JSON.stringify(['false']);
    await stack.startOrchestrator();
    try {
      const t0 = Date.now();
      const run = stack.temporal.workflow.execute('restoreWorkflow', {
        workflowId: `${stack.env.WORKFLOW_ID_PREFIX}:restore`,
        taskQueue: stack.taskQueue,
        args: [{ backupId: target, sessionId: null, connectTimeoutMs: 6000 }],
      });
      let report: { rolledBack: boolean; preRestoreBackup: string; error: string } | undefined;
      await assert.rejects(run, (err: Error & { cause?: { message?: string; details?: unknown[] } }) => {
        report = err.cause?.details?.[0] as typeof report;
        if (!/not connected/.test(err.cause?.message ?? '')) console.log('restore failure:', err.cause?.message);
        return /not connected/.test(err.cause?.message ?? '') && /rolled back/.test(err.cause?.message ?? '');
      });
      console.log(`failed restore rolled back in ${Date.now() - t0} ms: ${report?.error}`);
      assert.equal(report?.rolledBack, true);
      // Every folder is back as it was just before the restore (the automatic pre-restore backup's content).
      const pre = await verifyArchive(path.join(backupsDir, `${report!.preRestoreBackup}.zip`));
      for (const id of IDS) {
        const files = pre.files.filter((f) => f.path.startsWith(`sessions/${id}/`));
        assert.ok(files.length > 0);
        for (const f of files) {
          const data = readFileSync(path.join(stack.sessionsDir, f.path.slice('sessions/'.length)));
          assert.equal(require256(data), f.sha256, `${f.path} back to its pre-restore content`);
        }
      }
      assert.ok(authIntact());
      assert.ok(!readdirSync(stack.sessionsDir).some((n) => n.startsWith('.restore-')), 'journal removed');
      await waitFor('restore failed alert', () =>
        tg.texts().some((t) => t.startsWith('restore failed:') && t.includes('rolled back')),
      );
    } finally {
      // Fixed orchestrator: the reconcile at start brings the workers back, on their own auth files (no scan).
      await stack.killOrchestrator('SIGTERM');
      delete stack.env.WORKER_COMMAND;
      await stack.startOrchestrator();
    }
    for (const id of IDS) await stack.waitForStatus(id, 'connected', 40_000);
    // The Redis mirror says `reconnecting` (restore in progress) until the restarted worker's CONNECTED.
    await waitFor(
      'Redis status connected',
      async () =>
        (await Promise.all(IDS.map((id) => stack.redis.hget(k(`session:${id}`), 'status')))).every(
          (x) => x === 'connected',
        ),
      40_000,
    );
    assert.deepEqual(await redisState(), baseline);
  });

  it('retention keeps exactly MAX_BACKUPS archives', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await stack.call('POST', '/api/v1/backups/create', {})).status, 201);
    const files = readdirSync(backupsDir).filter((n) => n.endsWith('.zip'));
    assert.equal(files.length, 3, files.join(','));
    const list = await stack.call('GET', '/api/v1/backups');
    assert.equal(list.body.backups.length, 3);
  });

  it('failover (proxy burned) alert reaches the Bot API', async () => {
    const s = await stack.status('bk2');
    const old = stack.proxies.find((p) => `${p.host}:${p.port}` === s.proxy)!;
    await old.close();
    await waitFor(
      'proxy burned alert',
      () => tg.texts().some((t) => t.startsWith('proxy burned') && t.includes('bk2')),
      40_000,
    );
    await waitFor(
      'bk2 on a new proxy',
      async () => {
        const st = await stack.status('bk2');
        return st.status === 'connected' && st.proxy !== s.proxy;
      },
      40_000,
    );
    assert.ok(!tg.texts().some((t) => t.includes('test-bot-token-secret')));
  });
});

function require256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
