import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { proxyIdOf } from '../../common/proxy-id.js';
import { ProxyUrlSchema } from '../../common/session.js';
import { ProxyInUseError, type ProxyInfo } from '../../state/proxy-pool.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput } from '../errors.js';

export const AddBody = z.object({ url: ProxyUrlSchema }).strict();
export const IdParams = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/, 'must be a proxy id from GET /api/v1/proxies'),
});

/** A proxy as the API shows it: an opaque id and host:port, never the credentials. */
function proxyView(p: ProxyInfo) {
  return {
    id: proxyIdOf(p.url),
    endpoint: p.endpoint,
    status: p.status,
    /** A tenant's own proxy (proxyOverride), outside the shared pool; null for pool proxies. */
    privateTo: p.privateTo,
    badAt: p.badAt,
    load: p.load,
    limit: p.limit,
    sessions: p.sessions,
  };
}

/** Registered in the admin sub-scope (api/auth.ts requireAdmin). */
export function proxyRoutes(ctx: ApiContext) {
  const { pool } = ctx.stores;
  const find = async (id: string) => {
    const p = (await pool.list()).find((x) => proxyIdOf(x.url) === id);
    if (!p) throw new ApiError(404, 'PROXY_NOT_FOUND', `proxy ${id} not found`);
    return p;
  };

  return async function plugin(app: FastifyInstance) {
    app.get('/api/v1/proxies', async () => {
      return { proxies: (await pool.list()).map(proxyView), limitPerProxy: pool.limit };
    });

    app.post('/api/v1/proxies', async (request, reply) => {
      const { url } = parseInput(AddBody, request.body, 'body');
      await pool.register(url);
      const added = (await pool.list()).find((p) => p.url === url)!;
      return reply.status(201).send(proxyView(added));
    });

    app.delete('/api/v1/proxies/:id', async (request) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const p = await find(id);
      try {
        await pool.remove(p.url);
      } catch (err) {
        if (err instanceof ProxyInUseError)
          throw new ApiError(409, 'PROXY_IN_USE', `proxy ${p.endpoint} still has ${p.load} session(s)`);
        throw err;
      }
      return { id, removed: true };
    });

    app.post('/api/v1/proxies/:id/ok', async (request) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const p = await find(id);
      await pool.markOk(p.url);
      return proxyView((await pool.list()).find((x) => x.url === p.url)!);
    });
  };
}
