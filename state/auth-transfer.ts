/**
 * Auth entries between a session folder and PostgreSQL (state/auth-pg.ts): the migration tool
 * (scripts/auth-migrate.ts) and, with AUTH_STORE=postgres, backups and restores, which archive and swap folders.
 * Every move is copy → verify (read back, byte for byte) → switch (the source emptied, creds first), so a session's
 * creds are in one store only once the switch begins, and an interrupted move is finished by running it again.
 */
import { chown, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir, writeFileAtomic } from '../common/atomic-file.js';
import { authEntryFileName, CREDS_CATEGORY, parseAuthFileName } from '../common/auth-keys.js';
import type { AuthEntry, PgAuthStore } from './auth-pg.js';

export type TransferOutcome = 'moved' | 'done' | 'empty';

/** The auth entries a session folder holds (other files — schema, spool, ledgers — are not entries). */
export async function folderEntries(dir: string): Promise<Array<AuthEntry & { file: string }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: Array<AuthEntry & { file: string }> = [];
  for (const name of names.sort()) {
    const ref = parseAuthFileName(name);
    if (!ref) continue;
    try {
      out.push({ ...ref, file: name, value: await readFile(path.join(dir, name)) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return out;
}

export function sameEntries(a: AuthEntry[], b: AuthEntry[]): boolean {
  if (a.length !== b.length) return false;
  const byKey = new Map(b.map((e) => [`${e.category}\u0000${e.keyId}`, e.value]));
  return a.every((e) => {
    const other = byKey.get(`${e.category}\u0000${e.keyId}`);
    return other !== undefined && other !== null && e.value !== null && other.equals(e.value);
  });
}

/** Removes key files, creds.json first (the switch: from then on the other store holds the session). */
async function removeKeyFiles(dir: string, files: string[]): Promise<void> {
  const ordered = [...files].sort((x, y) => Number(y === 'creds.json') - Number(x === 'creds.json'));
  for (const f of ordered) {
    await rm(path.join(dir, f), { force: true });
    if (f === 'creds.json') await fsyncDir(dir);
  }
  await fsyncDir(dir);
}

/**
 * Folder → PostgreSQL. A folder with creds replaces the session's entries; one without creds is `done` when
 * PostgreSQL has them (leftover keys of an interrupted switch are removed) and `empty` otherwise.
 */
export async function folderToPostgres(
  store: PgAuthStore,
  dir: string,
  sessionId: string,
): Promise<{ outcome: TransferOutcome; entries?: number }> {
  const files = await folderEntries(dir);
  if (!files.some((e) => e.category === CREDS_CATEGORY)) {
    if (!(await store.hasCreds(sessionId))) return { outcome: 'empty' };
    if (files.length)
      await removeKeyFiles(
        dir,
        files.map((f) => f.file),
      );
    return { outcome: 'done' };
  }
  const entries = files.map(({ category, keyId, value }) => ({ category, keyId, value }));
  await store.replaceAll(sessionId, entries);
  if (!sameEntries(entries, await store.readAll(sessionId)))
    throw new Error('verification failed: PostgreSQL does not hold what was copied');
  await removeKeyFiles(
    dir,
    files.map((f) => f.file),
  );
  return { outcome: 'moved', entries: entries.length };
}

/**
 * PostgreSQL → folder: the folder becomes an exact copy of the session's entries (creds.json written last), is
 * verified, then the entries are deleted unless `keepSource`. Without creds in PostgreSQL: `done` when the folder
 * has them, else `empty`.
 */
export async function postgresToFolder(
  store: PgAuthStore,
  dir: string,
  sessionId: string,
  opts: { keepSource?: boolean } = {},
): Promise<{ outcome: TransferOutcome; entries?: number }> {
  const entries = await store.readAll(sessionId);
  const existing = await folderEntries(dir);
  if (!entries.some((e) => e.category === CREDS_CATEGORY)) {
    if (existing.some((e) => e.category === CREDS_CATEGORY)) {
      if (entries.length && !opts.keepSource) await store.deleteSession(sessionId);
      return { outcome: 'done' };
    }
    return { outcome: 'empty' };
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // The folder's owner (the worker's user in a container) must own the files too.
  const owner = await stat(dir);
  const wanted = new Set(entries.map((e) => authEntryFileName(e.category, e.keyId)));
  for (const e of existing) if (!wanted.has(e.file)) await rm(path.join(dir, e.file), { force: true });
  const ordered = [...entries].sort(
    (x, y) => Number(x.category === CREDS_CATEGORY) - Number(y.category === CREDS_CATEGORY),
  );
  for (const e of ordered) {
    const file = path.join(dir, authEntryFileName(e.category, e.keyId));
    await writeFileAtomic(file, e.value!);
    if (process.getuid?.() === 0) await chown(file, owner.uid, owner.gid);
  }
  if (!sameEntries(entries, await folderEntries(dir)))
    throw new Error('verification failed: the folder does not hold what was copied');
  if (!opts.keepSource) await store.deleteSession(sessionId);
  return { outcome: 'moved', entries: entries.length };
}
