import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';

/** `/healthz`: the process is alive. `/readyz`: Redis and Temporal answer (503 otherwise, naming which). */
export function healthRoutes(ctx: ApiContext) {
  return async function plugin(app: FastifyInstance) {
    app.get('/healthz', async () => ({ ok: true }));
    app.get('/readyz', async (_request, reply) => {
      const checks: Record<string, string> = {};
      await Promise.all([
        withTimeout(ctx.stores.redis.ping(), 1500)
          .then(() => (checks.redis = 'ok'))
          .catch((err: Error) => (checks.redis = `unreachable: ${err.message}`)),
        withTimeout(ctx.temporal.connection.workflowService.getSystemInfo({}), 1500)
          .then(() => (checks.temporal = 'ok'))
          .catch((err: Error) => (checks.temporal = `unreachable: ${err.message}`)),
      ]);
      const ok = Object.values(checks).every((v) => v === 'ok');
      return reply.status(ok ? 200 : 503).send({ ok, checks });
    });
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timeout ${ms} ms`)), ms)),
  ]);
}
