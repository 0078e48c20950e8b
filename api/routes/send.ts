/**
 * The send gateway (SPEC §6):
 *   POST /api/send {sessionId | from, to, text, idempotencyKey?}  → 202 {messageId, sessionId, status, plannedAt?}
 *   POST /api/send {…, type, media: {uploadId}|{url}, caption?, fileName?, mimeType?}   (a media message, issue 16)
 *   GET  /api/messages/:id                                         → the message and its status
 *   GET|PUT /api/anti-ban/sessions/:id/limits                      → pacing (PUT: admin key only)
 * Accepting is one Lua script (idempotency replay, per-tenant + global rate limits, record, queue, plan, burst);
 * then the session's dispatcher workflow is woken. The message is durable before the 202.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { LimitsOverrideSchema } from '../../common/anti-ban.js';
import { baseMime, INLINE_MIME, MEDIA_TYPES, suits, UploadIdSchema, type OutboxMedia } from '../../common/media.js';
import { replanDispatcher } from '../../workflows/dispatcher-client.js';
import { documentAs } from '../../common/json-schema.js';
import { PhoneSchema, RecipientSchema, SessionIdSchema } from '../../common/session.js';
import { reaches, requireAdmin, sessionNotFound, type Principal } from '../auth.js';
import type { ApiContext } from '../context.js';
import type { DispatchWaker } from '../dispatch-waker.js';
import { ApiError, parseInput } from '../errors.js';
import { convertibleToVoice, convertToVoice } from '../media-convert.js';
import type { MediaUploads } from '../media-uploads.js';

/** Where the bytes of a media message come from: an earlier POST /api/media, or a URL the API fetches. */
const MediaSourceSchema = z.union(
  [
    z.object({ uploadId: UploadIdSchema }).strict(),
    z
      .object({
        url: z
          .string()
          .max(2048, 'must be at most 2048 characters')
          .regex(/^https?:\/\/[A-Za-z0-9.:[\]-]+(\/\S*)?$/i, 'must be an http(s) URL without credentials'),
      })
      .strict(),
  ],
  { errorMap: () => ({ message: 'must be {uploadId} or {url}' }) },
);

export const SendBodySchema = documentAs(
  z
    .object({
      sessionId: SessionIdSchema.optional(),
      /** The sending session's phone number (alternative to sessionId). */
      from: PhoneSchema.optional(),
      to: RecipientSchema,
      /** A text message (absent when `type` makes it a media message). */
      text: z
        .string({ invalid_type_error: 'must be a string' })
        .min(1, 'must not be empty (1-4096 characters)')
        .max(4096, 'must be at most 4096 characters')
        .optional(),
      /** A media message (issue 16): its kind; `media` says where the file is. */
      type: z.enum(MEDIA_TYPES).optional(),
      media: MediaSourceSchema.optional(),
      caption: z.string().min(1, 'must not be empty').max(1024, 'must be at most 1024 characters').optional(),
      fileName: z.string().min(1, 'must not be empty').max(255, 'must be at most 255 characters').optional(),
      mimeType: z
        .string()
        .regex(/^[a-z0-9.+-]+\/[a-z0-9.+-]+$/i, 'must be a MIME type such as application/pdf')
        .optional(),
      idempotencyKey: z
        .string()
        .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1-128 letters, digits, "_", ".", ":" or "-"')
        .optional(),
    })
    .strict()
    .superRefine((b, ctx) => {
      if (b.type === undefined) {
        if (b.text === undefined) ctx.addIssue({ code: 'custom', message: 'text is required', path: ['text'] });
        for (const f of ['media', 'caption', 'fileName', 'mimeType'] as const)
          if (b[f] !== undefined)
            ctx.addIssue({ code: 'custom', message: `only with a media type (give type)`, path: [f] });
      } else {
        if (b.media === undefined)
          ctx.addIssue({ code: 'custom', message: 'media is required ({uploadId} or {url})', path: ['media'] });
        if (b.text !== undefined)
          ctx.addIssue({ code: 'custom', message: 'a media message carries a caption, not text', path: ['text'] });
        if (b.caption !== undefined && !['image', 'video', 'document'].includes(b.type))
          ctx.addIssue({ code: 'custom', message: `a ${b.type} has no caption`, path: ['caption'] });
        if (b.fileName !== undefined && b.type !== 'document')
          ctx.addIssue({ code: 'custom', message: 'only a document has a file name', path: ['fileName'] });
      }
    })
    .refine((b) => b.sessionId !== undefined || b.from !== undefined, {
      message: 'give sessionId or from (the sending phone number)',
      path: ['sessionId'],
    }),
  {
    allOf: [
      { anyOf: [{ required: ['sessionId'] }, { required: ['from'] }] },
      // a text message, or a media message (type + media, a caption instead of text)
      {
        oneOf: [
          {
            required: ['text'],
            not: {
              anyOf: ['type', 'media', 'caption', 'fileName', 'mimeType'].map((f) => ({ required: [f] })),
            },
          },
          { required: ['type', 'media'], not: { required: ['text'] } },
        ],
      },
      {
        if: { required: ['caption'] },
        then: { properties: { type: { enum: ['image', 'video', 'document'] } } },
      },
      { if: { required: ['fileName'] }, then: { properties: { type: { const: 'document' } } } },
    ],
  },
  'extend',
);

export const MessageIdParams = z.object({ id: z.string().regex(/^msg_[A-Za-z0-9]{1,64}$/, 'not a message id') });
export const SessionParams = z.object({ id: SessionIdSchema });
/** The `Idempotency-Key` header (alternative to the body's idempotencyKey). */
export const IDEMPOTENCY_KEY_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$';

export function sendRoutes(ctx: ApiContext, waker: DispatchWaker, uploads: MediaUploads) {
  const { config } = ctx;
  const { sessions, messages, commands, clientWebhooks: hooks } = ctx.stores;

  async function sessionFor(principal: Principal, sessionId: string) {
    const record = await sessions.get(sessionId);
    if (!record || record.status === 'deleted' || !reaches(principal, record.tenant))
      throw sessionNotFound(sessionId, 'sessionId');
    return record;
  }

  /**
   * The media descriptor of a media send: the upload (another tenant's answers like a missing one) or the URL
   * fetched into a new upload; its content type must suit the message type.
   */
  async function mediaFor(body: z.infer<typeof SendBodySchema>, tenant: string): Promise<OutboxMedia> {
    const type = body.type!;
    const source = body.media!;
    let record =
      'uploadId' in source
        ? await uploads.get(source.uploadId, tenant)
        : await uploads.fromUrl(tenant, source.url, 'media.url');
    if (!record)
      throw new ApiError(
        404,
        'UPLOAD_NOT_FOUND',
        `upload ${'uploadId' in source ? source.uploadId : ''} not found`,
        'media.uploadId',
      );
    // other audio becomes a voice note here, once, before it is queued (the worker sends what it is given)
    if (type === 'voice' && !body.mimeType && convertibleToVoice(record.mimeType)) {
      record = await convertToVoice(uploads, config, record, 'media');
    }
    let mimeType = record.mimeType;
    if (body.mimeType) {
      const declared = body.mimeType.toLowerCase();
      // The client may name what nothing recognised (a CSV, a text file), never contradict what the content is.
      if (record.sniffed && baseMime(declared) !== baseMime(mimeType))
        throw new ApiError(415, 'MEDIA_TYPE_MISMATCH', `mimeType: the file is ${mimeType}`, 'mimeType');
      if (!record.sniffed) mimeType = declared;
    }
    if (type !== 'document' && !suits(type, mimeType))
      throw new ApiError(
        415,
        'MEDIA_TYPE_MISMATCH',
        `media: a ${type} must be ${INLINE_MIME[type].join(' or ')}, the file is ${mimeType}` +
          (type === 'voice' ? ' (audio is converted; this is not audio)' : ''),
        'media',
      );
    const fileName = body.fileName ?? (type === 'document' ? (record.fileName ?? undefined) : undefined);
    return {
      type,
      uploadId: record.uploadId,
      mimeType,
      size: record.size,
      sha256: record.sha256,
      ...(fileName ? { fileName } : {}),
    };
  }

  return async function plugin(app: FastifyInstance) {
    app.post('/api/send', async (request, reply) => {
      const body = parseInput(SendBodySchema, request.body, 'body');
      const headerKey = request.headers['idempotency-key'];
      if (typeof headerKey === 'string' && !new RegExp(IDEMPOTENCY_KEY_PATTERN).test(headerKey))
        throw new ApiError(400, 'VALIDATION_ERROR', 'Idempotency-Key: must be 1-128 safe characters', 'idempotencyKey');
      const idempotencyKey = body.idempotencyKey ?? (typeof headerKey === 'string' ? headerKey : undefined);
      let sessionId = body.sessionId;
      if (!sessionId) {
        sessionId = (await sessions.phoneOwner(body.from!)) ?? undefined;
        if (!sessionId) throw new ApiError(404, 'SESSION_NOT_FOUND', `no session owns the number ${body.from}`, 'from');
      }
      const session = await sessionFor(request.principal, sessionId);
      // Well-formed but contradicting the stored session: a conflict with state, not a malformed request.
      if (body.sessionId && body.from && session.phone && session.phone !== body.from)
        throw new ApiError(409, 'FROM_MISMATCH', 'from: is not the phone number of that session', 'from');

      // A number a check found not on WhatsApp (cached): refusing costs nothing, sending would burn a send.
      if ((await commands.cached([body.to])).get(body.to)?.exists === false)
        throw new ApiError(400, 'NOT_ON_WHATSAPP', `to: ${body.to} is not on WhatsApp (number check)`, 'to');

      const media = body.type ? await mediaFor(body, session.tenant) : undefined;
      const fingerprint = createHash('sha256')
        .update(
          media
            ? // the same source (upload or URL) again is the same message; the bytes of a URL are fetched each time
              `${sessionId}\n${body.to}\nmedia:${media.type}:${'url' in body.media! ? body.media.url : body.media!.uploadId}\n${body.caption ?? ''}\n${media.fileName ?? ''}`
            : `${sessionId}\n${body.to}\n${body.text}`,
        )
        .digest('hex');
      const result = await messages.accept({
        tenant: session.tenant,
        sessionId,
        messageId: `msg_${randomBytes(12).toString('hex')}`,
        to: body.to,
        text: media ? (body.caption ?? '') : body.text!,
        idempotencyKey,
        fingerprint,
        ...(media ? { media } : {}),
      });
      if (result.kind === 'limited') {
        const seconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
        throw new ApiError(
          429,
          'RATE_LIMITED',
          result.scope === 'tenant'
            ? `rate limit: at most ${config.RATE_LIMIT_MAX_REQUESTS} messages per ${config.RATE_LIMIT_WINDOW_MS / 1000} s for this tenant`
            : `rate limit: the gateway accepts at most ${config.RATE_LIMIT_GLOBAL_MAX_REQUESTS} messages per ${config.RATE_LIMIT_WINDOW_MS / 1000} s`,
          undefined,
          { 'retry-after': String(seconds) },
        );
      }
      if (result.kind === 'conflict') {
        throw new ApiError(
          409,
          'IDEMPOTENCY_KEY_REUSED',
          `idempotency key already used for a different message (${result.messageId})`,
          'idempotencyKey',
        );
      }
      if (result.kind === 'accepted') {
        if (result.burst) {
          request.log.warn({ sessionId }, 'burst of sends detected: the session is slowed down');
          await hooks
            .enqueue(session.tenant, 'session.burst', {
              sessionId,
              slowdown: config.ANTIBAN_BURST_SLOWDOWN,
              forMs: config.ANTIBAN_BURST_PAUSE_MS,
            })
            .catch(() => undefined);
        }
        // Only an idle (or never started, or stuck) dispatcher is woken: a pacing one finds the message itself.
        // The message is durable already; a failed wake is recovered by the next request / the orchestrator.
        if (result.wake)
          await waker.wake(sessionId).catch((err: unknown) => {
            request.log.warn({ sessionId, err: String(err) }, 'could not wake the dispatcher (message kept)');
          });
      } else {
        void reply.header('idempotent-replayed', 'true');
      }
      return reply.status(202).send(result.response);
    });

    app.get('/api/messages/:id', async (request) => {
      const { id } = parseInput(MessageIdParams, request.params, 'params');
      const m = await messages.get(id);
      // Another tenant's message answers exactly like a missing one.
      if (!m || !reaches(request.principal, m.tenant))
        throw new ApiError(404, 'MESSAGE_NOT_FOUND', `message ${id} not found`);
      return m;
    });

    async function limitsView(sessionId: string) {
      const [limits, stats, sentInWindow, pending, burstUntil] = await Promise.all([
        messages.limits(sessionId),
        messages.stats(sessionId),
        messages.sentInWindow(sessionId),
        messages.pendingCount(sessionId),
        messages.burstUntil(sessionId),
      ]);
      return {
        sessionId,
        limits,
        windowMs: config.ANTIBAN_WINDOW_MS,
        sentInWindow,
        pending,
        burstUntil: burstUntil > Date.now() ? burstUntil : null,
        stats,
      };
    }

    app.get('/api/anti-ban/sessions/:id/limits', async (request) => {
      const { id } = parseInput(SessionParams, request.params, 'params');
      await sessionFor(request.principal, id);
      return limitsView(id);
    });

    app.put('/api/anti-ban/sessions/:id/limits', { onRequest: requireAdmin }, async (request) => {
      const { id } = parseInput(SessionParams, request.params, 'params');
      await sessionFor(request.principal, id);
      const body = parseInput(LimitsOverrideSchema, request.body, 'body');
      await messages.setOverrides(id, body);
      request.log.info({ sessionId: id, overrides: body }, 'pacing limits changed');
      await waker.wake(id).catch(() => undefined);
      await replanDispatcher(ctx.temporal, ctx.config, id).catch(() => undefined);
      return limitsView(id);
    });
  };
}
