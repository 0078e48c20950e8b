/**
 * Runs the wa-worker as a child process (plain-process mode) for end-to-end tests and keeps its output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class WorkerProcess {
  readonly output: string[] = [];
  readonly exited: Promise<WorkerExit>;
  private exitInfo: WorkerExit | undefined;

  private constructor(readonly child: ChildProcess) {
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.output.push(line);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise<WorkerExit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  /** Starts `node --import tsx wa-worker/main.ts` with exactly the given environment (plus PATH/HOME). */
  static start(env: Record<string, string>): WorkerProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'wa-worker/main.ts')], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new WorkerProcess(child);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Parsed JSON log lines. */
  logs(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const l of this.output) {
      try {
        out.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // not JSON
      }
    }
    return out;
  }

  async waitForLog(pred: (line: string) => boolean, timeoutMs = 15_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.output.find(pred);
      if (hit) return hit;
      if (!this.running) throw new Error(`worker exited before the expected log line:\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`timeout waiting for a log line:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  tail(n = 30): string {
    return this.output.slice(-n).join('\n');
  }

  /** SIGKILL and wait. */
  async kill(): Promise<WorkerExit> {
    if (this.running) this.child.kill('SIGKILL');
    return this.exited;
  }

  /** SIGTERM; resolves with the exit and how long it took. */
  async terminate(): Promise<WorkerExit & { ms: number }> {
    const t0 = Date.now();
    if (this.running) this.child.kill('SIGTERM');
    const exit = await this.exited;
    return { ...exit, ms: Date.now() - t0 };
  }
}
