/** Docker helpers for the wa-worker container tests (host networking only). */
import { execFile, spawnSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './worker-process.js';

const exec = promisify(execFile);

export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await exec('docker', args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim();
}

/** Runs scripts/build-images.sh (idempotent) and returns the image tag and how long it took. */
export function buildWorkerImage(): { image: string; ms: number; output: string } {
  const t0 = Date.now();
  const r = spawnSync('bash', [path.join(REPO_ROOT, 'scripts/build-images.sh')], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`build-images.sh failed (${r.status}):\n${r.stderr}\n${r.stdout}`);
  const image = r.stdout.trim().split('\n').at(-1) ?? '';
  return { image, ms: Date.now() - t0, output: r.stderr };
}

export interface ContainerState {
  Status: string;
  Running: boolean;
  ExitCode: number;
  Pid: number;
  Health?: { Status: string };
}

export async function containerState(name: string): Promise<ContainerState> {
  return JSON.parse(await docker('inspect', '--format', '{{json .State}}', name)) as ContainerState;
}

export async function containerLogs(name: string): Promise<string> {
  const { stdout, stderr } = await exec('docker', ['logs', name], { maxBuffer: 64 * 1024 * 1024 });
  return `${stdout}${stderr}`;
}
