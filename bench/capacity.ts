/**
 * How many sessions this machine holds connected at once (process runner: one wa-worker process per session),
 * with memory per session (RSS and PSS — PSS shares the node binary's pages fairly between processes) and the
 * orchestrator's CPU while they idle. Prints a table and writes bench/results/capacity.json.
 *
 *   node --import tsx bench/capacity.ts [--sessions 200] [--concurrency 6] [--idle-seconds 30]
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Stack, sleep, waitFor } from '../test/helpers/stack.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '6' },
    'idle-seconds': { type: 'string', default: '30' },
  },
});
const target = Number(values.sessions);

function memoryOf(pid: number): { rssMb: number; pssMb: number } | null {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
    return { rssMb: kb('Rss') / 1024, pssMb: kb('Pss') / 1024 };
  } catch {
    return null;
  }
}

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime + stime, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const stack = await new Stack({
  proxies: Math.ceil(target / 4),
  watchdogIntervalMs: 60_000,
  pingTimeoutMs: 180_000,
  extraEnv: {
    // Production keep-alive cadence, so the idle measurement is realistic.
    WORKER_ENV_PRESENCE_INTERVAL_MS: '15000',
    WORKER_ENV_WA_KEEPALIVE_INTERVAL_MS: '30000',
    WORKER_ENV_LOG_LEVEL: 'warn',
  },
}).start();
const started = Date.now();
let connected = 0;
let failed = 0;
const errors: string[] = [];
try {
  let next = 0;
  const lane = async () => {
    while (next < target) {
      const i = next++;
      const id = `cap${i}`;
      const phone = `1555800${String(i).padStart(4, '0')}`;
      try {
        const r = await stack.call('POST', '/api/sessions/provision', { sessionId: id });
        if (r.status !== 201) throw new Error(`provision ${r.status} ${JSON.stringify(r.body)}`);
        await stack.scan(id, phone, 120_000);
        await stack.waitForStatus(id, 'connected', 120_000);
        connected++;
        if (connected % 20 === 0)
          console.log(`${connected} connected after ${((Date.now() - started) / 1000).toFixed(0)} s`);
      } catch (err) {
        failed++;
        errors.push(`${id}: ${(err as Error).message.slice(0, 200)}`);
        if (failed >= 10) throw new Error(`stopping: ${failed} sessions failed`, { cause: err });
      }
    }
  };
  await Promise.all(Array.from({ length: Number(values.concurrency) }, lane)).catch((err: Error) =>
    errors.push(err.message),
  );
  const rampSeconds = (Date.now() - started) / 1000;

  // Idle: every session connected, pings flowing; measure memory and the orchestrator's CPU.
  const runDir = stack.runDir();
  const pids = readdirSync(runDir).map(
    (f) => (JSON.parse(readFileSync(path.join(runDir, f), 'utf8')) as { pid: number }).pid,
  );
  const orchestratorPid = stack.orchestrator!.pid!;
  const apiPid = stack.api!.pid!;
  const cpu0 = { orch: cpuSeconds(orchestratorPid), api: cpuSeconds(apiPid) };
  const idle = Number(values['idle-seconds']);
  await sleep(idle * 1000);
  const cpu1 = { orch: cpuSeconds(orchestratorPid), api: cpuSeconds(apiPid) };
  const mems = pids.map(memoryOf).filter((m): m is { rssMb: number; pssMb: number } => m !== null);
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const stillConnected = (await stack.call('GET', '/api/v1/dashboard/stats')).body.sessions.byStatus
    .connected as number;
  const results = {
    machine: { cpus: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    at: new Date().toISOString(),
    target,
    connected,
    stillConnectedAfterIdle: stillConnected,
    failed,
    rampSeconds,
    workerProcesses: mems.length,
    workerRssMbAvg: avg(mems.map((m) => m.rssMb)),
    workerPssMbAvg: avg(mems.map((m) => m.pssMb)),
    workersPssTotalGb: mems.reduce((a, m) => a + m.pssMb, 0) / 1024,
    orchestratorCpuPercentIdle: ((cpu1.orch - cpu0.orch) / idle) * 100,
    apiCpuPercentIdle: ((cpu1.api - cpu0.api) / idle) * 100,
    orchestratorRssMb: memoryOf(orchestratorPid)?.rssMb,
    systemMemUsedGb: (os.totalmem() - os.freemem()) / 2 ** 30,
    errors: errors.slice(0, 10),
  };
  console.log('\n| measurement | value |\n|---|---|');
  console.log(
    `| sessions connected at once (target ${target}) | ${connected} (still connected after ${idle} s idle: ${stillConnected}) |`,
  );
  console.log(
    `| ramp-up time (provision + scan + connect, ${values.concurrency} at a time) | ${rampSeconds.toFixed(0)} s |`,
  );
  console.log(
    `| worker memory per session: RSS / PSS | ${results.workerRssMbAvg.toFixed(1)} MB / ${results.workerPssMbAvg.toFixed(1)} MB |`,
  );
  console.log(`| all workers together (PSS) | ${results.workersPssTotalGb.toFixed(2)} GB |`);
  console.log(`| orchestrator CPU while idle | ${results.orchestratorCpuPercentIdle.toFixed(1)} % of one core |`);
  console.log(`| API CPU while idle (webhooks: PINGs) | ${results.apiCpuPercentIdle.toFixed(1)} % of one core |`);
  console.log(`| system memory used | ${results.systemMemUsedGb.toFixed(1)} GB of ${results.machine.memGiB} GB |`);
  if (errors.length) console.log('errors:', errors.slice(0, 5));
  const out = path.join(path.dirname(new URL(import.meta.url).pathname), 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'capacity.json'), JSON.stringify(results, null, 2));
} finally {
  await waitFor('cleanup', async () => (await stack.stop(), true), 600_000, 1000).catch(() => undefined);
}
process.exit(0);
