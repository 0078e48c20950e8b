/**
 * Session lifecycle benchmark on the real stack (Temporal dev server, Redis, real wa-worker with Baileys,
 * simulator, SOCKS5 proxies): provision→QR and scan→connected latency (process and Docker runners), failover
 * time, and Temporal history events per connected session-hour. Prints a table and writes
 * bench/results/lifecycle.json.
 *
 *   node --import tsx bench/lifecycle.ts [--sessions 10] [--docker-sessions 5] [--failovers 3] [--idle-seconds 60]
 *     [--scan-delay-ms 2000]
 *
 * WORKER_COMMAND (JSON array) in the environment runs the workers with another command, e.g. other Node flags.
 *
 * --scan-delay-ms: how long after its QR shows each phone scans it. A person needs seconds to point a phone at a QR;
 * the worker stores the first login's pre-keys in that time. 0 scans the instant the QR is readable.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Stack, sleep, waitFor } from '../test/helpers/stack.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '10' },
    'docker-sessions': { type: 'string', default: '5' },
    failovers: { type: 'string', default: '3' },
    'idle-seconds': { type: 'string', default: '60' },
    'scan-delay-ms': { type: 'string', default: '2000' },
  },
});

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};
const scanDelayMs = Number(values['scan-delay-ms']);
const workerCommand: Record<string, string> = process.env.WORKER_COMMAND
  ? { WORKER_COMMAND: process.env.WORKER_COMMAND }
  : {};
const summary = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p95: pct(xs, 95), max: Math.max(...xs) });

async function timeToQr(stack: Stack, sessionId: string): Promise<{ qr: string; ms: number }> {
  const t0 = performance.now();
  const r = await stack.call('POST', '/api/sessions/provision', { sessionId });
  if (r.status !== 201) throw new Error(`provision ${sessionId}: ${r.status} ${JSON.stringify(r.body)}`);
  const qr = await waitFor(
    'QR',
    async () => {
      const q = await stack.call('GET', `/api/sessions/${sessionId}/qr`);
      return q.status === 200 ? (q.body.qr as string) : null;
    },
    60_000,
    10,
  );
  return { qr, ms: performance.now() - t0 };
}

async function scanToConnected(stack: Stack, sessionId: string, qr: string, phone: string): Promise<number> {
  const t0 = performance.now();
  await stack.sim.scan(qr, phone);
  await waitFor('connected', async () => (await stack.status(sessionId)).status === 'connected', 60_000, 10);
  return performance.now() - t0;
}

async function lifecycleRun(runner: 'process' | 'docker', sessions: number) {
  const stack = await new Stack({
    proxies: Math.ceil(sessions / 4) + 2,
    runner,
    extraEnv: { DOCKER_NETWORK: 'host', ...workerCommand },
  }).start();
  const qrMs: number[] = [];
  const connectMs: number[] = [];
  try {
    for (let i = 0; i < sessions; i++) {
      const id = `b${runner[0]}${stack.id}${i}`;
      const { qr, ms } = await timeToQr(stack, id);
      qrMs.push(ms);
      await sleep(scanDelayMs);
      connectMs.push(await scanToConnected(stack, id, qr, `1555700${String(i).padStart(4, '0')}`));
    }
  } finally {
    await stack.stop();
  }
  return { provisionToQr: summary(qrMs), scanToConnected: summary(connectMs) };
}

async function failoverRun(count: number) {
  const stack = await new Stack({ proxies: count + 2, extraEnv: workerCommand }).start();
  const times: number[] = [];
  try {
    const id = `bf${stack.id}`;
    const phone = '15557009999';
    const { qr } = await timeToQr(stack, id);
    await scanToConnected(stack, id, qr, phone);
    for (let i = 0; i < count; i++) {
      const before = await stack.status(id);
      const proxy = stack.proxies.find((p) => `${p.host}:${p.port}` === before.proxy)!;
      const t0 = performance.now();
      await proxy.close();
      await waitFor(
        'failover',
        async () => {
          const s = await stack.status(id);
          return s.status === 'connected' && s.proxy !== before.proxy;
        },
        60_000,
        10,
      );
      times.push(performance.now() - t0);
    }
  } finally {
    await stack.stop();
  }
  return summary(times);
}

/** History events a connected, healthy session adds while idle (PINGs flowing, watchdog sweeping). */
async function historyRun(idleSeconds: number) {
  const stack = await new Stack({ proxies: 2, watchdogIntervalMs: 1000, pingTimeoutMs: 6000 }).start();
  try {
    const id = `bh${stack.id}`;
    const { qr } = await timeToQr(stack, id);
    await scanToConnected(stack, id, qr, '15557008888');
    await sleep(1000);
    const handle = stack.temporal.workflow.getHandle(`e2e-${stack.id}:session:${id}`);
    const watchdog = stack.temporal.workflow.getHandle(`e2e-${stack.id}:watchdog:${stack.taskQueue}`);
    const before = (await handle.describe()).historyLength;
    const wdBefore = (await watchdog.describe()).historyLength;
    const pingsBefore = Number(await stack.redis.hget(`${stack.prefix}session:${id}`, 'lastPing'));
    await sleep(idleSeconds * 1000);
    const after = (await handle.describe()).historyLength;
    const wdAfter = (await watchdog.describe()).historyLength;
    const pingsAfter = Number(await stack.redis.hget(`${stack.prefix}session:${id}`, 'lastPing'));
    const perHour = ((after - before) * 3600) / idleSeconds;
    return {
      idleSeconds,
      sessionEventsAdded: after - before,
      sessionEventsPerHour: perHour,
      pingsFlowing: pingsAfter > pingsBefore,
      watchdogEventsPerHourAt1sInterval: ((wdAfter - wdBefore) * 3600) / idleSeconds,
      watchdogEventsPerHourAt60sInterval: ((wdAfter - wdBefore) * 3600) / idleSeconds / 60,
    };
  } finally {
    await stack.stop();
  }
}

const results = {
  machine: {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
  },
  at: new Date().toISOString(),
  scanDelayMs,
  workerCommand: process.env.WORKER_COMMAND ?? null,
  process: await lifecycleRun('process', Number(values.sessions)),
  docker:
    Number(values['docker-sessions']) > 0 ? await lifecycleRun('docker', Number(values['docker-sessions'])) : null,
  failover: await failoverRun(Number(values.failovers)),
  history: await historyRun(Number(values['idle-seconds'])),
};

const f = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '—');
console.log(`\nscans ${scanDelayMs} ms after the QR shows`);
console.log('\n| measurement | n | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|');
for (const [label, s] of [
  ['provision → QR (process runner)', results.process.provisionToQr],
  ['scan → connected (process runner)', results.process.scanToConnected],
  ['provision → QR (Docker runner)', results.docker?.provisionToQr],
  ['scan → connected (Docker runner)', results.docker?.scanToConnected],
  ['failover: proxy killed → connected on new proxy', results.failover],
] as const) {
  if (s) console.log(`| ${label} | ${s.n} | ${f(s.p50)} | ${f(s.p95)} | ${f(s.max)} |`);
}
console.log(
  `\nhistory: ${results.history.sessionEventsAdded} session-workflow events in ${results.history.idleSeconds} s connected ` +
    `(${results.history.sessionEventsPerHour.toFixed(1)} per session-hour; pings flowing: ${results.history.pingsFlowing}); ` +
    `shared watchdog: ${results.history.watchdogEventsPerHourAt60sInterval.toFixed(0)} events/hour at the default 60 s interval, for all sessions together`,
);
const out = path.join(path.dirname(new URL(import.meta.url).pathname), 'results');
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, 'lifecycle.json'), JSON.stringify(results, null, 2));
process.exit(0);
