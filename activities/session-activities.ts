import { rm } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, Context, heartbeat as activityHeartbeat } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { Config } from '../common/config.js';
import { FailureType } from '../common/failure.js';
import { proxyIdOf } from '../common/proxy-id.js';
import { proxyEndpoint } from '../common/proxy-url.js';
import { sessionWebhookSecret, workflowIdFor, type SessionStatus } from '../common/session.js';
import { NoProxyCapacityError, ProxyOverrideRefusedError, type Reservation } from '../state/proxy-pool.js';
import type { LiveEventType } from '../state/events-bus.js';
import type { PgAuthStore } from '../state/auth-pg.js';
import type { Stores } from '../state/stores.js';
import type { DeviceProfile } from '../common/device-profiles.js';
import type { SessionRecord } from '../state/sessions.js';
import type { AlertKind, Alerts } from './alerts.js';
import { AuthOwnerError, claimAuthDir, safeSessionDir } from '../common/auth-owner.js';
import { probeSocks5, type ProbeResult } from './proxy-probe.js';
import type { WorkerInfo, WorkerRunner } from './runner/types.js';

/**
 * How workflows name a proxy in activity inputs: by id, so the URL and its credentials stay out of workflow history;
 * `proxyUrl` only where a run from before ids still carries the URL.
 */
export interface ProxyRef {
  proxyId?: string | null;
  proxyUrl?: string | null;
}

export const WATCHDOG_OUTAGE = 'WatchdogOutage';

export interface ActivityDeps {
  config: Config;
  stores: Stores;
  runner: WorkerRunner;
  alerts: Alerts;
  logger: Logger;
  /** Used by the watchdog to signal stale sessions. */
  temporal?: Client;
  /** Extra environment for every worker (tests shrink the worker's intervals with it). */
  workerEnv?: Record<string, string>;
  /** The PostgreSQL auth store (AUTH_STORE=postgres): fenced at each start, emptied with the session. */
  authStore?: PgAuthStore;
}

/** Heartbeats when running as an activity; a no-op when called directly (reconcile at orchestrator start). */
function heartbeat(details: string) {
  try {
    activityHeartbeat(details);
  } catch {
    /* not in an activity context */
  }
}

/**
 * Every side effect of the session lifecycle. Each activity is idempotent, because Temporal retries activities
 * and an orchestrator may die between an effect and its acknowledgement.
 */
export function createSessionActivities(deps: ActivityDeps) {
  const { config, runner, alerts, logger } = deps;
  const { pool, sessions, hosts, events, profiles } = deps.stores;
  const sessionsDir = path.resolve(config.SESSIONS_DIR);
  const apiOrigin = new URL(config.WEBHOOK_URL).origin;
  /** The URL behind a reference: the URL itself (histories from before ids), or looked up by id (null: gone). */
  const urlOf = async (ref: ProxyRef): Promise<string | null> =>
    ref.proxyUrl ?? (ref.proxyId ? await pool.urlOf(ref.proxyId) : null);
  const requireUrl = async (ref: ProxyRef): Promise<string> => {
    const url = await urlOf(ref);
    if (!url)
      throw ApplicationFailure.nonRetryable(
        `proxy ${ref.proxyId ?? '(none)'} is not registered any more`,
        FailureType.ProxyGone,
      );
    return url;
  };

  /** Publishes the live event of a lifecycle change (best effort; never fails the activity). */
  async function publishStatus(
    sessionId: string,
    fields: Partial<Omit<SessionRecord, 'sessionId'>>,
    increment?: 'restarts' | 'watchdogRestarts' | 'failovers',
  ): Promise<void> {
    if (!fields.status) return;
    const record = await sessions.get(sessionId).catch(() => null);
    let type: LiveEventType = 'status';
    const data: Record<string, unknown> = { status: fields.status, lastError: fields.lastError ?? null };
    if (increment === 'failovers' && fields.status === 'failed') type = 'reconnect_failed';
    else if (increment === 'failovers' || fields.status === 'failing_over') {
      type = 'failover';
      data.phase = increment === 'failovers' ? 'completed' : 'started';
    } else if (increment === 'watchdogRestarts') type = 'health_check_failed';
    else if (fields.status === 'logged_out') type = 'logout';
    else if (fields.status === 'failed') type = 'error';
    if (increment) data.increment = increment;
    const proxy = fields.proxy ?? record?.proxy;
    if (proxy) data.proxy = proxyEndpoint(proxy);
    await events.publishSafe({ type, sessionId, tenant: record?.tenant ?? null, data });
  }

  /**
   * The worker's environment. What the session record holds (its pairing phone until the first link) is read
   * here, so every path that starts a worker (provision, restart, failover, reconcile, restore) passes it on.
   */
  async function workerEnv(sessionId: string, proxyUrl: string, generation?: number): Promise<Record<string, string>> {
    const record = await sessions.get(sessionId);
    const env: Record<string, string> = {
      ...(generation !== undefined ? { WORKER_GENERATION: String(generation) } : {}),
      SESSION_ID: sessionId,
      PROXY_URL: proxyUrl,
      WEBHOOK_URL: config.WEBHOOK_URL,
      WEBHOOK_SECRET: sessionWebhookSecret(config.WEBHOOK_SECRET, sessionId),
      ENABLE_KEEP_ALIVE: String(config.ENABLE_KEEP_ALIVE),
      SESSIONS_DIR: sessionsDir,
      OUTBOX_URL: `${apiOrigin}/api/worker/sessions/${sessionId}/outbox`,
      AUTH_STORE: config.AUTH_STORE,
      AUTH_WRITE_BATCH_MS: String(config.AUTH_WRITE_BATCH_MS),
      LOG_LEVEL: config.LOG_LEVEL === 'silent' ? 'silent' : 'info',
      // Four PINGs per watchdog window: a hung worker is still caught within PING_TIMEOUT_MS, at a quarter of the
      // API's ingest cost of a PING every presence interval.
      LIVENESS_INTERVAL_MS: String(Math.max(100, Math.floor(config.PING_TIMEOUT_MS / 4))),
      ...deps.workerEnv,
    };
    if (config.WA_WEBSOCKET_URL) env.WA_WEBSOCKET_URL = config.WA_WEBSOCKET_URL;
    if (record?.pairingPhone && !record.connectedAt) env.PAIRING_PHONE = record.pairingPhone;
    // The session's device profile, for life (sessions from before profiles keep Baileys' default, as before).
    if (record?.device) env.WA_BROWSER = record.device;
    return env;
  }

  return {
    async registerSession(input: {
      sessionId: string;
      tenant: string;
      phone: string | null;
      hostId?: string;
      /** Link by pairing code for this phone (the worker gets PAIRING_PHONE until the first CONNECTED). */
      pairingPhone?: string;
    }): Promise<void> {
      const existing = await sessions.get(input.sessionId);
      if (!existing || existing.status === 'deleted') await sessions.create(input.sessionId, input.tenant);
      if (input.hostId) await sessions.update(input.sessionId, { host: input.hostId });
      if (input.phone) {
        const owner = await sessions.claimPhone(input.phone, input.sessionId);
        if (owner) {
          throw ApplicationFailure.nonRetryable(
            `phone ${input.phone} is already bound to session ${owner}`,
            FailureType.PhoneConflict,
          );
        }
        await sessions.update(input.sessionId, { phone: input.phone, pairingPhone: input.pairingPhone ?? null });
      }
    },

    /** Pairing by code for `phone` on a session waiting for its link: claims the phone, releases the previous one. */
    async claimPairingPhone(input: {
      sessionId: string;
      phone: string;
      previousPhone: string | null;
    }): Promise<{ conflictWith: string | null }> {
      const owner = await sessions.claimPhone(input.phone, input.sessionId);
      if (owner) return { conflictWith: owner };
      if (input.previousPhone && input.previousPhone !== input.phone)
        await sessions.releasePhone(input.previousPhone, input.sessionId);
      await sessions.clearQr(input.sessionId);
      await sessions.clearPairingCode(input.sessionId);
      await sessions.update(input.sessionId, { phone: input.phone, pairingPhone: input.phone });
      return { conflictWith: null };
    },

    /**
     * Provision step: the session's device profile (state/device-profile-assign.lua), kept in its record for every
     * later worker start. Null when the inventory was never seeded (the worker keeps Baileys' default).
     */
    async assignDeviceProfile(input: ProxyRef & { sessionId: string }): Promise<DeviceProfile | null> {
      const profile = await profiles.assign(input.sessionId, await urlOf(input));
      if (!profile) {
        if ((await profiles.list()).length === 0) return null;
        throw ApplicationFailure.nonRetryable(
          'no free device profile for this proxy: add profiles (POST /api/v1/device-profiles)',
          FailureType.NoDeviceProfile,
        );
      }
      await sessions.update(input.sessionId, {
        deviceProfile: profile.id,
        device: `${profile.os}|${profile.browser}|${profile.osVersion}`,
      });
      return profile;
    },

    /** Below the threshold of free device profiles, alert "low device profile inventory" (like proxies). */
    async checkDeviceProfileInventory(): Promise<number> {
      const free = await profiles.free();
      if (free < config.LOW_DEVICE_PROFILE_THRESHOLD) {
        await alerts.enqueue(
          'low_device_profile_inventory',
          `only ${free} device profiles left unused (threshold ${config.LOW_DEVICE_PROFILE_THRESHOLD}): add some with POST /api/v1/device-profiles`,
          `low_device_profile_inventory:${free}`,
        );
      }
      return free;
    },

    /** Linking by code ended without a link: the phone is free again, the code is gone. */
    async pairingFailed(input: { sessionId: string; phone: string | null }): Promise<void> {
      if (input.phone) await sessions.releasePhone(input.phone, input.sessionId);
      await sessions.clearPairingCode(input.sessionId);
      await sessions.update(input.sessionId, { phone: null, pairingPhone: null });
    },

    /**
     * Reserves a slot. `idOnly`: the answer names the proxy by id only (it goes into workflow history); `exclude`
     * takes URLs (histories from before ids), `excludeIds` ids.
     */
    async reserveProxy(input: {
      sessionId: string;
      phone: string | null;
      override: string | null;
      exclude: string[];
      excludeIds?: string[];
      idOnly?: boolean;
    }): Promise<Omit<Reservation, 'proxyUrl'> & { proxyUrl?: string; proxyId: string; endpoint: string }> {
      try {
        const exclude = [...input.exclude];
        for (const id of input.excludeIds ?? []) {
          const url = await pool.urlOf(id);
          if (url) exclude.push(url);
        }
        // The owner of an override: the session's tenant (recorded by registerSession just before).
        const tenant = input.override ? (await sessions.get(input.sessionId))?.tenant : undefined;
        const r = await pool.reserve({
          sessionId: input.sessionId,
          phone: input.phone ?? undefined,
          override: input.override ?? undefined,
          exclude,
          tenant,
        });
        await sessions.update(input.sessionId, { proxy: r.proxyUrl });
        const { proxyUrl, ...rest } = r;
        return {
          ...rest,
          ...(input.idOnly ? {} : { proxyUrl }),
          proxyId: proxyIdOf(proxyUrl),
          endpoint: proxyEndpoint(proxyUrl),
        };
      } catch (err) {
        if (err instanceof NoProxyCapacityError)
          throw ApplicationFailure.nonRetryable(err.message, FailureType.NoProxyCapacity);
        if (err instanceof ProxyOverrideRefusedError)
          throw ApplicationFailure.nonRetryable(err.message, FailureType.ProxyOverrideRefused);
        throw err;
      }
    },

    /** The id of the proxy released (never its URL: the answer goes into workflow history), or null. */
    async releaseProxy(sessionId: string): Promise<string | null> {
      const released = await pool.release(sessionId);
      return released && proxyIdOf(released);
    },

    /** A URL (histories from before ids) or a reference. */
    async markProxyBad(proxy: string | ProxyRef): Promise<void> {
      const url = typeof proxy === 'string' ? proxy : await urlOf(proxy);
      if (url) await pool.markBad(url);
    },

    async probeProxy(input: ProxyRef & { timeoutMs: number }): Promise<ProbeResult> {
      return probeSocks5(await requireUrl(input), input.timeoutMs);
    },

    /** No proxy (or one no longer registered): the binding is cleared. */
    async setStickyProxy(input: ProxyRef & { phone: string }): Promise<void> {
      const url = await urlOf(input);
      if (url) await pool.setSticky(input.phone, url);
      else await pool.clearSticky(input.phone);
    },

    async getStickyProxy(phone: string): Promise<string | null> {
      return pool.getSticky(phone);
    },

    async getStickyProxyId(phone: string): Promise<string | null> {
      const url = await pool.getSticky(phone);
      return url && proxyIdOf(url);
    },

    /** `proxyId` (null clears it) sets the record's proxy without its URL passing through the workflow. */
    async updateSession(input: {
      sessionId: string;
      fields: Partial<Omit<SessionRecord, 'sessionId'>>;
      increment?: 'restarts' | 'watchdogRestarts' | 'failovers';
      proxyId?: string | null;
    }): Promise<number | null> {
      const fields =
        input.proxyId === undefined
          ? input.fields
          : { ...input.fields, proxy: await urlOf({ proxyId: input.proxyId }) };
      const mirrorSeq = await sessions.update(input.sessionId, fields);
      if (input.increment) await sessions.increment(input.sessionId, input.increment);
      await publishStatus(input.sessionId, fields, input.increment);
      return mirrorSeq;
    },

    /** CONNECTED: lock the sticky binding, drop the temporary one, mark the session connected and active. */
    async sessionConnected(
      input: ProxyRef & {
        sessionId: string;
        phone: string;
        jid: string;
        /** The phone claimed at provision (or by an earlier pairing): released when another phone was scanned. */
        previousPhone?: string | null;
      },
    ): Promise<{ conflictWith: string | null; mirrorSeq?: number | null }> {
      const owner = await sessions.claimPhone(input.phone, input.sessionId);
      if (owner) return { conflictWith: owner };
      if (input.previousPhone && input.previousPhone !== input.phone)
        await sessions.releasePhone(input.previousPhone, input.sessionId);
      const proxyUrl = await requireUrl(input);
      await pool.setSticky(input.phone, proxyUrl);
      await pool.clearTemp(input.sessionId);
      await sessions.clearQr(input.sessionId);
      await sessions.clearPairingCode(input.sessionId);
      const now = Date.now();
      const mirrorSeq = await sessions.update(input.sessionId, {
        status: 'connected',
        phone: input.phone,
        jid: input.jid,
        proxy: proxyUrl,
        connectedAt: now,
        lastPing: now,
        lastError: null,
        pairingPhone: null,
      });
      await events.publishSafe({
        type: 'connected',
        sessionId: input.sessionId,
        tenant: (await sessions.get(input.sessionId).catch(() => null))?.tenant ?? null,
        data: { status: 'connected', phone: input.phone, proxy: proxyEndpoint(proxyUrl) },
      });
      return { conflictWith: null, mirrorSeq };
    },

    /**
     * `generation`: the workflow's worker generation, which the worker signs into every call. The runner fences the
     * auth folder with it before the start; the Redis mirror follows once the worker runs, so from then on the API
     * refuses every call of an older generation. Without one (reconcile brings back a vanished worker) the recorded
     * generation is reused: the same worker, started again.
     */
    async startWorker(input: ProxyRef & { sessionId: string; generation?: number }): Promise<WorkerInfo> {
      safeSessionDir(sessionsDir, input.sessionId);
      heartbeat('starting');
      const proxyUrl = await requireUrl(input);
      const recorded = await sessions.workerGeneration(input.sessionId);
      const generation = input.generation ?? recorded ?? undefined;
      // A new generation is a new worker with its own QR: the old one's would only make a phone scan a dead code.
      if (generation !== undefined && generation !== recorded) await sessions.clearQr(input.sessionId);
      await sessions.recordPing(input.sessionId, Date.now()); // the watchdog's grace period for a new worker
      if (generation !== undefined) await deps.authStore?.setGeneration(input.sessionId, generation);
      const info = await runner.start({
        sessionId: input.sessionId,
        proxyUrl,
        env: await workerEnv(input.sessionId, proxyUrl, generation),
      });
      if (generation !== undefined) await sessions.setWorkerGeneration(input.sessionId, generation);
      return info;
    },

    async stopWorker(input: { sessionId: string; remove: boolean }): Promise<void> {
      safeSessionDir(sessionsDir, input.sessionId);
      const beat = setInterval(() => heartbeat('stopping'), 1000);
      try {
        await runner.stop(input.sessionId, { remove: input.remove });
      } finally {
        clearInterval(beat);
      }
    },

    /** Restarts a (possibly hung) worker with its current proxy; gives it a fresh ping grace period. */
    async restartWorker(input: ProxyRef & { sessionId: string; generation?: number }): Promise<WorkerInfo> {
      safeSessionDir(sessionsDir, input.sessionId);
      const proxyUrl = await requireUrl(input);
      const beat = setInterval(() => heartbeat('restarting'), 1000);
      try {
        await sessions.recordPing(input.sessionId, Date.now());
        await runner.stop(input.sessionId);
        if (input.generation !== undefined) await sessions.clearQr(input.sessionId);
        // Like the folder's fence file: from here on the stopped generation's auth writes are refused.
        if (input.generation !== undefined) await deps.authStore?.setGeneration(input.sessionId, input.generation);
        const info = await runner.start({
          sessionId: input.sessionId,
          proxyUrl,
          env: await workerEnv(input.sessionId, proxyUrl, input.generation),
        });
        // After the old worker stopped (its last events and ACKs went through): from now on it is refused.
        if (input.generation !== undefined) await sessions.setWorkerGeneration(input.sessionId, input.generation);
        return info;
      } finally {
        clearInterval(beat);
      }
    },

    async deleteAuthFiles(sessionId: string): Promise<void> {
      await rm(safeSessionDir(sessionsDir, sessionId), { recursive: true, force: true });
      await deps.authStore?.deleteSession(sessionId);
    },

    /** Provision step on the session's host: its auth folder is new, or already this tenant's (never another's). */
    async claimAuthFolder(input: { sessionId: string; tenant: string }): Promise<'new' | 'kept'> {
      try {
        return await claimAuthDir(sessionsDir, input.sessionId, input.tenant);
      } catch (err) {
        if (err instanceof AuthOwnerError)
          throw ApplicationFailure.nonRetryable(err.message, FailureType.AuthOwnedElsewhere);
        throw err;
      }
    },

    /** Last step of a delete or logout: the phone is free again; keys go (the sticky binding stays with the phone). */
    async finishSession(input: {
      sessionId: string;
      tenant: string;
      phone: string | null;
      status: SessionStatus;
      purge: boolean;
      lastError?: string | null;
      /** Delete with keepAuth: the linked device stays, so does its profile (assignment is by session id). */
      keepDeviceProfile?: boolean;
    }): Promise<void> {
      if (input.phone) await sessions.releasePhone(input.phone, input.sessionId);
      await pool.clearTemp(input.sessionId);
      await sessions.clearQr(input.sessionId);
      await sessions.clearPairingCode(input.sessionId);
      // A deleted or logged-out session no longer counts against its host's capacity.
      const host = (await sessions.get(input.sessionId))?.host;
      if (host && (input.purge || input.status === 'logged_out')) await hosts.release(host, input.sessionId);
      // A deleted or logged-out session presents no device any more: its profile is free again.
      if ((input.purge || input.status === 'logged_out') && !input.keepDeviceProfile)
        await profiles.release(input.sessionId);
      if (input.purge) await sessions.remove(input.sessionId, input.tenant);
      else await sessions.update(input.sessionId, { status: input.status, lastError: input.lastError ?? null });
      await events.publishSafe({
        type: input.status === 'logged_out' ? 'logout' : input.status === 'failed' ? 'error' : 'status',
        sessionId: input.sessionId,
        tenant: input.tenant,
        data: {
          status: input.purge && input.status !== 'failed' ? 'deleted' : input.status,
          lastError: input.lastError ?? null,
        },
      });
    },

    /** Queues the alert (delivered and retried by the orchestrator's alert loop): never waits for Telegram. */
    async sendAlert(input: { kind: AlertKind; text: string; dedupeKey?: string }): Promise<void> {
      await alerts.enqueue(input.kind, input.text, input.dedupeKey);
    },

    /** Below the threshold of free healthy proxies, alert "low proxy inventory". */
    async checkProxyInventory(): Promise<number> {
      const free = await pool.freeHealthyProxies();
      if (free < config.LOW_PROXY_INVENTORY_THRESHOLD) {
        await alerts.enqueue(
          'low_proxy_inventory',
          `only ${free} healthy proxies with free slots left (threshold ${config.LOW_PROXY_INVENTORY_THRESHOLD})`,
          `low_proxy_inventory:${free}`,
        );
      }
      return free;
    },

    /** Watchdog sweep: signal every connected session whose last ping is too old. */
    /**
     * Signals the connected sessions whose last PING is older than the timeout. After an outage (this sweep
     * needed a retry, or the last good sweep is too long ago) PINGs were lost too, so nothing is judged: it
     * throws WatchdogOutage and the watchdog waits a full timeout before judging again.
     */
    async signalStaleSessions(input: {
      pingTimeoutMs: number;
      signalName: string;
      lastGoodSweepAt?: number;
      maxGapMs?: number;
    }): Promise<string[]> {
      const stale = await sessions.staleSessions(input.pingTimeoutMs);
      const gap = input.lastGoodSweepAt === undefined ? 0 : Date.now() - input.lastGoodSweepAt;
      const retried = Context.current().info.attempt > 1;
      if (input.maxGapMs !== undefined && (retried || gap > input.maxGapMs))
        throw ApplicationFailure.nonRetryable(
          `sweep after an outage (attempt ${Context.current().info.attempt}, ${gap} ms since the last good sweep)`,
          WATCHDOG_OUTAGE,
        );
      if (!deps.temporal) return stale;
      for (const sessionId of stale) {
        try {
          await deps.temporal.workflow
            .getHandle(workflowIdFor(config.WORKFLOW_ID_PREFIX, sessionId))
            .signal(input.signalName, { at: Date.now() });
        } catch (err) {
          logger.warn({ sessionId, err: String(err) }, 'watchdog could not signal a stale session');
        }
      }
      return stale;
    },
  };
}

export type SessionActivities = ReturnType<typeof createSessionActivities>;
