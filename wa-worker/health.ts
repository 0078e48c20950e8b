/** Heartbeat file in the session folder, read by the container HEALTHCHECK (wa-worker/healthcheck.ts). */
import path from 'node:path';

export const HEALTH_FILE = '.health.json';

export interface HealthRecord {
  pid: number;
  at: number;
  state: string;
  backlog: number;
  rssBytes: number;
  /** Unhandled rejections / uncaught exceptions caught (and survived) since start. */
  unhandledErrors: number;
  lastError: string | null;
}

export function healthFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.AUTH_DIR || path.join(env.SESSIONS_DIR || '/app/sessions', env.SESSION_ID || '_');
  return path.join(dir, HEALTH_FILE);
}

/** Healthy when the heartbeat is fresh (written within max(3 intervals, 30 s)). */
export function isHealthy(record: HealthRecord | undefined, now: number, intervalMs: number): boolean {
  if (!record || typeof record.at !== 'number') return false;
  return now - record.at <= Math.max(3 * intervalMs, 30_000);
}
