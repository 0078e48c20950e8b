/**
 * An API process alone (no orchestrator) on the shared Redis and Temporal, with its own key prefix and task queue:
 * for attacks that need only the API's edge. Session records an attack needs are written with the real
 * SessionStore, as the orchestrator's activities would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { SessionStore } from '../../state/sessions.js';
import { API_KEY, freePort, ROOT, serviceEnv, testDataConverter, waitFor } from '../helpers/stack.js';

export class ApiOnly {
  readonly id = randomBytes(4).toString('hex');
  readonly prefix = `sec:${this.id}:`;
  readonly taskQueue = `sec-${this.id}`;
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'wa-sec-'));
  url = '';
  redis!: Redis;
  sessions!: SessionStore;
  private proc: ChildProcess | null = null;

  constructor(private readonly extraEnv: Record<string, string> = {}) {}

  async start(): Promise<this> {
    const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    this.redis = new Redis(redisUrl);
    this.sessions = new SessionStore(this.redis, this.prefix);
    const port = await freePort();
    this.url = `http://127.0.0.1:${port}`;
    const log = openSync(this.logPath, 'a');
    this.proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'api/main.ts')], {
      cwd: ROOT,
      env: {
        ...serviceEnv({
          apiPort: port,
          redisUrl,
          prefix: this.prefix,
          temporalAddress: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
          taskQueue: this.taskQueue,
          workflowIdPrefix: `sec-${this.id}`,
        }),
        SESSIONS_DIR: this.dir,
        BACKUPS_DIR: this.dir,
        RUNNER: 'process',
        ...this.extraEnv,
      },
      stdio: ['ignore', log, log],
    });
    const child = this.proc;
    await waitFor(
      'the API to answer /readyz',
      async () => {
        if (child.exitCode !== null) throw new Error(`api exited: ${readFileSync(this.logPath, 'utf8').slice(-2000)}`);
        return (await fetch(`${this.url}/readyz`).catch(() => null))?.status === 200;
      },
      60_000,
      200,
    );
    return this;
  }

  get logPath() {
    return path.join(this.dir, 'api.log');
  }

  async call(method: string, url: string, body?: unknown, apiKey: string | null = API_KEY, headers = {}) {
    const res = await fetch(`${this.url}${url}`, {
      method,
      headers: {
        ...(apiKey ? { 'x-api-key': apiKey } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, body: json, text, headers: res.headers };
  }

  async stop(): Promise<void> {
    const child = this.proc;
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    // Dispatchers woken by sends wait on this run's own task queue: end them.
    const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
    const temporal = new Client({ connection, dataConverter: testDataConverter() });
    for await (const wf of temporal.workflow.list({
      query: `TaskQueue = '${this.taskQueue}' AND ExecutionStatus = 'Running'`,
    }))
      await temporal.workflow
        .getHandle(wf.workflowId, wf.runId)
        .terminate('security test done')
        .catch(() => undefined);
    await connection.close();
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await this.redis.del(...keys);
    } while (cursor !== '0');
    this.redis.disconnect();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
