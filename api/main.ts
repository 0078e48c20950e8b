/**
 * API entry: `node --import tsx api/main.ts`. Serves REST, the webhook bridge, the worker outbox, health and
 * OpenAPI. Graceful shutdown on SIGTERM/SIGINT.
 */
import { Client, Connection } from '@temporalio/client';
import { codecDataConverter } from '../common/codec.js';
import { loadConfigOrExit } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { createRedis } from '../state/redis.js';
import { createStores, prepareStores } from '../state/stores.js';
import { PgAuthStore } from '../state/auth-pg.js';
import { buildApi } from './app.js';

const config = loadConfigOrExit();
const logger = createLogger('api', config.LOG_LEVEL);

async function main() {
  const redis = createRedis(config.REDIS_URL);
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  const temporal = new Client({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: codecDataConverter(config.TEMPORAL_CODEC_KEYS),
  });
  const stores = createStores(redis, config, logger);
  await prepareStores(stores, config);
  // Workers' auth state in PostgreSQL: the tables are created (idempotently) before the first worker call.
  const authStore =
    config.AUTH_STORE === 'postgres'
      ? PgAuthStore.connect(config.AUTH_DATABASE_URL!, config.AUTH_STORE_SECRET!)
      : undefined;
  await authStore?.migrate();
  const app = await buildApi({ config, stores, temporal, authStore }, { logger });
  await app.listen({ host: config.API_HOST, port: config.API_PORT });
  logger.info({ url: `http://${config.API_HOST}:${config.API_PORT}` }, 'api listening');
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down');
      void app
        .close()
        .then(() => connection.close())
        .then(() => authStore?.close())
        .then(() => redis.quit())
        .finally(() => process.exit(0));
    });
  }
}

main().catch((err: unknown) => {
  logger.fatal({ err: String(err), stack: (err as Error).stack }, 'api failed');
  process.exit(1);
});
