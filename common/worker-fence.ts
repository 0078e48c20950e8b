/**
 * The generation fence of a session folder: `.worker-generation` holds the generation of the worker started last on
 * it. The starter (the runner, just before it starts a worker) writes it; a worker refuses to write auth files, and
 * exits, once the fence names a newer generation than its own: it has been replaced and must never overwrite the
 * newer worker's keys. A dot file: backups copy only names starting with a letter (it is per start, not state).
 */
import { chownSync, closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

export const WORKER_FENCE_FILE = '.worker-generation';
/** A worker that finds itself replaced (fence or 409 STALE_GENERATION) exits with this code; runners leave it down. */
export const FENCED_EXIT_CODE = 3;

/** The fence's generation; null for a missing or unreadable file (nothing fenced). */
export function parseFence(text: string): number | null {
  const t = text.trim();
  return /^\d{1,15}$/.test(t) ? Number(t) : null;
}

/** Atomically (temp + fsync + rename) sets the fence of `dir`; `owner`: the uid/gid the worker runs as (Docker). */
export function writeWorkerFence(dir: string, generation: number, owner?: { uid: number; gid: number }): void {
  const target = path.join(dir, WORKER_FENCE_FILE);
  // `.tmp-` marks it as a temp file the worker removes after a crash (wa-worker/auth-store.ts prepareSessionDir).
  const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${generation}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    if (owner) chownSync(tmp, owner.uid, owner.gid);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
