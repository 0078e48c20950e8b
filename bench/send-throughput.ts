/**
 * Gateway throughput: accepted `POST /api/send` requests per second and p50/p99 latency, with an
 * idempotency key on every request, against a real stack (API + orchestrator processes, Temporal, Redis, one
 * connected simulator session). A small concurrent fetch loop keeps N requests in flight for a fixed time.
 *
 *   node --import tsx bench/send-throughput.ts [seconds=10] [concurrency=1,8,32,64]
 *
 * Prints a table and writes bench/results/send-throughput.json. Rate limits are raised for the run (the point is
 * the gateway's own cost: validation, auth, one Lua script, the coalesced dispatcher wake-up).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { API_KEY, ROOT, Stack } from '../test/helpers/stack.js';
import { connectedSession, terminateDispatchers } from '../test/helpers/messaging.js';

const seconds = Number(process.argv[2] ?? 10);
const levels = (process.argv[3] ?? '1,8,32,64').split(',').map(Number);

interface Row {
  concurrency: number;
  mode: 'new key' | 'replayed key';
  requests: number;
  accepted: number;
  other: Record<string, number>;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;

async function run(stack: Stack, sessionId: string, concurrency: number, mode: Row['mode']): Promise<Row> {
  const latencies: number[] = [];
  const other: Record<string, number> = {};
  let accepted = 0;
  let seq = 0;
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  const worker = async (w: number) => {
    while (performance.now() < deadline) {
      const n = seq++;
      const key = mode === 'new key' ? `bench-${stack.id}-${concurrency}-${w}-${n}` : `bench-${stack.id}-replay`;
      const body = JSON.stringify({
        sessionId,
        to: '15552220001',
        text: mode === 'new key' ? `bench ${n}` : 'bench replay',
        idempotencyKey: key,
      });
      const s = performance.now();
      const res = await fetch(`${stack.apiUrl}/api/send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': API_KEY },
        body,
      });
      await res.arrayBuffer();
      latencies.push(performance.now() - s);
      if (res.status === 202) accepted++;
      else other[res.status] = (other[res.status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const r1 = (x: number) => Math.round(x * 100) / 100;
  return {
    concurrency,
    mode,
    requests: latencies.length,
    accepted,
    other,
    perSecond: Math.round(accepted / elapsed),
    p50Ms: r1(pct(latencies, 50)),
    p99Ms: r1(pct(latencies, 99)),
    maxMs: r1(latencies.at(-1) ?? 0),
  };
}

const stack = await new Stack({
  proxies: 1,
  extraEnv: {
    RATE_LIMIT_MAX_REQUESTS: '100000000',
    RATE_LIMIT_GLOBAL_MAX_REQUESTS: '100000000',
    ANTIBAN_BURST_COUNT: '100000000',
  },
}).start();
const rows: Row[] = [];
try {
  await connectedSession(stack, 'bench1', '15550005001');
  await run(stack, 'bench1', 4, 'new key'); // warm-up (JIT, connections)
  for (const c of levels) rows.push(await run(stack, 'bench1', c, 'new key'));
  rows.push(await run(stack, 'bench1', Math.max(...levels), 'replayed key'));
} finally {
  await terminateDispatchers(stack, ['bench1']);
  await stack.stop();
}

console.log(`\nPOST /api/send, ${seconds} s per row, idempotency key on every request (${os.cpus().length} CPUs)`);
console.log('concurrency  mode           requests  accepted/s   p50 ms   p99 ms   max ms  non-202');
for (const r of rows) {
  console.log(
    `${String(r.concurrency).padStart(11)}  ${r.mode.padEnd(13)} ${String(r.requests).padStart(9)} ${String(r.perSecond).padStart(11)} ${r.p50Ms.toFixed(2).padStart(8)} ${r.p99Ms.toFixed(2).padStart(8)} ${r.maxMs.toFixed(2).padStart(8)}  ${JSON.stringify(r.other)}`,
  );
}
const out = path.join(ROOT, 'bench', 'results', 'send-throughput.json');
await mkdir(path.dirname(out), { recursive: true });
await writeFile(
  out,
  JSON.stringify(
    { at: new Date().toISOString(), seconds, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, rows },
    null,
    2,
  ),
);
console.log(`\nwritten ${path.relative(ROOT, out)}`);
process.exit(0);
