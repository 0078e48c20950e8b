/**
 * A long-lived session's workflow history grows with every disconnect/reconnect cycle (a phone on a flaky network
 * has many a day); a small growth per cycle keeps replays fast and continue-as-new rare. Counted on the real
 * Temporal server: WhatsApp closes the stream (515), the worker reconnects.
 *  - A connection back within the worker's DISCONNECT_GRACE_MS (a blip) reports nothing: the history does not grow.
 *  - A loss that outlasts the grace is reported: DISCONNECTED (the session shows `reconnecting`), then CONNECTED.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { redisKeys } from '../common/redis-keys.js';
import { workflowIdFor } from '../common/session.js';
import { stateQuery } from '../workflows/session-definitions.js';
import { replayRecorded } from './helpers/replay.js';
import { Stack, waitFor } from './helpers/stack.js';

const CYCLES = 5;
/**
 * A reported cycle: two signals (DISCONNECTED, CONNECTED), each 1 event + its workflow task (3); the webhook bridge
 * writes both status changes to the mirror, so the workflow runs no activity for them: 8. Besides, once per run,
 * the two events of the first use of the patch that brought this (`bridge-mirrors-reconnects`).
 */
const MAX_EVENTS_PER_REPORTED_CYCLE = 8;
/** A blip: nothing reaches the workflow (now and then a watchdog or PING-unrelated task: allow one). */
const MAX_EVENTS_PER_BLIP = 1;

async function connectedSession(stack: Stack, id: string, phone: string) {
  assert.equal((await stack.call('POST', '/api/sessions/provision', { sessionId: id })).status, 201);
  await stack.scan(id, phone, 60_000);
  await stack.waitForStatus(id, 'connected', 60_000);
  const handle = stack.temporal.workflow.getHandle(workflowIdFor(`e2e-${stack.id}`, id));
  await waitFor(
    'the first CONNECTED in the workflow',
    async () => (await handle.query(stateQuery)).connectedAt,
    30_000,
  );
  return handle;
}

/** Live events published so far, by type (the event bus's counters; one session per stack here). */
async function eventCounts(stack: Stack): Promise<Record<string, number>> {
  const raw = await stack.redis.hgetall(redisKeys(stack.prefix).eventCounters());
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
}

const logins = (stack: Stack, phone: string) =>
  stack.sim.connections().filter((c) => c.kind === 'login' && c.phone === phone).length;

describe('workflow history per reconnect', () => {
  describe('blips within the grace', () => {
    let stack: Stack;
    before(async () => {
      stack = await new Stack({ proxies: 1, extraEnv: { WORKER_ENV_DISCONNECT_GRACE_MS: '15000' } }).start();
    });
    after(async () => stack?.stop());

    it(`a connection back within the grace adds at most ${MAX_EVENTS_PER_BLIP} history event`, async () => {
      const phone = '15550004002';
      const handle = await connectedSession(stack, 'hist2', phone);
      const connectedAt = (await handle.query(stateQuery)).connectedAt;
      const before = (await handle.describe()).historyLength;
      for (let i = 0; i < CYCLES; i++) {
        const seen = logins(stack, phone);
        stack.sim.fault(phone, 'restart');
        // The worker logged in again: a new login at the simulator, open (not closed since).
        await waitFor(
          `reconnect ${i + 1} at the simulator`,
          () =>
            logins(stack, phone) > seen &&
            stack.sim.connections().some((c) => c.kind === 'login' && c.phone === phone && !c.closedAt),
          30_000,
        );
      }
      const history = await handle.fetchHistory();
      const addedEvents = (history.events ?? []).slice(before);
      const added = addedEvents.length;
      const what = addedEvents.map((e) => {
        const signal = e.workflowExecutionSignaledEventAttributes;
        const kind = Object.keys(e).find((k) => k.endsWith('EventAttributes')) ?? '?';
        return signal ? `signal ${JSON.stringify(signal.signalName)}` : kind.replace('EventAttributes', '');
      });
      console.log(`history events per blip: ${(added / CYCLES).toFixed(1)} (${added} in ${CYCLES} blips)`);
      assert.ok(added / CYCLES <= MAX_EVENTS_PER_BLIP, `${added} events in ${CYCLES} blips: ${what.join(', ')}`);
      const state = await handle.query(stateQuery);
      assert.equal(state.status, 'connected');
      assert.equal(state.connectedAt, connectedAt, 'the workflow saw no reconnect');
      // Still a working session: a message goes out after the blips.
      const sent = await stack.call('POST', '/api/send', { sessionId: 'hist2', to: '4915110004002', text: 'after' });
      assert.equal(sent.status, 202);
      let last: unknown;
      await waitFor(
        'the message sent',
        async () => {
          const m = await stack.call('GET', `/api/messages/${sent.body.messageId}`);
          last = m.body;
          // a delivery receipt can overtake the poll
          return ['sent', 'delivered', 'read'].includes(m.body?.status as string);
        },
        60_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; the message: ${JSON.stringify(last)}`);
      });
    });
  });

  describe('losses reported', () => {
    let stack: Stack;
    before(async () => {
      // The grace shorter than the worker's first reconnect delay: every loss outlasts it.
      stack = await new Stack({
        proxies: 1,
        extraEnv: { WORKER_ENV_DISCONNECT_GRACE_MS: '300', WORKER_ENV_RECONNECT_BASE_MS: '1500' },
      }).start();
    });
    after(async () => stack?.stop());

    it(`a reported disconnect/reconnect cycle adds at most ${MAX_EVENTS_PER_REPORTED_CYCLE} history events`, async () => {
      const phone = '15550004001';
      const handle = await connectedSession(stack, 'hist1', phone);
      const connectedAt = async () => (await handle.query(stateQuery)).connectedAt;
      let last = await connectedAt();
      const before = (await handle.describe()).historyLength;
      const countedBefore = await eventCounts(stack);
      for (let i = 0; i < CYCLES; i++) {
        stack.sim.fault(phone, 'restart');
        await stack.waitForStatus('hist1', 'reconnecting', 30_000);
        last = await waitFor(
          `reconnect ${i + 1}`,
          async () => {
            const at = await connectedAt();
            return at !== null && at !== last ? at : null;
          },
          30_000,
        );
      }
      const history = await handle.fetchHistory();
      const addedEvents = (history.events ?? []).slice(before);
      // A patch, the first time a run takes it: its marker and the TemporalChangeVersion search attribute.
      const patchEvents = addedEvents.filter(
        (e) =>
          e.markerRecordedEventAttributes?.markerName === 'core_patch' ||
          e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.TemporalChangeVersion,
      ).length;
      const added = addedEvents.length - patchEvents;
      const perCycle = added / CYCLES;
      console.log(
        `history events per reported cycle: ${perCycle.toFixed(1)} (${added} in ${CYCLES} cycles, besides ${patchEvents} of a patch's first use)`,
      );
      const what = addedEvents.map((e) => Object.keys(e).find((k) => k.endsWith('EventAttributes')) ?? '?');
      assert.ok(patchEvents <= 2, `a patch's first use once per run: ${patchEvents} events`);
      assert.ok(perCycle <= MAX_EVENTS_PER_REPORTED_CYCLE, `${perCycle} events per cycle: ${what.join(', ')}`);
      // The mirror the bridge wrote agrees with the workflow: connected again, the loss cleared.
      const state = await handle.query(stateQuery);
      assert.equal(state.status, 'connected');
      assert.equal(state.lastError, null);
      const record = await stack.status('hist1');
      assert.equal(record.status, 'connected');
      assert.equal(record.lastError ?? null, null);
      // The run replays with the current code (RECORD_HISTORIES=1: kept as a fixture for test/replay.test.ts).
      assert.equal(await replayRecorded([handle.workflowId]), 1);
      // Each loss and each reconnect was published as a live event, as when the workflow wrote them.
      const counted = await eventCounts(stack);
      assert.equal((counted.status ?? 0) - (countedBefore.status ?? 0), CYCLES, 'one status event per loss');
      assert.equal((counted.connected ?? 0) - (countedBefore.connected ?? 0), CYCLES, 'one per reconnect');
    });
  });

  describe('QR rotations while a session waits for its scan', () => {
    let stack: Stack;
    before(async () => {
      // A QR every second (Baileys: the first after WA_QR_TIMEOUT_MS, then every 20 s in production).
      stack = await new Stack({
        proxies: 1,
        simOptions: { qrRefs: 30 },
        extraEnv: { WORKER_ENV_WA_QR_TIMEOUT_MS: '1000' },
      }).start();
    });
    after(async () => stack?.stop());

    it('only the first QR of a worker reaches the workflow; every QR reaches GET /qr', async () => {
      const id = 'histqr';
      assert.equal((await stack.call('POST', '/api/sessions/provision', { sessionId: id })).status, 201);
      await stack.waitForStatus(id, 'qr_ready', 30_000);
      const shown = new Set<string>();
      await waitFor(
        'five QRs at GET /qr',
        async () => {
          const r = await stack.call('GET', `/api/sessions/${id}/qr`);
          if (r.status === 200) shown.add(r.body.qr as string);
          return shown.size >= 5;
        },
        30_000,
        100,
      );
      const handle = stack.temporal.workflow.getHandle(workflowIdFor(`e2e-${stack.id}`, id));
      const events = (await handle.fetchHistory()).events ?? [];
      const signals = events.filter((e) => e.workflowExecutionSignaledEventAttributes).length;
      console.log(`${shown.size} QRs shown; ${signals} signals, ${events.length} history events`);
      assert.equal(signals, 1, `one signal (the first QR) while ${shown.size} QRs were shown, got ${signals}`);
      // The provision's Redis steps ran inside its workflow tasks (markers); activities were only the proxy
      // reservation (commands are taken while it is retried) and the host's steps (the auth folder, the worker).
      const activities = events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
      const markers = events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity');
      console.log(`provision to the first QR: activities ${activities.join(', ')}; ${markers.length} local activities`);
      assert.deepEqual(activities, ['claimAuthFolder', 'reserveProxy', 'startWorker']);
      assert.ok(markers.length >= 5, `register, profile, pending, 2 inventory checks: ${markers.length}`);
      assert.ok(events.length <= 46, `${events.length} history events to the first QR`);
      // a scan still links it: the rotations were served, the workflow still follows
      await stack.scan(id, '15550004003', 30_000);
      await stack.waitForStatus(id, 'connected', 60_000);
    });
  });
});
