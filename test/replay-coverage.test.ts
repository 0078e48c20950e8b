/**
 * Replay coverage (issue 13): real runs of the paths the older fixtures miss — a session workflow that continues as
 * new (SESSION_MAX_HISTORY_EVENTS made small, then restarts until the run changes) and a provision that fails (no
 * proxy capacity) — replay against the current workflow code. With RECORD_HISTORIES=1 they become fixtures for the
 * offline guard in test/replay.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { workflowIdFor } from '../common/session.js';
import { replayRecorded } from './helpers/replay.js';
import { Stack, waitFor } from './helpers/stack.js';

describe('replay of continue-as-new and provision-failure runs', () => {
  let stack: Stack;
  before(async () => {
    stack = await new Stack({ proxies: 1, extraEnv: { SESSION_MAX_HISTORY_EVENTS: '60' } }).start();
  });
  after(async () => stack?.stop());

  const runsOf = async (workflowId: string) => {
    const runs: Array<{ workflowId: string; runId: string }> = [];
    for await (const wf of stack.temporal.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
      runs.push({ workflowId: wf.workflowId, runId: wf.runId });
    return runs;
  };

  it('a session that continued as new, and a refused provision, replay without non-determinism', async () => {
    const id = 'can1';
    let r = await stack.call('POST', '/api/sessions/provision', { sessionId: id, phone: '15550009601' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await stack.scan(id, '15550009601');
    await stack.waitForStatus(id, 'connected');
    const workflowId = workflowIdFor(stack.env.WORKFLOW_ID_PREFIX!, id);
    const firstRun = (await stack.temporal.workflow.getHandle(workflowId).describe()).runId;
    // Each restart adds history events; past 60 the run continues as new, carrying its state.
    await waitFor(
      'a continue-as-new',
      async () => {
        const d = await stack.temporal.workflow.getHandle(workflowId).describe();
        if (d.runId !== firstRun) return true;
        r = await stack.call('POST', `/api/sessions/${id}/restart`, {});
        assert.equal(r.status, 200, JSON.stringify(r.body));
        await stack.waitForStatus(id, 'connected');
        return null;
      },
      120_000,
      10,
    );
    await stack.waitForStatus(id, 'connected');
    assert.equal((await stack.status(id)).phone, '15550009601', 'the state carried into the new run');

    // The proxy holds 4 sessions at most: the 5th provision fails inside its workflow (no proxy capacity).
    for (let i = 2; i <= 4; i++) {
      r = await stack.call('POST', '/api/sessions/provision', { sessionId: `can${i}` });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    r = await stack.call('POST', '/api/sessions/provision', { sessionId: 'can5' });
    assert.equal(r.status, 503, JSON.stringify(r.body));
    const refused = workflowIdFor(stack.env.WORKFLOW_ID_PREFIX!, 'can5');
    await stack.temporal.workflow.getHandle(refused).result();

    const runs = [...(await runsOf(workflowId)), ...(await runsOf(refused))];
    assert.ok(runs.length >= 3, `two runs of ${id} and the refused one: ${JSON.stringify(runs)}`);
    assert.equal(await replayRecorded(runs), runs.length);
  });
});
