/**
 * The send gateway (SPEC §6):
 *   POST /api/send {sessionId | from, to, text, idempotencyKey?}  → 202 {messageId, sessionId, status, plannedAt?}
 *   POST /api/send {…, type, media: {uploadId}|{url}, caption?, fileName?, mimeType?}   (a media message)
 *   POST /api/send {…, type: 'reaction', reaction: {messageId, emoji}} | {type: 'location', location: {…}} |
 *        {type: 'contact', contacts: [{vcard, displayName?}]}; `replyTo` (a message id) on any but a reaction
 *   POST /api/messages/:id/edit {text} · POST /api/messages/:id/revoke     → 202 (an edit / delete for everyone)
 *   GET  /api/messages/:id                                         → the message and its status
 *   GET|PUT /api/anti-ban/sessions/:id/limits                      → pacing (PUT: admin key only)
 * Accepting is one Lua script (idempotency replay, per-tenant + global rate limits, record, queue, plan, burst);
 * then the session's dispatcher workflow is woken. The message is durable before the 202.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { LimitsOverrideSchema } from '../../common/anti-ban.js';
import {
  baseMime,
  INLINE_MIME,
  MEDIA_TYPES,
  suits,
  UploadIdSchema,
  type MediaType,
  type OutboxMedia,
} from '../../common/media.js';
import { replanDispatcher } from '../../workflows/dispatcher-client.js';
import { documentAs } from '../../common/json-schema.js';
import type { OutboxExtra, OutboxQuoted, WaKey } from '../../common/message-actions.js';
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

/** Our message id (msg_…) or the WhatsApp id of a message the session received. */
export const TargetIdSchema = z
  .string()
  .regex(/^(msg_[A-Za-z0-9]{1,64}|[A-Za-z0-9]{6,128})$/, 'must be a message id (msg_…) or a WhatsApp message id');

const SEND_TYPES = [...MEDIA_TYPES, 'reaction', 'location', 'contact'] as const;
/** The fields of each kind of send besides the common ones; a field of another kind is refused. */
const KIND_FIELDS = ['text', 'media', 'caption', 'fileName', 'mimeType', 'reaction', 'location', 'contacts'] as const;
const OWN_FIELDS: Record<'text' | 'media' | 'reaction' | 'location' | 'contact', readonly string[]> = {
  text: ['text'],
  media: ['media', 'caption', 'fileName', 'mimeType'],
  reaction: ['reaction'],
  location: ['location'],
  contact: ['contacts'],
};
const kindOf = (type: string | undefined) =>
  type === undefined
    ? 'text'
    : type === 'reaction' || type === 'location' || type === 'contact'
      ? type
      : ('media' as const);
const notAny = (kind: keyof typeof OWN_FIELDS) => ({
  not: { anyOf: KIND_FIELDS.filter((f) => !OWN_FIELDS[kind].includes(f)).map((f) => ({ required: [f] })) },
});

export const SendBodySchema = documentAs(
  z
    .object({
      sessionId: SessionIdSchema.optional(),
      /** The sending session's phone number (alternative to sessionId). */
      from: PhoneSchema.optional(),
      /** the chat; a reaction goes to the chat of the message it reacts to (`to` may be left out) */
      to: RecipientSchema.optional(),
      /** A text message (absent when `type` makes it a media message). */
      text: z
        .string({ invalid_type_error: 'must be a string' })
        .min(1, 'must not be empty (1-4096 characters)')
        .max(4096, 'must be at most 4096 characters')
        .optional(),
      /** A media message, a reaction, a location or contact card(s); absent: a text message. */
      type: z.enum(SEND_TYPES).optional(),
      media: MediaSourceSchema.optional(),
      caption: z.string().min(1, 'must not be empty').max(1024, 'must be at most 1024 characters').optional(),
      fileName: z.string().min(1, 'must not be empty').max(255, 'must be at most 255 characters').optional(),
      mimeType: z
        .string()
        .regex(/^[a-z0-9.+-]+\/[a-z0-9.+-]+$/i, 'must be a MIME type such as application/pdf')
        .optional(),
      /** type reaction: the message (ours or one the session received) and the emoji; '' removes the reaction */
      reaction: z
        .object({
          messageId: TargetIdSchema,
          // counted in code points, as the JSON Schema's maxLength counts
          emoji: documentAs(
            z
              .string()
              .refine(
                (e) => [...e].length <= 16,
                'must be one emoji (at most 16 characters); empty removes the reaction',
              ),
            { type: 'string', maxLength: 16 },
          ),
        })
        .strict()
        .optional(),
      /** type location */
      location: z
        .object({
          latitude: z.number().min(-90, 'must be -90..90').max(90, 'must be -90..90'),
          longitude: z.number().min(-180, 'must be -180..180').max(180, 'must be -180..180'),
          name: z.string().min(1).max(256).optional(),
          address: z.string().min(1).max(1024).optional(),
        })
        .strict()
        .optional(),
      /** type contact: one or more vCards */
      contacts: z
        .array(
          z
            .object({
              vcard: z
                .string()
                .max(8192, 'must be at most 8192 characters')
                .regex(/^BEGIN:VCARD\r?\n[\s\S]*END:VCARD\s*$/, 'must be a vCard (BEGIN:VCARD … END:VCARD)'),
              displayName: z.string().min(1).max(256).optional(),
            })
            .strict(),
        )
        .min(1, 'at least one contact')
        .max(10, 'at most 10 contacts')
        .optional(),
      /** quote this message (ours, msg_…, or the WhatsApp id of one the session received) */
      replyTo: TargetIdSchema.optional(),
      idempotencyKey: z
        .string()
        .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1-128 letters, digits, "_", ".", ":" or "-"')
        .optional(),
    })
    .strict()
    .superRefine((b, ctx) => {
      const kind = kindOf(b.type);
      for (const f of KIND_FIELDS)
        if (b[f] !== undefined && !OWN_FIELDS[kind].includes(f))
          ctx.addIssue({
            code: 'custom',
            message: kind === 'text' ? 'only with a type that has it (give type)' : `a ${b.type} message has no ${f}`,
            path: [f],
          });
      if (kind === 'text' && b.text === undefined)
        ctx.addIssue({ code: 'custom', message: 'text is required', path: ['text'] });
      if (kind === 'media') {
        if (b.media === undefined)
          ctx.addIssue({ code: 'custom', message: 'media is required ({uploadId} or {url})', path: ['media'] });
        if (b.caption !== undefined && !['image', 'video', 'document'].includes(b.type!))
          ctx.addIssue({ code: 'custom', message: `a ${b.type} has no caption`, path: ['caption'] });
        if (b.fileName !== undefined && b.type !== 'document')
          ctx.addIssue({ code: 'custom', message: 'only a document has a file name', path: ['fileName'] });
      }
      if (kind === 'reaction' && b.reaction === undefined)
        ctx.addIssue({ code: 'custom', message: 'reaction is required ({messageId, emoji})', path: ['reaction'] });
      if (kind === 'reaction' && b.replyTo !== undefined)
        ctx.addIssue({ code: 'custom', message: 'a reaction does not quote a message', path: ['replyTo'] });
      if (kind === 'location' && b.location === undefined)
        ctx.addIssue({ code: 'custom', message: 'location is required ({latitude, longitude})', path: ['location'] });
      if (kind === 'contact' && b.contacts === undefined)
        ctx.addIssue({ code: 'custom', message: 'contacts is required ([{vcard}])', path: ['contacts'] });
      if (kind !== 'reaction' && b.to === undefined)
        ctx.addIssue({ code: 'custom', message: 'to is required', path: ['to'] });
    })
    .refine((b) => b.sessionId !== undefined || b.from !== undefined, {
      message: 'give sessionId or from (the sending phone number)',
      path: ['sessionId'],
    }),
  {
    allOf: [
      { anyOf: [{ required: ['sessionId'] }, { required: ['from'] }] },
      // a text message, a media message (type + media, a caption instead of text), a reaction, a location or
      // contact card(s)
      {
        oneOf: [
          {
            required: ['text', 'to'],
            not: { anyOf: ['type', ...KIND_FIELDS.filter((f) => f !== 'text')].map((f) => ({ required: [f] })) },
          },
          {
            required: ['type', 'media', 'to'],
            properties: { type: { enum: [...MEDIA_TYPES] } },
            ...notAny('media'),
          },
          {
            required: ['type', 'reaction'],
            properties: { type: { const: 'reaction' } },
            not: {
              anyOf: [...KIND_FIELDS.filter((f) => f !== 'reaction'), 'replyTo'].map((f) => ({ required: [f] })),
            },
          },
          { required: ['type', 'location', 'to'], properties: { type: { const: 'location' } }, ...notAny('location') },
          { required: ['type', 'contacts', 'to'], properties: { type: { const: 'contact' } }, ...notAny('contact') },
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

/** POST /api/messages/:id/edit: the new text of one of our text messages. */
export const EditBodySchema = z
  .object({
    /** with a WhatsApp message id instead of ours: the session that has it */
    sessionId: SessionIdSchema.optional(),
    text: z
      .string({ required_error: 'text is required', invalid_type_error: 'must be a string' })
      .min(1, 'must not be empty (1-4096 characters)')
      .max(4096, 'must be at most 4096 characters'),
    idempotencyKey: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1-128 letters, digits, "_", ".", ":" or "-"')
      .optional(),
  })
  .strict();
/** POST /api/messages/:id/revoke; a WhatsApp id (a received message) needs the session it belongs to. */
export const RevokeBodySchema = z
  .object({
    sessionId: SessionIdSchema.optional(),
    idempotencyKey: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1-128 letters, digits, "_", ".", ":" or "-"')
      .optional(),
  })
  .strict();
export const ActionParams = z.object({ id: TargetIdSchema });

/** A recipient as /api/send names it, from a chat JID (`<digits>@s.whatsapp.net` → the number). */
const toRecipient = (jid: string) => jid.replace(/@s\.whatsapp\.net$/, '');
/** The chat JID of a recipient (a number → its phone JID; LID and group JIDs as they are). */
export const toJid = (to: string) => (/^\d+$/.test(to) ? `${to}@s.whatsapp.net` : to);

function idempotencyKeyOf(header: string | string[] | undefined, fromBody: string | undefined): string | undefined {
  if (typeof header === 'string' && !new RegExp(IDEMPOTENCY_KEY_PATTERN).test(header))
    throw new ApiError(400, 'VALIDATION_ERROR', 'Idempotency-Key: must be 1-128 safe characters', 'idempotencyKey');
  return fromBody ?? (typeof header === 'string' ? header : undefined);
}

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
    const type = body.type as MediaType;
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

  /**
   * The message a reaction or a reply is about: one of ours (msg_…, sent by this session) or one the session received
   * (its WhatsApp id, from the `message.received` webhook). Another tenant's message answers like a missing one.
   */
  async function targetOf(
    principal: Principal,
    sessionId: string,
    id: string,
    field: string,
  ): Promise<{ key: WaKey; to: string; quoted: OutboxQuoted }> {
    if (id.startsWith('msg_')) {
      const m = await messages.get(id);
      if (!m || !reaches(principal, m.tenant) || m.sessionId !== sessionId)
        throw new ApiError(404, 'MESSAGE_NOT_FOUND', `${field}: message ${id} not found in this session`, field);
      const kind = m.extra?.action?.kind;
      if (kind === 'reaction' || kind === 'edit' || kind === 'revoke')
        throw new ApiError(409, 'NOT_A_MESSAGE', `${field}: ${id} is a ${kind}, not a message`, field);
      if (!m.waMessageId)
        throw new ApiError(409, 'MESSAGE_NOT_SENT', `${field}: ${id} has not been sent (status ${m.status})`, field);
      const key: WaKey = { id: m.waMessageId, remoteJid: toJid(m.to), fromMe: true };
      return { key, to: m.to, quoted: { key, text: m.text } };
    }
    const [inbound] = await commands.inboundChats(sessionId, [id]);
    if (!inbound)
      throw new ApiError(404, 'MESSAGE_NOT_FOUND', `${field}: message ${id} not found in this session`, field);
    const key: WaKey = {
      id,
      remoteJid: inbound.chat,
      fromMe: false,
      ...(inbound.participant ? { participant: inbound.participant } : {}),
    };
    return { key, to: toRecipient(inbound.chat), quoted: { key, text: inbound.text ?? '' } };
  }

  /** The common tail of every send: the atomic accept (idempotency, rate limits, pacing), then the wake. */
  async function acceptAndQueue(
    request: FastifyRequest,
    reply: FastifyReply,
    a: {
      tenant: string;
      sessionId: string;
      to: string;
      text: string;
      idempotencyKey: string | undefined;
      fingerprintOf: string;
      media?: OutboxMedia;
      extra?: OutboxExtra;
    },
  ) {
    const { sessionId } = a;
    const fingerprint = createHash('sha256').update(`${sessionId}\n${a.to}\n${a.fingerprintOf}`).digest('hex');
    const result = await messages.accept({
      tenant: a.tenant,
      sessionId,
      messageId: `msg_${randomBytes(12).toString('hex')}`,
      to: a.to,
      text: a.text,
      idempotencyKey: a.idempotencyKey,
      fingerprint,
      ...(a.media ? { media: a.media } : {}),
      ...(a.extra ? { extra: a.extra } : {}),
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
          .enqueue(a.tenant, 'session.burst', {
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
  }

  return async function plugin(app: FastifyInstance) {
    app.post('/api/send', async (request, reply) => {
      const body = parseInput(SendBodySchema, request.body, 'body');
      const idempotencyKey = idempotencyKeyOf(request.headers['idempotency-key'], body.idempotencyKey);
      let sessionId = body.sessionId;
      if (!sessionId) {
        sessionId = (await sessions.phoneOwner(body.from!)) ?? undefined;
        if (!sessionId) throw new ApiError(404, 'SESSION_NOT_FOUND', `no session owns the number ${body.from}`, 'from');
      }
      const session = await sessionFor(request.principal, sessionId);
      // Well-formed but contradicting the stored session: a conflict with state, not a malformed request.
      if (body.sessionId && body.from && session.phone && session.phone !== body.from)
        throw new ApiError(409, 'FROM_MISMATCH', 'from: is not the phone number of that session', 'from');

      const extra: OutboxExtra = {};
      let to = body.to;
      if (body.type === 'reaction') {
        const target = await targetOf(request.principal, sessionId, body.reaction!.messageId, 'reaction.messageId');
        if (to !== undefined && toJid(to) !== target.key.remoteJid)
          throw new ApiError(409, 'CHAT_MISMATCH', 'to: the message is in another chat', 'to');
        to = target.to;
        extra.action = { kind: 'reaction', key: target.key, emoji: body.reaction!.emoji };
      }
      if (body.type === 'location') extra.action = { kind: 'location', ...body.location! };
      if (body.type === 'contact') extra.action = { kind: 'contact', contacts: body.contacts! };
      if (body.replyTo) extra.quoted = (await targetOf(request.principal, sessionId, body.replyTo, 'replyTo')).quoted;

      // A number a check found not on WhatsApp (cached): refusing costs nothing, sending would burn a send.
      if ((await commands.cached([to!])).get(to!)?.exists === false)
        throw new ApiError(400, 'NOT_ON_WHATSAPP', `to: ${to} is not on WhatsApp (number check)`, 'to');

      const media = body.type && kindOf(body.type) === 'media' ? await mediaFor(body, session.tenant) : undefined;
      const content = media
        ? // the same source (upload or URL) again is the same message; the bytes of a URL are fetched each time
          `media:${media.type}:${'url' in body.media! ? body.media.url : body.media!.uploadId}\n${body.caption ?? ''}\n${media.fileName ?? ''}`
        : (body.text ?? '');
      return acceptAndQueue(request, reply, {
        tenant: session.tenant,
        sessionId,
        to: to!,
        text: media ? (body.caption ?? '') : (body.text ?? ''),
        idempotencyKey,
        fingerprintOf: `${content}${extra.action || extra.quoted ? `\n${JSON.stringify(extra)}` : ''}`,
        ...(media ? { media } : {}),
        ...(extra.action || extra.quoted ? { extra } : {}),
      });
    });

    /** An edit or a delete for everyone of one of our own sent messages. */
    async function ownSent(principal: Principal, id: string, sessionId: string | undefined, what: 'edit' | 'revoke') {
      if (!id.startsWith('msg_')) {
        // A WhatsApp id: a message the session received is someone else's; it cannot be edited or revoked.
        // Not found rather than malformed: the id is well-formed, only the session to look it up in is missing.
        if (!sessionId)
          throw new ApiError(
            404,
            'MESSAGE_NOT_FOUND',
            `message ${id} not found: a WhatsApp message id is looked up in the session given as sessionId`,
            'sessionId',
          );
        await sessionFor(principal, sessionId);
        const [inbound] = await commands.inboundChats(sessionId, [id]);
        if (!inbound) throw new ApiError(404, 'MESSAGE_NOT_FOUND', `message ${id} not found`, 'id');
        throw new ApiError(403, 'NOT_OWN_MESSAGE', `id: ${id} was written by a contact; only our own messages`, 'id');
      }
      const m = await messages.get(id);
      // Another tenant's message answers exactly like a missing one.
      if (!m || !reaches(principal, m.tenant))
        throw new ApiError(404, 'MESSAGE_NOT_FOUND', `message ${id} not found`, 'id');
      if (sessionId && sessionId !== m.sessionId)
        throw new ApiError(409, 'SESSION_MISMATCH', 'sessionId: the message was sent by another session', 'sessionId');
      const session = await sessionFor(principal, m.sessionId);
      const kind = m.extra?.action?.kind;
      if (kind === 'reaction' || kind === 'edit' || kind === 'revoke')
        throw new ApiError(409, 'NOT_EDITABLE', `id: ${id} is a ${kind}, not a message`, 'id');
      if (what === 'edit' && (m.media || kind))
        throw new ApiError(409, 'NOT_EDITABLE', `id: only a text message can be edited`, 'id');
      if (!m.waMessageId || m.sentAt === null || !['sent', 'delivered', 'read'].includes(m.status))
        throw new ApiError(409, 'MESSAGE_NOT_SENT', `id: ${id} has not been sent (status ${m.status})`, 'id');
      const windowMs = what === 'edit' ? config.MESSAGE_EDIT_WINDOW_MS : config.MESSAGE_REVOKE_WINDOW_MS;
      if (Date.now() - m.sentAt > windowMs)
        throw new ApiError(
          409,
          what === 'edit' ? 'EDIT_WINDOW_PASSED' : 'REVOKE_WINDOW_PASSED',
          `id: a message can be ${what === 'edit' ? 'edited' : 'deleted for everyone'} within ${Math.round(windowMs / 1000)} s of sending`,
          'id',
        );
      const key: WaKey = { id: m.waMessageId, remoteJid: toJid(m.to), fromMe: true };
      return { m, session, key };
    }

    /** An edit or a revoke is queued and paced like a send, with its own message id. */
    async function queueOwnAction(
      request: FastifyRequest,
      reply: FastifyReply,
      what: 'edit' | 'revoke',
      body: { sessionId?: string | undefined; idempotencyKey?: string | undefined; text?: string },
    ) {
      const { id } = parseInput(ActionParams, request.params, 'params');
      const idempotencyKey = idempotencyKeyOf(request.headers['idempotency-key'], body.idempotencyKey);
      const { m, session, key } = await ownSent(request.principal, id, body.sessionId, what);
      const extra: OutboxExtra = { action: { kind: what, key } };
      const text = body.text ?? '';
      return acceptAndQueue(request, reply, {
        tenant: session.tenant,
        sessionId: m.sessionId,
        to: m.to,
        text,
        idempotencyKey,
        fingerprintOf: what === 'edit' ? `${text}\n${JSON.stringify(extra)}` : JSON.stringify(extra),
        extra,
      });
    }

    app.post('/api/messages/:id/edit', async (request, reply) =>
      queueOwnAction(request, reply, 'edit', parseInput(EditBodySchema, request.body, 'body')),
    );

    app.post('/api/messages/:id/revoke', async (request, reply) =>
      queueOwnAction(request, reply, 'revoke', parseInput(RevokeBodySchema, request.body ?? {}, 'body')),
    );

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
