/**
 * Activities re-validate session ids before any path, bind mount or delete (issue 14 item 5), and claim auth
 * folders for one tenant (item 2) — the file-level rules, without a stack.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { claimAuthDir, OWNER_FILE, safeSessionDir } from '../../common/auth-owner.js';

describe('session ids in paths, and auth folder claims', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'wa-ids-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('refuses ids that would leave the sessions folder or are not session ids', () => {
    for (const bad of ['..', '../x', 'a/b', '/etc', '', '.', 'x\0y', '.restore-1', 'a'.repeat(200)])
      assert.throws(() => safeSessionDir(root, bad), /invalid session id/, JSON.stringify(bad));
    assert.equal(safeSessionDir(root, 'good_id-1'), path.join(root, 'good_id-1'));
  });

  it('claims new folders, keeps the same tenant, refuses another tenant without touching files', async () => {
    assert.equal(await claimAuthDir(root, 's1', 'acme'), 'new');
    assert.equal(JSON.parse(readFileSync(path.join(root, 's1', OWNER_FILE), 'utf8')).tenant, 'acme');
    writeFileSync(path.join(root, 's1', 'creds.json'), '{"me":{"id":"1555"}}');
    assert.equal(await claimAuthDir(root, 's1', 'acme'), 'kept');
    const before = readFileSync(path.join(root, 's1', OWNER_FILE), 'utf8');
    await assert.rejects(claimAuthDir(root, 's1', 'beta'), /another tenant/);
    await assert.rejects(claimAuthDir(root, 's1', 'admin'), /another tenant/);
    assert.equal(readFileSync(path.join(root, 's1', OWNER_FILE), 'utf8'), before);
    // A folder from before owners were recorded: only the admin may adopt it.
    mkdirSync(path.join(root, 'old1'));
    writeFileSync(path.join(root, 'old1', 'creds.json'), '{}');
    await assert.rejects(claimAuthDir(root, 'old1', 'beta'), /no recorded owner/);
    assert.equal(await claimAuthDir(root, 'old1', 'admin'), 'kept');
  });
});
