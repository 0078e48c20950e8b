/**
 * Backups and the auth folder schema: an archive carries schema.json and the key types Baileys 7 adds, and an
 * archive whose auth schema is newer than the code is refused at verification (before any restore touches a folder).
 * Real files, the real archive writer and verifier.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import {
  BackupInvalidError,
  buildManifest,
  snapshotSessions,
  verifyArchive,
  writeArchive,
} from '../common/backup-archive.js';
import { AUTH_SCHEMA_VERSION } from '../common/auth-schema.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-backup-schema-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

async function archiveWithSchema(name: string, version: number): Promise<string> {
  const sessions = path.join(root, name, 'sessions');
  const dir = path.join(sessions, 's1');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'creds.json'), JSON.stringify({ me: { id: '15550001001:7@s.whatsapp.net' } }));
  fs.writeFileSync(path.join(dir, 'schema.json'), JSON.stringify({ format: 'baileys-multi-file', version }));
  fs.writeFileSync(path.join(dir, 'lid-mapping-15550001001.json'), JSON.stringify('900015550001001'));
  fs.writeFileSync(path.join(dir, 'tctoken-900015559998888@lid.json'), JSON.stringify({ token: 'x' }));
  const snap = await snapshotSessions(sessions);
  const file = path.join(root, name, 'backup.zip');
  await writeArchive(file, buildManifest('backup_2026-01-01_000000', 'test', Date.now(), snap), snap.entries);
  return file;
}

test('an archive carries schema.json and the 7.x key files', async () => {
  const file = await archiveWithSchema('current', AUTH_SCHEMA_VERSION);
  const manifest = await verifyArchive(file);
  const paths = manifest.files.map((f) => f.path).sort();
  assert.deepEqual(paths, [
    'sessions/s1/creds.json',
    'sessions/s1/lid-mapping-15550001001.json',
    'sessions/s1/schema.json',
    'sessions/s1/tctoken-900015559998888@lid.json',
  ]);
  // Extraction (the restore's staging) gives back every file byte for byte, the schema file included.
  const staged = path.join(root, 'current', 'staged');
  await verifyArchive(file, undefined, staged);
  for (const f of ['creds.json', 'schema.json', 'lid-mapping-15550001001.json', 'tctoken-900015559998888@lid.json'])
    assert.equal(
      fs.readFileSync(path.join(staged, 's1', f), 'utf8'),
      fs.readFileSync(path.join(root, 'current', 'sessions', 's1', f), 'utf8'),
      f,
    );
});

test('an archive whose auth schema is newer than the code is refused', async () => {
  const file = await archiveWithSchema('newer', AUTH_SCHEMA_VERSION + 1);
  await assert.rejects(verifyArchive(file), (err: unknown) => {
    assert.ok(err instanceof BackupInvalidError);
    assert.match(err.message, /sessions\/s1\/schema\.json: auth schema 3 is newer/);
    return true;
  });
});
