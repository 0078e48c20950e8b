/**
 * Login slots for workers (contract: common/worker-login.ts), in the signed scope: a worker can only take or give
 * back its own session's slot, on the host its session is placed on.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { LoginAcquireResponse } from '../../common/worker-login.js';
import type { ApiContext } from '../context.js';
import { ApiError, zodToApiError } from '../errors.js';

const SIGNED = { config: { signed: { session: 'params', bound: true } } } as const;
const EmptyBody = z.object({}).strict();

export function workerLoginRoutes(ctx: ApiContext) {
  const { config } = ctx;
  const { sessions, logins } = ctx.stores;
  return async function plugin(app: FastifyInstance) {
    /** The signed session and its host; a session that is gone has no slot to take. */
    const hostOf = async (req: FastifyRequest): Promise<{ sessionId: string; hostId: string }> => {
      const sessionId = req.signedSession;
      if (!sessionId) throw new ApiError(401, 'BAD_SIGNATURE', 'signature required');
      const parsed = EmptyBody.safeParse(req.body ?? {});
      if (!parsed.success) throw zodToApiError(parsed.error, 'body');
      const record = await sessions.get(sessionId);
      if (!record) throw new ApiError(404, 'SESSION_NOT_FOUND', `session ${sessionId} not found`);
      return { sessionId, hostId: record.host ?? 'local' };
    };

    app.post('/api/worker/sessions/:id/login/acquire', SIGNED, async (req, reply) => {
      const { sessionId, hostId } = await hostOf(req);
      const answer: LoginAcquireResponse = await logins.acquire(hostId, sessionId, {
        max: config.MAX_CONCURRENT_LOGINS,
        leaseMs: config.LOGIN_LEASE_MS,
      });
      return reply.code(200).send(answer);
    });

    app.post('/api/worker/sessions/:id/login/release', SIGNED, async (req, reply) => {
      const { sessionId, hostId } = await hostOf(req);
      await logins.release(hostId, sessionId);
      return reply.code(200).send({ ok: true });
    });
  };
}
