/**
 * One watchdog for every session (SPEC §3.3): on a durable timer, find connected sessions whose last PING (kept
 * in Redis by the webhook bridge) is older than the timeout, and signal them. Keeping this sweep out of the
 * session workflows is what keeps their histories small: a healthy connected session records nothing.
 */
import { continueAsNew, log, patched, proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { SessionActivities } from '../activities/session-activities.js';

export interface WatchdogInput {
  intervalMs: number;
  pingTimeoutMs: number;
  /** Sweeps per run before continue-as-new. */
  sweepsPerRun?: number;
}

const { signalStaleSessions } = proxyActivities<SessionActivities>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 3 },
});

export const WATCHDOG_WORKFLOW_ID = 'watchdog';

export async function watchdogWorkflow(input: WatchdogInput): Promise<void> {
  const sweeps = input.sweepsPerRun ?? 200;
  // PINGs could not be recorded while the sweep was failing (same outage): until a full timeout has passed since
  // then, every session would look stale and be restarted at once.
  let graceUntil = 0;
  let lastGoodSweepAt = Date.now();
  for (let i = 0; i < sweeps; i++) {
    await sleep(input.intervalMs);
    if (Date.now() < graceUntil && patched('watchdog-outage-grace')) continue;
    // The sweep itself notices an outage that ended before it could fail (a retried attempt, a long gap).
    const gapCheck = patched('watchdog-outage-gap')
      ? { lastGoodSweepAt, maxGapMs: input.intervalMs + Math.max(input.pingTimeoutMs / 2, 5_000) }
      : {};
    // A failed sweep (Redis or Temporal unreachable) is skipped, never fatal: the next round tries again, so the
    // watchdog outlives any outage and resumes by itself.
    try {
      await signalStaleSessions({ pingTimeoutMs: input.pingTimeoutMs, signalName: 'watchdogAlarm', ...gapCheck });
      lastGoodSweepAt = Date.now();
    } catch (err) {
      log.warn('watchdog sweep failed; next round retries', { error: String(err) });
      graceUntil = Date.now() + input.pingTimeoutMs;
      lastGoodSweepAt = graceUntil; // the first sweep after the grace is judged normally
    }
    if (workflowInfo().continueAsNewSuggested) break;
  }
  await continueAsNew<typeof watchdogWorkflow>(input);
}
