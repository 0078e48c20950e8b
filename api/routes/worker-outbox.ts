/**
 * The worker side of the outbox (contract: common/outbox.ts), on top of state/outbox.ts:
 *   POST /api/worker/sessions/:id/outbox/claim | ack | nack
 * Every request must be signed like a webhook (x-wa-timestamp, x-wa-signature over the raw body) with the
 * session's webhook secret. Errors are JSON `{error: {code, message, field?}}`.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeAny, z } from 'zod';
import { SessionIdSchema, verifyWebhook } from '../../common/events.js';
import { AckRequestSchema, ClaimRequestSchema, NackRequestSchema, type OutboxItem } from '../../common/outbox.js';
import type { OutboxStore } from '../../state/outbox.js';

export interface WorkerOutboxOptions {
  store: OutboxStore;
  /** The secret the session's worker signs with (the deployment's WEBHOOK_SECRET, or per session). */
  secretFor: (sessionId: string) => string | undefined | Promise<string | undefined>;
  /** Allowed clock skew for signatures (default 5 min). */
  toleranceMs?: number;
  /** URL prefix (default `/api/worker/sessions`). */
  basePath?: string;
}

type Params = { id: string };

function sendError(reply: FastifyReply, status: number, code: string, message: string, field?: string) {
  return reply.code(status).send({ error: { code, message, ...(field ? { field } : {}) } });
}

export const workerOutboxRoutes: FastifyPluginAsync<WorkerOutboxOptions> = async (app: FastifyInstance, opts) => {
  const base = opts.basePath ?? '/api/worker/sessions';
  const tolerance = opts.toleranceMs ?? 5 * 60_000;

  // Keep the raw body: the signature covers the exact bytes. Scoped to this plugin (encapsulation).
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
    done(null, body);
  });

  async function authenticate<S extends ZodTypeAny>(
    req: FastifyRequest<{ Params: Params }>,
    reply: FastifyReply,
    schema: S,
  ): Promise<{ sessionId: string; body: z.infer<S> } | undefined> {
    const sid = SessionIdSchema.safeParse(req.params.id);
    if (!sid.success) {
      await sendError(reply, 400, 'invalid_session_id', 'session id must match ^[A-Za-z0-9_-]{1,64}$', 'id');
      return undefined;
    }
    const raw = typeof req.body === 'string' ? req.body : '';
    const secret = await opts.secretFor(sid.data);
    if (!secret) {
      await sendError(reply, 404, 'unknown_session', `no such session: ${sid.data}`);
      return undefined;
    }
    const verdict = verifyWebhook(secret, req.headers, raw, { toleranceMs: tolerance });
    if (!verdict.ok) {
      const message =
        verdict.reason === 'stale'
          ? 'request timestamp outside the allowed window'
          : verdict.reason === 'missing'
            ? 'missing x-wa-timestamp / x-wa-signature headers'
            : 'bad signature';
      await sendError(reply, 401, `signature_${verdict.reason.replace('-', '_')}`, message);
      return undefined;
    }
    let json: unknown;
    try {
      json = raw === '' ? {} : JSON.parse(raw);
    } catch {
      await sendError(reply, 400, 'invalid_json', 'body is not valid JSON');
      return undefined;
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      await sendError(
        reply,
        400,
        'validation_failed',
        issue?.message ?? 'invalid body',
        issue && issue.path.length > 0 ? issue.path.join('.') : undefined,
      );
      return undefined;
    }
    return { sessionId: sid.data, body: parsed.data as z.infer<S> };
  }

  app.post<{ Params: Params }>(`${base}/:id/outbox/claim`, async (req, reply) => {
    const auth = await authenticate(req, reply, ClaimRequestSchema);
    if (!auth) return reply;
    const claimed = await opts.store.claim(auth.sessionId);
    if (!claimed) return reply.code(204).send();
    const item: OutboxItem = {
      messageId: claimed.messageId,
      to: claimed.to,
      text: claimed.text,
      attempt: claimed.attempt,
    };
    return reply.code(200).send({ item });
  });

  app.post<{ Params: Params }>(`${base}/:id/outbox/ack`, async (req, reply) => {
    const auth = await authenticate(req, reply, AckRequestSchema);
    if (!auth) return reply;
    const { messageId, waMessageId } = auth.body;
    const result = await opts.store.ack(auth.sessionId, messageId, waMessageId);
    if (result === 'not_found')
      return sendError(reply, 404, 'unknown_message', `no such message: ${messageId}`, 'messageId');
    if (result === 'conflict') {
      return sendError(reply, 409, 'ack_conflict', 'message already settled differently', 'messageId');
    }
    return reply.code(200).send({ ok: true, duplicate: result === 'duplicate' });
  });

  app.post<{ Params: Params }>(`${base}/:id/outbox/nack`, async (req, reply) => {
    const auth = await authenticate(req, reply, NackRequestSchema);
    if (!auth) return reply;
    const { messageId, reason, permanent } = auth.body;
    const result = await opts.store.nack(auth.sessionId, messageId, reason, permanent);
    if (result === 'not_found')
      return sendError(reply, 404, 'unknown_message', `no such message: ${messageId}`, 'messageId');
    if (result === 'conflict')
      return sendError(reply, 409, 'nack_conflict', 'message was already acknowledged', 'messageId');
    return reply.code(200).send({ ok: true, requeued: result === 'requeued' });
  });
};

export default workerOutboxRoutes;
