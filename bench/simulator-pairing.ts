/**
 * Full pairing round trips against the simulator with the real Baileys client:
 * connect → QR → scan → pair-success → 515 → reconnect → login → open, N times, direct and through SOCKS5.
 *
 *   node --import tsx bench/simulator-pairing.ts [iterations=20]
 *
 * Prints p50/p95/max per phase and writes bench/results/simulator-pairing.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SocksProxyAgent } from 'socks-proxy-agent';
import { Socks5Proxy, WhatsAppSimulator } from '../simulator/index.js';
import { makeAuthDir, TestClient } from '../test/helpers/baileys-client.js';

const iterations = Number(process.argv[2] ?? process.env.BENCH_ITERATIONS ?? 20);
if (!Number.isInteger(iterations) || iterations < 1) throw new Error('iterations must be a positive integer');

const PHASES = ['connectToQr', 'scanToRestart', 'loginToOpen', 'total'] as const;
type Phase = (typeof PHASES)[number];
type Sample = Record<Phase, number>;

const authDirs: Array<Awaited<ReturnType<typeof makeAuthDir>>> = [];

async function pairOnce(sim: WhatsAppSimulator, phone: string, proxy: Socks5Proxy | null): Promise<Sample> {
  const auth = await makeAuthDir('wa-sim-bench-');
  authDirs.push(auth); // removed at the end: Baileys may still be saving creds right after end()
  const agent = (): SocksProxyAgent | undefined => (proxy ? new SocksProxyAgent(proxy.url) : undefined);
  const t0 = performance.now();
  const registering = await TestClient.connect({ url: sim.url, authDir: auth.dir, agent: agent() });
  const qr = await registering.waitForQr();
  const t1 = performance.now();
  await sim.scan(qr, phone);
  const restart = await registering.waitForClose();
  if (restart.statusCode !== 515) throw new Error(`expected 515, got ${restart.statusCode}`);
  registering.end();
  const t2 = performance.now();
  const client = await TestClient.connect({ url: sim.url, authDir: auth.dir, agent: agent() });
  await client.waitForOpen();
  const t3 = performance.now();
  client.end();
  return { connectToQr: t1 - t0, scanToRestart: t2 - t1, loginToOpen: t3 - t2, total: t3 - t0 };
}

function percentile(sorted: number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? Number.NaN;
}

function summarise(samples: Sample[]): Record<Phase, { p50: number; p95: number; max: number }> {
  const out = {} as Record<Phase, { p50: number; p95: number; max: number }>;
  for (const phase of PHASES) {
    const sorted = samples.map((s) => s[phase]).sort((a, b) => a - b);
    const round = (n: number): number => Math.round(n * 10) / 10;
    out[phase] = {
      p50: round(percentile(sorted, 50)),
      p95: round(percentile(sorted, 95)),
      max: round(sorted.at(-1) ?? Number.NaN),
    };
  }
  return out;
}

const sim = await WhatsAppSimulator.start();
const proxy = await Socks5Proxy.start({ username: 'bench', password: 'bench-secret', bindAddress: '127.0.0.2' });
const results: Record<string, ReturnType<typeof summarise>> = {};
try {
  // one untimed warm-up: module loading and JIT would otherwise dominate the first sample
  await pairOnce(sim, '15551000000', null);
  for (const [mode, via] of [
    ['direct', null],
    ['socks5', proxy],
  ] as const) {
    const samples: Sample[] = [];
    for (let i = 0; i < iterations; i++) {
      samples.push(await pairOnce(sim, `1555${mode === 'direct' ? 2 : 3}${String(i).padStart(6, '0')}`, via));
    }
    results[mode] = summarise(samples);
  }
} finally {
  await proxy.close();
  await sim.close();
  await Promise.all(authDirs.map((dir) => dir.remove()));
}

const rows: string[] = [];
rows.push(`pairing round trip, ${iterations} iterations per mode (ms)`);
rows.push(`${'mode'.padEnd(8)} ${'phase'.padEnd(14)} ${'p50'.padStart(8)} ${'p95'.padStart(8)} ${'max'.padStart(8)}`);
for (const [mode, summary] of Object.entries(results)) {
  for (const phase of PHASES) {
    const { p50, p95, max } = summary[phase];
    rows.push(
      `${mode.padEnd(8)} ${phase.padEnd(14)} ${p50.toFixed(1).padStart(8)} ${p95.toFixed(1).padStart(8)} ${max.toFixed(1).padStart(8)}`,
    );
  }
}
console.log(rows.join('\n'));

const outFile = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'simulator-pairing.json');
await mkdir(path.dirname(outFile), { recursive: true });
await writeFile(
  outFile,
  `${JSON.stringify(
    {
      benchmark: 'simulator-pairing',
      description: 'connect → QR → scan → 515 → login → open with real Baileys against the simulator',
      iterations,
      unit: 'ms',
      at: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      results,
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${path.relative(process.cwd(), outFile)}`);
