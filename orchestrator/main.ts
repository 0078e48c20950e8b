/**
 * Orchestrator entry: `node --import tsx orchestrator/main.ts`. Runs until SIGTERM/SIGINT, then lets in-flight
 * workflow tasks and activities finish (graceful shutdown). Workers keep running: they do not depend on it.
 */
import { loadConfigOrExit } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { createOrchestrator } from './orchestrator.js';

const config = loadConfigOrExit();
const logger = createLogger('orchestrator', config.LOG_LEVEL);

async function main() {
  const orchestrator = await createOrchestrator(config, logger);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down');
      void orchestrator.shutdown();
    });
  }
  await orchestrator.run();
  await orchestrator.runner.close();
  orchestrator.redis.disconnect();
  logger.info('stopped');
  process.exit(0);
}

main().catch((err: unknown) => {
  logger.fatal({ err: String(err), stack: (err as Error).stack }, 'orchestrator failed');
  process.exit(1);
});
