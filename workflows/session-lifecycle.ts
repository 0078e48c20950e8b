/**
 * The steps a session run is made of, shared by its provision, its event and alarm handlers and its commands:
 * the status transition (state and Redis mirror together), starting and parking the worker, taking a proxy slot,
 * failing over to another proxy, logging out. One instance per run, holding the run's plain-JSON state.
 */
import { ParentClosePolicy, executeChild, patched, uuid4, workflowInfo } from '@temporalio/workflow';
import type { SessionActivities } from '../activities/session-activities.js';
import type { HostActivities } from '../activities/host-activities.js';
import type { SessionStatus } from '../common/session-status.js';
import { failoverWorkflow, type FailoverResult } from './failover.js';
import { bestEffortAlert, containerActivitiesOn, localQuickActivities, quickActivities } from './activity-options.js';
import type { SessionInput, SessionState, SessionTimings, WorkerEvent } from './session-definitions.js';

type Quick = ReturnType<typeof quickActivities<SessionActivities>>;
type MirrorFields = Parameters<SessionActivities['updateSession']>[0]['fields'];
type Counter = 'restarts' | 'watchdogRestarts' | 'failovers';

export class SessionLifecycle {
  readonly quick: Quick;
  /** The status mirror and CONNECTED: local activities (histories recorded before run them as activities). */
  readonly mirror: Quick | ReturnType<typeof localQuickActivities>;
  readonly hosting = quickActivities<HostActivities>();

  constructor(
    readonly input: SessionInput,
    readonly timings: SessionTimings,
    readonly state: SessionState,
  ) {
    this.quick = quickActivities(timings.quickActivityAttempts);
    this.mirror = patched('local-mirror') ? localQuickActivities(timings.quickActivityAttempts) : this.quick;
  }

  hostId(): string {
    return this.state.hostId ?? this.input.hostId ?? 'local';
  }
  hostQueue(): string | undefined {
    return this.state.hostQueue ?? this.input.hostQueue;
  }
  /** Container steps run on the host the session is on now. */
  workers() {
    return containerActivitiesOn(this.hostQueue());
  }

  /** Writes mirror fields (and the counter a change moves); a status among them counts as the workflow's write. */
  async save(fields: MirrorFields, increment?: Counter) {
    const seq: unknown = await this.mirror.updateSession({ sessionId: this.state.sessionId, fields, increment });
    if (typeof seq === 'number') this.state.mirrorSeq = seq;
  }

  /**
   * The bridge wrote this event's status straight on top of the workflow's last status write (nothing in between,
   * by anyone): the mirror then holds what the workflow would write.
   */
  mirroredOnTop(event: WorkerEvent): boolean {
    return (
      event.mirroredFrom !== undefined &&
      this.state.mirrorSeq !== undefined &&
      event.mirroredFrom === this.state.mirrorSeq &&
      !this.fromOldWorker(event)
    );
  }

  /**
   * Every status change of the session goes through here: the Redis mirror first (one activity, with the counter
   * the change moves), then the workflow state, so a failed save leaves both unchanged and they never disagree.
   * The exceptions are the changes an activity mirrors itself: CONNECTED (sessionConnected) and the terminal ones
   * (finishSession).
   */
  async transition(status: SessionStatus, lastError: string | null = this.state.lastError, increment?: Counter) {
    await this.save({ status, lastError }, increment);
    this.state.status = status;
    this.state.lastError = lastError;
  }

  /** The session's proxy as activities take it: by id, or by the URL a run from before ids still carries. */
  proxyRef(): { proxyId: string } | { proxyUrl: string | null } {
    return this.state.proxyId ? { proxyId: this.state.proxyId } : { proxyUrl: this.state.proxyUrl };
  }
  holdsProxy(): boolean {
    return Boolean(this.state.proxyId ?? this.state.proxyUrl);
  }

  /** Starts the worker as a new generation. */
  async startWorker() {
    await this.workers().startWorker(this.newGeneration());
  }
  /** Restarts the worker as a new generation (its events are told apart from the old one's by it). */
  async restartWorker() {
    await this.workers().restartWorker(this.newGeneration());
  }
  /** Counts a worker (re)start; returns the worker's start arguments. */
  private newGeneration() {
    this.state.workerGeneration++;
    this.state.workerStartedAt = Date.now();
    return { sessionId: this.state.sessionId, ...this.proxyRef(), generation: this.state.workerGeneration };
  }
  /** An event from a replaced worker: by generation, never by clocks (timestamps only for unstamped events). */
  fromOldWorker(event: WorkerEvent): boolean {
    return event.generation !== undefined
      ? event.generation < this.state.workerGeneration
      : event.timestamp < this.state.workerStartedAt;
  }

  /** Stops the worker and gives the slot back (failed / stopped sessions hold no proxy). */
  async park(status: SessionStatus, reason: string, alert: 'session_failed' | null) {
    await this.workers().stopWorker({ sessionId: this.state.sessionId, remove: false });
    await this.quick.releaseProxy(this.state.sessionId);
    await this.transition(status, reason);
    if (alert)
      await bestEffortAlert({
        kind: alert,
        text: `session ${this.state.sessionId}: ${reason}`,
        dedupeKey: `${alert}:${this.state.sessionId}`,
      });
  }

  /** Takes a proxy slot (the sticky proxy of the phone first). */
  async reserve() {
    const { state } = this;
    // By id from here on: the proxy's URL (credentials) stays out of this history.
    const byId = patched('proxy-id');
    const r = await this.quick.reserveProxy({
      sessionId: state.sessionId,
      phone: state.phone,
      override: this.input.proxyOverride,
      exclude: [],
      ...(byId ? { idOnly: true } : {}),
    });
    if (byId) {
      state.proxyId = r.proxyId;
      state.proxyUrl = null;
    } else state.proxyUrl = r.proxyUrl!;
    state.proxyEndpoint = r.endpoint;
  }

  /** Moves the session to another proxy (the failover child workflow); no proxy left: the session fails. */
  async failover(reason: string, markOldBad = true): Promise<void> {
    const { state } = this;
    const oldProxy = this.proxyRef();
    await this.transition('failing_over', reason);
    const result: FailoverResult = await executeChild(failoverWorkflow, {
      // uuid4() is replay-safe in workflows; a run id's prefix is time-based and can repeat across runs.
      workflowId: `${workflowInfo().workflowId}:failover:${state.failovers + 1}:${uuid4().slice(0, 8)}`,
      args: [
        {
          sessionId: state.sessionId,
          phone: state.phone,
          ...('proxyId' in oldProxy ? { oldProxyId: oldProxy.proxyId } : { oldProxy: oldProxy.proxyUrl! }),
          reason,
          maxAttempts: this.timings.maxFailoverAttempts,
          probeTimeoutMs: this.timings.proxyProbeTimeoutMs,
          hostQueue: this.hostQueue(),
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
      this.newGeneration(); // the child started the new proxy's worker as this generation
      await this.transition('reconnecting', reason, 'failovers');
    } else {
      state.proxyId = null;
      state.proxyUrl = null;
      state.proxyEndpoint = null;
      await this.transition('failed', result.reason, 'failovers');
      await bestEffortAlert({
        kind: 'session_failed',
        text: `session ${state.sessionId}: failover impossible (${result.reason})`,
        dedupeKey: `session_failed:${state.sessionId}`,
      });
    }
  }

  /** The device is unlinked: the worker and its auth files go, the slot is given back, the run ends. */
  async logout(reason: string) {
    const { state } = this;
    await this.workers().stopWorker({ sessionId: state.sessionId, remove: true });
    await this.workers().deleteAuthFiles(state.sessionId);
    await this.quick.releaseProxy(state.sessionId);
    await this.quick.finishSession({
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
  }
}
