/**
 * Customer webhooks, per tenant:
 *   PUT    /api/v1/webhooks               {url, secret, events?}  (admin: ?tenant=<name>)
 *   GET    /api/v1/webhooks               → {tenant, url, events, secretSet} (never the secret)
 *   DELETE /api/v1/webhooks
 *   GET    /api/v1/webhooks/dead-letters  → deliveries that exhausted their retries
 * Also runs the durable deliverer (api/client-webhook-deliverer.ts) for the life of the API.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { checkTenantUrl, UrlRefusedError } from '../../common/net-policy.js';
import { ClientWebhookConfigSchema } from '../../state/client-webhooks.js';
import { tenantOf, type Principal } from '../auth.js';
import { ClientWebhookDeliverer } from '../client-webhook-deliverer.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput } from '../errors.js';

export const TenantQuery = z
  .object({
    tenant: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a tenant name')
      .optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
  })
  .strict();

function tenantFor(principal: Principal, query: z.infer<typeof TenantQuery>): string {
  if (query.tenant && !principal.admin && query.tenant !== principal.tenant)
    throw new ApiError(403, 'FORBIDDEN', 'this API key does not reach that tenant');
  return query.tenant ?? tenantOf(principal);
}

export function clientWebhookRoutes(ctx: ApiContext, logger: Logger) {
  const store = ctx.stores.clientWebhooks;
  return async function plugin(app: FastifyInstance) {
    const deliverer = new ClientWebhookDeliverer(store, ctx.config, logger.child({ component: 'client-webhooks' }));
    app.addHook('onReady', async () => deliverer.start());
    app.addHook('onClose', async () => deliverer.stop());

    app.put('/api/v1/webhooks', async (request) => {
      const tenant = tenantFor(request.principal, parseInput(TenantQuery, request.query, 'query'));
      const cfg = parseInput(ClientWebhookConfigSchema, request.body, 'body');
      try {
        await checkTenantUrl(cfg.url, { allowHosts: ctx.config.CLIENT_WEBHOOK_ALLOW_HOSTS });
      } catch (err) {
        // Well-formed but refused by the address policy: 403 (the request is understood, the destination is not allowed).
        if (err instanceof UrlRefusedError) throw new ApiError(403, 'URL_NOT_ALLOWED', `url: ${err.message}`, 'url');
        throw err;
      }
      await store.setConfig(tenant, cfg);
      return { tenant, url: cfg.url, events: cfg.events, secretSet: true };
    });

    app.get('/api/v1/webhooks', async (request) => {
      const tenant = tenantFor(request.principal, parseInput(TenantQuery, request.query, 'query'));
      const cfg = await store.getConfig(tenant);
      if (!cfg) throw new ApiError(404, 'WEBHOOK_NOT_CONFIGURED', `no webhook configured for tenant ${tenant}`);
      return { tenant, url: cfg.url, events: cfg.events, secretSet: true, pending: await store.pending(tenant) };
    });

    app.delete('/api/v1/webhooks', async (request) => {
      const tenant = tenantFor(request.principal, parseInput(TenantQuery, request.query, 'query'));
      if (!(await store.deleteConfig(tenant)))
        throw new ApiError(404, 'WEBHOOK_NOT_CONFIGURED', `no webhook configured for tenant ${tenant}`);
      return { tenant, deleted: true };
    });

    app.get('/api/v1/webhooks/dead-letters', async (request) => {
      const q = parseInput(TenantQuery, request.query, 'query');
      const tenant = tenantFor(request.principal, q);
      const items = await store.deadLetters(tenant, q.limit ?? 100);
      return {
        tenant,
        deadLetters: items.map((d) => ({
          id: d.id,
          event: d.event,
          attempts: d.attempt,
          lastError: d.lastError ?? null,
          createdAt: d.createdAt,
          deadAt: d.deadAt,
          payload: JSON.parse(d.body) as unknown,
        })),
      };
    });
  };
}
