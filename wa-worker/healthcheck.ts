/**
 * Container HEALTHCHECK: exit 0 when the worker's heartbeat file is fresh, 1 otherwise. Kept tiny (no Baileys
 * import) so it starts fast; bundled to /app/healthcheck.mjs.
 */
import { readFileSync } from 'node:fs';
import { healthFilePath, isHealthy, type HealthRecord } from './health.js';

const interval = Number(process.env.HEALTH_INTERVAL_MS) || 5000;
let record: HealthRecord | undefined;
try {
  record = JSON.parse(readFileSync(healthFilePath(), 'utf8')) as HealthRecord;
} catch {
  record = undefined;
}
const ok = isHealthy(record, Date.now(), interval);
process.stdout.write(ok ? `healthy (${record?.state})\n` : 'unhealthy: heartbeat missing or stale\n');
process.exit(ok ? 0 : 1);
