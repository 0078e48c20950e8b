/**
 * Number checks and read receipts, both carried out by the session's worker through worker commands
 * (common/worker-commands.ts):
 *   POST /api/contacts/check {sessionId, phones}   → 200 {sessionId, results: [{phone, onWhatsApp, jid, lid, cached}]}
 *   POST /api/sessions/:id/read {messageIds}        → 202 {sessionId, commandId, messageIds}
 * A check answers from the Redis cache where it can; only the rest goes to WhatsApp (one usync query), within the
 * session's per-minute lookup budget (429 + Retry-After, nothing sent, nothing cached).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { PhoneSchema, SessionIdSchema } from '../../common/session.js';
import type { NumberCheckResult } from '../../common/worker-commands.js';
import { reaches, sessionNotFound, type Principal } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput } from '../errors.js';

/** Numbers per request: one usync query, as the phone app batches its contact sync. */
export const CHECK_MAX_PHONES = 50;

export const ContactCheckBodySchema = z
  .object({
    sessionId: SessionIdSchema,
    phones: z
      .array(PhoneSchema, { required_error: 'phones is required', invalid_type_error: 'must be a list of numbers' })
      .min(1, 'must not be empty')
      .max(CHECK_MAX_PHONES, `at most ${CHECK_MAX_PHONES} numbers per request`),
  })
  .strict();

export const ContactCheckResponseSchema = z.object({
  sessionId: z.string(),
  results: z.array(
    z.object({
      phone: z.string(),
      onWhatsApp: z.boolean(),
      jid: z.string().nullable(),
      lid: z.string().nullable(),
      /** answered from the cache (no lookup sent to WhatsApp) */
      cached: z.boolean(),
    }),
  ),
});

export const ReadBodySchema = z
  .object({
    messageIds: z
      .array(z.string().regex(/^[A-Za-z0-9]{1,128}$/, 'not a WhatsApp message id'), {
        required_error: 'messageIds is required',
      })
      .min(1, 'must not be empty')
      .max(100, 'at most 100 ids'),
  })
  .strict();
export const ReadResponseSchema = z.object({
  sessionId: z.string(),
  commandId: z.string(),
  messageIds: z.array(z.string()),
});

const SessionParams = z.object({ id: SessionIdSchema });

export function contactRoutes(ctx: ApiContext) {
  const { config } = ctx;
  const { sessions, commands, messages } = ctx.stores;

  async function connectedSession(principal: Principal, sessionId: string, field: string) {
    const record = await sessions.get(sessionId);
    if (!record || record.status === 'deleted' || !reaches(principal, record.tenant))
      throw sessionNotFound(sessionId, field);
    if (record.status !== 'connected')
      throw new ApiError(
        409,
        'SESSION_NOT_CONNECTED',
        `session ${sessionId} is ${record.status}, not connected`,
        field,
      );
    return record;
  }

  return async function plugin(app: FastifyInstance) {
    app.post('/api/contacts/check', async (request) => {
      const body = parseInput(ContactCheckBodySchema, request.body, 'body');
      const { sessionId } = body;
      await connectedSession(request.principal, sessionId, 'sessionId');
      const phones = [...new Set(body.phones)];
      const cached = await commands.cached(phones);
      const misses = phones.filter((p) => !cached.has(p));
      const fresh = new Map<string, NumberCheckResult>();
      if (misses.length > 0) {
        // Lookups are watched by WhatsApp like sends: a per-session budget, all-or-nothing per request.
        const admitted = await commands.admitLookups(sessionId, misses.length, config.CONTACT_CHECK_PER_MINUTE);
        if (!admitted.ok)
          throw new ApiError(
            429,
            'RATE_LIMITED',
            `number checks: at most ${config.CONTACT_CHECK_PER_MINUTE} lookups per minute for this session ` +
              `(${misses.length} not cached in this request)`,
            'phones',
            { 'retry-after': String(Math.max(1, Math.ceil(admitted.retryAfterMs / 1000))) },
          );
        const timeout = config.CONTACT_CHECK_TIMEOUT_MS;
        const command = await commands.enqueue(sessionId, { kind: 'check', phones: misses }, 0, Date.now() + timeout);
        const answer = await commands.waitResult<{
          ok: boolean;
          result?: { results?: NumberCheckResult[] };
          error?: string;
        }>(sessionId, command.id, timeout);
        if (!answer) {
          await commands.withdraw(sessionId, command);
          throw new ApiError(504, 'WORKER_TIMEOUT', `the session's worker did not answer within ${timeout} ms`);
        }
        if (!answer.ok)
          throw new ApiError(502, 'LOOKUP_FAILED', `WhatsApp lookup failed: ${answer.error ?? 'unknown'}`);
        for (const r of answer.result?.results ?? []) if (misses.includes(r.phone)) fresh.set(r.phone, r);
        // A number WhatsApp did not mention is not on WhatsApp.
        for (const p of misses) if (!fresh.has(p)) fresh.set(p, { phone: p, exists: false });
        await commands.cache([...fresh.values()], config.CONTACT_CHECK_CACHE_TTL_MS);
        await messages.countLookups(sessionId, misses.length);
      }
      request.log.info({ sessionId, phones: phones.length, lookups: misses.length }, 'number check');
      return {
        sessionId,
        results: body.phones.map((phone) => {
          const c = cached.get(phone);
          const r = c ?? fresh.get(phone)!;
          return { phone, onWhatsApp: r.exists, jid: r.jid ?? null, lid: r.lid ?? null, cached: c !== undefined };
        }),
      };
    });

    app.post('/api/sessions/:id/read', async (request, reply) => {
      const { id } = parseInput(SessionParams, request.params, 'params');
      const body = parseInput(ReadBodySchema, request.body, 'body');
      await connectedSession(request.principal, id, 'id');
      const ids = [...new Set(body.messageIds)];
      const chats = await commands.inboundChats(id, ids);
      const unknown = ids.filter((_, i) => !chats[i]);
      if (unknown.length > 0)
        throw new ApiError(
          400,
          'UNKNOWN_MESSAGE',
          `messageIds: not inbound messages of session ${id}: ${unknown.slice(0, 5).join(', ')}`,
          'messageIds',
        );
      const command = await commands.enqueue(
        id,
        {
          kind: 'read',
          messages: ids.map((mid, i) => {
            const { chat, participant } = chats[i]!;
            return { id: mid, chat, ...(participant ? { participant } : {}) };
          }),
        },
        0,
        Date.now() + 10 * 60_000,
      );
      return reply.code(202).send({ sessionId: id, commandId: command.id, messageIds: ids });
    });
  };
}
