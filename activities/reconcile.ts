import type { Logger } from 'pino';
import { LIVE_STATUSES } from '../common/session.js';
import type { SessionStore } from '../state/sessions.js';
import type { SessionActivities } from './session-activities.js';
import type { WorkerRunner } from './runner/types.js';

const RECONCILE_START_CONCURRENCY = 8;

/**
 * At orchestrator start: workers without a live session are removed; live sessions whose worker vanished get
 * it back (same proxy, same auth folder). Returns what it did, for the log and for tests.
 */
export async function reconcileWorkers(deps: {
  runner: WorkerRunner;
  sessions: SessionStore;
  activities: Pick<SessionActivities, 'startWorker'>;
  logger: Logger;
  /** Only sessions placed on this host are this orchestrator's to restart (sessions without a host: 'local'). */
  hostId: string;
}): Promise<{ removed: string[]; started: string[] }> {
  const { runner, sessions, activities, logger } = deps;
  const removed: string[] = [];
  const started: string[] = [];
  const records = new Map((await sessions.list()).map((s) => [s.sessionId, s]));
  const workers = await runner.list();

  for (const worker of workers) {
    const session = records.get(worker.sessionId);
    if (
      !session ||
      !LIVE_STATUSES.includes(session.status) ||
      !session.proxy ||
      (session.host ?? 'local') !== deps.hostId
    ) {
      await runner.stop(worker.sessionId, { remove: true });
      removed.push(worker.sessionId);
    }
  }
  const known = new Map(workers.map((w) => [w.sessionId, w]));
  const due: Array<{ sessionId: string; proxyUrl: string }> = [];
  for (const session of records.values()) {
    if (!LIVE_STATUSES.includes(session.status) || session.status === 'failing_over' || !session.proxy) continue;
    if ((session.host ?? 'local') !== deps.hostId) continue;
    const worker = known.get(session.sessionId);
    if (worker?.running) continue;
    // Never started by its workflow yet (a provision in flight): that start is the workflow's, with its generation.
    if (!worker && (await sessions.workerGeneration(session.sessionId)) === null) continue;
    due.push({ sessionId: session.sessionId, proxyUrl: session.proxy });
  }
  // A few at a time: after a host reboot one by one would hold the orchestrator's start for minutes with hundreds
  // of sessions (the login gate paces their logins anyway).
  let next = 0;
  const lane = async () => {
    while (next < due.length) {
      const start = due[next++]!;
      await activities.startWorker(start);
      started.push(start.sessionId);
    }
  };
  await Promise.all(Array.from({ length: Math.min(RECONCILE_START_CONCURRENCY, due.length) }, lane));
  if (removed.length || started.length) logger.info({ removed, started }, 'reconciled workers');
  return { removed, started };
}
