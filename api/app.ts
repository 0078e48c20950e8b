import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { sessionWebhookSecret } from '../common/session.js';
import { typingDuration } from '../common/anti-ban.js';
import { adminScope, apiKeyScope, ApiKeys, installAuthGuard, publicScope } from './auth.js';
import { signedScope } from './signed.js';
import { WorkerWake } from '../state/worker-wake.js';
import type { ApiContext } from './context.js';
import { installErrorHandler } from './errors.js';
import { DispatchWaker } from './dispatch-waker.js';
import { withMessagingHooks } from './messaging-hooks.js';
import { openApiRoutes } from './openapi.js';
import { backupRoutes } from './routes/backups.js';
import { clientWebhookRoutes } from './routes/client-webhooks.js';
import { codecPreflightRoutes, codecRoutes } from './routes/codec.js';
import { dashboardUiRoutes } from './routes/dashboard-ui.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { demoRoutes } from './routes/demo.js';
import { liveEventsRoutes, withLiveEvents } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { proxyRoutes } from './routes/proxies.js';
import { hostRoutes } from './routes/hosts.js';
import { deviceProfileRoutes } from './routes/device-profiles.js';
import { sendRoutes } from './routes/send.js';
import { mediaRoutes, workerMediaRoutes } from './routes/media.js';
import { MediaUploads } from './media-uploads.js';
import { mediaStoreFor } from '../common/media-store.js';
import { InboundMediaStore } from './media-inbound.js';
import { contactRoutes } from './routes/contacts.js';
import { groupRoutes } from './routes/groups.js';
import { sessionRoutes } from './routes/sessions.js';
import { webhookRoutes, type WebhookHooks } from './routes/webhook.js';
import { workerOutboxRoutes } from './routes/worker-outbox.js';
import { workerCommandRoutes } from './routes/worker-commands.js';
import { workerLoginRoutes } from './routes/worker-login.js';
import { workerAuthRoutes } from './routes/worker-auth.js';

/**
 * Builds the Fastify API: one plugin per route group, zod validation, one error handler, and authentication by
 * encapsulation (api/auth.ts): public, api-key (with an admin sub-scope) and signed scopes, plus the metrics
 * scope; a root guard refuses any route reached without its scope's proof.
 */
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
  installAuthGuard(app);
  const { config, stores } = ctx;
  const keys = new ApiKeys(config, stores.redis);
  const bus = stores.events;
  const media = mediaStoreFor(config);
  const uploads = new MediaUploads(stores.redis, config, media);
  const inbound = new InboundMediaStore(stores.redis, config, media);
  // Media files outlive their Redis records only until the next sweep.
  const sweep = setInterval(() => {
    void uploads.sweep().catch(() => undefined);
    void inbound.sweep().catch(() => undefined);
  }, 10 * 60_000);
  sweep.unref();
  app.addHook('onClose', async () => clearInterval(sweep));
  // Workers' long-polls wait on it; closing answers them at once, so a shutdown never waits out their waits.
  const wake = new WorkerWake(stores.redis, config.REDIS_KEY_PREFIX, opts.logger);
  wake.start().catch((err: unknown) => opts.logger.warn({ err: String(err) }, 'worker wake-ups unavailable'));
  app.addHook('preClose', async () => wake.close());
  await app.register(metricsRoutes(ctx, bus));

  await app.register(
    publicScope(async (scope) => {
      await scope.register(healthRoutes(ctx));
      await scope.register(dashboardUiRoutes());
      await scope.register(openApiRoutes({ demo: Boolean(config.DEMO_SIMULATOR_URL) }));
      await scope.register(codecPreflightRoutes(config));
    }),
  );

  await app.register(
    signedScope(
      {
        secretFor: (sessionId) => sessionWebhookSecret(config.WEBHOOK_SECRET, sessionId),
        claimNonce: (sessionId, nonce, ttlMs) => stores.sessions.claimWorkerNonce(sessionId, nonce, ttlMs),
        generationOf: (sessionId) => stores.sessions.workerGeneration(sessionId),
        // Deployment-wide (every API process reports the same count): /metrics wa_stale_generation_refusals_total.
        onStale: (route) => stores.events.count(`stale_generation:${route}`),
      },
      async (scope) => {
        await scope.register(
          webhookRoutes(ctx, withLiveEvents(ctx, bus, withMessagingHooks(ctx, opts.logger, inbound, opts.hooks))),
        );
        await scope.register(workerMediaRoutes(ctx, uploads, inbound));
        await scope.register(workerCommandRoutes, { store: stores.commands, wake });
        await scope.register(workerLoginRoutes(ctx));
        if (ctx.authStore)
          await scope.register(workerAuthRoutes, {
            store: ctx.authStore,
            sessions: stores.sessions,
            onStale: () => stores.events.count('stale_generation:auth'),
          });
        await scope.register(workerOutboxRoutes, {
          store: stores.outbox,
          wake,
          pacingFor: async (sessionId, text) => {
            const l = await stores.messages.limits(sessionId);
            const minGapMs = Math.floor(l.gapMs * (1 - l.jitterPercent / 100));
            // Typing fits inside the shortest gap, so the next hand-off never waits for this one's typing and a
            // message goes out at most one typing time after its planned hand-off.
            const typingMs = typingDuration(
              text,
              { min: l.typingMinMs, max: Math.min(l.typingMaxMs, Math.floor(minGapMs * 0.9)) },
              config.ANTIBAN_TYPING_MS_PER_CHAR,
              config.ANTIBAN_TYPING_JITTER_PERCENT,
            );
            return { typingMs, minGapMs };
          },
        });
      },
    ),
  );

  await app.register(
    apiKeyScope(keys, async (scope) => {
      await scope.register(sessionRoutes(ctx));
      await scope.register(dashboardRoutes(ctx));
      await scope.register(liveEventsRoutes(ctx, bus, keys));
      await scope.register(sendRoutes(ctx, new DispatchWaker(ctx.temporal, config), uploads));
      await scope.register(mediaRoutes(ctx, uploads, inbound));
      await scope.register(contactRoutes(ctx));
      await scope.register(groupRoutes(ctx));
      await scope.register(clientWebhookRoutes(ctx, opts.logger));
      if (config.DEMO_SIMULATOR_URL) await scope.register(demoRoutes(ctx));
      await scope.register(
        adminScope(async (admin) => {
          await admin.register(proxyRoutes(ctx));
          await admin.register(hostRoutes(ctx));
          await admin.register(deviceProfileRoutes(ctx));
          await admin.register(backupRoutes(ctx));
          await admin.register(codecRoutes(config));
        }),
      );
    }),
  );
  return app;
}
