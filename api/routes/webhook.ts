import { WorkflowNotFoundError } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { WebhookEnvelopeSchema, type WebhookEnvelope } from '../../common/events.js';
import { workflowIdFor } from '../../common/session.js';
import { proxyEndpoint } from '../../common/proxy-url.js';
import type { SessionRecord } from '../../state/sessions.js';
import {
  connectionLostError,
  waitedOutLoss,
  workerEventSignal,
  type WorkerEvent,
} from '../../workflows/session-definitions.js';
import type { ApiContext } from '../context.js';
import { ApiError, zodToApiError } from '../errors.js';

/** Events that change the lifecycle and therefore become workflow signals. PINGs only touch Redis. */
const SIGNALLED = new Set([
  'QR_CODE',
  'CONNECTED',
  'DISCONNECTED',
  'PROXY_ERROR',
  'AUTH_FAILURE',
  'AUTH_STATE_INVALID',
  'CLIENT_OUTDATED',
  'PAIRING_CODE',
  'PAIRING_FAILED',
]);

export interface WebhookHooks {
  /** Called after an event has been accepted (live events, metrics, customer webhooks). */
  onEvent?: (event: WebhookEnvelope) => void | Promise<void>;
}

/**
 * The webhook-to-signal bridge (`POST /api/webhook`, in the signed scope: HMAC and timestamp window with the
 * session's own secret are checked by api/signed.ts), validate the envelope, de-duplicate by eventId, then signal the session's workflow. It never starts
 * or revives a workflow: an event for a session that does not exist is a 404.
 */
export function webhookRoutes(ctx: ApiContext, hooks: WebhookHooks = {}) {
  const { config, temporal } = ctx;
  const { sessions, events } = ctx.stores;

  /**
   * A reported loss of the current worker (connected → reconnecting) and its reconnect (→ connected) are written
   * to the mirror here, with their live events, when the record shows the state the workflow last wrote: the
   * workflow, told so, changes only its own state, and a phone's flaky network costs its history no activities.
   * Anything else (or a record that moved on) the workflow writes itself. Returns the record's status-write count
   * the status was written on top of (the workflow trusts it only when that was its own last write), or null.
   */
  async function mirror(event: WebhookEnvelope, record: SessionRecord): Promise<number | null> {
    if (event.generation === undefined) return null;
    if (event.type === 'DISCONNECTED' && record.status === 'connected' && waitedOutLoss(event.data)) {
      const lastError = connectionLostError(event.data);
      const from = await sessions.mirrorLoss(event.sessionId, event.generation, lastError);
      if (from === null) return null;
      const proxy = record.proxy ? { proxy: proxyEndpoint(record.proxy) } : {};
      await events.publishSafe({
        type: 'status',
        sessionId: event.sessionId,
        tenant: record.tenant,
        data: { status: 'reconnecting', lastError, ...proxy },
      });
      return from;
    }
    if (event.type === 'CONNECTED' && record.status === 'reconnecting') {
      const { phoneNumber: phone, jid } = event.data;
      const written = await sessions.mirrorReconnect(event.sessionId, event.generation, phone, jid);
      if (written === null) return null;
      await events.publishSafe({
        type: 'connected',
        sessionId: event.sessionId,
        tenant: record.tenant,
        data: { status: 'connected', phone, proxy: proxyEndpoint(written.proxyUrl) },
      });
      return written.from;
    }
    return null;
  }
  return async function plugin(app: FastifyInstance) {
    // Registered inside the signed scope (api/signed.ts): the signature is verified before this handler runs.
    app.post('/api/webhook', { config: { signed: { session: 'body', bound: false } } }, async (request, reply) => {
      const parsed = WebhookEnvelopeSchema.safeParse(request.body);
      if (!parsed.success) throw zodToApiError(parsed.error, 'body');
      const event = parsed.data;

      const record = await sessions.get(event.sessionId);
      if (!record) throw new ApiError(404, 'SESSION_NOT_FOUND', `session ${event.sessionId} not found`);
      // De-duplication per session: one worker cannot mark another session's event ids as already seen.
      const seenId = `${event.sessionId}:${event.eventId}`;
      // Claimed now, marked done only after every effect (signal and hooks) succeeded: a retry after an error or
      // an API crash is processed again, never answered "duplicate" for an event that was lost.
      const claim = await sessions.claimEvent(seenId);
      if (claim === 'done') return reply.status(200).send({ ok: true, duplicate: true });
      if (claim === 'pending') throw new ApiError(503, 'IN_PROGRESS', 'this event is being processed; retry');

      try {
        if (event.type === 'PING') await sessions.recordPing(event.sessionId, event.data.timestamp);
        const qr =
          event.type === 'QR_CODE' ? await sessions.setQr(event.sessionId, event.data.qr, event.generation) : null;
        if (event.type === 'PAIRING_CODE')
          await sessions.setPairingCode(event.sessionId, { ...event.data, at: event.timestamp });
        if (event.type === 'PAIRING_FAILED') await sessions.clearPairingCode(event.sessionId);
        // A worker behind a dead proxy reports every retry (PROXY_ERROR + DISCONNECTED{isProxyError}, ~1/s). The
        // workflow counts the PROXY_ERROR only, and ignores both while failing over: not signalling them keeps the
        // workflow's history (and the server's lock on it) free for the failover itself.
        // A QR rotates every 20 s until it is scanned; the workflow needs its first one per worker, or one shown
        // after the session left qr_ready: a rotation is a workflow task for nothing, hundreds per minute when many
        // sessions wait for a scan.
        const redundant =
          (event.type === 'DISCONNECTED' && event.data.isProxyError === true) ||
          (event.type === 'PROXY_ERROR' && record.status === 'failing_over') ||
          (qr !== null && !qr.firstOfGeneration && record.status === 'qr_ready');
        if (SIGNALLED.has(event.type) && !redundant) {
          const mirroredFrom = await mirror(event, record);
          const signal = {
            eventId: event.eventId,
            type: event.type,
            timestamp: event.timestamp,
            ...(event.generation !== undefined ? { generation: event.generation } : {}),
            ...(mirroredFrom !== null ? { mirroredFrom } : {}),
            // The pairing code is a one-time secret and the QR a linking token: they stay in Redis, never in the
            // workflow's history.
            data:
              event.type === 'PAIRING_CODE'
                ? { phone: event.data.phone, expiresAt: event.data.expiresAt }
                : event.type === 'QR_CODE'
                  ? {}
                  : event.data,
          } as WorkerEvent;
          await temporal.workflow
            .getHandle(workflowIdFor(config.WORKFLOW_ID_PREFIX, event.sessionId))
            .signal(workerEventSignal, signal);
        }
      } catch (err) {
        await sessions.forgetSighting(seenId); // let the worker's retry through
        if (err instanceof WorkflowNotFoundError) {
          throw new ApiError(404, 'SESSION_NOT_RUNNING', `session ${event.sessionId} has no running workflow`);
        }
        throw new ApiError(503, 'UNAVAILABLE', 'could not record the event; retry');
      }
      try {
        await hooks.onEvent?.(event);
        await sessions.completeEvent(seenId);
      } catch {
        await sessions.forgetSighting(seenId).catch(() => undefined);
        throw new ApiError(503, 'UNAVAILABLE', 'could not process the event; retry');
      }
      return reply.status(202).send({ ok: true });
    });
  };
}
