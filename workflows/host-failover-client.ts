/**
 * Typed client helpers for host failover and drain (workflows/host-failover.ts): the orchestrators' host monitor
 * starts a failover for a dead host, the API starts and reads drains. No string workflow or query names.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Config } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import type { HostRegistry } from '../state/hosts.js';
import { hostFailoverProgressQuery, hostFailoverWorkflow, type HostFailoverProgress } from './host-failover.js';

/** One failover per death: a host that heartbeats again and dies again gets a new one. */
export const hostFailoverWorkflowId = (prefix: string, hostId: string, lastHeartbeatAt: number) =>
  `${prefix}:host-failover:${hostId}:${lastHeartbeatAt}`;
/** One drain at a time per host (a second request while it runs joins it). */
export const hostDrainWorkflowId = (prefix: string, hostId: string) => `${prefix}:host-drain:${hostId}`;

const inputFor = (config: Config, hostId: string, mode: 'dead' | 'drain') => ({
  hostId,
  mode,
  concurrency: config.HOST_FAILOVER_CONCURRENCY,
  authPortable: config.AUTH_STORE === 'postgres',
});

/**
 * Every live orchestrator runs this each heartbeat: a host silent for HOST_DEAD_AFTER_MS that still holds sessions
 * gets its failover. The workflow id names the death, so several orchestrators starting it start one.
 */
export async function failOverDeadHosts(
  client: Client,
  config: Config,
  hosts: HostRegistry,
  logger: Logger,
  now = Date.now(),
): Promise<string[]> {
  const started: string[] = [];
  for (const host of await hosts.list(config.HOST_DEAD_AFTER_MS, now)) {
    if (host.alive || host.hostId === config.HOST_ID || host.load === 0) continue;
    try {
      await client.workflow.start(hostFailoverWorkflow, {
        workflowId: hostFailoverWorkflowId(config.WORKFLOW_ID_PREFIX, host.hostId, host.heartbeatAt),
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [inputFor(config, host.hostId, 'dead')],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      });
      started.push(host.hostId);
      logger.warn({ host: host.hostId, sessions: host.load }, 'host dead: failover started');
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }
  return started;
}

/** Starts (or joins) the drain of a host; answers its workflow id. */
export async function startDrain(client: Client, config: Config, hostId: string): Promise<string> {
  const workflowId = hostDrainWorkflowId(config.WORKFLOW_ID_PREFIX, hostId);
  await client.workflow.start(hostFailoverWorkflow, {
    workflowId,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    args: [inputFor(config, hostId, 'drain')],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  return workflowId;
}

/** The last drain of a host: its progress, or null when it was never drained. */
export async function drainProgress(client: Client, config: Config, hostId: string) {
  const handle = client.workflow.getHandle(hostDrainWorkflowId(config.WORKFLOW_ID_PREFIX, hostId));
  try {
    const progress: HostFailoverProgress = await handle.query(hostFailoverProgressQuery);
    return progress;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}
