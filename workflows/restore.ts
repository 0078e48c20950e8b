/**
 * Restore of a backup archive as a compensating workflow (SPEC §4). Steps, each with its compensation registered
 * before it runs:
 *  1. verify the archive (manifest, checksums, safe paths, no symlinks, zip-bomb limits): nothing touched yet;
 *  2. automatic backup of the current state (a child backup workflow);
 *  3. extract the archive beside the live folders (`sessions/.restore-<id>/new`);
 *  4. stop the workers of the restored sessions          ↺ start them again;
 *  5. swap each session folder (rename in, old one kept)  ↺ put the old folders back;
 *  6. rebuild Redis from the folders (phone, bindings, counters) ↺ rebuild again from the old folders;
 *  7. start the workers and wait until every session is connected;
 *  8. drop the journal folder.
 * Any failure after step 3 runs the compensations in reverse and the workflow fails with a report. Every activity
 * is idempotent and reads its progress from the folders, so a crash of the orchestrator at any point is completed
 * (or rolled back) by the retry after restart.
 */
import { ApplicationFailure, executeChild, log, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import { failureOf } from '../common/failure.js';
import type { BackupActivities, RestorePlan } from '../activities/backup.js';
import type { SessionActivities } from '../activities/session-activities.js';
import { backupWorkflow, type BackupWorkflowResult } from './backup.js';

export interface RestoreInput {
  backupId: string;
  /** Restore only this session's folder (default: every session of the archive). */
  sessionId: string | null;
  connectTimeoutMs: number;
}

export interface RestoreReport {
  ok: boolean;
  backupId: string;
  restoreId: string;
  sessionId: string | null;
  preRestoreBackup: string | null;
  restored: string[];
  /** Restored as files only: the archive holds no paired credentials for them (not waited for). */
  unpaired: string[];
  phones: Record<string, string | null>;
  conflicts: string[];
  unknownSessions: string[];
  rolledBack: boolean;
  error: string | null;
  timings: Record<string, number>;
  durationMs: number;
}

// Per queue: a host's own queue for the steps touching its disk and workers (undefined: the workflow's queue).
const quickOn = (taskQueue?: string) =>
  proxyActivities<BackupActivities & SessionActivities>({
    taskQueue,
    startToCloseTimeout: '60s',
    heartbeatTimeout: '10s',
    retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
  });
const filesOn = (taskQueue?: string) =>
  proxyActivities<BackupActivities>({
    taskQueue,
    startToCloseTimeout: '10m',
    heartbeatTimeout: '10s',
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '10s',
      maximumAttempts: 5,
      nonRetryableErrorTypes: ['BackupInvalid'],
    },
  });
/** Compensations must not give up: retried until they succeed (they are idempotent). */
const undoOn = (taskQueue?: string) =>
  proxyActivities<BackupActivities>({
    taskQueue,
    startToCloseTimeout: '5m',
    heartbeatTimeout: '10s',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
  });
const quick = quickOn();
const files = filesOn();

/** The sessions of one host, with their part of the plan (hostId null: the workflow's own queue; archives from older, single-host versions). */
interface HostPart {
  hostId: string | null;
  queue?: string;
  sessionIds?: string[];
  plan?: RestorePlan;
}

export async function restoreWorkflow(input: RestoreInput): Promise<RestoreReport> {
  const t0 = Date.now();
  // The random tail of the run id (run ids may be UUIDv7: their head is a timestamp shared by close runs).
  const restoreId = workflowInfo().runId.replace(/-/g, '').slice(-12);
  const timings: Record<string, number> = {};
  const report: RestoreReport = {
    ok: false,
    backupId: input.backupId,
    restoreId,
    sessionId: input.sessionId,
    preRestoreBackup: null,
    restored: [],
    unpaired: [],
    phones: {},
    conflicts: [],
    unknownSessions: [],
    rolledBack: false,
    error: null,
    timings,
    durationMs: 0,
  };
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const s = Date.now();
    try {
      return await fn();
    } finally {
      timings[name] = Date.now() - s;
    }
  };
  const fail = async (error: string, type: string): Promise<never> => {
    report.error = error;
    report.durationMs = Date.now() - t0;
    await quick
      .sendAlert({
        kind: 'restore_failed',
        text: `restore of ${input.backupId} failed${report.rolledBack ? ' and was rolled back' : ''}: ${error}`,
        dedupeKey: `restore_failed:${restoreId}`,
      })
      .catch(() => undefined);
    throw ApplicationFailure.nonRetryable(error, type, report);
  };

  // 1 + 2: nothing has been touched if these fail.
  // Multi-host: each session's files and worker are handled on the queue of the host that owns it.
  const perHost = patched('restore-per-host');
  let verified: Awaited<ReturnType<BackupActivities['restoreVerify']>>;
  try {
    verified = await step('verify', () =>
      files.restoreVerify({ backupId: input.backupId, sessionId: input.sessionId }),
    );
  } catch (err) {
    return fail(`archive refused: ${failureOf(err).message}`, 'BackupInvalid');
  }
  let parts: HostPart[] = [{ hostId: null }];
  if (perHost) {
    try {
      parts = await step('hosts', () =>
        quick.restoreHosts({ sessions: verified.sessions, sessionId: input.sessionId }),
      );
    } catch (err) {
      return fail(`no host for the restore: ${failureOf(err).message}`, 'RestoreFailed');
    }
  }
  let pre: BackupWorkflowResult;
  try {
    pre = await step('preRestoreBackup', () =>
      executeChild(backupWorkflow, {
        workflowId: `${workflowInfo().workflowId}:pre-backup:${restoreId}`,
        args: [{ reason: `before restore of ${input.backupId}`, alert: false, protect: [input.backupId] }],
      }),
    );
  } catch (err) {
    return fail(`automatic pre-restore backup failed: ${failureOf(err).message}`, 'PreRestoreBackupFailed');
  }
  report.preRestoreBackup = pre.id;

  const plan: RestorePlan = {
    restoreId,
    backupId: input.backupId,
    targets: [],
    hadFolder: [],
    live: [],
    unpaired: [],
    phones: {},
    crossTenant: [],
  };
  const each = (fn: (p: HostPart & { plan: RestorePlan }) => Promise<unknown>) =>
    Promise.all(parts.map((p) => fn(p as HostPart & { plan: RestorePlan })));
  try {
    await step('stage', async () => {
      for (const p of parts) {
        p.plan = await filesOn(p.queue).restoreStage({
          restoreId,
          backupId: input.backupId,
          sessionId: input.sessionId,
          only: p.sessionIds,
        });
        plan.targets.push(...p.plan.targets);
        plan.hadFolder.push(...p.plan.hadFolder);
        plan.live.push(...p.plan.live);
        plan.unpaired!.push(...(p.plan.unpaired ?? []));
        plan.crossTenant!.push(...(p.plan.crossTenant ?? []));
        Object.assign(plan.phones, p.plan.phones);
      }
    });
  } catch (err) {
    for (const p of parts) await undoOn(p.queue).restoreCleanup({ restoreId });
    return fail(`extraction failed: ${failureOf(err).message}`, 'RestoreFailed');
  }

  // Compensations, run in reverse order of registration: files back, Redis rebuilt from them, workers started.
  const compensations: Array<() => Promise<unknown>> = [];
  try {
    compensations.push(() => each((p) => undoOn(p.queue).restoreStartWorkers({ sessionIds: p.plan.live })));
    await step('stopWorkers', () =>
      each((p) => quickOn(p.queue).restoreStopWorkers({ sessionIds: p.plan.live, reason: 'restore in progress' })),
    );

    compensations.push(() => each((p) => undoOn(p.queue).restoreRebuildRedis({ sessionIds: p.plan.targets })));
    compensations.push(() =>
      each((p) =>
        undoOn(p.queue).restoreRollbackFiles({ restoreId, targets: p.plan.targets, hadFolder: p.plan.hadFolder }),
      ),
    );
    await step('swap', () => each((p) => filesOn(p.queue).restoreSwap({ restoreId, targets: p.plan.targets })));

    // Each host reads its own restored creds.json; the Redis state they rebuild is shared.
    const rebuilt = await step('rebuildRedis', () =>
      Promise.all(parts.map((p) => quickOn(p.queue).restoreRebuildRedis({ sessionIds: p.plan!.targets }))),
    );
    for (const r of rebuilt) {
      Object.assign(report.phones, r.phones);
      report.conflicts.push(...r.conflicts);
      report.unknownSessions.push(...r.unknown);
    }
    if (report.conflicts.length) throw new Error(`phone conflicts: ${report.conflicts.join('; ')}`);

    const since = Date.now();
    await step('startWorkers', () => each((p) => quickOn(p.queue).restoreStartWorkers({ sessionIds: p.plan.live })));
    // A session never paired cannot connect without a scan: only paired sessions are waited for.
    report.unpaired = plan.unpaired ?? [];
    const awaited = plan.live.filter((id) => !report.unpaired.includes(id));
    await step('awaitConnected', () =>
      files.restoreAwaitConnected({ sessionIds: awaited, since, timeoutMs: input.connectTimeoutMs }),
    );
  } catch (err) {
    const error = failureOf(err).message;
    log.error('restore failed: rolling back', { error });
    // Stop the workers of the restored folders before putting the old folders back, then run the compensations.
    await each((p) => undoOn(p.queue).restoreStopWorkers({ sessionIds: p.plan.live, reason: 'restore rollback' }));
    for (const c of compensations.reverse()) await c();
    await each((p) => undoOn(p.queue).restoreCleanup({ restoreId }));
    report.rolledBack = true;
    return fail(`${error} (rolled back to the pre-restore state)`, 'RestoreFailed');
  }
  await each((p) => quickOn(p.queue).restoreCleanup({ restoreId }));
  report.ok = true;
  report.restored = plan.targets;
  report.durationMs = Date.now() - t0;
  await quick
    .sendAlert({
      kind: 'restore_done',
      text: `restore of ${input.backupId} done: ${plan.targets.length} sessions in ${report.durationMs} ms (pre-restore backup ${pre.id})`,
      dedupeKey: `restore_done:${restoreId}`,
    })
    .catch(() => undefined);
  return report;
}
