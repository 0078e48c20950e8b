import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { HostView } from '../../state/hosts.js';
import { drainProgress, startDrain } from '../../workflows/host-failover-client.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput } from '../errors.js';

export const HostParams = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be a host id from GET /api/v1/hosts'),
});

/** A host as the API shows it (its task queue is internal). */
function hostView(h: HostView) {
  return {
    hostId: h.hostId,
    alive: h.alive,
    draining: h.draining,
    capacity: h.capacity,
    load: h.load,
    heartbeatAt: h.heartbeatAt,
  };
}

/** Registered in the admin sub-scope (api/auth.ts requireAdmin): hosts hold every tenant's sessions. */
export function hostRoutes(ctx: ApiContext) {
  const { config, temporal } = ctx;
  const { hosts } = ctx.stores;
  const list = () => hosts.list(config.HOST_DEAD_AFTER_MS);
  /** The host, and every host as read in the same call. */
  const find = async (id: string) => {
    const all = await list();
    const host = all.find((h) => h.hostId === id);
    if (!host) throw new ApiError(404, 'HOST_NOT_FOUND', `host ${id} not found`);
    return { host, all };
  };

  return async function plugin(app: FastifyInstance) {
    app.get('/api/v1/hosts', async () => ({ hosts: (await list()).map(hostView) }));

    /**
     * Moves every session off the host, one by one, each stopped before it starts elsewhere; the host takes no new
     * session until DELETE. Answers at once (202); GET follows the progress.
     */
    app.post('/api/v1/hosts/:id/drain', async (request, reply) => {
      const { id } = parseInput(HostParams, request.params, 'params');
      const { host, all } = await find(id);
      if (config.AUTH_STORE !== 'postgres')
        throw new ApiError(
          409,
          'AUTH_ON_HOST',
          "sessions keep their auth state on their host's disk (AUTH_STORE=file): they cannot move without a new QR",
        );
      if (!all.some((h) => h.alive && !h.draining && h.hostId !== id))
        throw new ApiError(409, 'NO_OTHER_HOST', 'no other live host to move the sessions to');
      const workflowId = await startDrain(temporal, config, host.hostId);
      return reply.status(202).send({ drain: { hostId: host.hostId, sessions: host.load, workflowId } });
    });

    /** The host's last drain (null: never drained) and whether it is draining now. */
    app.get('/api/v1/hosts/:id/drain', async (request) => {
      const { id } = parseInput(HostParams, request.params, 'params');
      const { host } = await find(id);
      return { hostId: id, draining: host.draining, drain: await drainProgress(temporal, config, id) };
    });

    /** Ends the drain: the host takes new sessions again (moved sessions stay where they are). */
    app.delete('/api/v1/hosts/:id/drain', async (request) => {
      const { id } = parseInput(HostParams, request.params, 'params');
      await find(id);
      await hosts.setDraining(id, false);
      return { hostId: id, draining: false };
    });
  };
}
