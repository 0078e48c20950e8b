import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { Config } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { backupWorkflow } from '../workflows/backup.js';

/** One schedule per deployment (the workflow id prefix keeps test stacks and deployments apart). */
export const backupScheduleId = (config: Pick<Config, 'WORKFLOW_ID_PREFIX'>) => `${config.WORKFLOW_ID_PREFIX}-backups`;

export function backupScheduleOptions(config: Config): ScheduleOptions {
  return {
    scheduleId: backupScheduleId(config),
    spec: { cronExpressions: [config.BACKUP_CRON], timezone: config.BACKUP_TIMEZONE },
    action: {
      type: 'startWorkflow',
      workflowType: backupWorkflow.name,
      workflowId: `${config.WORKFLOW_ID_PREFIX}:backup:scheduled`,
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      args: [{ reason: 'scheduled' }],
      workflowExecutionTimeout: '1h',
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1h' },
    memo: { cron: config.BACKUP_CRON, timezone: config.BACKUP_TIMEZONE },
    state: { note: `nightly backup: cron "${config.BACKUP_CRON}" (${config.BACKUP_TIMEZONE})` },
  };
}

/**
 * Creates the backup schedule, or brings an existing one in line with the configuration (cron, time zone, task
 * queue): idempotent, run at every orchestrator start; several orchestrators may race, both outcomes are fine.
 */
export async function ensureBackupSchedule(client: Client, config: Config, logger: Logger): Promise<void> {
  const opts = backupScheduleOptions(config);
  try {
    await client.schedule.create(opts);
    logger.info({ scheduleId: opts.scheduleId, cron: config.BACKUP_CRON }, 'backup schedule created');
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(opts.scheduleId).update((prev) => ({
      ...prev,
      spec: opts.spec,
      action: opts.action,
      policies: { ...prev.policies, overlap: ScheduleOverlapPolicy.SKIP },
      state: { ...prev.state, note: opts.state?.note },
    }));
    logger.info({ scheduleId: opts.scheduleId, cron: config.BACKUP_CRON }, 'backup schedule updated');
  }
}
