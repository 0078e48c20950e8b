/**
 * The session entity workflow (SPEC §3): one run per session id, alive for the whole life of the session.
 * It owns the lifecycle; Redis mirrors its state for cheap reads; the worker only reports (signals) and obeys.
 *
 * This file is the run: its message handlers (which only queue jobs), the provision, and the main loop that takes
 * one job at a time. What the session is to others lives in session-definitions.ts; its steps in
 * session-lifecycle.ts; what it does on each job in session-handlers.ts.
 *
 * History stays bounded: PINGs never reach the workflow (the webhook bridge writes them to Redis and one shared
 * watchdog workflow signals only stale sessions), and the run continues-as-new with its plain-JSON state.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { SessionStatus } from '../common/session-status.js';
import { failureOf, FailureType } from '../common/failure.js';
import { localQuickActivities } from './activity-options.js';
import { hostMoveResultSignal } from './host-failover.js';
import {
  DEFAULT_TIMINGS,
  HOLDS_SLOT,
  TERMINAL,
  deleteUpdate,
  failoverUpdate,
  logoutUpdate,
  moveHostSignal,
  pairingCodeUpdate,
  provisionedUpdate,
  restartUpdate,
  stateQuery,
  watchdogAlarmSignal,
  workerEventSignal,
  type MoveHostResult,
  type PublicSessionState,
  type SessionCommand,
  type SessionInput,
  type SessionState,
  type WorkerEvent,
} from './session-definitions.js';
import { SessionLifecycle } from './session-lifecycle.js';
import { onAlarm, onCommand, onEvent } from './session-handlers.js';

type Job =
  | { kind: 'event'; event: WorkerEvent; attempt?: number }
  | { kind: 'alarm'; at?: number; attempt?: number }
  | { kind: 'command'; id: number; command: SessionCommand };

function initialState(input: SessionInput): SessionState {
  return {
    sessionId: input.sessionId,
    tenant: input.tenant,
    status: 'pending',
    phone: input.phone,
    jid: null,
    proxyUrl: null,
    proxyEndpoint: null,
    createdAt: Date.now(),
    connectedAt: null,
    qrCount: 0,
    restarts: 0,
    watchdogRestarts: 0,
    consecutiveWatchdogRestarts: 0,
    proxyErrorsWhileAlive: 0,
    failovers: 0,
    workerGeneration: 0,
    workerStartedAt: 0,
    lastError: null,
    seenEventIds: [],
    pairingPhone: input.pairing === 'code' ? input.phone : null,
  };
}

// ------------------------------------------------------------------------------------------ workflow
export async function sessionWorkflow(input: SessionInput): Promise<PublicSessionState> {
  const timings = { ...DEFAULT_TIMINGS, ...input.timings };
  const state: SessionState = input.carried ?? initialState(input);
  const session = new SessionLifecycle(input, timings, state);
  const { quick } = session;
  const queue: Job[] = [];
  const results = new Map<number, { ok: true; value: unknown } | { ok: false; error: string }>();
  let nextCommandId = 1;
  let provisionDone = input.carried !== undefined;
  let provisionFailure: { message: string; type: string } | null = null;

  const publicState = (): PublicSessionState => {
    const { proxyUrl: _secret, proxyId: _id, seenEventIds: _ids, mirrorSeq: _seq, ...rest } = state;
    return rest;
  };

  /** Set when the run is ending: commands are refused at once instead of waiting for a loop that is gone. */
  let closing: string | null = null;
  const runCommand = async (command: SessionCommand): Promise<unknown> => {
    if (closing) throw ApplicationFailure.nonRetryable(closing, FailureType.CommandFailed);
    const id = nextCommandId++;
    queue.push({ kind: 'command', id, command });
    await condition(() => results.has(id));
    const result = results.get(id)!;
    results.delete(id);
    if (!result.ok) throw ApplicationFailure.nonRetryable(result.error, FailureType.CommandFailed);
    return result.value;
  };
  const notGone = () => {
    if (TERMINAL.includes(state.status)) throw new Error(`session is ${state.status}`);
  };

  // ---------------------------------------------------------------------------------------- message handlers
  // Handlers first, before any await (SDK rule: buffered signals/updates are delivered once a handler exists).
  setHandler(stateQuery, publicState);
  setHandler(workerEventSignal, (event) => {
    if (state.seenEventIds.includes(event.eventId)) return; // a retried webhook
    state.seenEventIds.push(event.eventId);
    if (state.seenEventIds.length > 64) state.seenEventIds.shift();
    queue.push({ kind: 'event', event });
  });
  setHandler(watchdogAlarmSignal, (alarm) => {
    if (!queue.some((j) => j.kind === 'alarm')) queue.push({ kind: 'alarm', at: alarm?.at });
  });
  setHandler(provisionedUpdate, async () => {
    await condition(() => provisionDone);
    if (provisionFailure) throw ApplicationFailure.nonRetryable(provisionFailure.message, provisionFailure.type);
    return { status: state.status, proxyEndpoint: state.proxyEndpoint };
  });
  setHandler(restartUpdate, async () => (await runCommand({ kind: 'restart' })) as { status: SessionStatus }, {
    validator: notGone,
  });
  setHandler(
    deleteUpdate,
    async (req) => (await runCommand({ kind: 'delete', keepAuth: req.keepAuth })) as { status: SessionStatus },
    { validator: (req) => (notGone(), void req) },
  );
  setHandler(
    failoverUpdate,
    async (req) => (await runCommand({ kind: 'failover', reason: req.reason })) as { proxyEndpoint: string | null },
    {
      validator: (req) => {
        notGone();
        if (!session.holdsProxy() || !HOLDS_SLOT.includes(state.status))
          throw new Error(`cannot fail over a ${state.status} session`);
        void req;
      },
    },
  );
  setHandler(logoutUpdate, async () => (await runCommand({ kind: 'logout' })) as { status: SessionStatus }, {
    validator: notGone,
  });
  setHandler(moveHostSignal, async ({ replyTo, requestId, ...request }) => {
    let result: MoveHostResult;
    try {
      notGone();
      result = (await runCommand({ kind: 'moveHost', request })) as MoveHostResult;
    } catch (err) {
      result = { moved: false, hostId: session.hostId(), reason: failureOf(err).message };
    }
    await getExternalWorkflowHandle(replyTo).signal(hostMoveResultSignal, {
      requestId,
      sessionId: state.sessionId,
      result,
    });
  });
  setHandler(
    pairingCodeUpdate,
    async (req) => {
      const r = (await runCommand({ kind: 'pairingCode', phone: req.phone })) as {
        status: SessionStatus;
        conflictWith?: string;
      };
      if (r.conflictWith)
        throw ApplicationFailure.nonRetryable(
          `phone ${req.phone} is already bound to another session`,
          FailureType.PhoneConflict,
        );
      return { status: r.status };
    },
    {
      validator: (req) => {
        notGone();
        if (state.connectedAt !== null || (state.status !== 'pending' && state.status !== 'qr_ready'))
          throw new Error(`session is ${state.status}: a pairing code links a session that waits for its first link`);
        if (!/^[1-9][0-9]{7,14}$/.test(req.phone)) throw new Error('phone must be an international number');
      },
    },
  );

  // ---------------------------------------------------------------------------------------- provision
  if (!input.carried) {
    const withDeviceProfile = patched('device-profile');
    // The provision's Redis steps inside its workflow tasks (local activities): one history event each instead of
    // an activity's three and another workflow task, so the worker starts sooner and the Temporal server does less
    // per provision. Histories recorded before ran them as activities. The proxy reservation stays an activity: while
    // it is retried the workflow keeps taking commands (a local activity holds its workflow task meanwhile).
    const steps = patched('provision-local-steps') ? localQuickActivities(timings.quickActivityAttempts) : quick;
    try {
      await steps.registerSession({
        sessionId: state.sessionId,
        tenant: state.tenant,
        phone: state.phone,
        hostId: input.hostId,
        ...(state.pairingPhone ? { pairingPhone: state.pairingPhone } : {}),
      });
      // The auth folder is new or this tenant's own (keepAuth, restore): never another tenant's.
      if (patched('auth-folder-owner'))
        await session.workers().claimAuthFolder({ sessionId: state.sessionId, tenant: state.tenant });
      await session.reserve();
      // One device/browser identity for life, never shared with another session on this proxy.
      if (withDeviceProfile) {
        const profile = await steps.assignDeviceProfile({ sessionId: state.sessionId, ...session.proxyRef() });
        state.deviceProfile = profile && {
          id: profile.id,
          os: profile.os,
          browser: profile.browser,
          osVersion: profile.osVersion,
        };
      }
      await session.transition('pending');
    } catch (err) {
      provisionFailure = { message: failureOf(err).message, type: failureOf(err).type ?? 'ProvisionFailed' };
      // The refusal is answered once nothing of this run is visible any more (no record left for its tenant).
      const answerAfterCleanup = patched('provision-failure-answers-after-cleanup');
      if (!answerAfterCleanup) provisionDone = true;
      if (patched('provision-failure-exits')) {
        // Every exit path releases what it holds and answers every queued command.
        closing = `provision failed: ${provisionFailure.message}`;
        for (const job of queue.splice(0))
          if (job.kind === 'command') results.set(job.id, { ok: false, error: closing });
        await quick.releaseProxy(state.sessionId);
      }
      await quick.finishSession({
        sessionId: state.sessionId,
        tenant: state.tenant,
        phone: state.phone,
        status: 'failed',
        purge: true,
      });
      state.status = 'failed';
      state.lastError = provisionFailure.message;
      provisionDone = true;
      await condition(allHandlersFinished);
      return publicState();
    }
    provisionDone = true;
    try {
      await session.startWorker();
    } catch (err) {
      await session.park('failed', `worker did not start: ${failureOf(err).message}`, 'session_failed');
    }
    await steps.checkProxyInventory();
    if (withDeviceProfile) await steps.checkDeviceProfileInventory();
  }

  // ---------------------------------------------------------------------------------------- main loop
  const historyTooLong = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > timings.maxHistoryEvents;

  while (!TERMINAL.includes(state.status)) {
    await condition(() => queue.length > 0 || historyTooLong());
    const job = queue.shift();
    if (!job) {
      await condition(allHandlersFinished);
      if (queue.length > 0) continue;
      log.info('continuing as new', { historyLength: workflowInfo().historyLength });
      return continueAsNew<typeof sessionWorkflow>({ ...input, carried: state });
    }
    try {
      if (job.kind === 'event') await onEvent(session, job.event);
      else if (job.kind === 'alarm') await onAlarm(session, job.at);
      else results.set(job.id, { ok: true, value: await onCommand(session, job.command) });
    } catch (err) {
      log.error('session step failed', { error: failureOf(err).message });
      state.lastError = failureOf(err).message;
      if (job.kind === 'command') results.set(job.id, { ok: false, error: failureOf(err).message });
      else if (patched('failed-step-retried')) {
        // An event or alarm whose step failed (after its activities' own retries) is retried, not forgotten.
        // A move to another host goes first: the failed step may have been waiting on a dead host.
        const attempt = (job.attempt ?? 0) + 1;
        const moveWaiting = () => queue.some((j) => j.kind === 'command' && j.command.kind === 'moveHost');
        if (attempt <= 5) {
          await condition(moveWaiting, Math.min(60_000, 2000 * 2 ** attempt));
          if (moveWaiting()) queue.push({ ...job, attempt });
          else queue.unshift({ ...job, attempt });
        } else log.error('session step dropped after retries', { kind: job.kind });
      }
    }
  }
  // Answer commands that raced with the end of the session.
  for (const job of queue)
    if (job.kind === 'command') results.set(job.id, { ok: false, error: `session is ${state.status}` });
  await condition(allHandlersFinished);
  return publicState();
}
