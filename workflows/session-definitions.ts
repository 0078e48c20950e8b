/**
 * What the session workflow (session.ts) is to the rest of the system: its timings, its state and input, the
 * worker events it takes, and its signals, updates and query. Imported by the API, the host failover workflow and
 * tests without pulling in the workflow's steps.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { LIVE_STATUSES, type SessionStatus } from '../common/session-status.js';
import type { EventData } from '../common/events.js';

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
  /**
   * The mirror's status-write count after this workflow's last status write (absent: none since this field). A
   * write the bridge mirrored counts only when it came straight after it (see {@link WorkerEvent} `mirroredFrom`).
   */
  mirrorSeq?: number;
}

export type PublicSessionState = Omit<SessionState, 'proxyUrl' | 'proxyId' | 'seenEventIds' | 'mirrorSeq'>;

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
    /**
     * The webhook bridge already wrote this event's status change to the Redis mirror (a reported loss, or the
     * reconnect after it; see {@link waitedOutLoss}), on top of the mirror's status-write count given here. When
     * that is the count of the workflow's own last write (`SessionState.mirrorSeq`), nothing was written in
     * between or since by the workflow, and it changes only its own state; otherwise it writes as usual.
     */
    mirroredFrom?: number;
    data: Partial<T extends 'PAIRING_CODE' ? Omit<EventData<T>, 'code'> : EventData<T>>;
  };
}[SignalledEventType];

/** The lastError of a connection loss the session waits out while the worker reconnects (status `reconnecting`). */
export function connectionLostError(data: { code?: number | null; reason?: string }): string {
  return `connection lost (${data.code ?? 'no code'}): ${String(data.reason ?? '')}`;
}

/**
 * WhatsApp's codes the session answers with more than a reconnect: 401 logged out, 440 replaced, 406 banned, 402
 * banned for a while, 403 locked.
 */
export const FINAL_DISCONNECT_CODES: readonly number[] = [401, 440, 406, 402, 403];

/**
 * A DISCONNECTED the session only waits out (the worker reconnects by itself): not a proxy error, not every QR
 * expired, no final code. The webhook bridge mirrors these itself (connected → reconnecting); the workflow still
 * decides every event (session-handlers.ts) and writes whatever it decides otherwise.
 */
export function waitedOutLoss(data: { code?: number | null; reason?: string; isProxyError?: boolean }): boolean {
  if (data.isProxyError === true || /^qr_timeout/.test(String(data.reason ?? ''))) return false;
  return typeof data.code !== 'number' || !FINAL_DISCONNECT_CODES.includes(data.code);
}

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

/** Statuses a session never leaves: its run ends. */
export const TERMINAL: SessionStatus[] = ['logged_out', 'deleted'];
/** States in which the session holds a proxy slot and a worker. */
export const HOLDS_SLOT = LIVE_STATUSES;

/** What the API and the host failover workflow ask of a session; run one at a time by the main loop. */
export type SessionCommand =
  | { kind: 'restart' }
  | { kind: 'delete'; keepAuth: boolean }
  | { kind: 'failover'; reason: string }
  | { kind: 'logout' }
  | { kind: 'pairingCode'; phone: string }
  | { kind: 'moveHost'; request: MoveHostRequest };
