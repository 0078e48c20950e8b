import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { verifyArchive } from '../common/backup-archive.js';
import { s3Setting } from './helpers/media-s3.js';
import { Stack } from './helpers/stack.js';

/**
 * Backups off the host (issue 17 item 4), against the real SeaweedFS S3 gateway that scripts/services.sh builds and
 * starts (S3_ENDPOINT and credentials from data/services.env). Two hosts with separate sessions AND backups folders
 * (no shared disk): every archive must go through the bucket, and a restore on either host reads it from there.
 * The bucket is checked with the S3 API directly, not through the product's code.
 */
describe('backups in an S3-compatible store (real SeaweedFS), restored on the other host', () => {
  const endpoint = s3Setting('S3_ENDPOINT');
  const accessKeyId = s3Setting('S3_ACCESS_KEY_ID');
  const secretAccessKey = s3Setting('S3_SECRET_ACCESS_KEY');
  const bucket = 'wa-e2e-backups';
  const prefix = `run-${randomBytes(4).toString('hex')}/`;
  const s3 = new S3Client({
    region: process.env.S3_REGION ?? 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
  });
  const hostBSessions = mkdtempSync(path.join(os.tmpdir(), 'wa-s3-host-b-'));
  const backupsA = mkdtempSync(path.join(os.tmpdir(), 'wa-s3-backups-a-'));
  const backupsB = mkdtempSync(path.join(os.tmpdir(), 'wa-s3-backups-b-'));
  const PHONES = ['15550017001', '15550017002'];
  const IDS = ['s3a', 's3b'];
  let stack: Stack;
  const dirOf = (host: string) => (host === 'host-b' ? hostBSessions : stack.sessionsDir);

  /** Every key under this run's prefix, straight from the bucket. */
  async function keys(): Promise<string[]> {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return (r.Contents ?? []).map((o) => o.Key!.slice(prefix.length)).sort();
  }
  /** Files a failed or finished backup may have left on a host's own disk. */
  const leftovers = (dir: string) => [
    ...readdirSync(dir).filter((n) => n.endsWith('.zip') || n.includes('.partial') || n.startsWith('.staging-')),
    ...(existsSync(path.join(dir, '.downloads')) ? readdirSync(path.join(dir, '.downloads')) : []),
  ];

  before(async () => {
    stack = await new Stack({
      proxies: 3,
      extraEnv: {
        BACKUP_STORE: 's3',
        S3_BUCKET: bucket,
        S3_PREFIX: prefix,
        S3_ENDPOINT: endpoint,
        S3_ACCESS_KEY_ID: accessKeyId,
        S3_SECRET_ACCESS_KEY: secretAccessKey,
        BACKUPS_DIR: backupsA,
        MAX_BACKUPS: '2',
        BACKUP_CRON: '15 4 * * *',
        RESTORE_CONNECT_TIMEOUT_MS: '60000',
      },
    }).start();
    await stack.startHost('host-b', { SESSIONS_DIR: hostBSessions, BACKUPS_DIR: backupsB });
    for (const [i, phone] of PHONES.entries()) {
      const r = await stack.call('POST', '/api/sessions/provision', { sessionId: IDS[i], phone });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await stack.scan(IDS[i]!, phone, 60_000);
      await stack.waitForStatus(IDS[i]!, 'connected', 60_000);
    }
  });
  after(async () => {
    await stack?.temporal.schedule
      .getHandle(`${stack.env.WORKFLOW_ID_PREFIX}-backups`)
      .delete()
      .catch(() => undefined);
    await stack?.stop();
    const left = await keys().catch(() => []);
    if (left.length)
      await s3
        .send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: left.map((k) => ({ Key: prefix + k })) } }))
        .catch(() => undefined);
    for (const d of [hostBSessions, backupsA, backupsB]) rmSync(d, { recursive: true, force: true });
  });

  let first = '';
  it('a backup lands in the bucket (archive + manifest), verified, with both hosts’ sessions; nothing stays on either host', async () => {
    const hosts = await Promise.all(IDS.map(async (id) => (await stack.status(id)).host as string));
    assert.deepEqual([...hosts].sort(), ['host-b', 'local'], `one session per host (placement: ${hosts.join(', ')})`);
    const t0 = Date.now();
    const r = await stack.call('POST', '/api/v1/backups/create', {});
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const b = r.body.backup;
    first = b.id;
    assert.equal(b.location, 's3');
    assert.equal(b.file, `s3://${bucket}/${prefix}${b.id}.zip`);
    assert.equal(typeof b.uploadMs, 'number');
    console.log(
      `backup ${b.id}: ${b.size} bytes, ${b.durationMs} ms in all, upload ${b.uploadMs} ms (call ${Date.now() - t0} ms)`,
    );

    assert.deepEqual(
      await keys(),
      [`${b.id}.manifest.json`, `${b.id}.zip`],
      'archive and manifest, no staging copies left',
    );
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}${b.id}.zip` }));
    assert.equal(head.ContentLength, b.size);
    // Downloaded with the SDK alone and verified: checksums, both sessions, each tagged with its host.
    const obj = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}${b.id}.zip` }));
    const file = path.join(stack.dataDir, 'direct.zip');
    await fs.writeFile(file, await obj.Body!.transformToByteArray());
    const m = await verifyArchive(file);
    assert.deepEqual(
      m.sessions.map((s) => `${s.sessionId}@${s.host}:${s.phone}`).sort(),
      IDS.map((id, i) => `${id}@${hosts[i]}:${PHONES[i]}`).sort(),
    );
    assert.ok(m.files.some((f) => f.path === 'sessions/s3a/creds.json'));
    assert.deepEqual(leftovers(backupsA), [], 'no local copy on host local');
    assert.deepEqual(leftovers(backupsB), [], 'no local copy on host-b');
  });

  it('the list reads the bucket (location s3) and rotation keeps the newest MAX_BACKUPS there', async () => {
    const made = [first];
    for (let i = 0; i < 2; i++) {
      const r = await stack.call('POST', '/api/v1/backups/create', {});
      assert.equal(r.status, 201, JSON.stringify(r.body));
      made.push(r.body.backup.id);
    }
    const newest = made.slice(1).sort().reverse();
    const list = await stack.call('GET', '/api/v1/backups');
    assert.equal(list.status, 200, JSON.stringify(list.body));
    assert.equal(list.body.store, 's3');
    assert.deepEqual(
      list.body.backups.map((b: any) => b.id),
      newest,
    );
    for (const b of list.body.backups) {
      assert.equal(b.location, 's3');
      assert.equal(b.where, `s3://${bucket}/${prefix}${b.id}.zip`);
      assert.equal(b.verified, true);
      assert.deepEqual(b.sessions.map((s: any) => s.sessionId).sort(), IDS);
    }
    assert.deepEqual(
      await keys(),
      newest.flatMap((id) => [`${id}.manifest.json`, `${id}.zip`]).sort(),
      `the oldest (${first}) was removed from the bucket`,
    );
  });

  it('a restore downloads the archive from the bucket on each host and reconnects both sessions without a QR', async () => {
    const list = await stack.call('GET', '/api/v1/backups');
    const id = list.body.backups[0].id as string;
    const hostOf = Object.fromEntries(await Promise.all(IDS.map(async (s) => [s, (await stack.status(s)).host])));
    const qr = await Promise.all(IDS.map((s) => stack.redis.hget(`${stack.prefix}session:${s}`, 'qrCount')));
    // A marker in each live folder: the restored folder (from the bucket) does not have it.
    for (const s of IDS) writeFileSync(path.join(dirOf(hostOf[s]), s, 'marker.txt'), 'not in the backup');
    const ino = Object.fromEntries(IDS.map((s) => [s, statSync(path.join(dirOf(hostOf[s]), s)).ino]));
    const since = Date.now();
    const r = await stack.restore(id, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([...r.body.restore.restored].sort(), IDS);
    for (const [i, s] of IDS.entries()) {
      const dir = path.join(dirOf(hostOf[s]), s);
      assert.notEqual(statSync(dir).ino, ino[s], `${s}'s folder on ${hostOf[s]} was swapped`);
      assert.ok(!existsSync(path.join(dir, 'marker.txt')), `${s}'s files came from the archive`);
      const st = await stack.status(s);
      assert.equal(st.status, 'connected');
      assert.equal(st.host, hostOf[s]);
      assert.ok(Number(await stack.redis.hget(`${stack.prefix}session:${s}`, 'connectedAt')) >= since);
      assert.equal(await stack.redis.hget(`${stack.prefix}session:${s}`, 'qrCount'), qr[i], `${s}: no new QR`);
    }
    assert.deepEqual(leftovers(backupsA), [], 'the downloads were removed (local)');
    assert.deepEqual(leftovers(backupsB), [], 'the downloads were removed (host-b)');
    // The pre-restore backup went to the bucket too (rotation then keeps MAX_BACKUPS=2, the restored one protected).
    assert.ok((await keys()).includes(`${r.body.restore.preRestoreBackup}.zip`));
  });

  it('wrong credentials: a clear error naming the store, no secret, nothing half-written in the bucket or on disk', async () => {
    const before = await keys();
    const wrong = `wrong-${randomBytes(12).toString('hex')}`;
    // Every process of the stack restarted with a wrong secret (the access key exists: the signature is refused).
    await stack.killApi('SIGTERM');
    await stack.killOrchestrator('SIGTERM');
    for (const c of stack.extraHosts.splice(0)) {
      const exited = new Promise((res) => c.once('exit', res));
      c.kill('SIGTERM');
      await exited;
    }
    stack.env.S3_SECRET_ACCESS_KEY = wrong;
    await stack.startOrchestrator();
    await stack.startHost('host-b', { SESSIONS_DIR: hostBSessions, BACKUPS_DIR: backupsB });
    await stack.startApi();

    const t0 = Date.now();
    const r = await stack.call('POST', '/api/v1/backups/create', {});
    const took = Date.now() - t0;
    assert.equal(r.status, 500, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'BACKUP_FAILED');
    assert.match(r.body.error.message, new RegExp(`S3 .* in bucket ${bucket} failed: SignatureDoesNotMatch HTTP 403`));
    assert.ok(took < 30_000, `failed at once, not after an hour of retries (${took} ms)`);
    const list = await stack.call('GET', '/api/v1/backups');
    assert.equal(list.status, 502, JSON.stringify(list.body));
    assert.equal(list.body.error.code, 'BACKUP_STORE_UNAVAILABLE');
    assert.match(list.body.error.message, /SignatureDoesNotMatch/);
    const restore = await stack.call(
      'POST',
      `/api/v1/backups/restore/${before.find((k) => k.endsWith('.zip'))!.slice(0, -4)}`,
      {},
    );
    assert.equal(restore.status, 502, JSON.stringify(restore.body));
    for (const body of [r.body, list.body, restore.body]) {
      assert.ok(!JSON.stringify(body).includes(wrong), 'the secret is not echoed');
      assert.ok(!JSON.stringify(body).includes(secretAccessKey));
    }
    for (const log of ['orchestrator', 'orchestrator-host-b', 'api'])
      assert.ok(!(await fs.readFile(stack.logPath(log), 'utf8')).includes(wrong), `${log}: no secret in the log`);
    assert.deepEqual(await keys(), before, 'the bucket is unchanged');
    assert.deepEqual(leftovers(backupsA), [], 'no half archive on host local');
    assert.deepEqual(leftovers(backupsB), [], 'no half archive on host-b');
    // The sessions were not touched (after the restart of every orchestrator they report connected again).
    for (const s of IDS) await stack.waitForStatus(s, 'connected', 60_000);
  });
});
