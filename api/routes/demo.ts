import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { PhoneSchema, SessionIdSchema } from '../../common/session.js';
import { assertSessionAccess } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput } from '../errors.js';

export const ScanBody = z.object({ phone: PhoneSchema.optional() }).strict();
export const IdParams = z.object({ id: SessionIdSchema });

/**
 * Demo mode only (DEMO_SIMULATOR_URL set): `POST /api/demo/sessions/:id/scan` lets a simulated phone scan the
 * session's current QR, so a newcomer can try the whole flow without a real phone. Not registered otherwise.
 */
export function demoRoutes(ctx: ApiContext) {
  const simulator = ctx.config.DEMO_SIMULATOR_URL!;
  return async function plugin(app: FastifyInstance) {
    app.get('/api/demo', async () => ({ enabled: true }));
    app.post('/api/demo/sessions/:id/scan', async (request) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const { phone } = parseInput(ScanBody, request.body, 'body');
      const record = await ctx.stores.sessions.get(id);
      if (!record) throw new ApiError(404, 'SESSION_NOT_FOUND', `session ${id} not found`);
      assertSessionAccess(request.principal, record.tenant, id);
      const qr = await ctx.stores.sessions.getQr(id);
      if (!qr) throw new ApiError(409, 'QR_NOT_AVAILABLE', `session ${id} shows no QR (status ${record.status})`);
      const number = phone ?? record.phone ?? `1555${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
      const res = await fetch(`${simulator}/scan`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ qr: qr.qr, phone: number }),
        signal: AbortSignal.timeout(5000),
      }).catch((err: Error) => {
        throw new ApiError(502, 'SIMULATOR_UNREACHABLE', `simulator not reachable: ${err.message}`);
      });
      if (!res.ok) {
        const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
        throw new ApiError(502, 'SCAN_FAILED', body?.error?.message ?? `simulator answered ${res.status}`);
      }
      return { sessionId: id, phone: number, scanned: true };
    });
  };
}
