/**
 * The orchestrator, unchanged, with stand-in session workers (bench/standin/host.ts) instead of Docker or processes.
 * Control-plane benchmarks only: `node --import tsx bench/standin/orchestrator-main.ts`, same environment as
 * orchestrator/main.ts.
 */
import { loadConfigOrExit } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { createOrchestrator } from '../../orchestrator/orchestrator.js';
import { StandinRunner } from './runner.js';

const config = loadConfigOrExit();
const logger = createLogger('orchestrator', config.LOG_LEVEL);

async function main() {
  const runner = new StandinRunner();
  logger.info({ standinHostPids: runner.hostPids }, 'stand-in hosts started');
  const orchestrator = await createOrchestrator(config, logger, { runner });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => void orchestrator.shutdown());
  }
  await orchestrator.run();
  await runner.close();
  orchestrator.redis.disconnect();
  process.exit(0);
}

main().catch((err: unknown) => {
  logger.fatal({ err: String(err), stack: (err as Error).stack }, 'orchestrator failed');
  process.exit(1);
});
