/**
 * The worker side of the outbox (contract: common/outbox.ts), on top of state/outbox.ts:
 *   POST /api/worker/sessions/:id/outbox/claim | ack | nack
 * Every request is signed with the session's key, bound to method and path and carrying a single-use nonce
 * (common/events.ts signRequest), verified by the signed scope (api/signed.ts). Errors: the one error shape.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeAny, z } from 'zod';
import { AckRequestSchema, ClaimRequestSchema, NackRequestSchema, type OutboxItem } from '../../common/outbox.js';
import type { OutboxStore } from '../../state/outbox.js';
import type { WorkerWake } from '../../state/worker-wake.js';
import { claimWithWait } from '../long-poll.js';
import { ApiError, zodToApiError } from '../errors.js';

export interface WorkerOutboxOptions {
  store: OutboxStore;
  /** Wakes waiting claims (`waitMs`); absent: every claim answers at once. */
  wake?: WorkerWake;
  /** URL prefix (default `/api/worker/sessions`). */
  basePath?: string;
  /** The `composing` time before sending this text and the session's shortest gap; absent: neither. */
  pacingFor?: (sessionId: string, text: string) => Promise<{ typingMs: number; minGapMs: number }>;
}

type Params = { id: string };

/** Request-bound signature (method, path, nonce), the session id from the path: see api/signed.ts. */
const SIGNED = { config: { signed: { session: 'params', bound: true } } } as const;

function parseBody<S extends ZodTypeAny>(req: FastifyRequest, schema: S): z.infer<S> {
  const parsed = schema.safeParse(req.body ?? {});
  if (!parsed.success) throw zodToApiError(parsed.error, 'body');
  return parsed.data as z.infer<S>;
}

/** Must be registered inside the signed scope: `req.signedSession` is the session whose key signed the call. */
export const workerOutboxRoutes: FastifyPluginAsync<WorkerOutboxOptions> = async (app: FastifyInstance, opts) => {
  const base = opts.basePath ?? '/api/worker/sessions';
  const sessionOf = (req: FastifyRequest) => {
    if (!req.signedSession) throw new ApiError(401, 'BAD_SIGNATURE', 'signature required');
    return req.signedSession;
  };

  app.post<{ Params: Params }>(`${base}/:id/outbox/claim`, SIGNED, async (req, reply) => {
    const sessionId = sessionOf(req);
    const { waitMs = 0 } = parseBody(req, ClaimRequestSchema);
    const claimed = await claimWithWait({
      wake: opts.wake,
      sessionId,
      waitMs,
      reply,
      claim: () => opts.store.claim(sessionId),
      release: (m) => opts.store.release(sessionId, m.messageId),
      nextDueAt: () => opts.store.nextDueAt(sessionId),
    });
    if (!claimed) return reply.code(204).send();
    // Decided at hand-off (the session's current bounds), so typing always ends a typing time after the claim.
    const pacing = (await opts.pacingFor?.(sessionId, claimed.text)) ?? { typingMs: 0, minGapMs: 0 };
    const { minGapMs } = pacing;
    // Nobody types a reaction or a deletion: those go without `composing` (the gap still holds).
    const kind = claimed.extra?.action?.kind;
    const typingMs = kind === 'reaction' || kind === 'revoke' ? 0 : pacing.typingMs;
    const item: OutboxItem = {
      messageId: claimed.messageId,
      to: claimed.to,
      text: claimed.text,
      ...(claimed.media ? { media: claimed.media } : {}),
      ...(claimed.extra ? { extra: claimed.extra } : {}),
      attempt: claimed.attempt,
      ...(typingMs > 0 ? { typingMs } : {}),
      ...(minGapMs > 0 ? { minGapMs } : {}),
    };
    return reply.code(200).send({ item });
  });

  app.post<{ Params: Params }>(`${base}/:id/outbox/ack`, SIGNED, async (req, reply) => {
    const sessionId = sessionOf(req);
    const { messageId, waMessageId } = parseBody(req, AckRequestSchema);
    const result = await opts.store.ack(sessionId, messageId, waMessageId);
    if (result === 'not_found')
      throw new ApiError(404, 'MESSAGE_NOT_FOUND', `no such message: ${messageId}`, 'messageId');
    if (result === 'conflict')
      throw new ApiError(409, 'ACK_CONFLICT', 'message already settled differently', 'messageId');
    return reply.code(200).send({ ok: true, duplicate: result === 'duplicate' });
  });

  app.post<{ Params: Params }>(`${base}/:id/outbox/nack`, SIGNED, async (req, reply) => {
    const sessionId = sessionOf(req);
    const { messageId, reason, permanent } = parseBody(req, NackRequestSchema);
    const result = await opts.store.nack(sessionId, messageId, reason, permanent);
    if (result === 'not_found')
      throw new ApiError(404, 'MESSAGE_NOT_FOUND', `no such message: ${messageId}`, 'messageId');
    if (result === 'conflict')
      throw new ApiError(409, 'NACK_CONFLICT', 'message was already acknowledged', 'messageId');
    return reply.code(200).send({ ok: true, requeued: result === 'requeued' });
  });
};

export default workerOutboxRoutes;
