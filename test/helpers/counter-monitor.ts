import { Worker } from 'node:worker_threads';

/**
 * Samples a set of Redis counters continuously from a separate thread (its own event loop and connection), so
 * the samples interleave with the commands of the code under test instead of waiting for it.
 */
export function startCounterMonitor(redisUrl: string, keys: string[]) {
  const shared = new Int32Array(new SharedArrayBuffer(12)); // [running, maxSeen, samples]
  shared[0] = 1;
  const worker = new Worker(
    `
    const { workerData } = require('node:worker_threads');
    const { Redis } = require(workerData.ioredisPath);
    const shared = workerData.shared;
    const redis = new Redis(workerData.url);
    (async () => {
      while (Atomics.load(shared, 0) === 1) {
        const values = await redis.mget(workerData.keys);
        for (const v of values) { const n = Number(v || 0); if (n > Atomics.load(shared, 1)) Atomics.store(shared, 1, n); }
        Atomics.add(shared, 2, 1);
      }
      redis.disconnect();
    })();
    `,
    {
      eval: true,
      workerData: { url: redisUrl, keys, shared, ioredisPath: require_resolve('ioredis') },
    },
  );
  return {
    get samples() {
      return Atomics.load(shared, 2);
    },
    async waitForSamples(n: number) {
      while (Atomics.load(shared, 2) < n) await new Promise((r) => setTimeout(r, 5));
    },
    async stop(): Promise<{ maxSeen: number; samples: number }> {
      Atomics.store(shared, 0, 0);
      await new Promise((r) => worker.once('exit', r));
      return { maxSeen: Atomics.load(shared, 1), samples: Atomics.load(shared, 2) };
    },
  };
}

function require_resolve(name: string): string {
  return import.meta.resolve(name).replace(/^file:\/\//, '');
}
