/**
 * The session activities as the session and failover workflows call them: quick Redis/alert steps on the
 * workflow's queue, and container steps (start/stop/restart a worker, its auth files) on the session's host
 * queue, with heartbeats. One definition, so both workflows retry the same way.
 */
import { log, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { SessionActivities } from '../activities/session-activities.js';

/**
 * `maximumAttempts`: a session's timings may shrink it (tests that make a step fail after its retries). `A`: the
 * activity group (the session's by default; host placement uses the same options).
 */
export const quickActivities = <A extends object = SessionActivities>(maximumAttempts = 10) =>
  proxyActivities<A>({
    startToCloseTimeout: '20s',
    retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts },
  });

/**
 * The same quick steps as local activities: run by the workflow's own worker inside its workflow task, they add
 * one history event each instead of an activity's three plus a second workflow task. For the steps every
 * reconnect takes (the status mirror, CONNECTED), so a long-lived session's history grows slowly.
 */
export const localQuickActivities = (maximumAttempts = 10) =>
  proxyLocalActivities<SessionActivities>({
    startToCloseTimeout: '20s',
    retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts },
  });

/**
 * `maximumAttempts`: a failover gives up on a candidate proxy sooner than a session on its own proxy.
 * `scheduleToStartTimeout`: nothing polls a dead host's queue; a step waiting there fails after it instead of
 * holding its session forever (a move, which waits behind it, can then take the session elsewhere).
 */
export const containerActivitiesOn = (
  hostQueue: string | undefined,
  maximumAttempts = 5,
  scheduleToStartTimeout = '60s',
) =>
  proxyActivities<SessionActivities>({
    taskQueue: hostQueue,
    ...(hostQueue ? { scheduleToStartTimeout } : {}),
    startToCloseTimeout: '90s',
    heartbeatTimeout: '30s',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '15s', maximumAttempts },
  });

const alertActivities = () =>
  proxyActivities<SessionActivities>({
    startToCloseTimeout: '10s',
    retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 5 },
  });

/**
 * Alerts are best effort for the lifecycle: the activity only queues the alert (the orchestrator
 * delivers and retries it), and even a failure to queue it (Redis down) never fails the step that raised it.
 */
export async function bestEffortAlert(input: Parameters<SessionActivities['sendAlert']>[0]): Promise<void> {
  try {
    await alertActivities().sendAlert(input);
  } catch (err) {
    log.warn('alert not queued', { kind: input.kind, error: String(err) });
  }
}
