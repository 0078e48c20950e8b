/**
 * A WorkerRunner whose workers are stand-ins (bench/standin/host.ts) in one child process: the orchestrator runs
 * unchanged, it only starts, stops and inspects workers through this runner, as through Docker or processes.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WorkerInfo, WorkerRunner, WorkerSpec } from '../../activities/runner/types.js';
import { indexOf, type HostReply, type HostRequest } from './protocol.js';

type Request = HostRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * The stand-ins live in STANDIN_HOSTS child processes (a session always in the same one): each stand-in holds a
 * spool file and two long-polls, and one process may open at most `ulimit -n` descriptors.
 */
export class StandinRunner implements WorkerRunner {
  readonly kind = 'standin';
  private readonly hosts: ChildProcess[] = [];
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(env: NodeJS.ProcessEnv = process.env) {
    const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), 'host.ts');
    const count = Math.max(1, Number(env.STANDIN_HOSTS ?? 1));
    for (let i = 0; i < count; i++) {
      const host = fork(entry, [], {
        execArgv: ['--import', 'tsx'],
        env,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      host.on('message', (reply: HostReply) => {
        const p = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        if (reply.ok) p?.resolve(reply.result);
        else p?.reject(new Error(reply.error));
      });
      host.on('exit', (code, signal) => {
        for (const p of this.pending.values()) p.reject(new Error(`a stand-in host exited (${code ?? signal})`));
        this.pending.clear();
      });
      this.hosts.push(host);
    }
  }

  get hostPids(): number[] {
    return this.hosts.map((h) => h.pid!);
  }

  private call<T>(host: ChildProcess, req: Request): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      host.send({ ...req, id });
    });
  }

  private hostOf(sessionId: string): ChildProcess {
    return this.hosts[indexOf(sessionId, this.hosts.length)]!;
  }

  start(spec: WorkerSpec): Promise<WorkerInfo> {
    return this.call(this.hostOf(spec.sessionId), { op: 'start', spec });
  }
  stop(sessionId: string, opts?: { remove?: boolean }): Promise<void> {
    return this.call(this.hostOf(sessionId), { op: 'stop', sessionId, remove: opts?.remove ?? false });
  }
  restart(sessionId: string): Promise<WorkerInfo | null> {
    return this.call(this.hostOf(sessionId), { op: 'restart', sessionId });
  }
  inspect(sessionId: string): Promise<WorkerInfo | null> {
    return this.call(this.hostOf(sessionId), { op: 'inspect', sessionId });
  }
  async list(): Promise<WorkerInfo[]> {
    const lists = await Promise.all(this.hosts.map((h) => this.call<WorkerInfo[]>(h, { op: 'list' })));
    return lists.flat();
  }
  async close(): Promise<void> {
    for (const h of this.hosts) h.kill('SIGTERM');
  }
}
