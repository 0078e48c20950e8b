import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { ROOT, testDataConverter } from './stack.js';

export const WORKFLOWS_PATH = path.join(ROOT, 'workflows', 'index.ts');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'histories');

/** A workflow's history in Temporal's canonical JSON, as `temporal workflow show --output json` prints it. */
export function historyJson(workflowId: string, runId?: string): string {
  const cli = process.env.TEMPORAL_CLI_PATH ?? path.join(ROOT, 'data', 'tools', 'py', 'bin', 'temporal');
  return execFileSync(
    cli,
    [
      'workflow',
      'show',
      '--workflow-id',
      workflowId,
      ...(runId ? ['--run-id', runId] : []),
      '--output',
      'json',
      '--address',
      process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    ],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
}

/** Replays histories with the current workflow code; any non-determinism fails. Returns how many replayed. */
export async function replayHistories(histories: Array<{ workflowId: string; json: string }>): Promise<number> {
  let replayed = 0;
  // Raw JSON: the worker converts it itself (see Worker.validateHistory).
  const parsed = histories.map((h) => ({ workflowId: h.workflowId, history: JSON.parse(h.json) as unknown }));
  // Recorded histories are encrypted (common/codec.ts); the old plain fixtures pass through the codec unchanged.
  const opts = { workflowsPath: WORKFLOWS_PATH, dataConverter: testDataConverter() };
  for await (const result of Worker.runReplayHistories(opts, parsed)) {
    if (result.error)
      throw new Error(`replay of ${result.workflowId} failed: ${String(result.error)}`, { cause: result.error });
    replayed++;
  }
  return replayed;
}

/**
 * Fetches the histories of workflows that ran against the real server and replays them. With RECORD_HISTORIES=1
 * they are also saved as fixtures for the offline replay test (test/replay.test.ts).
 */
export async function replayRecorded(
  workflows: Array<string | { workflowId: string; runId: string }>,
): Promise<number> {
  const histories = workflows.map((w) =>
    typeof w === 'string'
      ? { workflowId: w, json: historyJson(w), name: w }
      : {
          workflowId: w.workflowId,
          json: historyJson(w.workflowId, w.runId),
          name: `${w.workflowId}_${w.runId.slice(-12)}`,
        },
  );
  if (process.env.RECORD_HISTORIES === '1') {
    for (const h of histories) {
      const name = h.name.replace(/^[^:]+:/, '').replace(/[^A-Za-z0-9_-]/g, '_');
      writeFileSync(path.join(FIXTURES, `${name}.json`), h.json);
    }
  }
  return replayHistories(histories);
}
