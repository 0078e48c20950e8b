/**
 * Typed client helpers for the dispatcher workflow (workflows/dispatcher.ts): the API wakes and re-plans it, the
 * orchestrator wakes every dispatcher with pending messages at start-up. No string workflow or signal names.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { dispatcherWorkflowIdFor } from '../common/anti-ban.js';
import type { Config } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import type { MessageStore } from '../state/messages.js';
import { dispatcherWorkflow, replanSignal, wakeSignal } from './dispatcher.js';

/** Start (or wake) the dispatcher of a session: signal-with-start, idempotent. */
export async function wakeDispatcher(client: Client, config: Config, sessionId: string): Promise<void> {
  await client.workflow.signalWithStart(dispatcherWorkflow, {
    workflowId: dispatcherWorkflowIdFor(config.WORKFLOW_ID_PREFIX, sessionId),
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    args: [{ sessionId }],
    signal: wakeSignal,
    signalArgs: [],
  });
}

/** After `PUT .../limits`: the running dispatcher re-plans its current wait at once (none running: nothing to do). */
export async function replanDispatcher(client: Client, config: Config, sessionId: string): Promise<void> {
  try {
    await client.workflow.getHandle(dispatcherWorkflowIdFor(config.WORKFLOW_ID_PREFIX, sessionId)).signal(replanSignal);
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

/** Orchestrator start-up: every session with pending messages gets its dispatcher (a lost wake loses nothing). */
export async function ensureDispatchers(client: Client, config: Config, messages: MessageStore, logger: Logger) {
  const ids = await messages.sessionsWithPending();
  for (const id of ids) {
    try {
      await wakeDispatcher(client, config, id);
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError))
        logger.warn({ sessionId: id, err: String(err) }, 'could not wake a dispatcher');
    }
  }
  return ids.length;
}
