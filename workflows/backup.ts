/**
 * The backup workflow (SPEC §4): run by a Temporal Schedule (nightly cron, overlap SKIP) and on demand
 * (POST /api/v1/backups/create). Archive the session folders with a verified manifest, keep the newest
 * MAX_BACKUPS, alert done / failed.
 */
import { ApplicationFailure, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import { failureOf } from '../common/failure.js';
import type { BackupActivities, BackupResult } from '../activities/backup.js';
import type { SessionActivities } from '../activities/session-activities.js';

export interface BackupInput {
  reason: string;
  /** Only these sessions (default: every session folder). */
  only?: string[];
  /** Send the done alert (the restore's automatic pre-restore backup alerts through the restore instead). */
  alert?: boolean;
  /** Archives retention must not remove now (the one a restore is about to read). */
  protect?: string[];
}

export type BackupWorkflowResult = BackupResult & { pruned: string[] };

const archive = proxyActivities<BackupActivities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '15s',
  // Retried through outages (Redis, a restarting orchestrator) for up to an hour, not 3 quick attempts.
  scheduleToCloseTimeout: '1h',
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '60s',
    nonRetryableErrorTypes: ['BackupInvalid'],
  },
});
const quick = proxyActivities<SessionActivities & BackupActivities>({
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: '30m',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

/** The snapshot of one host's folder, on that host's own queue (a host gone since the listing fails it). */
const onHost = (queue: string) =>
  proxyActivities<BackupActivities>({
    taskQueue: queue,
    startToCloseTimeout: '10m',
    heartbeatTimeout: '15s',
    scheduleToStartTimeout: '10m',
    retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '60s', maximumAttempts: 5 },
  });

/**
 * Multi-host: each live host copies its own sessions folder into the shared staging folder on its own
 * queue, then one archive is assembled from all copies (sessions tagged with their host).
 */
async function createBackupPerHost(input: BackupInput): Promise<BackupResult> {
  const hosts = await quick.backupHosts();
  const key = workflowInfo().runId;
  const snapshots = hosts.map((h) => onHost(h.queue).snapshotHost({ key, hostId: h.hostId, only: input.only }));
  if (patched('backup-snapshots-settle')) {
    // One host failing fails the backup only once every host's snapshot has stopped: no host still writes its
    // staging copy after the failure is answered.
    const failed = (await Promise.allSettled(snapshots)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  } else await Promise.all(snapshots);
  return archive.createBackup({
    reason: input.reason,
    only: input.only,
    staging: { key, hosts: hosts.map((h) => h.hostId) },
  });
}

export async function backupWorkflow(input: BackupInput): Promise<BackupWorkflowResult> {
  let result: BackupResult;
  try {
    result = patched('backup-per-host')
      ? await createBackupPerHost(input)
      : await archive.createBackup({ reason: input.reason, only: input.only });
  } catch (err) {
    const f = failureOf(err);
    await quick
      .sendAlert({ kind: 'backup_failed', text: `backup (${input.reason}) failed: ${f.message}` })
      .catch(() => undefined);
    // The activity's own failure (e.g. what S3 answered), not the SDK's "Activity task failed" wrapper.
    throw ApplicationFailure.nonRetryable(f.message, f.type ?? 'BackupFailed');
  }
  const pruned = await quick.pruneBackups({ protect: input.protect });
  if (input.alert !== false) {
    const kb = Math.round(result.size / 1024);
    await quick
      .sendAlert({
        kind: 'backup_done',
        text: `backup ${result.id} (${input.reason}): ${result.sessions.length} sessions, ${result.files} files, ${kb} KiB in ${result.durationMs} ms`,
        dedupeKey: `backup_done:${result.id}`,
      })
      .catch(() => undefined);
  }
  return { ...result, pruned };
}
