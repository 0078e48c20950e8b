/**
 * The per-session anti-ban dispatcher (README "Outbound messages and anti-ban"). One workflow per session
 * with pending messages: each step (one idempotent local activity, one Lua script) hands at most one message from
 * the session's pending queue (Redis) to the worker outbox, then the workflow waits a durable, jittered gap. Past
 * the rolling-window cap it sleeps until the window opens; idle or disconnected it waits for a `wake` signal (sent
 * by the gateway and on CONNECTED) or a poll timeout; idle for one poll with nothing in flight, it ends. State is plain JSON (loop counter, next planned time);
 * continue-as-new keeps the history short. Math.random here is Temporal's seeded, replay-safe generator.
 *
 * The gap is measured between hand-offs (Redis time), not between timers: a durable timer covers the gap up to
 * FINE_WAIT_MS before the planned hand-off, and the step itself waits out the rest (`notBefore`), because server
 * timers can fire hundreds of milliseconds late while an in-process wait is exact to a millisecond or two.
 */
import {
  condition,
  continueAsNew,
  defineSignal,
  patched,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { DispatchActivities } from '../activities/dispatch-activities.js';

export const wakeSignal = defineSignal('wake');
/** Pacing limits changed (PUT .../limits): re-plan the wait in progress with the new gap. */
export const replanSignal = defineSignal('replan');

/** The last part of a gap is waited inside the step (exact), the rest on a durable timer. */
export const FINE_WAIT_MS = 1_500;

export interface DispatcherInput {
  sessionId: string;
  /** Steps per run before continue-as-new. */
  stepsPerRun?: number;
  /** Planned time of the next hand-off, carried over continue-as-new. */
  notBefore?: number;
}

// A local activity: no task-queue round trip per step. Safe to retry: the step is idempotent per stepId.
const { dispatchStep, currentPacing } = proxyLocalActivities<DispatchActivities>({
  startToCloseTimeout: '30s',
  localRetryThreshold: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s' },
});

/** mean · (1 ± jitter%), uniform. */
export function jitteredGap(meanMs: number, jitterPercent: number, rnd: () => number = Math.random): number {
  const j = jitterPercent / 100;
  return Math.max(1, Math.round(meanMs * (1 + (rnd() * 2 - 1) * j)));
}

export async function dispatcherWorkflow(input: DispatcherInput): Promise<void> {
  let woken = false;
  let replan = false;
  setHandler(wakeSignal, () => {
    woken = true;
  });
  setHandler(replanSignal, () => {
    replan = true;
    woken = true;
  });
  const steps = input.stepsPerRun ?? 500;
  const runId = workflowInfo().runId;
  let notBefore = input.notBefore ?? 0; // planned hand-off time of the next message (Redis/epoch ms), 0 = at once
  for (let i = 0; i < steps; i++) {
    woken = false;
    const r = await dispatchStep({ sessionId: input.sessionId, stepId: `${runId}:${i}`, notBefore });
    notBefore = 0;
    if (r.kind === 'gone') return;
    if (r.kind === 'released') {
      notBefore = r.releasedAt + jitteredGap(r.gapMs * r.slowdown, r.jitterPercent);
      // The durable part of the gap; a `replan` (limits changed) measures the gap again from the same hand-off.
      // Without a replan signal this records exactly the timer the earlier `sleep` did (replay-compatible).
      for (;;) {
        const coarse = notBefore - Date.now() - FINE_WAIT_MS;
        if (coarse <= 0) break;
        replan = false;
        if (!(await condition(() => replan, coarse))) break;
        const p = await currentPacing({ sessionId: input.sessionId });
        notBefore = r.releasedAt + jitteredGap(p.gapMs * p.slowdown, p.jitterPercent);
      }
    } else if (r.kind !== 'skipped') {
      const wait = r.kind === 'cap' ? Math.max(10, r.untilMs - Date.now() + 20) : r.idlePollMs;
      const gotWoken = await condition(() => woken, wait);
      // Nothing queued, nothing in flight, no wake for one poll: stop. The next send starts it again
      // (signal-with-start), and the orchestrator wakes every session with pending messages at start-up.
      if (r.kind === 'idle' && !gotWoken && !r.inFlight && patched('idle-dispatcher-stops')) return;
    }
    if (workflowInfo().continueAsNewSuggested) break;
  }
  await continueAsNew<typeof dispatcherWorkflow>({ ...input, notBefore });
}
