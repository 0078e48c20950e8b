/**
 * The worker side of worker commands (contract: common/worker-commands.ts), in the signed scope like the outbox:
 *   POST /api/worker/sessions/:id/commands/claim | result
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { ClaimRequestSchema } from '../../common/outbox.js';
import { CommandResultRequestSchema } from '../../common/worker-commands.js';
import type { WorkerCommandStore } from '../../state/worker-commands.js';
import type { WorkerWake } from '../../state/worker-wake.js';
import { claimWithWait } from '../long-poll.js';
import { ApiError, zodToApiError } from '../errors.js';

export interface WorkerCommandsOptions {
  store: WorkerCommandStore;
  /** Wakes waiting claims (`waitMs`); absent: every claim answers at once. */
  wake?: WorkerWake;
  basePath?: string;
}

const SIGNED = { config: { signed: { session: 'params', bound: true } } } as const;

export const workerCommandRoutes: FastifyPluginAsync<WorkerCommandsOptions> = async (app: FastifyInstance, opts) => {
  const base = opts.basePath ?? '/api/worker/sessions';
  const sessionOf = (req: FastifyRequest) => {
    if (!req.signedSession) throw new ApiError(401, 'BAD_SIGNATURE', 'signature required');
    return req.signedSession;
  };

  app.post<{ Params: { id: string } }>(`${base}/:id/commands/claim`, SIGNED, async (req, reply) => {
    const sessionId = sessionOf(req);
    const parsed = ClaimRequestSchema.safeParse(req.body ?? {});
    if (!parsed.success) throw zodToApiError(parsed.error, 'body');
    const command = await claimWithWait({
      wake: opts.wake,
      sessionId,
      waitMs: parsed.data.waitMs ?? 0,
      reply,
      claim: () => opts.store.claim(sessionId),
      release: (c) => opts.store.release(sessionId, c),
      nextDueAt: () => opts.store.nextDueAt(sessionId),
    });
    if (!command) return reply.code(204).send();
    return reply.code(200).send({ command });
  });

  app.post<{ Params: { id: string } }>(`${base}/:id/commands/result`, SIGNED, async (req, reply) => {
    const sessionId = sessionOf(req);
    const parsed = CommandResultRequestSchema.safeParse(req.body ?? {});
    if (!parsed.success) throw zodToApiError(parsed.error, 'body');
    await opts.store.putResult(sessionId, parsed.data.commandId, parsed.data);
    return reply.code(200).send({ ok: true });
  });
};
