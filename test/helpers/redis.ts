import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/**
 * A connection to the real Redis that scripts/services.sh started. Fails loudly (never skips) when Redis is not
 * there, and gives each test run its own key prefix so tests never see each other's keys.
 */
export async function connectTestRedis(): Promise<{ redis: Redis; prefix: string; cleanup(): Promise<void> }> {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new Error(
      `Redis is required at ${url.replace(/\/\/[^@/]*@/, '//***@')} (run: bash scripts/services.sh): ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const prefix = `test:${randomBytes(4).toString('hex')}:`;
  return {
    redis,
    prefix,
    async cleanup() {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
    },
  };
}
