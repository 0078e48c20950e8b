import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { sessionWebhookSecret } from '../common/session.js';
import { EventBus } from '../state/events-bus.js';
import { OutboxStore } from '../state/outbox.js';
import { installApiKeyAuth } from './auth.js';
import type { ApiContext } from './context.js';
import { installErrorHandler } from './errors.js';
import { DispatchWaker } from './dispatch-waker.js';
import { withMessagingHooks } from './messaging-hooks.js';
import { openApiRoutes } from './openapi.js';
import { backupRoutes } from './routes/backups.js';
import { clientWebhookRoutes } from './routes/client-webhooks.js';
import { dashboardUiRoutes } from './routes/dashboard-ui.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { demoRoutes } from './routes/demo.js';
import { liveEventsRoutes, withLiveEvents } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { proxyRoutes } from './routes/proxies.js';
import { sendRoutes } from './routes/send.js';
import { sessionRoutes } from './routes/sessions.js';
import { webhookRoutes, type WebhookHooks } from './routes/webhook.js';
import { workerOutboxRoutes } from './routes/worker-outbox.js';

/** Builds the Fastify API: one plugin per route group, zod validation, one error handler, API-key auth. */
export async function buildApi(
  ctx: ApiContext,
  opts: { logger: Logger; hooks?: WebhookHooks },
): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger as unknown as FastifyBaseLogger,
    disableRequestLogging: true,
    bodyLimit: 1024 * 1024,
  });
  installErrorHandler(app);
  installApiKeyAuth(app, ctx.config);
  const bus = new EventBus(ctx.redis, ctx.config.REDIS_KEY_PREFIX, opts.logger);
  await app.register(metricsRoutes(ctx, bus));
  await app.register(healthRoutes(ctx));
  await app.register(sessionRoutes(ctx));
  await app.register(dashboardRoutes(ctx));
  await app.register(proxyRoutes(ctx));
  await app.register(backupRoutes(ctx));
  await app.register(webhookRoutes(ctx, withLiveEvents(ctx, bus, withMessagingHooks(ctx, opts.logger, opts.hooks))));
  await app.register(liveEventsRoutes(ctx, bus));
  await app.register(dashboardUiRoutes());
  await app.register(workerOutboxRoutes, {
    store: new OutboxStore(ctx.redis, { prefix: ctx.config.REDIS_KEY_PREFIX }),
    secretFor: async (sessionId) =>
      (await ctx.sessions.get(sessionId)) ? sessionWebhookSecret(ctx.config.WEBHOOK_SECRET, sessionId) : undefined,
  });
  await app.register(sendRoutes(ctx, new DispatchWaker(ctx.temporal, ctx.config)));
  await app.register(clientWebhookRoutes(ctx, opts.logger));
  await app.register(openApiRoutes());
  if (ctx.config.DEMO_SIMULATOR_URL) await app.register(demoRoutes(ctx));
  return app;
}
