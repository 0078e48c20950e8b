/**
 * Media:
 *   POST /api/media  multipart/form-data, one part `file`   → 201 {uploadId, mimeType, size, sha256, fileName}
 *   GET  /api/media/:id  (tenant key, or a signed URL `?expires=&sig=` without a key) → 200 an inbound file
 *   POST /api/worker/sessions/:id/media {uploadId}  (signed)  → 200 the bytes (the session's tenant's uploads only)
 *   POST /api/worker/sessions/:id/inbound-media  (signed; the file as the body, described in `x-wa-media`)
 *        → 201 {mediaId}
 * The upload is streamed to the media store (api/media-uploads.ts); a declared Content-Length over the cap is refused
 * before a byte is read. Inbound files: api/media-inbound.ts.
 */
import type { Readable } from 'node:stream';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import {
  INBOUND_MEDIA_HEADER,
  InboundMediaIdSchema,
  InboundMediaMetaSchema,
  MediaFetchRequestSchema,
} from '../../common/media.js';
import { isMissing } from '../../common/media-store.js';
import { isSignedUrlRequest, tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput, zodToApiError } from '../errors.js';
import type { InboundMediaRecord, InboundMediaStore } from '../media-inbound.js';
import type { MediaUploads } from '../media-uploads.js';

/** Multipart framing around the file (boundaries, part headers) allowed beyond MEDIA_MAX_BYTES. */
const FRAMING_BYTES = 64 * 1024;

/**
 * A multipart parse error (no boundary, a body cut short) is the client's: 400. Our own refusals pass through, and
 * so do system errors (disk full, permissions: a `syscall`), which stay 500s.
 */
function malformed(err: unknown): never {
  if (err instanceof ApiError || (err as { syscall?: string }).syscall) throw err;
  throw new ApiError(400, 'VALIDATION_ERROR', 'body: malformed multipart/form-data', 'file');
}

export const MediaParams = z.object({ id: InboundMediaIdSchema });
export const SignedUrlQuery = z
  .object({
    expires: z
      .string()
      .regex(/^\d{1,16}$/)
      .optional()
      .describe('signed URL: expiry, ms since the epoch'),
    sig: z
      .string()
      .regex(/^[A-Za-z0-9_-]{43}$/)
      .optional()
      .describe('signed URL: HMAC-SHA256 over media id, tenant and expiry (base64url)'),
  })
  .strict();

/** A file name as an RFC 5987 value (percent-encoded UTF-8; `'()*` are not attr-chars either). */
const rfc5987 = (name: string) =>
  encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** An inbound file's bytes, with what a browser needs to save it (never to render it on the API's origin). */
async function sendFile(reply: FastifyReply, inbound: InboundMediaStore, record: InboundMediaRecord) {
  const body = await inbound.open(record).catch((err: unknown) => {
    // the record outlived its bytes (removed from the store by hand): as if it had expired
    if (isMissing(err)) throw new ApiError(404, 'MEDIA_NOT_FOUND', `media ${record.mediaId} not found`, 'id');
    throw err;
  });
  const name = record.fileName ?? record.mediaId;
  return reply
    .header('content-type', record.mimetype)
    .header('content-length', String(record.size))
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'private, no-store')
    .header('content-disposition', `attachment; filename*=UTF-8''${rfc5987(name)}`)
    .send(body);
}

export function mediaRoutes(ctx: ApiContext, uploads: MediaUploads, inbound: InboundMediaStore) {
  const { config } = ctx;
  return async function plugin(app: FastifyInstance) {
    // A signed download URL is its own credential: verified here, before the guard, instead of an API key.
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.config.signedUrl !== true || !isSignedUrlRequest(request)) return;
      const { id } = request.params as { id: string };
      // anything wrong with a signed URL is a 403, whatever its shape (nothing to learn from a 400)
      const query = request.query as Record<string, unknown>;
      const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
      request.urlGrant = (await inbound.verifyUrl(id, { expires: text(query.expires), sig: text(query.sig) })).mediaId;
    });

    app.get('/api/media/:id', { config: { signedUrl: true } }, async (request, reply) => {
      const { id } = parseInput(MediaParams, request.params, 'params');
      if (request.urlGrant) {
        const record = request.urlGrant === id ? await inbound.get(id) : null;
        if (!record) throw new ApiError(403, 'BAD_MEDIA_SIGNATURE', 'invalid download signature', 'sig');
        return sendFile(reply, inbound, record);
      }
      // With a key: the admin reaches every tenant's files, a tenant key only its own (another's is not found).
      parseInput(SignedUrlQuery, request.query ?? {}, 'query');
      const principal = request.principal;
      const record = await inbound.get(id, principal.admin ? undefined : tenantOf(principal));
      if (!record) throw new ApiError(404, 'MEDIA_NOT_FOUND', `media ${id} not found`, 'id');
      return sendFile(reply, inbound, record);
    });

    await app.register(multipart, {
      limits: { files: 1, fields: 10, fieldSize: 1024, parts: 12, fileSize: config.MEDIA_MAX_BYTES + 1 },
      throwFileSizeLimit: false,
    });

    // Before the body is read: a declared size over the cap never streams in.
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.url !== '/api/media') return;
      const declared = Number(request.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > config.MEDIA_MAX_BYTES + FRAMING_BYTES)
        throw new ApiError(413, 'MEDIA_TOO_LARGE', `file: larger than ${config.MEDIA_MAX_BYTES} bytes`, 'file', {
          connection: 'close',
        });
    });

    app.post('/api/media', async (request, reply) => {
      if (!request.isMultipart())
        throw new ApiError(415, 'VALIDATION_ERROR', 'body: must be multipart/form-data with a part "file"', 'file');
      const part = await request.file().catch(malformed);
      if (!part || part.fieldname !== 'file')
        throw new ApiError(400, 'VALIDATION_ERROR', 'file: a part named "file" is required', 'file');
      const record = await uploads
        .put(tenantOf(request.principal), part.file, {
          mimeType: part.mimetype,
          ...(part.filename ? { fileName: part.filename } : {}),
          field: 'file',
        })
        .catch(malformed);
      request.log.info({ uploadId: record.uploadId, size: record.size, mimeType: record.mimeType }, 'media uploaded');
      return reply.status(201).send({
        uploadId: record.uploadId,
        mimeType: record.mimeType,
        size: record.size,
        sha256: record.sha256,
        fileName: record.fileName,
        expiresAt: record.createdAt + config.MEDIA_UPLOAD_TTL_MS,
      });
    });
  };
}

const Params = z.object({ id: z.string() });
/** Request-bound signature (method, path, nonce), the session id from the path: see api/signed.ts. */
const SIGNED = { config: { signed: { session: 'params', bound: true } } } as const;

/** The signature covers the file's description header, the route checks the streamed body against it. */
const SIGNED_FILE = {
  config: { signed: { session: 'params', bound: true, payload: { header: INBOUND_MEDIA_HEADER } } },
} as const;

/**
 * Registered inside the signed scope: a worker fetches the bytes of an upload of its own session's tenant, and
 * hands over the files of the messages its session received.
 */
export function workerMediaRoutes(ctx: ApiContext, uploads: MediaUploads, inbound: InboundMediaStore) {
  return async function plugin(app: FastifyInstance) {
    // The file streams through untouched (to disk, capped); nothing buffers it.
    app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

    app.post('/api/worker/sessions/:id/inbound-media', SIGNED_FILE, async (request, reply) => {
      parseInput(Params, request.params, 'params');
      const sessionId = request.signedSession;
      if (!sessionId) throw new ApiError(401, 'BAD_SIGNATURE', 'signature required');
      const header = request.headers[INBOUND_MEDIA_HEADER] as string;
      let described: unknown;
      try {
        described = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
      } catch {
        throw new ApiError(
          400,
          'VALIDATION_ERROR',
          `${INBOUND_MEDIA_HEADER}: not base64url JSON`,
          INBOUND_MEDIA_HEADER,
        );
      }
      const checked = InboundMediaMetaSchema.safeParse(described);
      if (!checked.success) throw zodToApiError(checked.error, INBOUND_MEDIA_HEADER);
      const meta = checked.data;
      if (!request.headers['content-type']?.startsWith('application/octet-stream'))
        throw new ApiError(415, 'VALIDATION_ERROR', 'body: must be application/octet-stream', 'body');
      const session = await ctx.stores.sessions.get(sessionId);
      if (!session) throw new ApiError(404, 'SESSION_NOT_FOUND', `session ${sessionId} not found`);
      const record = await inbound.store(session.tenant, sessionId, meta, request.body as Readable);
      request.log.info(
        { sessionId, mediaId: record.mediaId, size: record.size, mimetype: record.mimetype },
        'inbound media stored',
      );
      return reply.status(201).send({ mediaId: record.mediaId });
    });

    app.post('/api/worker/sessions/:id/media', SIGNED, async (request, reply) => {
      parseInput(Params, request.params, 'params');
      const sessionId = request.signedSession;
      if (!sessionId) throw new ApiError(401, 'BAD_SIGNATURE', 'signature required');
      const { uploadId } = parseInput(MediaFetchRequestSchema, request.body ?? {}, 'body');
      const session = await ctx.stores.sessions.get(sessionId);
      const record = session ? await uploads.get(uploadId, session.tenant) : null;
      if (!record) throw new ApiError(404, 'UPLOAD_NOT_FOUND', `upload ${uploadId} not found`, 'uploadId');
      const body = await uploads.open(record).catch((err: unknown) => {
        if (isMissing(err)) throw new ApiError(404, 'UPLOAD_NOT_FOUND', `upload ${uploadId} not found`, 'uploadId');
        throw err;
      });
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(record.size))
        .send(body);
    });
  };
}
