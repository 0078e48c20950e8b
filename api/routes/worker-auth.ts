/**
 * The worker side of the PostgreSQL auth store (AUTH_STORE=postgres; contract: common/auth-keys.ts), in the signed
 * scope like the outbox:
 *   POST /api/worker/sessions/:id/auth/read | write
 * The signature is the session's own key, so a worker reaches only its own session's entries; its generation is
 * fenced twice: by the signed scope (Redis mirror) and inside the store's transaction (state/auth-pg.ts).
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { ZodTypeAny, z } from 'zod';
import {
  AUTH_WRITE_MAX_BYTES,
  AuthReadRequestSchema,
  AuthWriteRequestSchema,
  type AuthReadResponse,
} from '../../common/auth-keys.js';
import { StaleAuthGenerationError, type PgAuthStore } from '../../state/auth-pg.js';
import type { SessionStore } from '../../state/sessions.js';
import { ApiError, zodToApiError } from '../errors.js';

export interface WorkerAuthOptions {
  store: PgAuthStore;
  sessions: SessionStore;
  basePath?: string;
  /** A refused call of an older generation (metrics). */
  onStale?: (sessionId: string) => void | Promise<void>;
}

const SIGNED = { config: { signed: { session: 'params', bound: true } } } as const;

function parseBody<S extends ZodTypeAny>(req: FastifyRequest, schema: S): z.infer<S> {
  const parsed = schema.safeParse(req.body ?? {});
  if (!parsed.success) throw zodToApiError(parsed.error, 'body');
  return parsed.data as z.infer<S>;
}

export const workerAuthRoutes: FastifyPluginAsync<WorkerAuthOptions> = async (app: FastifyInstance, opts) => {
  const base = opts.basePath ?? '/api/worker/sessions';
  /** The signed session, which must exist (a deleted session's straggler writes nothing back). */
  const sessionOf = async (req: FastifyRequest) => {
    if (!req.signedSession) throw new ApiError(401, 'BAD_SIGNATURE', 'signature required');
    const record = await opts.sessions.get(req.signedSession);
    if (!record || record.status === 'deleted')
      throw new ApiError(404, 'SESSION_NOT_FOUND', `no such session: ${req.signedSession}`, 'id');
    return req.signedSession;
  };
  const fenced = async <T>(req: FastifyRequest, sessionId: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof StaleAuthGenerationError)) throw err;
      await Promise.resolve(opts.onStale?.(sessionId)).catch(() => undefined);
      throw new ApiError(
        409,
        'STALE_GENERATION',
        `worker generation ${err.generation} was replaced by generation ${err.current}: stop`,
        'x-wa-generation',
      );
    }
  };

  app.post<{ Params: { id: string } }>(`${base}/:id/auth/read`, SIGNED, async (req, reply) => {
    const sessionId = await sessionOf(req);
    const { keys } = parseBody(req, AuthReadRequestSchema);
    const found = await fenced(req, sessionId, () => opts.store.read(sessionId, keys, req.signedGeneration));
    const body: AuthReadResponse = {
      entries: found.map((e) => ({ category: e.category, keyId: e.keyId, value: e.value!.toString('utf8') })),
    };
    return reply.code(200).send(body);
  });

  app.post<{ Params: { id: string } }>(
    `${base}/:id/auth/write`,
    { ...SIGNED, bodyLimit: AUTH_WRITE_MAX_BYTES + 64 * 1024 },
    async (req, reply) => {
      const sessionId = await sessionOf(req);
      const { entries } = parseBody(req, AuthWriteRequestSchema);
      await fenced(req, sessionId, () =>
        opts.store.write(
          sessionId,
          entries.map((e) => ({
            category: e.category,
            keyId: e.keyId,
            value: e.value === null ? null : Buffer.from(e.value, 'utf8'),
          })),
          req.signedGeneration,
        ),
      );
      return reply.code(200).send({ ok: true, written: entries.length });
    },
  );
};
