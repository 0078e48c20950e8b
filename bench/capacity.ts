/**
 * How many sessions this machine holds connected at once (process runner: one wa-worker process per session),
 * with memory per session (RSS and PSS — PSS shares the node binary's pages fairly between processes) and the
 * orchestrator's CPU while they idle. Prints a table and writes bench/results/capacity.json.
 *
 *   node --import tsx bench/capacity.ts [--sessions 200] [--concurrency 6] [--idle-seconds 30] [--phased] [--out capacity.json]
 *     [--worker-flags "--v8-flag …"] [--worker-env "NAME=value …"]
 *
 * `--phased`: the ramp in two timed phases, every session provisioned to its QR first, then every QR scanned to
 * connected (the goal's "200 provisions to QR" and "200 scans to connected"), instead of one lane per session.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { defaultWorkerCommand } from '../orchestrator/orchestrator.js';
import { Stack, sleep, waitFor } from '../test/helpers/stack.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '6' },
    'idle-seconds': { type: 'string', default: '30' },
    /** Then a host reboot: kill -9 every worker and the orchestrator, start it again, time the way back. */
    'fleet-restart': { type: 'boolean', default: false },
    'max-logins': { type: 'string', default: '10' },
    /** Extra Node/V8 flags for every worker, e.g. "--optimize-for-size" (memory levers). */
    'worker-flags': { type: 'string', default: '' },
    /** Extra environment for every worker, e.g. "MALLOC_ARENA_MAX=2 UV_THREADPOOL_SIZE=2" (memory levers). */
    'worker-env': { type: 'string', default: '' },
    phased: { type: 'boolean', default: false },
    /** Results file name under bench/results/. */
    out: { type: 'string', default: 'capacity.json' },
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

/** A host reboot: every worker and the orchestrator die at once; measures the way back (no QR, paced logins). */
async function fleetRestart(pids: number[]) {
  const phones = [...new Set(stack.sim.connections().flatMap((c) => (c.kind === 'login' && c.phone ? [c.phone] : [])))];
  let qrsShown = 0;
  stack.sim.events.on('qr-shown', () => qrsShown++);
  await stack.killOrchestrator('SIGKILL');
  for (const pid of pids) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  const rebootAt = Date.now();
  stack.sim.resetLoginConcurrency();
  await stack.startOrchestrator(600_000);
  const orchestratorReadySeconds = (Date.now() - rebootAt) / 1000;
  const relogged = () =>
    phones.filter((p) => stack.sim.connections(p).some((c) => c.kind === 'login' && c.at >= rebootAt)).length;
  let allLoggedInSeconds: number | null = null;
  try {
    await waitFor('every phone to log in again', () => relogged() === phones.length, 600_000, 250);
    allLoggedInSeconds = (Date.now() - rebootAt) / 1000;
  } catch {
    /* reported as not all */
  }
  const loads = (await stack.call('GET', '/api/v1/proxies')).body.proxies as Array<{ load: number }>;
  return {
    workersKilled: pids.length,
    orchestratorReadySeconds,
    phones: phones.length,
    relogged: relogged(),
    allLoggedInSeconds,
    maxLoginsInFlight: stack.sim.loginConcurrency().max,
    qrsShown,
    slotsInUse: loads.reduce((a, p) => a + p.load, 0),
  };
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
    MAX_CONCURRENT_LOGINS: String(values['max-logins']),
    ...Object.fromEntries(
      values['worker-env']
        .split(' ')
        .filter(Boolean)
        .map((kv) => [`WORKER_ENV_${kv.slice(0, kv.indexOf('='))}`, kv.slice(kv.indexOf('=') + 1)]),
    ),
    ...(values['worker-flags']
      ? {
          WORKER_COMMAND: JSON.stringify(
            ((cmd) => [cmd[0], ...values['worker-flags']!.split(' ').filter(Boolean), ...cmd.slice(1)])(
              defaultWorkerCommand(),
            ),
          ),
        }
      : {}),
  },
}).start();
const started = Date.now();
let connected = 0;
let failed = 0;
const errors: string[] = [];
const idOf = (i: number) => `cap${i}`;
const phoneOf = (i: number) => `1555800${String(i).padStart(4, '0')}`;
/** Runs `step` for sessions 0..target-1, `--concurrency` at a time; a failed session is counted, ten stop the run. */
async function inLanes(step: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < target) {
      const i = next++;
      try {
        await step(i);
      } catch (err) {
        failed++;
        errors.push(`${idOf(i)}: ${(err as Error).message.slice(0, 200)}`);
        if (failed >= 10) throw new Error(`stopping: ${failed} sessions failed`, { cause: err });
      }
    }
  };
  await Promise.all(Array.from({ length: Number(values.concurrency) }, lane)).catch((err: Error) =>
    errors.push(err.message),
  );
}
const provision = async (i: number) => {
  const r = await stack.call('POST', '/api/sessions/provision', { sessionId: idOf(i) });
  if (r.status !== 201) throw new Error(`provision ${r.status} ${JSON.stringify(r.body)}`);
};
const scanToConnected = async (i: number) => {
  await stack.scan(idOf(i), phoneOf(i), 120_000);
  await stack.waitForStatus(idOf(i), 'connected', 120_000);
  connected++;
  if (connected % 20 === 0) console.log(`${connected} connected after ${((Date.now() - started) / 1000).toFixed(0)} s`);
};
/** Seconds of each phase of a `--phased` ramp. */
const phases = { toQrSeconds: null as number | null, scanToConnectedSeconds: null as number | null };
try {
  if (values.phased) {
    let withQr = 0;
    await inLanes(async (i) => {
      await provision(i);
      await waitFor(
        `a QR for ${idOf(i)}`,
        async () => (await stack.call('GET', `/api/sessions/${idOf(i)}/qr`)).status === 200,
        120_000,
        100,
      );
      if (++withQr % 20 === 0) console.log(`${withQr} with a QR after ${((Date.now() - started) / 1000).toFixed(0)} s`);
    });
    phases.toQrSeconds = (Date.now() - started) / 1000;
    const scanStart = Date.now();
    await inLanes(scanToConnected);
    phases.scanToConnectedSeconds = (Date.now() - scanStart) / 1000;
  } else
    await inLanes(async (i) => {
      await provision(i);
      await scanToConnected(i);
    });
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
    workerFlags: values['worker-flags'],
    workerEnv: values['worker-env'],
    at: new Date().toISOString(),
    target,
    connected,
    stillConnectedAfterIdle: stillConnected,
    failed,
    rampSeconds,
    phases,
    workerProcesses: mems.length,
    workerRssMbAvg: avg(mems.map((m) => m.rssMb)),
    workerPssMbAvg: avg(mems.map((m) => m.pssMb)),
    workersPssTotalGb: mems.reduce((a, m) => a + m.pssMb, 0) / 1024,
    orchestratorCpuPercentIdle: ((cpu1.orch - cpu0.orch) / idle) * 100,
    apiCpuPercentIdle: ((cpu1.api - cpu0.api) / idle) * 100,
    apiCpuPercentPer100Sessions: ((cpu1.api - cpu0.api) / idle) * 100 * (100 / Math.max(1, connected)),
    orchestratorRssMb: memoryOf(orchestratorPid)?.rssMb,
    systemMemUsedGb: (os.totalmem() - os.freemem()) / 2 ** 30,
    errors: errors.slice(0, 10),
    fleetRestart: null as Awaited<ReturnType<typeof fleetRestart>> | null,
  };
  const out = path.join(path.dirname(new URL(import.meta.url).pathname), 'results');
  mkdirSync(out, { recursive: true });
  const write = () => writeFileSync(path.join(out, values.out), JSON.stringify(results, null, 2));
  write(); // the idle results stand even if the fleet restart below fails
  console.log('\n| measurement | value |\n|---|---|');
  console.log(
    `| sessions connected at once (target ${target}) | ${connected} (still connected after ${idle} s idle: ${stillConnected}) |`,
  );
  console.log(
    `| ramp-up time (provision + scan + connect, ${values.concurrency} at a time) | ${rampSeconds.toFixed(0)} s |`,
  );
  if (phases.toQrSeconds !== null)
    console.log(
      `| ramp in phases: all ${target} provisioned to a QR / all scanned to connected (goal ≤ 120 s each for 200) | ${phases.toQrSeconds.toFixed(0)} s / ${phases.scanToConnectedSeconds?.toFixed(0) ?? '—'} s |`,
    );
  console.log(
    `| worker memory per session: RSS / PSS | ${results.workerRssMbAvg.toFixed(1)} MB / ${results.workerPssMbAvg.toFixed(1)} MB |`,
  );
  console.log(`| all workers together (PSS) | ${results.workersPssTotalGb.toFixed(2)} GB |`);
  console.log(`| orchestrator CPU while idle | ${results.orchestratorCpuPercentIdle.toFixed(1)} % of one core |`);
  console.log(
    `| API CPU while idle (PINGs, waiting claims) | ${results.apiCpuPercentIdle.toFixed(1)} % of one core (${results.apiCpuPercentPer100Sessions.toFixed(1)} % per 100 sessions; goal ≤ 2 %) |`,
  );
  console.log(`| system memory used | ${results.systemMemUsedGb.toFixed(1)} GB of ${results.machine.memGiB} GB |`);
  if (values['fleet-restart']) {
    const f = (results.fleetRestart = await fleetRestart(pids));
    write();
    console.log(
      `| fleet restart (kill -9 of ${f.workersKilled} workers + orchestrator): all logged in again | ${f.allLoggedInSeconds?.toFixed(1) ?? 'not all'} s (goal ≤ 120 s for 200); orchestrator ready after ${f.orchestratorReadySeconds.toFixed(1)} s |`,
    );
    console.log(`| logins in flight at most (limit ${values['max-logins']}) | ${f.maxLoginsInFlight} |`);
    console.log(
      `| QRs shown / proxy slots in use afterwards | ${f.qrsShown} / ${f.slotsInUse} (sessions ${connected}) |`,
    );
  }
  if (errors.length) console.log('errors:', errors.slice(0, 5));
} finally {
  await waitFor('cleanup', async () => (await stack.stop(), true), 600_000, 1000).catch(() => undefined);
}
process.exit(0);
