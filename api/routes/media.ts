/**
 * Media (issue 16):
 *   POST /api/media  multipart/form-data, one part `file`   → 201 {uploadId, mimeType, size, sha256, fileName}
 *   POST /api/worker/sessions/:id/media {uploadId}  (signed)  → 200 the bytes (the session's tenant's uploads only)
 * The upload is streamed to MEDIA_DIR (api/media-uploads.ts); a declared Content-Length over the cap is refused
 * before a byte is read.
 */
import multipart from '@fastify/multipart';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { MediaFetchRequestSchema } from '../../common/media.js';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput } from '../errors.js';
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

export function mediaRoutes(ctx: ApiContext, uploads: MediaUploads) {
  const { config } = ctx;
  return async function plugin(app: FastifyInstance) {
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
        .store(tenantOf(request.principal), part.file, {
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

/** Registered inside the signed scope: a worker fetches the bytes of an upload of its own session's tenant. */
export function workerMediaRoutes(ctx: ApiContext, uploads: MediaUploads) {
  return async function plugin(app: FastifyInstance) {
    app.post('/api/worker/sessions/:id/media', SIGNED, async (request, reply) => {
      parseInput(Params, request.params, 'params');
      const sessionId = request.signedSession;
      if (!sessionId) throw new ApiError(401, 'BAD_SIGNATURE', 'signature required');
      const { uploadId } = parseInput(MediaFetchRequestSchema, request.body ?? {}, 'body');
      const session = await ctx.stores.sessions.get(sessionId);
      const record = session ? await uploads.get(uploadId, session.tenant) : null;
      if (!record) throw new ApiError(404, 'UPLOAD_NOT_FOUND', `upload ${uploadId} not found`, 'uploadId');
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(record.size))
        .send(uploads.open(uploadId));
    });
  };
}
