import { Redis, type ChainableCommander } from 'ioredis';

/**
 * One ioredis client. `maxRetriesPerRequest` is bounded so that a Redis outage surfaces as errors (readiness
 * turns 503, activities retry) instead of commands piling up forever.
 */
export function createRedis(url: string, options: { lazyConnect?: boolean } = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: 3,
    enableAutoPipelining: true,
    lazyConnect: options.lazyConnect ?? false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
}

export type { Redis };

/**
 * Runs a MULTI and fails when any command in it failed: ioredis resolves a transaction whose commands Redis refused
 * (WRONGTYPE, OOM, ...) with the errors inside the result, so an unchecked `exec()` reports a write that never
 * happened. The callers' writes are idempotent: a retry applies the whole transaction again.
 */
export async function execAll(tx: ChainableCommander): Promise<Array<[Error | null, unknown]>> {
  const results = await tx.exec();
  if (!results) throw new Error('Redis transaction aborted');
  const failed = results.find(([err]) => err);
  if (failed) throw failed[0]!;
  return results;
}
