/**
 * A long-lived session's workflow history grows with every disconnect/reconnect cycle (a phone on a flaky network
 * has many a day); a small growth per cycle keeps replays fast and continue-as-new rare. Counted on the real
 * Temporal server: WhatsApp closes the stream (515), the worker reconnects, CONNECTED again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { workflowIdFor } from '../common/session.js';
import { stateQuery } from '../workflows/session.js';
import { Stack, waitFor } from './helpers/stack.js';

const CYCLES = 5;
/**
 * Two signals (DISCONNECTED, CONNECTED), each 1 event + its workflow task (3) + one local activity (1): 10, and
 * now and then one or two more workflow tasks (signals arriving while one runs). As activities: ~19.
 */
const MAX_EVENTS_PER_CYCLE = 14;

describe('workflow history per reconnect', () => {
  let stack: Stack;
  before(async () => {
    stack = await new Stack({ proxies: 1 }).start();
  });
  after(async () => stack?.stop());

  it(`a disconnect/reconnect cycle adds at most ${MAX_EVENTS_PER_CYCLE} history events`, async () => {
    const id = 'hist1';
    const phone = '15550004001';
    assert.equal((await stack.call('POST', '/api/sessions/provision', { sessionId: id })).status, 201);
    await stack.scan(id, phone, 60_000);
    await stack.waitForStatus(id, 'connected', 60_000);
    const handle = stack.temporal.workflow.getHandle(workflowIdFor(`e2e-${stack.id}`, id));
    const connectedAt = async () => (await handle.query(stateQuery)).connectedAt;
    let last = await waitFor('the first CONNECTED in the workflow', connectedAt, 30_000);
    const before = (await handle.describe()).historyLength;
    for (let i = 0; i < CYCLES; i++) {
      stack.sim.fault(phone, 'restart');
      last = await waitFor(
        `reconnect ${i + 1}`,
        async () => {
          const at = await connectedAt();
          return at !== null && at !== last ? at : null;
        },
        30_000,
      );
    }
    const added = (await handle.describe()).historyLength - before;
    const perCycle = added / CYCLES;
    console.log(`history events per reconnect cycle: ${perCycle.toFixed(1)} (${added} in ${CYCLES} cycles)`);
    assert.ok(perCycle <= MAX_EVENTS_PER_CYCLE, `${perCycle} events per cycle (${added} in ${CYCLES})`);
  });
});
