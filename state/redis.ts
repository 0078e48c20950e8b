import { Redis } from 'ioredis';

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
