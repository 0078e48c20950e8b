import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { proxyFingerprint } from '../../common/proxy-id.js';
import { proxyEndpoint } from '../../common/proxy-url.js';
import type { WorkerInfo, WorkerRunner, WorkerSpec } from './types.js';
import { FENCED_EXIT_CODE, writeWorkerFence } from '../../common/worker-fence.js';

interface PidRecord {
  sessionId: string;
  pid: number;
  proxyHash: string;
  proxyEndpoint: string;
  startedAt: number;
  /** The spec it was started with, so a restart after an orchestrator crash can start it again. */
  env: Record<string, string>;
  /** Stopped on purpose (kept for a later start): the supervisor leaves it alone. */
  stopped?: boolean;
}

/**
 * Runs each wa-worker as a detached child process with the same contract as a container: same environment, same
 * auth folder. Pid files in `runDir` let a restarted orchestrator find (and never duplicate) workers it started
 * before it crashed. Crashed workers are restarted with backoff, like Docker's `unless-stopped`.
 */
export class ProcessRunner implements WorkerRunner {
  readonly kind = 'process' as const;
  private readonly stopping = new Set<string>();
  /** Exit codes of the workers this process spawned, by `${sessionId}:${pid}`. */
  private readonly exitCodes = new Map<string, number | null>();
  private readonly restarts = new Map<string, { count: number; lastAt: number }>();
  private supervisor: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: {
      runDir: string;
      logDir: string;
      /** Command that runs the worker, e.g. [process.execPath, '--import', 'tsx', 'wa-worker/main.ts']. */
      command: string[];
      /** Environment every worker starts with, below its session's own (e.g. WORKER_NODE_ENV). */
      env?: Readonly<Record<string, string>>;
      cwd: string;
      stopGraceMs?: number;
    },
  ) {
    mkdirSync(opts.runDir, { recursive: true });
    mkdirSync(opts.logDir, { recursive: true });
  }

  private pidFile(sessionId: string) {
    return path.join(this.opts.runDir, `${sessionId}.json`);
  }

  private readRecord(sessionId: string): PidRecord | null {
    try {
      return JSON.parse(readFileSync(this.pidFile(sessionId), 'utf8')) as PidRecord;
    } catch {
      return null;
    }
  }

  /** Alive and really this session's worker (guards against a recycled pid). */
  private isAlive(record: PidRecord): boolean {
    try {
      process.kill(record.pid, 0);
    } catch {
      return false;
    }
    try {
      const environ = readFileSync(`/proc/${record.pid}/environ`, 'utf8').split('\0');
      if (environ.includes(`SESSION_ID=${record.sessionId}`)) {
        const stat = readFileSync(`/proc/${record.pid}/stat`, 'utf8');
        return !/\) Z /.test(stat); // a zombie is dead
      }
      return false;
    } catch {
      return false;
    }
  }

  private info(record: PidRecord): WorkerInfo {
    return {
      sessionId: record.sessionId,
      running: this.isAlive(record),
      proxyEndpoint: record.proxyEndpoint,
      proxyHash: record.proxyHash,
      pid: record.pid,
      startedAt: record.startedAt,
    };
  }

  async start(spec: WorkerSpec): Promise<WorkerInfo> {
    const existing = this.readRecord(spec.sessionId);
    const hash = proxyFingerprint(spec.proxyUrl);
    if (existing && this.isAlive(existing)) {
      // Same proxy and same generation: the very worker asked for. A new generation is a new worker (fencing).
      if (existing.proxyHash === hash && existing.env.WORKER_GENERATION === spec.env.WORKER_GENERATION)
        return this.info(existing);
      await this.stop(spec.sessionId);
    }
    const generation = spec.env.WORKER_GENERATION;
    if (generation !== undefined && spec.env.SESSIONS_DIR) {
      // The fence first: from here on a worker of an older generation can no longer write this folder's keys.
      const dir = spec.env.AUTH_DIR ?? path.join(spec.env.SESSIONS_DIR, spec.sessionId);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeWorkerFence(dir, Number(generation));
    }
    return this.spawnWorker({
      sessionId: spec.sessionId,
      pid: 0,
      proxyHash: hash,
      proxyEndpoint: proxyEndpoint(spec.proxyUrl),
      startedAt: Date.now(),
      env: spec.env,
    });
  }

  /**
   * Processes running this session's worker (same id, same auth folder) that no pid file points at: an orchestrator
   * died between spawning one and recording it. Two workers on one auth folder replace each other at WhatsApp (440).
   */
  private strays(record: PidRecord): number[] {
    const markers = [`SESSION_ID=${record.sessionId}`, `SESSIONS_DIR=${record.env.SESSIONS_DIR ?? ''}`];
    const known = record.pid;
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === known || Number(entry) === process.pid) continue;
      try {
        const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
        if (!markers.every((m) => environ.includes(m))) continue;
        // Only the group leader: the worker's own children go with its group.
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (fields[0] !== 'Z' && fields[2] === entry) pids.push(Number(entry));
      } catch {
        /* gone, or not ours to read */
      }
    }
    return pids;
  }

  private spawnWorker(record: PidRecord): WorkerInfo {
    for (const pid of this.strays(record)) signalGroup(pid, 'SIGKILL');
    const log = openSync(path.join(this.opts.logDir, `${record.sessionId}.log`), 'a');
    const [cmd, ...args] = this.opts.command;
    const child = spawn(cmd!, args, {
      cwd: this.opts.cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...this.opts.env, ...record.env },
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    child.unref();
    const saved: PidRecord = { ...record, pid: child.pid!, startedAt: Date.now(), stopped: false };
    writeFileSync(this.pidFile(record.sessionId), JSON.stringify(saved), { mode: 0o600 });
    child.once('exit', (code) => this.exitCodes.set(`${saved.sessionId}:${saved.pid}`, code));
    return this.info(saved);
  }

  /**
   * `unless-stopped`, like Docker: every `intervalMs`, a worker that died on its own (crash, kill -9) is started
   * again with exponential backoff — also workers started by an orchestrator that has since been replaced (found
   * through their pid files). Workers stopped on purpose, and clean, bad-config or fenced exits (0, 2, 3: replaced by
   * a newer generation) are left alone.
   */
  startSupervisor(intervalMs = 2000): void {
    if (this.supervisor) return;
    this.supervisor = setInterval(() => this.superviseOnce(), intervalMs);
    this.supervisor.unref();
  }

  private superviseOnce(): void {
    if (!existsSync(this.opts.runDir)) return;
    const now = Date.now();
    for (const file of readdirSync(this.opts.runDir).filter((f) => f.endsWith('.json'))) {
      const record = this.readRecord(file.slice(0, -5));
      if (!record || record.stopped || this.stopping.has(record.sessionId) || this.isAlive(record)) continue;
      const code = this.exitCodes.get(`${record.sessionId}:${record.pid}`);
      if (code === 0 || code === 2 || code === FENCED_EXIT_CODE) continue;
      const history = this.restarts.get(record.sessionId) ?? { count: 0, lastAt: 0 };
      if (now - history.lastAt < Math.min(500 * 2 ** history.count, 30_000)) continue;
      // A worker that had run for a minute was healthy: its next crash starts the backoff from scratch.
      history.count = now - record.startedAt > 60_000 ? 0 : history.count + 1;
      history.lastAt = now;
      this.restarts.set(record.sessionId, history);
      this.spawnWorker({ ...record, pid: 0 });
    }
  }

  async stop(sessionId: string, opts: { remove?: boolean } = {}): Promise<void> {
    const record = this.readRecord(sessionId);
    this.stopping.add(sessionId);
    try {
      if (record && !opts.remove) {
        writeFileSync(this.pidFile(sessionId), JSON.stringify({ ...record, stopped: true }), { mode: 0o600 });
      }
      if (record && this.isAlive(record)) {
        const grace = this.opts.stopGraceMs ?? 10_000;
        signalGroup(record.pid, 'SIGTERM');
        signalGroup(record.pid, 'SIGCONT'); // a stopped (SIGSTOP) worker must wake up to handle SIGTERM
        const deadline = Date.now() + grace;
        while (Date.now() < deadline && this.isAlive(record)) await sleep(50);
        if (this.isAlive(record)) {
          signalGroup(record.pid, 'SIGKILL');
          while (this.isAlive(record)) await sleep(20);
        }
      }
      if (opts.remove) rmSync(this.pidFile(sessionId), { force: true });
    } finally {
      this.stopping.delete(sessionId);
    }
  }

  async restart(sessionId: string): Promise<WorkerInfo | null> {
    const record = this.readRecord(sessionId);
    if (!record) return null;
    await this.stop(sessionId);
    return this.spawnWorker({ ...record, pid: 0 });
  }

  async inspect(sessionId: string): Promise<WorkerInfo | null> {
    const record = this.readRecord(sessionId);
    return record ? this.info(record) : null;
  }

  async list(): Promise<WorkerInfo[]> {
    if (!existsSync(this.opts.runDir)) return [];
    return readdirSync(this.opts.runDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => this.readRecord(f.slice(0, -5)))
      .filter((r): r is PidRecord => r !== null)
      .map((r) => this.info(r));
  }

  async close(): Promise<void> {
    if (this.supervisor) clearInterval(this.supervisor);
    this.supervisor = undefined;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(-pid, signal); // the worker is a process-group leader (detached)
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}
