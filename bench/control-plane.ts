/**
 * The control plane at scale, by simulation: N session workflows (default 10,000) on one machine with the real API,
 * orchestrator, Temporal dev server and Redis, the session workers being stand-ins (bench/standin/host.ts: the
 * wa-worker's own webhook, PING, login-gate, outbox and command loops, no WhatsApp behind them, a few hundred KB
 * each). Measures the provision rate, the watchdog's sweep time, API latency for status and send under a steady
 * load, and every process's CPU and memory. Temporal (in memory) and Redis are this bench's own, so their numbers
 * are the bench's alone. Prints a table and writes bench/results/control-plane.json.
 *
 *   node --import tsx bench/control-plane.ts [--sessions 10000] [--concurrency 24]
 *     [--steady-seconds 180] [--status-rate 50] [--send-rate 20]
 *
 * Each stand-in holds two long-polls open (outbox, commands) and its spool file: with `ulimit -n` descriptors per
 * process, the stand-ins are spread over several host processes and the API over several instances (as a load
 * balancer would), each session always on the same one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { API_KEY, eventsUrl, freePort, ROOT, Stack, waitFor } from '../test/helpers/stack.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '24' },
    'steady-seconds': { type: 'string', default: '180' },
    'status-rate': { type: 'string', default: '50' },
    'send-rate': { type: 'string', default: '20' },
    'scan-delay-ms': { type: 'string', default: '200' },
    'watchdog-interval-ms': { type: 'string', default: '60000' },
    /** Provisioning stops after this long; the steady state then runs with the sessions provisioned by then. */
    'provision-minutes': { type: 'string', default: '120' },
  },
});
const N = Number(values.sessions);
const CONCURRENCY = Number(values.concurrency);
const STEADY_S = Number(values['steady-seconds']);
const WATCHDOG_MS = Number(values['watchdog-interval-ms']);
const PER_PROXY = 4;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const summary = (xs: number[]) => ({
  n: xs.length,
  p50: pct(xs, 50),
  p95: pct(xs, 95),
  p99: pct(xs, 99),
  max: xs.length ? Math.max(...xs) : NaN,
});

// ---- processes and their resources ----
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}
function openFilesLimit(): number {
  return Number(/Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 1024);
}
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
const groupCpu = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
const groupRss = (pids: number[]) => pids.reduce((sum, pid) => sum + rssMb(pid), 0);
/** CPU % of one core per group of processes over a window. */
class CpuWindow {
  private readonly start: Record<string, number>;
  private readonly at = Date.now();
  constructor(private readonly groups: Record<string, number[]>) {
    this.start = Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, groupCpu(pids)]));
  }
  end(): Record<string, number> {
    const secs = (Date.now() - this.at) / 1000;
    return Object.fromEntries(
      Object.entries(this.groups).map(([k, pids]) => [k, ((groupCpu(pids) - this.start[k]!) / secs) * 100]),
    );
  }
}

async function startRedis(): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const dir = path.join(os.tmpdir(), `cp-redis-${port}`);
  mkdirSync(dir, { recursive: true });
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 100 });
  probe.on('error', () => undefined); // refused until it listens
  await waitFor('the bench Redis', () => probe.ping().then((r) => r === 'PONG'), 20_000, 100);
  probe.disconnect();
  return { child, url };
}

async function startTemporal(): Promise<{ child: ChildProcess; address: string }> {
  const port = await freePort();
  const bin = process.env.TEMPORAL_CLI_PATH ?? path.join(ROOT, 'data', 'tools', 'py', 'bin', 'temporal');
  const child = spawn(
    bin,
    [
      'server',
      'start-dev',
      '--headless',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--http-port',
      String(await freePort()),
      '--metrics-port',
      String(await freePort()),
      '--log-level',
      'error',
    ],
    { stdio: 'ignore' },
  );
  const address = `127.0.0.1:${port}`;
  await waitFor(
    'the bench Temporal dev server',
    () =>
      new Promise<boolean>((resolve) => {
        const p = spawn(bin, ['operator', 'cluster', 'health', '--address', address], { stdio: 'pipe' });
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('exit', () => resolve(/serving/i.test(out)));
      }),
    60_000,
    500,
  );
  return { child, address };
}

// ---- live events: when each session showed its QR and connected ----
async function watchEvents(apiUrl: string, qrAt: Map<string, number>, connectedAt: Map<string, number>) {
  const res = await fetch(await eventsUrl(apiUrl, API_KEY, 'types=qr,connected'));
  if (!res.ok || !res.body) throw new Error(`events stream: ${res.status}`);
  const decoder = new TextDecoder();
  let buf = '';
  void (async () => {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!data) continue;
        const e = JSON.parse(data) as { type?: string; sessionId?: string };
        if (!e.sessionId) continue;
        if (e.type === 'qr' && !qrAt.has(e.sessionId)) qrAt.set(e.sessionId, Date.now());
        if (e.type === 'connected' && !connectedAt.has(e.sessionId)) connectedAt.set(e.sessionId, Date.now());
      }
    }
  })().catch(() => undefined);
}

async function timed(fn: () => Promise<Response>): Promise<{ ms: number; status: number }> {
  const t0 = performance.now();
  const res = await fn();
  await res.arrayBuffer();
  return { ms: performance.now() - t0, status: res.status };
}

/** Calls `fn` at `rate` per second for `seconds` (open loop: a slow answer does not slow the next call). */
async function atRate(rate: number, seconds: number, fn: (i: number) => Promise<void>): Promise<void> {
  const inFlight: Promise<void>[] = [];
  const t0 = Date.now();
  for (let i = 0; Date.now() - t0 < seconds * 1000; i++) {
    inFlight.push(fn(i).catch(() => undefined));
    const due = t0 + ((i + 1) * 1000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  await Promise.all(inFlight);
}

async function main() {
  const redis = await startRedis();
  const temporal = await startTemporal();
  const children: ChildProcess[] = [redis.child, temporal.child];
  // Whatever ends this run, the services it started end with it.
  process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
  process.env.REDIS_URL = redis.url;
  process.env.TEMPORAL_ADDRESS = temporal.address;
  const proxies = Array.from(
    { length: Math.ceil(N / PER_PROXY) + 10 },
    // Never dialled (stand-ins connect nowhere): distinct endpoints only, so each holds PER_PROXY sessions.
    (_, i) => `socks5h://bench:pw@127.0.${Math.floor(i / 250) + 1}.${(i % 250) + 1}:1080`,
  );
  // One process may hold `ulimit -n` descriptors; a stand-in holds ~3 in its host and 2 in its API instance.
  const nofile = openFilesLimit();
  const hostsCount = Math.ceil((N * 3) / (nofile * 0.7));
  const apiCount = Math.ceil((N * 2.5) / (nofile * 0.7));
  const extraApiPorts = await Promise.all(Array.from({ length: apiCount - 1 }, () => freePort()));
  const stack = await new Stack({
    proxies: 1,
    orchestratorEnv: { LOG_LEVEL: 'info' },
    orchestratorEntry: 'bench/standin/orchestrator-main.ts',
    watchdogIntervalMs: WATCHDOG_MS,
    pingTimeoutMs: 180_000,
    extraEnv: {
      LOG_LEVEL: 'warn',
      PROXY_URLS: proxies.join(','),
      HOST_CAPACITY: String(N + 100),
      // The API's send rate limits are a deployment's choice; here they must not hide the latency measured.
      RATE_LIMIT_MAX_REQUESTS: '1000000',
      RATE_LIMIT_GLOBAL_MAX_REQUESTS: '1000000',
      STANDIN_SCAN_DELAY_MS: values['scan-delay-ms']!,
      STANDIN_HOSTS: String(hostsCount),
      STANDIN_API_PORTS: extraApiPorts.join(','),
      // Production worker timings, not the shrunk test ones (empty = the worker's default).
      WORKER_ENV_PRESENCE_INTERVAL_MS: '',
      WORKER_ENV_WA_KEEPALIVE_INTERVAL_MS: '',
      WORKER_ENV_RECONNECT_BASE_MS: '',
      WORKER_ENV_RECONNECT_MAX_MS: '',
      WORKER_ENV_WEBHOOK_RETRY_BASE_MS: '',
      WORKER_ENV_WEBHOOK_RETRY_MAX_MS: '',
      WORKER_ENV_OUTBOX_POLL_MS: '',
    },
  }).start();

  const extraApis = extraApiPorts.map((port) =>
    spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'api', 'main.ts')], {
      cwd: ROOT,
      env: { ...stack.env, API_PORT: String(port) },
      stdio: 'ignore',
    }),
  );
  children.push(...extraApis, stack.api!, stack.orchestrator!);
  for (const port of extraApiPorts) {
    await waitFor(
      `API instance on ${port}`,
      () =>
        fetch(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.ok,
          () => false,
        ),
      60_000,
      200,
    );
  }
  const orchestratorPid = stack.orchestrator!.pid!;
  const standinPids = await waitFor(
    'the stand-in hosts',
    () => (childrenOf(orchestratorPid).length >= hostsCount ? childrenOf(orchestratorPid) : null),
    30_000,
  );
  const pids: Record<string, number[]> = {
    api: [stack.api!.pid!, ...extraApis.map((c) => c.pid!)],
    orchestrator: [orchestratorPid],
    standins: standinPids,
    temporal: [temporal.child.pid!],
    redis: [redis.child.pid!],
  };
  console.log(`${apiCount} API instance(s), ${hostsCount} stand-in host(s) (open files limit ${nofile})`);

  const qrAt = new Map<string, number>();
  const connectedAt = new Map<string, number>();
  await watchEvents(stack.apiUrl, qrAt, connectedAt);

  // ---- provision N at CONCURRENCY in flight ----
  const ids = Array.from({ length: N }, (_, i) => `sb${String(i).padStart(5, '0')}`);
  const sentAt = new Map<string, number>();
  const provisionMs: number[] = [];
  const errors: string[] = [];
  let failed = 0;
  const provisionDeadline = Date.now() + Number(values['provision-minutes']) * 60_000;
  const provisionCpu = new CpuWindow(pids);
  const t0 = Date.now();
  let nextIdx = 0;
  const progress = setInterval(() => {
    const s = (Date.now() - t0) / 1000;
    console.log(
      `  ${s.toFixed(0)} s: ${sentAt.size} provisioned, ${qrAt.size} QR, ${connectedAt.size} connected` +
        ` (${(connectedAt.size / s).toFixed(1)}/s), api ${groupRss(pids.api!).toFixed(0)} MB,` +
        ` temporal ${groupRss(pids.temporal!).toFixed(0)} MB, load ${os.loadavg()[0]!.toFixed(1)}`,
    );
  }, 30_000);
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (;;) {
        const id = ids[nextIdx++];
        if (!id || Date.now() > provisionDeadline) return;
        sentAt.set(id, Date.now());
        const r = await timed(() =>
          fetch(`${stack.apiUrl}/api/sessions/provision`, {
            method: 'POST',
            headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
            body: JSON.stringify({ sessionId: id }),
          }),
        ).catch((err: unknown) => ({ ms: NaN, status: 0, err: String(err) }));
        if (r.status === 201) provisionMs.push(r.ms);
        else if (++failed <= 20) errors.push(`${id}: ${r.status}`);
      }
    }),
  );
  const provisionedIn = (Date.now() - t0) / 1000;
  const provisioned = provisionMs.length;
  await waitFor(`${provisioned} sessions connected`, () => connectedAt.size >= provisioned, 30 * 60_000, 1000);
  clearInterval(progress);
  const connectedIn = (Date.now() - t0) / 1000;
  const provisionCpuPct = provisionCpu.end();
  const toConnected = ids.filter((id) => connectedAt.has(id)).map((id) => connectedAt.get(id)! - sentAt.get(id)!);
  console.log(`all ${connectedAt.size} connected in ${connectedIn.toFixed(0)} s; steady state for ${STEADY_S} s`);

  // ---- steady state: idle CPU first, then status and send load ----
  const idleCpu = new CpuWindow(pids);
  await sleep(Math.min(60, STEADY_S / 3) * 1000);
  const idleCpuPct = idleCpu.end();

  const statusMs: number[] = [];
  const sendMs: number[] = [];
  const loadErrors: Record<string, number> = {};
  const loadCpu = new CpuWindow(pids);
  const loadSeconds = STEADY_S - Math.min(60, STEADY_S / 3);
  const live = [...connectedAt.keys()];
  const pick = () => live[Math.floor(Math.random() * live.length)]!;
  await Promise.all([
    atRate(Number(values['status-rate']), loadSeconds, async () => {
      const r = await timed(() =>
        fetch(`${stack.apiUrl}/api/sessions/${pick()}/status`, { headers: { 'x-api-key': API_KEY } }),
      );
      if (r.status === 200) statusMs.push(r.ms);
      else loadErrors[`status ${r.status}`] = (loadErrors[`status ${r.status}`] ?? 0) + 1;
    }),
    atRate(Number(values['send-rate']), loadSeconds, async (i) => {
      const r = await timed(() =>
        fetch(`${stack.apiUrl}/api/send`, {
          method: 'POST',
          headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
          body: JSON.stringify({ sessionId: pick(), to: `4915${String(1_000_000 + i)}`, text: `bench ${i}` }),
        }),
      );
      if (r.status === 202 || r.status === 201 || r.status === 200) sendMs.push(r.ms);
      else loadErrors[`send ${r.status}`] = (loadErrors[`send ${r.status}`] ?? 0) + 1;
    }),
  ]);
  const loadCpuPct = loadCpu.end();

  // ---- the watchdog's sweeps: scheduled → completed of each signalStaleSessions ----
  const watchdogId = `e2e-${stack.id}:watchdog:${stack.taskQueue}`;
  const sweepMs: number[] = [];
  const scheduledAt = new Map<string, number>();
  const history = await stack.temporal.workflow.getHandle(watchdogId).fetchHistory();
  for (const e of history.events ?? []) {
    const at = Number(String(e.eventTime?.seconds ?? 0)) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
    if (e.activityTaskScheduledEventAttributes) scheduledAt.set(String(e.eventId), at);
    const done = e.activityTaskCompletedEventAttributes;
    if (done) sweepMs.push(at - (scheduledAt.get(String(done.scheduledEventId)) ?? at));
  }

  const redisInfo = await stack.redis.info('memory');
  const redisMemMb = Number(/used_memory:(\d+)/.exec(redisInfo)?.[1] ?? 0) / 1024 / 1024;
  const memoryMb = Object.fromEntries(Object.entries(pids).map(([k, group]) => [k, groupRss(group)]));

  const result = {
    machine: { cpus: os.cpus().length, memGiB: Math.round(os.totalmem() / 1024 ** 3), node: process.version },
    at: new Date().toISOString(),
    loadAverageAtStart: os.loadavg(),
    sessions: N,
    concurrency: CONCURRENCY,
    apiInstances: apiCount,
    standinHosts: hostsCount,
    provisioned,
    failedProvisions: failed,
    connected: connectedAt.size,
    errors,
    provisionSeconds: provisionedIn,
    allConnectedSeconds: connectedIn,
    provisionsPerSecond: provisionMs.length / provisionedIn,
    provisionApiMs: summary(provisionMs),
    provisionToConnectedMs: summary(toConnected),
    watchdogIntervalMs: WATCHDOG_MS,
    watchdogSweepMs: summary(sweepMs),
    steadySeconds: STEADY_S,
    statusMs: summary(statusMs),
    sendMs: summary(sendMs),
    loadErrors,
    cpuPercent: { provisioning: provisionCpuPct, idle: idleCpuPct, underLoad: loadCpuPct },
    memoryMb: { ...memoryMb, redisUsedMemory: redisMemMb },
  };
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench', 'results', 'control-plane.json'), JSON.stringify(result, null, 2));

  const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '—');
  const lat = (s: ReturnType<typeof summary>) =>
    `p50 ${f(s.p50)} / p95 ${f(s.p95)} / p99 ${f(s.p99)} / max ${f(s.max)} ms (${s.n})`;
  console.log(`\ncontrol plane, ${provisioned} stand-in sessions (${os.cpus().length} CPUs, Node ${process.version})`);
  console.table({
    'provisioned (API 201)': {
      value: `${provisionMs.length} in ${f(provisionedIn)} s = ${f(result.provisionsPerSecond, 1)}/s`,
    },
    'all connected': { value: `${connectedAt.size} after ${f(connectedIn)} s` },
    'provision API call': { value: lat(result.provisionApiMs) },
    'provision → connected': { value: lat(result.provisionToConnectedMs) },
    'watchdog sweep': { value: lat(result.watchdogSweepMs) },
    [`status GET at ${values['status-rate']}/s`]: { value: lat(result.statusMs) },
    [`send POST at ${values['send-rate']}/s`]: { value: lat(result.sendMs) },
  });
  const rows: Record<string, Record<string, string>> = {};
  for (const k of Object.keys(pids)) {
    rows[k] = {
      'CPU % provisioning': f(provisionCpuPct[k]!, 1),
      'CPU % idle': f(idleCpuPct[k]!, 1),
      'CPU % under load': f(loadCpuPct[k]!, 1),
      'RSS MB': f(memoryMb[k]!),
    };
  }
  console.table(rows);
  console.log(`redis used_memory ${f(redisMemMb)} MB; load errors ${JSON.stringify(loadErrors)}`);

  await stack.killApi('SIGKILL');
  for (const c of extraApis) c.kill('SIGKILL');
  await stack.killOrchestrator('SIGKILL');
  for (const pid of standinPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone with the orchestrator */
    }
  }
  temporal.child.kill('SIGKILL');
  redis.child.kill('SIGKILL');
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
