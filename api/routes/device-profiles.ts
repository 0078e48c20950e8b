import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { DeviceProfileBodySchema, DeviceProfileIdSchema } from '../../common/device-profiles.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput } from '../errors.js';

export const ProfileParams = z.object({ id: DeviceProfileIdSchema });

/** The device-profile inventory, registered in the admin sub-scope (api/auth.ts requireAdmin). */
export function deviceProfileRoutes(ctx: ApiContext) {
  const { profiles } = ctx.stores;
  return async function plugin(app: FastifyInstance) {
    app.get('/api/v1/device-profiles', async () => {
      const list = await profiles.list();
      return {
        profiles: list,
        free: list.filter((p) => !p.retired && p.sessions.length === 0).length,
        lowThreshold: ctx.config.LOW_DEVICE_PROFILE_THRESHOLD,
      };
    });

    app.post('/api/v1/device-profiles', async (request, reply) => {
      const body = parseInput(DeviceProfileBodySchema, request.body, 'body');
      const added = await profiles.add(body);
      if (!added) throw new ApiError(409, 'PROFILE_EXISTS', 'this os/browser/osVersion profile exists already', 'os');
      return reply.status(201).send({ ...added, retired: false, sessions: [] });
    });

    /** Retire: never handed out again; refused while a session presents it (its identity must not change). */
    app.delete('/api/v1/device-profiles/:id', async (request) => {
      const { id } = parseInput(ProfileParams, request.params, 'params');
      const r = await profiles.retire(id);
      if (r === 'unknown') throw new ApiError(404, 'PROFILE_NOT_FOUND', `device profile ${id} not found`);
      if (r === 'in_use')
        throw new ApiError(409, 'PROFILE_IN_USE', `device profile ${id} is presented by a session: it cannot retire`);
      return { id, retired: true };
    });
  };
}
