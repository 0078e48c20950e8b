import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SESSION_STATUSES } from '../../common/session.js';
import type { ApiContext } from '../context.js';
import { parseInput } from '../errors.js';
import { sessionView, temporalLinks } from './sessions.js';

export const ListQuery = z.object({
  status: z.enum(SESSION_STATUSES).optional(),
  tenant: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .optional(),
  search: z.string().max(64).optional(),
});

export function dashboardRoutes(ctx: ApiContext) {
  const { config } = ctx;
  const { sessions, pool } = ctx.stores;
  return async function plugin(app: FastifyInstance) {
    app.get('/api/v1/dashboard/sessions', async (request) => {
      const q = parseInput(ListQuery, request.query, 'query');
      const tenant = request.principal.admin ? q.tenant : request.principal.tenant!;
      const rows = (await sessions.list(tenant))
        .filter((s) => !q.status || s.status === q.status)
        .filter((s) => !q.search || s.sessionId.includes(q.search) || (s.phone ?? '').includes(q.search));
      return { sessions: rows.map((r) => sessionView(r, temporalLinks(config))) };
    });

    app.get('/api/v1/dashboard/stats', async (request) => {
      const tenant = request.principal.admin ? undefined : request.principal.tenant!;
      const rows = await sessions.list(tenant);
      const byStatus = Object.fromEntries(SESSION_STATUSES.map((s) => [s, 0])) as Record<string, number>;
      for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
      const proxies = request.principal.admin ? await pool.list() : [];
      return {
        sessions: { total: rows.length, byStatus },
        proxies: request.principal.admin
          ? {
              total: proxies.length,
              healthy: proxies.filter((p) => p.status === 'OK').length,
              bad: proxies.filter((p) => p.status === 'BAD').length,
              slotsUsed: proxies.reduce((n, p) => n + p.load, 0),
              slotsFree: proxies
                .filter((p) => p.status === 'OK')
                .reduce((n, p) => n + Math.max(0, p.limit - p.load), 0),
              limitPerProxy: pool.limit,
            }
          : null,
      };
    });
  };
}
