import { createHash } from 'node:crypto';

/**
 * The id by which the API, metrics, logs and Redis key names call a proxy: stable, short, and revealing neither
 * host, port nor credentials. SHA-1 (not for secrecy of a guessable input, just a stable name) because the pool's
 * Lua scripts must compute the same id (`redis.sha1hex`, see `pid` in the proxy-*.lua files beside state/proxy-pool.ts).
 */
export function proxyIdOf(proxyUrl: string): string {
  return createHash('sha1').update(proxyUrl).digest('hex').slice(0, 16);
}

/**
 * The fingerprint a runner labels a worker with, to tell whether a start needs a new worker (another proxy).
 * Not the id: running containers carry this label, and a changed label would restart every worker on upgrade.
 */
export function proxyFingerprint(proxyUrl: string): string {
  return createHash('sha256').update(proxyUrl).digest('hex').slice(0, 16);
}
