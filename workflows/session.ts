/**
 * The session entity workflow (SPEC §3): one run per session id, alive for the whole life of the session.
 * It owns the lifecycle; Redis mirrors its state for cheap reads; the worker only reports (signals) and obeys.
 *
 * History stays bounded: PINGs never reach the workflow (the webhook bridge writes them to Redis and one shared
 * watchdog workflow signals only stale sessions), and the run continues-as-new with its plain-JSON state.
 */
import {
  ApplicationFailure,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  executeChild,
  getExternalWorkflowHandle,
  log,
  patched,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { SessionActivities } from '../activities/session-activities.js';
import type { HostActivities } from '../activities/host-activities.js';
import { LIVE_STATUSES, WATCHED_STATUSES, type SessionStatus } from '../common/session-status.js';
import type { EventData } from '../common/events.js';
import { failoverWorkflow, type FailoverResult } from './failover.js';
import { hostMoveResultSignal } from './host-failover.js';
import { failureOf, FailureType } from '../common/failure.js';
import { bestEffortAlert, containerActivitiesOn, localQuickActivities, quickActivities } from './activity-options.js';

// ------------------------------------------------------------------------------------------ definitions
export interface SessionTimings {
  /** How long without a PING before the watchdog restarts the worker (the watchdog itself runs elsewhere). */
  pingTimeoutMs: number;
  /** Consecutive watchdog restarts without a CONNECTED in between before the session is declared failed. */
  maxWatchdogRestarts: number;
  /** Timeout of the SOCKS5 liveness probe that confirms a proxy is dead before a failover. */
  proxyProbeTimeoutMs: number;
  /** Proxy errors in a row, with the proxy still answering probes, that still justify a failover. */
  maxProxyErrorsWhileAlive: number;
  /** Failover: how many new proxies to try before giving up. */
  maxFailoverAttempts: number;
  /** Continue-as-new after this many history events (or when Temporal suggests it). */
  maxHistoryEvents: number;
  /** Attempts of each quick (Redis) activity before its step fails (absent: 10, about a minute). */
  quickActivityAttempts?: number;
}

export const DEFAULT_TIMINGS: SessionTimings = {
  pingTimeoutMs: 180_000,
  maxWatchdogRestarts: 3,
  proxyProbeTimeoutMs: 3000,
  maxProxyErrorsWhileAlive: 3,
  maxFailoverAttempts: 3,
  maxHistoryEvents: 2000,
};

export interface SessionState {
  sessionId: string;
  tenant: string;
  status: SessionStatus;
  phone: string | null;
  jid: string | null;
  /** The proxy the session holds, by id (its URL never enters workflow history). */
  proxyId?: string | null;
  /** Its URL, credentials included: only in runs from before proxy ids (never returned by the status query). */
  proxyUrl: string | null;
  proxyEndpoint: string | null;
  createdAt: number;
  connectedAt: number | null;
  qrCount: number;
  restarts: number;
  watchdogRestarts: number;
  consecutiveWatchdogRestarts: number;
  proxyErrorsWhileAlive: number;
  failovers: number;
  /** Bumped at every worker (re)start; events of an older generation come from a replaced worker: ignored. */
  workerGeneration: number;
  /** Fallback for events without a generation only (workers started by older code). */
  workerStartedAt: number;
  lastError: string | null;
  seenEventIds: string[];
  /** Link by pairing code for this phone instead of a QR, until the first CONNECTED (absent: carried from older runs). */
  pairingPhone?: string | null;
  /** The device profile the session presents for life (absent/null: sessions from before profiles, Baileys' default). */
  deviceProfile?: { id: string; os: string; browser: string; osVersion: string } | null;
  /** The host and its queue after a move (absent: where it was provisioned, the input's). */
  hostId?: string;
  hostQueue?: string;
}

export type PublicSessionState = Omit<SessionState, 'proxyUrl' | 'proxyId' | 'seenEventIds'>;

export interface SessionInput {
  sessionId: string;
  tenant: string;
  phone: string | null;
  proxyOverride: string | null;
  timings: SessionTimings;
  /** The Docker host the session is placed on, and its task queue (absent: the workflow's own queue). */
  hostId?: string;
  hostQueue?: string;
  /** 'code': link by pairing code for `phone` (required then) instead of a QR. */
  pairing?: 'qr' | 'code';
  /** Set by continue-as-new. */
  carried?: SessionState;
}

/** The worker events the API turns into workflow signals (PINGs and messages never reach the workflow). */
export type SignalledEventType =
  | 'QR_CODE'
  | 'CONNECTED'
  | 'DISCONNECTED'
  | 'PROXY_ERROR'
  | 'AUTH_FAILURE'
  | 'AUTH_STATE_INVALID'
  | 'CLIENT_OUTDATED'
  | 'PAIRING_CODE'
  | 'PAIRING_FAILED';

/**
 * A worker event as signalled: typed from the webhook envelope's zod schemas (common/events.ts). Its data is
 * partial because histories keep events from older workers that sent fewer fields; the pairing code itself is
 * never signalled (a one-time secret, kept in Redis).
 */
export type WorkerEvent = {
  [T in SignalledEventType]: {
    eventId: string;
    type: T;
    timestamp: number;
    /** The worker generation that produced it (absent from workers started before generations existed). */
    generation?: number;
    data: Partial<T extends 'PAIRING_CODE' ? Omit<EventData<T>, 'code'> : EventData<T>>;
  };
}[SignalledEventType];

export const workerEventSignal = defineSignal<[WorkerEvent]>('workerEvent');
export const watchdogAlarmSignal = defineSignal<[{ at: number }]>('watchdogAlarm');
export const stateQuery = defineQuery<PublicSessionState>('state');
export const provisionedUpdate = defineUpdate<{ status: SessionStatus; proxyEndpoint: string | null }>('provisioned');
export const restartUpdate = defineUpdate<{ status: SessionStatus }>('restart');
export const deleteUpdate = defineUpdate<{ status: SessionStatus }, [{ keepAuth: boolean }]>('delete');
export const failoverUpdate = defineUpdate<{ proxyEndpoint: string | null }, [{ reason: string }]>('failover');
export const logoutUpdate = defineUpdate<{ status: SessionStatus }>('logout');
/** Switch a session waiting for its link to a pairing code for `phone`: the worker restarts and reports the code. */
export const pairingCodeUpdate = defineUpdate<{ status: SessionStatus }, [{ phone: string }]>('pairingCode');

export interface MoveHostRequest {
  /** The host the move is for: a session already elsewhere answers where it is, unchanged. */
  fromHostId: string;
  /** A drain: the old worker must stop before the new one starts. Else the old host is dead (tried briefly). */
  graceful: boolean;
  reason: string;
}
export type MoveHostResult = { moved: true; hostId: string } | { moved: false; hostId: string; reason: string };
/**
 * Move the session to another live host (host failover, drain): same proxy, device profile and auth state. A
 * signal, answered with `hostMoveResultSignal` to the asking workflow (`replyTo`), because workflows cannot call
 * each other's updates.
 */
export const moveHostSignal = defineSignal<[MoveHostRequest & { replyTo: string; requestId: string }]>('moveHost');

// ------------------------------------------------------------------------------------------ activities

const TERMINAL: SessionStatus[] = ['logged_out', 'deleted'];
/** States in which the session holds a proxy slot and a worker. */
const HOLDS_SLOT = LIVE_STATUSES;

type Command =
  | { kind: 'restart' }
  | { kind: 'delete'; keepAuth: boolean }
  | { kind: 'failover'; reason: string }
  | { kind: 'logout' }
  | { kind: 'pairingCode'; phone: string }
  | { kind: 'moveHost'; request: MoveHostRequest };
type Job =
  | { kind: 'event'; event: WorkerEvent; attempt?: number }
  | { kind: 'alarm'; at?: number; attempt?: number }
  | { kind: 'command'; id: number; command: Command };

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
  const quick = quickActivities(timings.quickActivityAttempts);
  /** The status mirror and CONNECTED: local activities (histories recorded before run them as activities). */
  const mirror = patched('local-mirror') ? localQuickActivities(timings.quickActivityAttempts) : quick;
  const state: SessionState = input.carried ?? initialState(input);
  const hosting = quickActivities<HostActivities>();
  const hostId = () => state.hostId ?? input.hostId ?? 'local';
  const hostQueue = () => state.hostQueue ?? input.hostQueue;
  /** Container steps run on the host the session is on now. */
  const workers = () => containerActivitiesOn(hostQueue());
  const queue: Job[] = [];
  const results = new Map<number, { ok: true; value: unknown } | { ok: false; error: string }>();
  let nextCommandId = 1;
  let provisionDone = input.carried !== undefined;
  let provisionFailure: { message: string; type: string } | null = null;

  const publicState = (): PublicSessionState => {
    const { proxyUrl: _secret, proxyId: _id, seenEventIds: _ids, ...rest } = state;
    return rest;
  };

  /** Set when the run is ending: commands are refused at once instead of waiting for a loop that is gone. */
  let closing: string | null = null;
  const runCommand = async (command: Command): Promise<unknown> => {
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
        if (!holdsProxy() || !HOLDS_SLOT.includes(state.status))
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
      result = { moved: false, hostId: hostId(), reason: failureOf(err).message };
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

  const save = (
    fields: Parameters<SessionActivities['updateSession']>[0]['fields'],
    increment?: 'restarts' | 'watchdogRestarts' | 'failovers',
  ) => mirror.updateSession({ sessionId: state.sessionId, fields, increment });

  /**
   * Every status change of the session goes through here: the Redis mirror first (one activity, with the counter
   * the change moves), then the workflow state, so a failed save leaves both unchanged and they never disagree.
   * The exceptions are the changes an activity mirrors itself: CONNECTED (sessionConnected) and the terminal ones
   * (finishSession).
   */
  const transition = async (
    status: SessionStatus,
    lastError: string | null = state.lastError,
    increment?: 'restarts' | 'watchdogRestarts' | 'failovers',
  ) => {
    await save({ status, lastError }, increment);
    state.status = status;
    state.lastError = lastError;
  };

  /** The session's proxy as activities take it: by id, or by the URL a run from before ids still carries. */
  const proxyRef = () => (state.proxyId ? { proxyId: state.proxyId } : { proxyUrl: state.proxyUrl });
  const holdsProxy = () => Boolean(state.proxyId ?? state.proxyUrl);

  const startWorker = async () => {
    state.workerGeneration++;
    state.workerStartedAt = Date.now();
    await workers().startWorker({
      sessionId: state.sessionId,
      ...proxyRef(),
      generation: state.workerGeneration,
    });
  };
  /** Restarts the worker as a new generation (its events are told apart from the old one's by it). */
  const restartWorker = async () => {
    state.workerGeneration++;
    state.workerStartedAt = Date.now();
    await workers().restartWorker({
      sessionId: state.sessionId,
      ...proxyRef(),
      generation: state.workerGeneration,
    });
  };
  /** An event from a replaced worker: by generation, never by clocks (timestamps only for unstamped events). */
  const fromOldWorker = (event: WorkerEvent) =>
    event.generation !== undefined
      ? event.generation < state.workerGeneration
      : event.timestamp < state.workerStartedAt;

  /** Stops the worker and gives the slot back (failed / stopped sessions hold no proxy). */
  const park = async (status: SessionStatus, reason: string, alert: 'session_failed' | null) => {
    await workers().stopWorker({ sessionId: state.sessionId, remove: false });
    await quick.releaseProxy(state.sessionId);
    await transition(status, reason);
    if (alert)
      await bestEffortAlert({
        kind: alert,
        text: `session ${state.sessionId}: ${reason}`,
        dedupeKey: `${alert}:${state.sessionId}`,
      });
  };

  const reserve = async () => {
    // By id from here on: the proxy's URL (credentials) stays out of this history.
    const byId = patched('proxy-id');
    const r = await quick.reserveProxy({
      sessionId: state.sessionId,
      phone: state.phone,
      override: input.proxyOverride,
      exclude: [],
      ...(byId ? { idOnly: true } : {}),
    });
    if (byId) {
      state.proxyId = r.proxyId;
      state.proxyUrl = null;
    } else state.proxyUrl = r.proxyUrl!;
    state.proxyEndpoint = r.endpoint;
  };

  // ---------------------------------------------------------------------------------------- provision
  if (!input.carried) {
    const withDeviceProfile = patched('device-profile');
    try {
      await quick.registerSession({
        sessionId: state.sessionId,
        tenant: state.tenant,
        phone: state.phone,
        hostId: input.hostId,
        ...(state.pairingPhone ? { pairingPhone: state.pairingPhone } : {}),
      });
      // The auth folder is new or this tenant's own (keepAuth, restore): never another tenant's.
      if (patched('auth-folder-owner'))
        await workers().claimAuthFolder({ sessionId: state.sessionId, tenant: state.tenant });
      await reserve();
      // One device/browser identity for life, never shared with another session on this proxy.
      if (withDeviceProfile) {
        const profile = await quick.assignDeviceProfile({ sessionId: state.sessionId, ...proxyRef() });
        state.deviceProfile = profile && {
          id: profile.id,
          os: profile.os,
          browser: profile.browser,
          osVersion: profile.osVersion,
        };
      }
      await transition('pending');
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
      await startWorker();
    } catch (err) {
      await park('failed', `worker did not start: ${failureOf(err).message}`, 'session_failed');
    }
    await quick.checkProxyInventory();
    if (withDeviceProfile) await quick.checkDeviceProfileInventory();
  }

  // ---------------------------------------------------------------------------------------- handlers
  const failover = async (reason: string, markOldBad = true): Promise<void> => {
    const oldProxy = proxyRef();
    await transition('failing_over', reason);
    const result: FailoverResult = await executeChild(failoverWorkflow, {
      // uuid4() is replay-safe in workflows; a run id's prefix is time-based and can repeat across runs.
      workflowId: `${workflowInfo().workflowId}:failover:${state.failovers + 1}:${uuid4().slice(0, 8)}`,
      args: [
        {
          sessionId: state.sessionId,
          phone: state.phone,
          ...(oldProxy.proxyId ? { oldProxyId: oldProxy.proxyId } : { oldProxy: oldProxy.proxyUrl! }),
          reason,
          maxAttempts: timings.maxFailoverAttempts,
          probeTimeoutMs: timings.proxyProbeTimeoutMs,
          hostQueue: hostQueue(),
          generation: state.workerGeneration + 1,
          ...(markOldBad ? {} : { markOldBad: false }),
        },
      ],
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
    state.failovers++;
    state.proxyErrorsWhileAlive = 0;
    if (result.ok) {
      // The child names the new proxy the way its own run does (by id, or by URL in histories from before ids).
      state.proxyId = result.proxyId ?? null;
      state.proxyUrl = result.proxyUrl ?? null;
      state.proxyEndpoint = result.proxyEndpoint;
      state.workerGeneration++;
      state.workerStartedAt = Date.now();
      await transition('reconnecting', reason, 'failovers');
    } else {
      state.proxyId = null;
      state.proxyUrl = null;
      state.proxyEndpoint = null;
      await transition('failed', result.reason, 'failovers');
      await bestEffortAlert({
        kind: 'session_failed',
        text: `session ${state.sessionId}: failover impossible (${result.reason})`,
        dedupeKey: `session_failed:${state.sessionId}`,
      });
    }
  };

  const onProxyError = async (event: WorkerEvent) => {
    if (!holdsProxy() || !HOLDS_SLOT.includes(state.status) || state.status === 'failing_over') return;
    if (fromOldWorker(event)) return;
    const probe = await quick.probeProxy({ ...proxyRef(), timeoutMs: timings.proxyProbeTimeoutMs });
    if (!probe.ok) return failover(`proxy ${state.proxyEndpoint} failed: ${probe.error}`);
    // The proxy answers: the worker retries through it. Fail over only if errors keep coming.
    state.proxyErrorsWhileAlive++;
    if (state.proxyErrorsWhileAlive >= timings.maxProxyErrorsWhileAlive) {
      return failover(`proxy ${state.proxyEndpoint} keeps failing (${state.proxyErrorsWhileAlive} errors in a row)`);
    }
    if (state.status === 'connected') await transition('reconnecting', 'proxy error; worker retrying');
  };

  const logout = async (reason: string) => {
    await workers().stopWorker({ sessionId: state.sessionId, remove: true });
    await workers().deleteAuthFiles(state.sessionId);
    await quick.releaseProxy(state.sessionId);
    await quick.finishSession({
      sessionId: state.sessionId,
      tenant: state.tenant,
      phone: state.phone,
      status: 'logged_out',
      purge: false,
      lastError: reason,
    });
    state.status = 'logged_out';
    state.lastError = reason;
    await bestEffortAlert({ kind: 'session_logged_out', text: `session ${state.sessionId}: ${reason}` });
  };

  /**
   * Moves the session to another host (host failover, drain). Steps:
   *  1. place it on the best other live host (one Redis step; nothing changed when none has room);
   *  2. stop the worker on the old host: a drain must (compensation: the placement goes back); a dead host only if it
   *     heartbeats again, and else the generation fence refuses its worker from step 3 on;
   *  3. claim the auth folder there and start the worker as a new generation, same proxy and device profile;
   *     compensation: stop that worker and place the session on the next host (a drain ends back on its own host).
   * Invariant: the session is placed on one host at a time, and only the newest worker generation is accepted.
   * A session without a worker (failed, stopped, expired QR) only changes its placement.
   */
  const moveHost = async (req: MoveHostRequest): Promise<MoveHostResult> => {
    const from = hostId();
    if (from !== req.fromHostId) return { moved: false, hostId: from, reason: `the session is on ${from}` };
    const placeOn = (host: { hostId: string; queue: string }) => {
      state.hostId = host.hostId;
      state.hostQueue = host.queue;
    };
    const first = await hosting.moveSessionHost({ sessionId: state.sessionId, from, exclude: [] });
    if (!first) return { moved: false, hostId: from, reason: 'no other live host has room' };
    const oldQueue = hostQueue();
    placeOn(first);
    if (!holdsProxy() || !HOLDS_SLOT.includes(state.status)) return { moved: true, hostId: first.hostId };

    try {
      // A host still dead is not waited for: nothing polls its queue.
      if (req.graceful || first.fromAlive)
        await containerActivitiesOn(oldQueue, req.graceful ? 3 : 1, req.graceful ? '60s' : '10s').stopWorker({
          sessionId: state.sessionId,
          remove: true,
        });
      else log.warn('old host is dead; its worker is fenced by generation', { host: from });
    } catch (err) {
      if (req.graceful) {
        const back = await hosting.moveSessionHost({
          sessionId: state.sessionId,
          from: first.hostId,
          exclude: [],
          to: from,
        });
        if (back) placeOn(back);
        return { moved: false, hostId: from, reason: `the worker on ${from} did not stop: ${failureOf(err).message}` };
      }
      log.warn('old host did not answer; its worker is fenced by generation', { host: from });
    }

    const tried = [from];
    let target: { hostId: string; queue: string } | null = first;
    let backHome = false;
    while (target) {
      try {
        await workers().claimAuthFolder({ sessionId: state.sessionId, tenant: state.tenant });
        await startWorker();
        const landed = target.hostId;
        await transition('reconnecting', `moved from host ${from} to ${landed}: ${req.reason}`);
        return landed === from
          ? { moved: false, hostId: from, reason: 'no other host could start the worker: back on its host' }
          : { moved: true, hostId: landed };
      } catch (err) {
        log.warn('worker did not start on the new host', { host: target.hostId, error: failureOf(err).message });
        await containerActivitiesOn(target.queue, 1, '5s')
          .stopWorker({ sessionId: state.sessionId, remove: true })
          .catch(() => undefined);
        tried.push(target.hostId);
        const at: string = target.hostId;
        target = await hosting.moveSessionHost({ sessionId: state.sessionId, from: at, exclude: tried });
        // A drained host is alive: the session goes back there rather than down.
        if (!target && req.graceful && !backHome) {
          backHome = true;
          target = await hosting.moveSessionHost({ sessionId: state.sessionId, from: at, exclude: [], to: from });
        }
        if (target) placeOn(target);
      }
    }
    await park('failed', `no host could start the worker after leaving ${from}`, 'session_failed');
    return { moved: false, hostId: hostId(), reason: state.lastError ?? 'no host could start the worker' };
  };

  const onEvent = async (event: WorkerEvent) => {
    if (TERMINAL.includes(state.status)) return;
    switch (event.type) {
      case 'QR_CODE':
      case 'PAIRING_CODE':
        if (event.type === 'PAIRING_CODE' && fromOldWorker(event)) return;
        if (state.status === 'pending' || state.status === 'qr_ready' || state.status === 'reconnecting') {
          state.qrCount++;
          if (state.status !== 'qr_ready') await transition('qr_ready', null);
        }
        return;
      case 'CONNECTED': {
        if (!holdsProxy() || !HOLDS_SLOT.includes(state.status) || fromOldWorker(event)) return;
        const phone = String(event.data.phoneNumber);
        const jid = String(event.data.jid);
        const wasConnectedBefore = state.connectedAt !== null;
        const { conflictWith } = await mirror.sessionConnected({
          sessionId: state.sessionId,
          phone,
          jid,
          ...proxyRef(),
          previousPhone: state.phone,
        });
        if (conflictWith) {
          await park('failed', `phone ${phone} is already bound to session ${conflictWith}`, 'session_failed');
          return;
        }
        state.phone = phone;
        state.jid = jid;
        state.status = 'connected';
        state.connectedAt = Date.now();
        state.lastError = null;
        state.consecutiveWatchdogRestarts = 0;
        state.proxyErrorsWhileAlive = 0;
        if (!wasConnectedBefore) {
          await bestEffortAlert({
            kind: 'session_connected',
            text: `session ${state.sessionId} connected as +${phone} via ${state.proxyEndpoint}`,
          });
        }
        return;
      }
      case 'PAIRING_FAILED': {
        // The code expired or was refused: nothing was linked. Give back the proxy slot and the phone (a new
        // provision or another session may take it); the session waits for a restart (a QR, or a new code).
        if (fromOldWorker(event) || !HOLDS_SLOT.includes(state.status) || state.status === 'failing_over') return;
        const expired = event.data.reason === 'expired';
        await quick.pairingFailed({ sessionId: state.sessionId, phone: state.phone });
        state.phone = null;
        state.pairingPhone = null;
        return park(
          expired ? 'qr_expired' : 'failed',
          expired
            ? 'pairing code expired before it was entered on the phone'
            : 'pairing code refused by WhatsApp (wrong code entered on the phone)',
          null,
        );
      }
      case 'PROXY_ERROR':
        return onProxyError(event);
      case 'AUTH_FAILURE':
        return logout(`logged out: ${String(event.data.reason ?? 'device removed')}`);
      case 'AUTH_STATE_INVALID':
        // The files are kept for an operator (restore a backup or remove the session): park, never restart.
        return park(
          'failed',
          `AUTH_STATE_INVALID: ${String(event.data.reason ?? 'unusable auth folder')}`,
          'session_failed',
        );
      case 'CLIENT_OUTDATED':
        // A restart would be refused again: park with one alert until the worker image (WA_VERSION) is updated.
        return park(
          'failed',
          `CLIENT_OUTDATED: WhatsApp refused version ${String(event.data.version ?? '?')} (405)`,
          'session_failed',
        );
      case 'DISCONNECTED': {
        const code = typeof event.data.code === 'number' ? event.data.code : null;
        // The worker reports one proxy failure as PROXY_ERROR + DISCONNECTED{isProxyError}: count it once.
        if (event.data.isProxyError === true)
          return patched('proxy-error-counted-once') ? undefined : onProxyError(event);
        if (fromOldWorker(event)) return;
        // Every QR expired unscanned: the worker gives up; end in a clear state, give back slot and worker.
        if (
          /^qr_timeout/.test(String(event.data.reason ?? '')) &&
          HOLDS_SLOT.includes(state.status) &&
          state.status !== 'failing_over' &&
          patched('qr-expired')
        ) {
          state.qrCount = 0;
          return park('qr_expired', 'QR codes expired without a scan: restart the session for new QRs', null);
        }
        if (code === 401) return logout('logged out (401)');
        if (code === 440) return park('failed', 'replaced by another client (440)', 'session_failed');
        // WhatsApp's codes: 406 banned, 402 banned for a while (the reason says until when), 403 account locked
        if (code === 406) return park('failed', 'number banned by WhatsApp (406)', 'session_failed');
        if (code === 402)
          return park(
            'failed',
            `number banned by WhatsApp for a while (402): ${String(event.data.reason ?? '')}`,
            'session_failed',
          );
        if (code === 403)
          return park('failed', 'account locked by WhatsApp (403): open WhatsApp on the phone', 'session_failed');
        if (HOLDS_SLOT.includes(state.status) && state.status !== 'failing_over') {
          await transition(
            'reconnecting',
            `connection lost (${code ?? 'no code'}): ${String(event.data.reason ?? '')}`,
          );
        }
        return;
      }
    }
  };

  const onAlarm = async (at?: number) => {
    if (!WATCHED_STATUSES.includes(state.status)) return;
    if (state.status !== 'connected' && state.status !== 'unhealthy') {
      // Raised before the current worker had a full ping timeout (e.g. during provision): not about this worker.
      if (at !== undefined && at < state.workerStartedAt + timings.pingTimeoutMs) return;
      // A worker hung before or between connections (pending, QR shown, reconnecting): restart it as it is.
      state.watchdogRestarts++;
      state.consecutiveWatchdogRestarts++;
      if (state.consecutiveWatchdogRestarts > timings.maxWatchdogRestarts) {
        await park(
          'failed',
          `worker hung (${state.status}) after ${timings.maxWatchdogRestarts} restarts`,
          'session_failed',
        );
        return;
      }
      await save({ lastError: `no ping while ${state.status}: restarting the worker` }, 'watchdogRestarts');
      await restartWorker();
      return;
    }
    state.watchdogRestarts++;
    state.consecutiveWatchdogRestarts++;
    if (state.consecutiveWatchdogRestarts > timings.maxWatchdogRestarts) {
      await park(
        'failed',
        `no ping for ${timings.pingTimeoutMs} ms after ${timings.maxWatchdogRestarts} restarts`,
        'session_failed',
      );
      return;
    }
    await transition('unhealthy', 'no ping: restarting the worker', 'watchdogRestarts');
    await bestEffortAlert({
      kind: 'session_unhealthy',
      text: `session ${state.sessionId}: no ping for ${timings.pingTimeoutMs} ms, restarting its worker`,
      dedupeKey: `session_unhealthy:${state.sessionId}`,
    });
    await restartWorker();
  };

  const onCommand = async (command: Command): Promise<unknown> => {
    switch (command.kind) {
      case 'restart': {
        state.restarts++;
        if (holdsProxy() && HOLDS_SLOT.includes(state.status)) {
          await restartWorker();
          await transition('reconnecting', state.lastError, 'restarts');
        } else {
          // failed / stopped: take a slot again (the sticky proxy first) and start over.
          await reserve();
          await startWorker();
          await transition('pending', null, 'restarts');
          state.consecutiveWatchdogRestarts = 0;
        }
        return { status: state.status };
      }
      case 'failover':
        // Probe first: a manual failover moves the session, but marks BAD only a proxy that is really dead.
        if (patched('manual-failover-probes')) {
          const probe = await quick.probeProxy({ ...proxyRef(), timeoutMs: timings.proxyProbeTimeoutMs });
          await failover(`manual failover: ${command.reason}`, !probe.ok);
        } else await failover(`manual failover: ${command.reason}`);
        return { proxyEndpoint: state.proxyEndpoint };
      case 'logout':
        await logout('logged out by the operator');
        return { status: state.status };
      case 'pairingCode': {
        const { conflictWith } = await quick.claimPairingPhone({
          sessionId: state.sessionId,
          phone: command.phone,
          previousPhone: state.phone,
        });
        if (conflictWith) return { status: state.status, conflictWith };
        state.phone = command.phone;
        state.pairingPhone = command.phone;
        await restartWorker();
        await transition('pending', null);
        return { status: state.status };
      }
      case 'moveHost':
        return moveHost(command.request);
      case 'delete':
        await workers().stopWorker({ sessionId: state.sessionId, remove: true });
        await quick.releaseProxy(state.sessionId);
        if (!command.keepAuth) await workers().deleteAuthFiles(state.sessionId);
        await quick.finishSession({
          sessionId: state.sessionId,
          tenant: state.tenant,
          phone: state.phone,
          status: 'deleted',
          purge: true,
          // The kept auth folder is a device WhatsApp knows with this profile: a re-provision presents it again.
          ...(command.keepAuth ? { keepDeviceProfile: true } : {}),
        });
        state.status = 'deleted';
        return { status: state.status };
    }
  };

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
      if (job.kind === 'event') await onEvent(job.event);
      else if (job.kind === 'alarm') await onAlarm(job.at);
      else results.set(job.id, { ok: true, value: await onCommand(job.command) });
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
