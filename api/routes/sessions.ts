import {
  ServiceError,
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import QRCode from 'qrcode';
import { z } from 'zod';
import { failureOf, FailureType } from '../../common/failure.js';
import { proxyEndpoint } from '../../common/proxy-url.js';
import {
  LIVE_STATUSES,
  PhoneSchema,
  ProvisionBodySchema,
  SessionIdSchema,
  workflowIdFor,
} from '../../common/session.js';
import type { SessionRecord } from '../../state/sessions.js';
import {
  DEFAULT_TIMINGS,
  deleteUpdate,
  failoverUpdate,
  logoutUpdate,
  pairingCodeUpdate,
  provisionedUpdate,
  restartUpdate,
} from '../../workflows/session-definitions.js';
import { sessionWorkflow } from '../../workflows/session.js';
import { reaches, sessionNotFound, tenantOf, type Principal } from '../auth.js';
import { TenantQuotas } from '../quotas.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput } from '../errors.js';

export const IdParams = z.object({ id: SessionIdSchema });
export const DeleteQuery = z.object({ keepAuth: z.enum(['true', 'false']).default('false') });
export const PairingCodeBody = z.object({ phone: PhoneSchema }).strict();
/** How long provision / POST …/pairing-code wait for the worker to report its code before answering without it. */
const PAIRING_CODE_WAIT_MS = 25_000;
export const FailoverBody = z.object({ reason: z.string().min(1).max(200).default('requested by operator') }).strict();

/** What the API shows of a session: never the proxy credentials. */
/**
 * A session as the API shows it, from the Redis mirror alone: every status change is saved there before the
 * workflow takes it, so the mirror is never behind, and a read costs no Temporal query (a query of a workflow out of
 * the worker's cache replays its whole history: seconds per call with thousands of sessions).
 */
export function sessionView(record: SessionRecord, temporal: { uiUrl: string; namespace: string; prefix: string }) {
  const workflowId = workflowIdFor(temporal.prefix, record.sessionId);
  return {
    sessionId: record.sessionId,
    tenant: record.tenant,
    status: record.status,
    phone: record.phone,
    jid: record.jid,
    proxy: record.proxy ? proxyEndpoint(record.proxy) : null,
    createdAt: record.createdAt,
    connectedAt: record.connectedAt,
    lastPing: record.lastPing,
    lastPingAgeMs: record.lastPing ? Date.now() - record.lastPing : null,
    restarts: record.restarts,
    watchdogRestarts: record.watchdogRestarts,
    failovers: record.failovers,
    lastError: record.lastError,
    host: record.host,
    /** The device/browser identity the session presents for life (null: Baileys' default, older sessions). */
    deviceProfile: record.deviceProfile ?? null,
    workflowId,
    temporalUrl: `${temporal.uiUrl}/namespaces/${temporal.namespace}/workflows/${encodeURIComponent(workflowId)}`,
  };
}

export const temporalLinks = (config: ApiContext['config']) => ({
  uiUrl: config.TEMPORAL_UI_URL,
  namespace: config.TEMPORAL_NAMESPACE,
  prefix: config.WORKFLOW_ID_PREFIX,
});

/** Maps Temporal errors of an update or query to API errors. */
/** A phone bound to another session: the same answer whoever holds it (no tenant, no session named). */
const phoneTaken = (phone: string) =>
  new ApiError(409, 'PHONE_ALREADY_REGISTERED', `phone ${phone} is already registered`, 'phone');

/** Temporal did not take the command (busy, timed out, unreachable): nothing changed, the caller may retry. */
const temporalUnavailable = () =>
  new ApiError(503, 'TEMPORAL_UNAVAILABLE', 'the session could not take the command now; retry', undefined, {
    'retry-after': '2',
  });

function mapTemporalError(err: unknown, sessionId: string, phone: string | null = null): never {
  if (err instanceof WorkflowNotFoundError)
    throw new ApiError(404, 'SESSION_NOT_RUNNING', `session ${sessionId} is not running`);
  if (err instanceof WorkflowUpdateFailedError) {
    const cause = failureOf(err);
    if (cause.type === FailureType.NoDeviceProfile) throw new ApiError(503, 'NO_DEVICE_PROFILE', cause.message);
    if (cause.type === FailureType.NoProxyCapacity) throw new ApiError(503, 'NO_PROXY_CAPACITY', cause.message);
    if (cause.type === FailureType.ProxyOverrideRefused)
      throw new ApiError(409, 'PROXY_OVERRIDE_REFUSED', cause.message, 'proxyOverride');
    // Same answer as another tenant's live session id: the id is taken, by whom is not said.
    if (cause.type === FailureType.AuthOwnedElsewhere)
      throw new ApiError(409, 'SESSION_EXISTS', `session id ${sessionId} is not available`, 'sessionId');
    if (cause.type === FailureType.PhoneConflict) {
      if (phone) throw phoneTaken(phone);
      throw new ApiError(409, 'PHONE_ALREADY_REGISTERED', 'the phone is already registered', 'phone');
    }
    throw new ApiError(409, 'COMMAND_REJECTED', cause.message);
  }
  const message = (err as Error).message ?? String(err);
  if (/rejected|validat/i.test(message)) throw new ApiError(409, 'COMMAND_REJECTED', message);
  if (err instanceof ServiceError || err instanceof WorkflowUpdateRPCTimeoutOrCancelledError)
    throw temporalUnavailable();
  throw err;
}

export function sessionRoutes(ctx: ApiContext) {
  const { config, temporal } = ctx;
  const { sessions, hosts } = ctx.stores;
  const quotas = new TenantQuotas(ctx.stores.redis, config);
  const handleOf = (sessionId: string) =>
    temporal.workflow.getHandle(workflowIdFor(config.WORKFLOW_ID_PREFIX, sessionId));

  async function loadRecord(sessionId: string, principal: Principal) {
    const record = await sessions.get(sessionId);
    if (!record || !reaches(principal, record.tenant)) throw sessionNotFound(sessionId);
    return record;
  }

  return async function plugin(app: FastifyInstance) {
    app.post('/api/sessions/provision', async (request, reply) => {
      const body = parseInput(ProvisionBodySchema, request.body, 'body');
      const tenant = tenantOf(request.principal);
      const sessionId = body.sessionId ?? `worker_${await sessions.nextSequence()}`;
      const override = body.proxyOverride ?? body.proxy ?? null;

      const existing = await sessions.get(sessionId);
      if (existing) {
        // Another tenant's id is simply taken: no hint whose it is.
        if (!reaches(request.principal, existing.tenant))
          throw new ApiError(409, 'SESSION_EXISTS', `session id ${sessionId} is not available`, 'sessionId');
        if (LIVE_STATUSES.includes(existing.status) || existing.status === 'failed') {
          throw new ApiError(
            409,
            'SESSION_EXISTS',
            `session ${sessionId} already exists (${existing.status})`,
            'sessionId',
          );
        }
        // A logged-out session's run may still be finishing its last steps: let it end before starting anew.
        await Promise.race([
          handleOf(sessionId)
            .result()
            .catch(() => undefined),
          sleep(15_000),
        ]);
      }
      if (body.phone) {
        const owner = await sessions.phoneOwner(body.phone);
        if (owner && owner !== sessionId) throw phoneTaken(body.phone);
      }
      // Quotas last: one atomic script counts live sessions and admitted provisions, so parallel provisions
      // cannot both pass; the reservation is settled whatever happens below.
      const limited = !request.principal.admin;
      if (limited) {
        const admission = await quotas.admitProvision(tenant, sessionId);
        if (!admission.ok && admission.limit === 'sessions')
          throw new ApiError(
            409,
            'TENANT_SESSION_LIMIT',
            admission.max === 1
              ? 'this tenant already has a live session (one session per tenant)'
              : `this tenant already has ${admission.max} live sessions (the limit)`,
          );
        if (!admission.ok)
          throw new ApiError(
            429,
            'PROVISION_RATE_LIMITED',
            `at most ${config.TENANT_PROVISION_MAX} provisions per ${config.TENANT_PROVISION_WINDOW_MS / 1000} s for this tenant`,
            undefined,
            { 'retry-after': String(Math.max(1, Math.ceil(admission.retryAfterMs / 1000))) },
          );
      }
      try {
        const t0 = Date.now();
        const created = await startProvision(sessionId, tenant, body.phone ?? null, override, body.pairing);
        const pairingCode = body.pairing === 'code' ? await waitForPairingCode(sessionId, t0) : undefined;
        return reply.status(201).send({ ...created, ...(pairingCode !== undefined ? { pairingCode } : {}) });
      } finally {
        if (limited) await quotas.settleProvision(tenant, sessionId);
      }
    });

    async function startProvision(
      sessionId: string,
      tenant: string,
      phone: string | null,
      override: string | null,
      pairing: 'qr' | 'code' | undefined,
    ) {
      // Placement: the live Docker host with the most free capacity (its auth volume will live there).
      const host = await hosts.place(sessionId, config.HOST_HEARTBEAT_MS * 3);
      if (!host) {
        throw new ApiError(503, 'NO_HOST_CAPACITY', 'no orchestrator host is alive with free capacity; retry later');
      }
      const startWorkflowOperation = new WithStartWorkflowOperation(sessionWorkflow, {
        workflowId: workflowIdFor(config.WORKFLOW_ID_PREFIX, sessionId),
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        workflowIdConflictPolicy: 'FAIL',
        args: [
          {
            sessionId,
            tenant,
            phone,
            proxyOverride: override,
            timings: {
              ...DEFAULT_TIMINGS,
              pingTimeoutMs: config.PING_TIMEOUT_MS,
              maxHistoryEvents: config.SESSION_MAX_HISTORY_EVENTS,
              quickActivityAttempts: config.SESSION_ACTIVITY_ATTEMPTS,
            },
            hostId: host.hostId,
            hostQueue: host.queue,
            ...(pairing === 'code' ? { pairing } : {}),
          },
        ],
      });
      let result: { status: string; proxyEndpoint: string | null };
      const updateId = randomUUID();
      try {
        result = await temporal.workflow
          .executeUpdateWithStart(provisionedUpdate, { startWorkflowOperation, updateId })
          .catch((err: unknown) => {
            if (!(err instanceof WorkflowUpdateRPCTimeoutOrCancelledError)) throw err;
            // A busy server let the call time out; the provision may well be running: wait for its answer.
            return awaitProvisionAnswer(sessionId, updateId);
          });
      } catch (err) {
        if (
          err instanceof WorkflowExecutionAlreadyStartedError ||
          (err as Error).name === 'WorkflowExecutionAlreadyStartedError'
        ) {
          throw new ApiError(409, 'SESSION_EXISTS', `session ${sessionId} already exists`, 'sessionId');
        }
        await hosts.release(host.hostId, sessionId); // not provisioned: the placement goes back
        // The timed-out start never took (no workflow, no update): nothing changed, the caller may retry.
        if (err instanceof WorkflowNotFoundError) throw temporalUnavailable();
        mapTemporalError(err, sessionId, phone);
      }
      return {
        sessionId,
        status: result.status,
        proxy: result.proxyEndpoint,
        workflowId: workflowIdFor(config.WORKFLOW_ID_PREFIX, sessionId),
      };
    }

    /** The provision update's answer after its first call timed out (the start may or may not have happened). */
    async function awaitProvisionAnswer(sessionId: string, updateId: string) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await handleOf(sessionId)
            .getUpdateHandle<{ status: string; proxyEndpoint: string | null }>(updateId)
            .result();
        } catch (err) {
          if (!(err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) || attempt >= 5) throw err;
        }
      }
    }

    /** The code the worker reported since `since` (null when it did not within PAIRING_CODE_WAIT_MS). */
    async function waitForPairingCode(sessionId: string, since: number) {
      const deadline = Date.now() + PAIRING_CODE_WAIT_MS;
      for (;;) {
        const r = await sessions.getPairingCode(sessionId);
        if (r && r.at >= since - 1000) return { code: r.code, phone: r.phone, expiresAt: r.expiresAt };
        const record = await sessions.get(sessionId);
        if (!record || !LIVE_STATUSES.includes(record.status) || Date.now() > deadline) return null;
        await sleep(150);
      }
    }

    /** Why linking by code ended (a clear answer after PAIRING_FAILED: the session says it in lastError). */
    const pairingEnded = (record: SessionRecord) =>
      /^pairing code/.test(record.lastError ?? '') && !LIVE_STATUSES.includes(record.status)
        ? new ApiError(
            410,
            record.status === 'qr_expired' ? 'PAIRING_CODE_EXPIRED' : 'PAIRING_CODE_REFUSED',
            `${record.lastError} (session ${record.status}; restart it, or ask for a new code)`,
          )
        : null;

    app.get('/api/sessions/:id/pairing-code', async (request) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const record = await loadRecord(id, request.principal);
      const r = await sessions.getPairingCode(id);
      if (!r) {
        throw (
          pairingEnded(record) ??
          new ApiError(404, 'PAIRING_CODE_NOT_AVAILABLE', `no pairing code for session ${id} (status ${record.status})`)
        );
      }
      return {
        sessionId: id,
        status: record.status,
        code: r.code,
        phone: r.phone,
        expiresAt: r.expiresAt,
        generatedAt: r.at,
      };
    });

    /** Switch a session waiting for its link (QR shown) to a pairing code for `phone`; answers with the code. */
    app.post('/api/sessions/:id/pairing-code', async (request, reply) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const { phone } = parseInput(PairingCodeBody, request.body, 'body');
      const record = await loadRecord(id, request.principal);
      const owner = await sessions.phoneOwner(phone);
      if (owner && owner !== id) throw phoneTaken(phone);
      if (record.connectedAt)
        throw new ApiError(409, 'ALREADY_LINKED', `session ${id} is already linked to a phone`, 'phone');
      const t0 = Date.now();
      let status: string;
      try {
        ({ status } = await handleOf(id).executeUpdate(pairingCodeUpdate, { args: [{ phone }] }));
      } catch (err) {
        return mapTemporalError(err, id, phone);
      }
      const pairingCode = await waitForPairingCode(id, t0);
      // Accepted, the code still on its way (a slow worker start): GET …/pairing-code shows it when it comes.
      if (!pairingCode) return reply.status(202).send({ sessionId: id, status, pairingCode: null });
      return { sessionId: id, status, ...pairingCode };
    });

    app.get('/api/sessions/:id/qr', async (request) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const record = await loadRecord(id, request.principal);
      const qr = await sessions.getQr(id);
      if (!qr) {
        throw new ApiError(404, 'QR_NOT_AVAILABLE', `no QR code for session ${id} (status ${record.status})`);
      }
      return {
        sessionId: id,
        status: record.status,
        qr: qr.qr,
        dataUrl: await QRCode.toDataURL(qr.qr, { margin: 1, width: 320 }),
        terminal: await QRCode.toString(qr.qr, { type: 'terminal', small: true }),
        count: qr.count,
        generatedAt: qr.at,
      };
    });

    app.get('/api/sessions/:id/status', async (request) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const record = await loadRecord(id, request.principal);
      return sessionView(record, temporalLinks(config));
    });

    app.get('/api/sessions/:id/health', async (request, reply) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const record = await loadRecord(id, request.principal);
      const age = record.lastPing ? Date.now() - record.lastPing : null;
      let reason: string | null = null;
      if (record.status !== 'connected') reason = `status is ${record.status}`;
      else if (age === null || age > config.PING_TIMEOUT_MS) reason = `no ping for ${age ?? '∞'} ms`;
      return reply
        .status(reason ? 503 : 200)
        .send({ sessionId: id, healthy: !reason, status: record.status, lastPingAgeMs: age, reason });
    });

    /** A command is an update on the session's workflow; its errors map to 404 / 409 / 503. */
    async function command<R extends object>(sessionId: string, run: (h: ReturnType<typeof handleOf>) => Promise<R>) {
      try {
        return { sessionId, ...(await run(handleOf(sessionId))) };
      } catch (err) {
        return mapTemporalError(err, sessionId);
      }
    }

    app.post('/api/sessions/:id/restart', async (request) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      await loadRecord(id, request.principal);
      return command(id, (h) => h.executeUpdate(restartUpdate));
    });

    app.post('/api/sessions/:id/failover', async (request) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const body = parseInput(FailoverBody, request.body, 'body');
      const record = await loadRecord(id, request.principal);
      // A manual failover moves the session to another proxy: a tenant looping on it must not churn the pool.
      if (!request.principal.admin) {
        const admitted = await quotas.admitFailover(record.tenant, id);
        if (!admitted.ok)
          throw new ApiError(
            429,
            'FAILOVER_RATE_LIMITED',
            `at most ${config.TENANT_FAILOVER_MAX} manual failovers per ${config.TENANT_FAILOVER_WINDOW_MS / 1000} s for this tenant`,
            undefined,
            { 'retry-after': String(Math.max(1, Math.ceil(admitted.retryAfterMs / 1000))) },
          );
      }
      return command(id, (h) => h.executeUpdate(failoverUpdate, { args: [{ reason: body.reason }] }));
    });

    app.post('/api/sessions/:id/logout', async (request) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      await loadRecord(id, request.principal);
      return command(id, (h) => h.executeUpdate(logoutUpdate));
    });

    app.delete('/api/sessions/:id', async (request) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const { keepAuth } = parseInput(DeleteQuery, request.query, 'query');
      const record = await loadRecord(id, request.principal);
      try {
        return {
          sessionId: id,
          ...(await handleOf(id).executeUpdate(deleteUpdate, { args: [{ keepAuth: keepAuth === 'true' }] })),
        };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError || /not found|already completed/i.test(String(err))) {
          // The workflow ended (logged out / failed provision): only keys are left to clean.
          await sessions.remove(id, record.tenant);
          return { sessionId: id, status: 'deleted' };
        }
        return mapTemporalError(err, id);
      }
    });
  };
}
