/**
 * Crash-safe file writes shared by the worker's folder store (wa-worker/auth-store.ts) and the tools that write
 * auth folders (the PostgreSQL ↔ folder transfer): a kill -9 at any moment leaves the old or the new complete file.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

export const FILE_MODE = 0o600;
/** Marks a temp file (removed by the worker at its next start). */
export const TEMP_MARKER = '.tmp-';

/**
 * Durable atomic write: temp file (0600) + fsync + rename + fsync(dir). `beforeCommit` runs just before the rename;
 * when it throws, the target is left untouched (the generation fence). `syncDir` replaces the folder fsync (a
 * {@link DirSync} shared by many writes).
 */
export async function writeFileAtomic(
  filePath: string,
  data: string | Buffer,
  beforeCommit?: () => Promise<void>,
  syncDir?: () => Promise<void>,
): Promise<void> {
  const dir = path.dirname(filePath);
  const tmp = path.join(
    dir,
    `${path.basename(filePath)}${TEMP_MARKER}${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  const fh = await fs.open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, FILE_MODE);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await beforeCommit?.();
    await fs.rename(tmp, filePath);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await (syncDir ? syncDir() : fsyncDir(dir));
}

/**
 * Group commit of a folder's fsync: a rename is durable once an fsync of its folder that started after it has
 * finished, so writes landing while one runs share the next one. Baileys stores ~800 pre-keys at once at the first
 * login: one folder fsync for them instead of ~800.
 */
export class DirSync {
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    if (!this.running) return this.start();
    this.queued ??= this.running.then(() => {
      this.queued = null;
      return this.start();
    });
    return this.queued;
  }

  private start(): Promise<void> {
    const run: Promise<void> = fsyncDir(this.dir).finally(() => {
      if (this.running === run) this.running = null;
    });
    this.running = run;
    return run;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  let dh: fs.FileHandle | undefined;
  try {
    dh = await fs.open(dir, fsConstants.O_RDONLY);
    await dh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await dh?.close().catch(() => undefined);
  }
}
