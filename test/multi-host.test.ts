import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { hostFailoverWorkflowId } from '../workflows/host-failover-client.js';
import type { HostFailoverResult } from '../workflows/host-failover.js';
import { Stack, waitFor } from './helpers/stack.js';

/**
 * Beyond one host: two orchestrators act as two Docker hosts on this machine, each with its own host task queue
 * and its own sessions folder (its own disk). Sessions are placed by free capacity and their container
 * activities always run on the host that holds their auth volume — a failover included.
 */
describe('two hosts: placement by capacity and host-pinned activities', () => {
  let stack: Stack;
  let hostB: ChildProcess;
  const hostBSessions = mkdtempSync(path.join(os.tmpdir(), 'wa-host-b-'));
  // One backup volume shared by the API and every host (each host keeps its own sessions folder).
  const backupsDir = mkdtempSync(path.join(os.tmpdir(), 'wa-mh-backups-'));
  const dirOf = (host: string) => (host === 'host-b' ? hostBSessions : stack.sessionsDir);
  before(async () => {
    stack = await new Stack({
      proxies: 5,
      extraEnv: {
        BACKUPS_DIR: backupsDir,
        BACKUP_CRON: '15 4 * * *',
        RESTORE_CONNECT_TIMEOUT_MS: '60000',
        HOST_HEARTBEAT_MS: '1000',
        HOST_DEAD_AFTER_MS: '5000',
      },
    }).start();
    hostB = await stack.startHost('host-b', { SESSIONS_DIR: hostBSessions });
  });
  after(async () => {
    await stack?.temporal.schedule
      .getHandle(`${stack.env.WORKFLOW_ID_PREFIX}-backups`)
      .delete()
      .catch(() => undefined);
    await stack?.stop();
    rmSync(hostBSessions, { recursive: true, force: true });
    rmSync(backupsDir, { recursive: true, force: true });
  });

  it('spreads sessions over both hosts; each worker and auth folder lives on its host', async () => {
    const phones = ['15550004001', '15550004002', '15550004003', '15550004004'];
    for (const [i, phone] of phones.entries()) {
      const r = await stack.call('POST', '/api/sessions/provision', { sessionId: `mh${i}`, phone });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await stack.scan(`mh${i}`, phone, 60_000);
      await stack.waitForStatus(`mh${i}`, 'connected', 60_000);
    }
    const placed = await Promise.all(phones.map(async (_, i) => (await stack.status(`mh${i}`)).host as string));
    assert.deepEqual([...new Set(placed)].sort(), ['host-b', 'local'], `placements: ${placed.join(', ')}`);
    assert.equal(placed.filter((h) => h === 'host-b').length, 2, 'balanced by free capacity');
    for (const [i, host] of placed.entries()) {
      assert.ok(existsSync(path.join(stack.runDir(host), `mh${i}.json`)), `mh${i}'s worker runs on ${host}`);
      assert.ok(existsSync(path.join(dirOf(host), `mh${i}`, 'creds.json')), `mh${i}'s auth folder is on ${host}`);
      const other = host === 'local' ? 'host-b' : 'local';
      assert.ok(!existsSync(path.join(stack.runDir(other), `mh${i}.json`)), `no worker for mh${i} on ${other}`);
      assert.ok(!existsSync(path.join(dirOf(other), `mh${i}`)), `no auth folder for mh${i} on ${other}`);
    }
  });

  it('a failover keeps the session on its host (new proxy, same auth volume, no scan)', async () => {
    let id = '';
    for (let i = 0; i < 4; i++) if ((await stack.status(`mh${i}`)).host === 'host-b') id = `mh${i}`;
    const before = await stack.status(id);
    const qrCount = await stack.redis.hget(`${stack.prefix}session:${id}`, 'qrCount');
    await stack.proxies.find((p) => `${p.host}:${p.port}` === before.proxy)!.close();
    const after = await waitFor(
      'failover on host-b',
      async () => {
        const s = await stack.status(id);
        return s.status === 'connected' && s.proxy !== before.proxy ? s : null;
      },
      60_000,
      150,
    );
    assert.equal(after.host, 'host-b');
    assert.ok(existsSync(path.join(stack.runDir('host-b'), `${id}.json`)), 'the new worker runs on host-b');
    assert.ok(!existsSync(path.join(stack.runDir('local'), `${id}.json`)), 'nothing started on the other host');
    assert.ok(existsSync(path.join(hostBSessions, id, 'creds.json')), 'auth volume kept on host-b');
    assert.equal(await stack.redis.hget(`${stack.prefix}session:${id}`, 'qrCount'), qrCount, 'no new QR');
  });

  it("a backup holds every host's sessions; a restore puts each back on its host and starts its worker there", async () => {
    const ids = ['mh0', 'mh1', 'mh2', 'mh3'];
    const hostOf = Object.fromEntries(
      await Promise.all(ids.map(async (id) => [id, (await stack.status(id)).host as string])),
    );
    const created = await stack.call('POST', '/api/v1/backups/create', {});
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const inBackup = (created.body.backup.sessions as Array<{ sessionId: string; host?: string }>).map(
      (s) => `${s.sessionId}@${s.host ?? '?'}`,
    );
    assert.deepEqual(
      inBackup.sort(),
      ids.map((id) => `${id}@${hostOf[id]}`).sort(),
      "both hosts' sessions, each tagged with its host",
    );
    assert.deepEqual(
      readdirSync(backupsDir).filter((n) => n.startsWith('.staging-')),
      [],
      'staging copies removed',
    );

    const folderIno = (id: string) => statSync(path.join(dirOf(hostOf[id]!), id)).ino;
    const before = Object.fromEntries(ids.map((id) => [id, folderIno(id)]));
    const since = Date.now();
    const r = await stack.restore(created.body.backup.id, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([...r.body.restore.restored].sort(), ids);
    for (const id of ids) {
      const host = hostOf[id]!;
      const other = host === 'local' ? 'host-b' : 'local';
      assert.ok(existsSync(path.join(dirOf(host), id, 'creds.json')), `${id}'s files restored on ${host}`);
      assert.notEqual(folderIno(id), before[id], `${id}'s folder on ${host} was swapped for the archived one`);
      assert.ok(!existsSync(path.join(dirOf(other), id)), `no folder for ${id} on ${other}`);
      const run = JSON.parse(readFileSync(path.join(stack.runDir(host), `${id}.json`), 'utf8'));
      assert.ok(run.startedAt >= since && !run.stopped, `${id}'s worker was started again on ${host}`);
      assert.ok(!existsSync(path.join(stack.runDir(other), `${id}.json`)), `no worker for ${id} on ${other}`);
      const s = await stack.status(id);
      assert.equal(s.status, 'connected', `${id} connected again`);
      assert.equal(s.host, host);
      assert.ok(Number(await stack.redis.hget(`${stack.prefix}session:${id}`, 'connectedAt')) >= since);
    }
  });

  it("with the auth state on the hosts' disks, a dead host's sessions stay and wait for it", async () => {
    const onB = [];
    for (let i = 0; i < 4; i++) if ((await stack.status(`mh${i}`)).host === 'host-b') onB.push(`mh${i}`);
    assert.ok(onB.length > 0);
    const exited = new Promise((r) => hostB.once('exit', r));
    hostB.kill('SIGKILL');
    await exited;
    const dead = await waitFor('host-b seen dead', async () => {
      const r = await stack.call('GET', '/api/v1/hosts');
      return (r.body.hosts as Array<{ hostId: string; alive: boolean; heartbeatAt: number }>).find(
        (h) => h.hostId === 'host-b' && !h.alive,
      );
    });
    const handle = stack.temporal.workflow.getHandle(
      hostFailoverWorkflowId(stack.env.WORKFLOW_ID_PREFIX!, 'host-b', dead.heartbeatAt),
    );
    const result = (await waitFor(
      'the host failover of host-b',
      () => handle.result().catch(() => null),
      60_000,
      500,
    )) as HostFailoverResult;
    assert.deepEqual(result.moved, []);
    assert.deepEqual(
      result.stayed.map((s) => s.sessionId).sort(),
      onB.sort(),
      'every session of host-b stayed (no QR forced on anyone)',
    );
    assert.match(result.stayed[0]!.reason, /AUTH_STORE=file/);
    for (const id of onB) assert.equal((await stack.status(id)).host, 'host-b');
    const drain = await stack.call('POST', '/api/v1/hosts/local/drain');
    assert.equal(drain.status, 409, JSON.stringify(drain.body));
    assert.equal(drain.body.error.code, 'AUTH_ON_HOST');

    // The host returns: it runs its own sessions again.
    hostB = await stack.startHost('host-b', { SESSIONS_DIR: hostBSessions });
    for (const id of onB) assert.equal((await stack.waitForStatus(id, 'connected', 60_000)).host, 'host-b');
  });
});
