/**
 * What the generation fence costs a worker: the same auth-key writes (the real crash-safe store: temp + fsync +
 * rename + fsync(dir)) with and without the fence check before each commit, and the check alone.
 *
 *   node --import tsx bench/fence-cost.ts [writes=2000] [dir=os.tmpdir()]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeWorkerFence } from '../common/worker-fence.js';
import { useCrashSafeAuthState } from '../wa-worker/auth-store.js';
import { WorkerFence } from '../wa-worker/fence.js';

const N = Number(process.argv[2] ?? 2000);
const base = process.argv[3] ?? os.tmpdir();

async function writes(fenced: boolean): Promise<number> {
  const dir = fs.mkdtempSync(path.join(base, 'fence-bench-'));
  writeWorkerFence(dir, 1);
  const fence = new WorkerFence(dir, 1, () => {
    throw new Error('unexpected fence');
  });
  const auth = await useCrashSafeAuthState(dir, undefined, fenced ? { beforeCommit: () => fence.check() } : {});
  const value = { key: Buffer.alloc(512, 7).toString('base64') };
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await auth.state.keys.set({ session: { [`c${i % 50}`]: value } } as never);
  const us = Number(process.hrtime.bigint() - t0) / 1000 / N;
  fs.rmSync(dir, { recursive: true, force: true });
  return us;
}

async function checks(): Promise<number> {
  const dir = fs.mkdtempSync(path.join(base, 'fence-bench-'));
  writeWorkerFence(dir, 1);
  const fence = new WorkerFence(dir, 1, () => undefined);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N * 5; i++) await fence.check();
  const us = Number(process.hrtime.bigint() - t0) / 1000 / (N * 5);
  fs.rmSync(dir, { recursive: true, force: true });
  return us;
}

await writes(false); // warm-up
const rows: Array<[string, number]> = [];
for (let round = 0; round < 3; round++) {
  rows.push(['write, no fence', await writes(false)]);
  rows.push(['write + fence check', await writes(true)]);
}
rows.push(['fence check alone', await checks()]);
const mean = (label: string) => {
  const xs = rows.filter(([l]) => l === label).map(([, v]) => v);
  return xs.reduce((a, b) => a + b, 0) / xs.length;
};
const plain = mean('write, no fence');
const fencedMean = mean('write + fence check');
console.log(`| measure (${N} writes × 3 rounds, ${base}) | µs per write |`);
console.log('| --- | --- |');
console.log(`| auth write, no fence | ${plain.toFixed(0)} |`);
console.log(`| auth write + fence check | ${fencedMean.toFixed(0)} |`);
console.log(`| fence check alone (read of \`.worker-generation\`) | ${mean('fence check alone').toFixed(1)} |`);
console.log(
  JSON.stringify({
    writes: N,
    plainUs: plain,
    fencedUs: fencedMean,
    checkUs: mean('fence check alone'),
    addedPercent: ((fencedMean - plain) / plain) * 100,
  }),
);
