import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURES, replayHistories } from './helpers/replay.js';

/**
 * Offline determinism guard: histories recorded from real runs (provision, QR, connect, restart, failover,
 * logout, watchdog restart) replay against the current workflow code. A change that alters the command
 * sequence of existing runs fails here; such a change needs `patched()`.
 */
describe('workflow replay of recorded histories', () => {
  it('replays every fixture without non-determinism', async () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.json'));
    assert.ok(files.length >= 3, `fixtures present (${files.length})`);
    const replayed = await replayHistories(
      files.map((f) => ({ workflowId: f.replace(/\.json$/, ''), json: readFileSync(path.join(FIXTURES, f), 'utf8') })),
    );
    assert.equal(replayed, files.length);
  });
});
