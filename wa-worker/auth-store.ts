/**
 * Baileys auth state in the session folder, compatible with useMultiFileAuthState's file naming
 * (`creds.json`, `${type}-${id}.json` with `/`→`__` and `:`→`-`, BufferJSON encoding) so backups and restores made
 * with either stay interchangeable, but crash-safe and owner-only:
 *  - folder mode 0700, files 0600 (existing ones are tightened on start);
 *  - every write goes to a temp file in the same folder, is fsync'ed, renamed over the target, and the folder is
 *    fsync'ed, so a kill -9 at any moment leaves either the old or the new complete file, never a torn one;
 *  - writes to the same file are serialized; `flush()` waits for every pending write (used at shutdown).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { AUTH_SCHEMA_FILE, AUTH_SCHEMA_FORMAT, AUTH_SCHEMA_VERSION } from '../common/auth-schema.js';
import { DirSync, FILE_MODE, fsyncDir, TEMP_MARKER, writeFileAtomic } from '../common/atomic-file.js';
import {
  BufferJSON,
  initAuthCreds,
  reviveKey,
  type AuthenticationCreds,
  type AuthenticationState,
  type SignalDataSet,
  type SignalDataTypeMap,
} from './engine.js';

export const DIR_MODE = 0o700;
export { DirSync, FILE_MODE, fsyncDir, writeFileAtomic };

export function authFileName(file: string): string {
  return file.replace(/\//g, '__').replace(/:/g, '-');
}

/** Creates the folder 0700 (or tightens it), removes temp files left by a crash, tightens file modes to 0600. */
export async function prepareSessionDir(dir: string): Promise<{ removedTemp: number }> {
  await fs.mkdir(dir, { recursive: true, mode: DIR_MODE });
  const st = await fs.stat(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if ((st.mode & 0o777) !== DIR_MODE) await fs.chmod(dir, DIR_MODE);
  let removedTemp = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (!entry.isFile()) continue;
    if (entry.name.includes(TEMP_MARKER)) {
      await fs.rm(p, { force: true });
      removedTemp++;
      continue;
    }
    const fst = await fs.stat(p);
    if ((fst.mode & 0o777) !== FILE_MODE) await fs.chmod(p, FILE_MODE);
  }
  return { removedTemp };
}

export interface CrashSafeAuthState {
  state: AuthenticationState;
  saveCreds: () => Promise<void>;
  /** Waits for every write queued so far. */
  flush: () => Promise<void>;
  /** True when creds.json existed and parsed (a registered device reconnects without QR). */
  hadCreds: boolean;
}

export interface AuthStoreLogger {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * `opts.beforeCommit` runs before every write or removal of an auth file lands (the worker's generation fence: a
 * replaced worker must never overwrite the newer worker's keys); when it throws, nothing is changed.
 */
export async function useCrashSafeAuthState(
  folder: string,
  logger?: AuthStoreLogger,
  opts: { beforeCommit?: () => Promise<void> } = {},
): Promise<CrashSafeAuthState> {
  await prepareSessionDir(folder);
  const dirSync = new DirSync(folder);
  const syncDir = () => dirSync.sync();
  const chains = new Map<string, Promise<void>>();
  const pending = new Set<Promise<void>>();

  // Per-file serialization: each operation on a path runs after the previous one on the same path.
  const enqueue = (file: string, op: () => Promise<void>): Promise<void> => {
    const prev = chains.get(file) ?? Promise.resolve();
    const next = prev.then(op, op);
    const tracked = next.finally(() => {
      pending.delete(tracked);
      if (chains.get(file) === next) chains.delete(file);
    });
    chains.set(file, next);
    pending.add(tracked);
    return next;
  };

  const writeData = (data: unknown, file: string) => {
    const filePath = path.join(folder, authFileName(file));
    const json = JSON.stringify(data, BufferJSON.replacer);
    return enqueue(filePath, () => writeFileAtomic(filePath, json, opts.beforeCommit, syncDir));
  };
  const removeData = (file: string) => {
    const filePath = path.join(folder, authFileName(file));
    return enqueue(filePath, async () => {
      await opts.beforeCommit?.();
      await fs.rm(filePath, { force: true });
    });
  };
  const readData = async (file: string): Promise<unknown> => {
    const filePath = path.join(folder, authFileName(file));
    await chains.get(filePath)?.catch(() => undefined);
    let text: string;
    try {
      text = await fs.readFile(filePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      return JSON.parse(text, BufferJSON.reviver) as unknown;
    } catch (err) {
      logger?.error({ file: authFileName(file), err: String(err) }, 'auth file does not parse; ignoring it');
      return null;
    }
  };

  let creds = (await readData('creds.json')) as AuthenticationCreds | null;
  const hadCreds = creds !== null;
  if (!creds) {
    // Move a corrupt creds.json aside rather than silently overwriting it (it cannot happen with atomic writes,
    // but a hand-copied folder may hold one).
    const credsPath = path.join(folder, 'creds.json');
    const exists = await fs
      .stat(credsPath)
      .then(() => true)
      .catch(() => false);
    if (exists) {
      const aside = `${credsPath}.corrupt-${Date.now()}`;
      await fs.rename(credsPath, aside);
      logger?.warn({ aside: path.basename(aside) }, 'moved an unreadable creds.json aside; a new QR scan is needed');
    }
    creds = initAuthCreds();
  }
  const liveCreds = creds;

  const state: AuthenticationState = {
    creds: liveCreds,
    keys: {
      get: async <T extends keyof SignalDataTypeMap>(type: T, ids: string[]) => {
        const data: { [id: string]: SignalDataTypeMap[T] } = {};
        await Promise.all(
          ids.map(async (id) => {
            const value = reviveKey(type, await readData(`${type}-${id}.json`));
            if (value !== null && value !== undefined) data[id] = value as SignalDataTypeMap[T];
          }),
        );
        return data;
      },
      set: async (data: SignalDataSet) => {
        const tasks: Promise<void>[] = [];
        for (const category of Object.keys(data) as (keyof SignalDataSet)[]) {
          const entries = data[category];
          if (!entries) continue;
          for (const [id, value] of Object.entries(entries)) {
            const file = `${category}-${id}.json`;
            tasks.push(value ? writeData(value, file) : removeData(file));
          }
        }
        await Promise.all(tasks);
      },
    },
  };

  return {
    state,
    hadCreds,
    saveCreds: () => writeData(liveCreds, 'creds.json'),
    flush: async () => {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  };
}

/**
 * Auth folder schema. Version 1: folders written by Baileys 6.7.24 (no schema file). Version 2: Baileys 7.x, which
 * adds the key types `lid-mapping`, `device-list`, `tctoken`, `identity-key` (stored like every other key, as
 * `${type}-${id}.json`) and reads every version-1 file unchanged, so the migration 1 → 2 only records the version;
 * 7.x creates the new key types lazily (the LID mappings from the server's usync answers).
 */
export { AUTH_SCHEMA_FILE, AUTH_SCHEMA_VERSION };

export interface AuthSchema {
  format: typeof AUTH_SCHEMA_FORMAT;
  version: number;
  migratedFrom?: number;
}

/** The folder cannot be used by this code (foreign or newer schema, unreadable schema file). Nothing was changed. */
export class AuthStateInvalidError extends Error {
  constructor(readonly reason: string) {
    super(`auth state invalid: ${reason}`);
    this.name = 'AuthStateInvalidError';
  }
}

/** Reads a folder's schema without changing anything: null for a folder without a schema file. */
export async function readAuthSchema(folder: string): Promise<AuthSchema | null> {
  let text: string;
  try {
    text = await fs.readFile(path.join(folder, AUTH_SCHEMA_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new AuthStateInvalidError(`${AUTH_SCHEMA_FILE} is unreadable (${(err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AuthStateInvalidError(`${AUTH_SCHEMA_FILE} is not JSON`);
  }
  const rec = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  if (rec.format !== AUTH_SCHEMA_FORMAT || !Number.isInteger(rec.version) || (rec.version as number) < 1) {
    throw new AuthStateInvalidError(`foreign schema in ${AUTH_SCHEMA_FILE} (expected format ${AUTH_SCHEMA_FORMAT})`);
  }
  return rec as unknown as AuthSchema;
}

/**
 * Brings a session folder to AUTH_SCHEMA_VERSION, idempotently: a folder with creds but no schema file is a
 * 6.7.24 folder (version 1); an empty folder is new. Refuses (AuthStateInvalidError, nothing touched) a folder
 * with a foreign schema or one written by a newer version of this code. Never deletes a file.
 */
export async function migrateAuthFolder(
  folder: string,
): Promise<{ from: number | null; to: number; migrated: boolean }> {
  await fs.mkdir(folder, { recursive: true, mode: DIR_MODE });
  const schema = await readAuthSchema(folder);
  if (schema && schema.version > AUTH_SCHEMA_VERSION) {
    throw new AuthStateInvalidError(
      `schema version ${schema.version} was written by a newer version (this code reads up to ${AUTH_SCHEMA_VERSION})`,
    );
  }
  if (schema?.version === AUTH_SCHEMA_VERSION)
    return { from: schema.version, to: AUTH_SCHEMA_VERSION, migrated: false };
  const hasCreds = await fs
    .stat(path.join(folder, 'creds.json'))
    .then(() => true)
    .catch(() => false);
  const from = schema?.version ?? (hasCreds ? 1 : null);
  const next: AuthSchema = {
    format: AUTH_SCHEMA_FORMAT,
    version: AUTH_SCHEMA_VERSION,
    ...(from !== null ? { migratedFrom: from } : {}),
  };
  await writeFileAtomic(path.join(folder, AUTH_SCHEMA_FILE), `${JSON.stringify(next)}\n`);
  return { from, to: AUTH_SCHEMA_VERSION, migrated: from !== null };
}
