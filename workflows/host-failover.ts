/**
 * Host failover and drain: moves every session placed on one host to the live hosts. Steps:
 *  1. (drain) mark the host draining, so no new session is placed there;
 *  2. list the host's sessions;
 *  3. move each through its own session workflow (`moveHostUpdate`: place, stop the old worker, start the new one
 *     with the same proxy and device profile, next host on failure), at most `concurrency` at once: each move is a
 *     login on its new host, so a dead host's sessions never arrive as one login storm;
 *  4. alert with what moved, what stayed and why.
 * Invariant: a session is only ever moved by its own workflow, one command at a time, so it is placed on one host
 * and only its newest worker generation is accepted (a returning host runs none of the moved sessions).
 * A dead host's sessions can only move when their auth state is off its disk (AUTH_STORE=postgres); with the file
 * store they stay and wait for it. A drain stops each worker before it starts elsewhere (concurrency 1).
 */
import {
  condition,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostActivities } from '../activities/host-activities.js';
import { bestEffortAlert, quickActivities } from './activity-options.js';
import { moveHostSignal, type MoveHostResult } from './session-definitions.js';

export interface HostFailoverInput {
  hostId: string;
  /** 'dead': its heartbeat stopped (HOST_DEAD_AFTER_MS); 'drain': an operator moves its sessions off. */
  mode: 'dead' | 'drain';
  concurrency: number;
  /** The auth state lives off the hosts (AUTH_STORE=postgres): a session can log in elsewhere without a QR. */
  authPortable: boolean;
  /** How long one session's move may take before it counts as stayed (absent: 10 minutes). */
  moveTimeoutMs?: number;
}

export interface HostFailoverProgress {
  hostId: string;
  mode: HostFailoverInput['mode'];
  total: number;
  moved: Array<{ sessionId: string; hostId: string }>;
  /** Sessions left where they are, with why (no room elsewhere, auth on the host's disk, already ended). */
  stayed: Array<{ sessionId: string; reason: string }>;
  done: boolean;
}

export type HostFailoverResult = HostFailoverProgress & { done: true };

export const hostFailoverProgressQuery = defineQuery<HostFailoverProgress>('progress');
/** A session workflow's answer to `moveHostSignal`. */
export const hostMoveResultSignal =
  defineSignal<[{ requestId: string; sessionId: string; result: MoveHostResult }]>('hostMoveResult');

const hosting = quickActivities<HostActivities>();

export async function hostFailoverWorkflow(input: HostFailoverInput): Promise<HostFailoverResult> {
  const progress: HostFailoverProgress = {
    hostId: input.hostId,
    mode: input.mode,
    total: 0,
    moved: [],
    stayed: [],
    done: false,
  };
  setHandler(hostFailoverProgressQuery, () => progress);
  const answers = new Map<string, MoveHostResult>();
  setHandler(hostMoveResultSignal, ({ requestId, result }) => void answers.set(requestId, result));

  if (input.mode === 'drain') await hosting.setHostDraining({ hostId: input.hostId, draining: true });
  const sessions = await hosting.hostSessions({ hostId: input.hostId });
  progress.total = sessions.length;

  if (!input.authPortable) {
    for (const { sessionId } of sessions)
      progress.stayed.push({ sessionId, reason: "its auth state is on the host's disk (AUTH_STORE=file)" });
  } else {
    const queue = [...sessions];
    const reason = input.mode === 'dead' ? `host ${input.hostId} is dead` : `host ${input.hostId} is drained`;
    const lane = async () => {
      for (let session = queue.shift(); session !== undefined; session = queue.shift()) {
        const requestId = uuid4();
        let outcome: MoveHostResult;
        try {
          // The session's own workflow moves it (one command at a time with its other work) and answers.
          await getExternalWorkflowHandle(session.workflowId).signal(moveHostSignal, {
            fromHostId: input.hostId,
            graceful: input.mode === 'drain',
            reason,
            replyTo: workflowInfo().workflowId,
            requestId,
          });
          const answered = await condition(() => answers.has(requestId), input.moveTimeoutMs ?? 600_000);
          outcome = answered
            ? answers.get(requestId)!
            : { moved: false, hostId: input.hostId, reason: 'the session did not answer in time' };
        } catch (err) {
          // No running workflow: the session ended.
          outcome = { moved: false, hostId: input.hostId, reason: `not moved: ${(err as Error).message}` };
        }
        if (outcome.moved) progress.moved.push({ sessionId: session.sessionId, hostId: outcome.hostId });
        else progress.stayed.push({ sessionId: session.sessionId, reason: outcome.reason });
      }
    };
    const lanes = Math.max(1, input.mode === 'drain' ? 1 : input.concurrency);
    await Promise.all(Array.from({ length: Math.min(lanes, sessions.length) }, lane));
  }

  progress.done = true;
  const text =
    `${input.mode === 'dead' ? 'host failover' : 'drain'} of ${input.hostId}: ` +
    `${progress.moved.length} of ${progress.total} sessions moved` +
    (progress.stayed.length
      ? `; stayed: ${progress.stayed
          .slice(0, 10)
          .map((s) => `${s.sessionId} (${s.reason})`)
          .join(', ')}${progress.stayed.length > 10 ? ', …' : ''}`
      : '');
  await bestEffortAlert({
    kind: input.mode === 'dead' ? 'host_failover' : 'host_drained',
    text,
    dedupeKey: `${input.mode}:${input.hostId}:${progress.total}:${progress.moved.length}`,
  });
  return { ...progress, done: true };
}
