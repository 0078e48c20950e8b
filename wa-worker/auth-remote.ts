/**
 * Baileys auth state behind the API's auth-state endpoint (AUTH_STORE=postgres; contract: common/auth-keys.ts), with
 * the file store's interface (wa-worker/auth-store.ts), so the engine does not know which one it runs on:
 *  - writes are group-committed: whatever Baileys writes while a request is on its way (it writes many keys per
 *    message) waits AUTH_WRITE_BATCH_MS at most and goes as ONE signed request, applied in one transaction; a
 *    write resolves only once its batch is stored, and batches go one after another, in order;
 *  - creds and every key read or written are cached (the cache holds the stored text, parsed on each read so
 *    Baileys never shares a mutable object with the cache);
 *  - every call is signed with the session's key and its generation: a replaced worker is refused (409) and stops.
 */
import {
  AUTH_WRITE_MAX_BYTES,
  CREDS_CATEGORY,
  CREDS_KEY_ID,
  encodeKeyId,
  type AuthCategory,
  type AuthReadResponse,
  type AuthWriteEntry,
} from '../common/auth-keys.js';
import type { AuthStoreLogger, CrashSafeAuthState } from './auth-store.js';
import { backoffDelay } from './config.js';
import {
  BufferJSON,
  initAuthCreds,
  reviveKey,
  type AuthenticationCreds,
  type AuthenticationState,
  type SignalDataSet,
  type SignalDataTypeMap,
} from './engine.js';
import { SignedHttpError, type SignedClient } from './signed-post.js';

export interface RemoteAuthOptions {
  /** Runs before each batch is sent (the fence file check); when it throws, the batch is refused. */
  beforeCommit?: () => Promise<void>;
  batchMs?: number;
  /** Attempts of a batch on network errors and 5xx answers before its writes fail. */
  attempts?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

const READ_CHUNK = 1000;
const SEP = '\u0000';

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface RemoteAuthState extends CrashSafeAuthState {
  /** Requests sent so far (batches and reads), for tests and benchmarks. */
  stats: { writeRequests: number; writtenEntries: number; readRequests: number };
}

export async function useRemoteAuthState(
  client: SignedClient,
  logger?: AuthStoreLogger,
  opts: RemoteAuthOptions = {},
): Promise<RemoteAuthState> {
  const batchMs = opts.batchMs ?? 5;
  const attempts = opts.attempts ?? 8;
  const cache = new Map<string, string | null>();
  let pending = new Map<string, string | null>();
  let waiters: Waiter[] = [];
  let timer: NodeJS.Timeout | null = null;
  let draining: Promise<void> | null = null;
  const stats = { writeRequests: 0, writtenEntries: 0, readRequests: 0 };

  const keyOf = (category: AuthCategory, keyId: string) => `${category}${SEP}${keyId}`;
  const split = (k: string) => {
    const i = k.indexOf(SEP);
    return { category: k.slice(0, i) as AuthCategory, keyId: k.slice(i + 1) };
  };

  const sendWithRetry = async (entries: AuthWriteEntry[]) => {
    for (let attempt = 0; ; attempt++) {
      try {
        stats.writeRequests++;
        await client.post('write', { entries });
        stats.writtenEntries += entries.length;
        return;
      } catch (err) {
        const refused = err instanceof SignedHttpError && err.status < 500;
        if (refused || attempt + 1 >= attempts) throw err;
        await new Promise((r) =>
          setTimeout(r, backoffDelay(attempt, opts.retryBaseMs ?? 200, opts.retryMaxMs ?? 5000)).unref(),
        );
      }
    }
  };

  /** Sends batches until nothing is pending; one request at a time, so writes land in the order they were made. */
  const drain = async () => {
    while (pending.size > 0) {
      const batch = pending;
      const batchWaiters = waiters;
      pending = new Map();
      waiters = [];
      try {
        await opts.beforeCommit?.();
        // Split below the endpoint's body limit (a first link writes hundreds of pre-keys at once).
        let chunk: AuthWriteEntry[] = [];
        let bytes = 0;
        for (const [k, value] of batch) {
          const size = (value?.length ?? 0) + k.length + 64;
          if (chunk.length && bytes + size > AUTH_WRITE_MAX_BYTES / 2) {
            await sendWithRetry(chunk);
            chunk = [];
            bytes = 0;
          }
          chunk.push({ ...split(k), value });
          bytes += size;
        }
        if (chunk.length) await sendWithRetry(chunk);
        for (const w of batchWaiters) w.resolve();
      } catch (err) {
        logger?.error({ entries: batch.size, err: String(err) }, 'auth write failed');
        for (const w of batchWaiters) w.reject(err);
      }
    }
  };

  const startDrain = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    draining = drain().finally(() => {
      draining = null;
      if (pending.size > 0) kick();
    });
  };
  const kick = () => {
    if (timer || draining) return;
    timer = setTimeout(startDrain, batchMs);
  };

  const enqueue = (entries: Array<[string, string | null]>): Promise<void> => {
    if (entries.length === 0) return Promise.resolve();
    for (const [k, v] of entries) {
      cache.set(k, v);
      pending.set(k, v);
    }
    return new Promise<void>((resolve, reject) => {
      waiters.push({ resolve, reject });
      kick();
    });
  };

  /** Reads the uncached keys in one request per chunk; everything asked is cached afterwards (absent: null). */
  const fetchMissing = async (keys: string[]) => {
    const missing = keys.filter((k) => !cache.has(k));
    for (let i = 0; i < missing.length; i += READ_CHUNK) {
      const part = missing.slice(i, i + READ_CHUNK);
      stats.readRequests++;
      const res = await client.post('read', { keys: part.map(split) });
      const body = (await res.json()) as AuthReadResponse;
      const found = new Map(body.entries.map((e) => [keyOf(e.category, e.keyId), e.value]));
      // A write made while the read was under way is newer than what the read found.
      for (const k of part) if (!cache.has(k)) cache.set(k, found.get(k) ?? null);
    }
  };

  const parse = (k: string): unknown => {
    const text = cache.get(k);
    if (text === null || text === undefined) return null;
    try {
      return JSON.parse(text, BufferJSON.reviver) as unknown;
    } catch (err) {
      logger?.error({ entry: split(k).category, err: String(err) }, 'auth entry does not parse; ignoring it');
      return null;
    }
  };

  const credsKey = keyOf(CREDS_CATEGORY, CREDS_KEY_ID);
  await fetchMissing([credsKey]);
  const stored = parse(credsKey) as AuthenticationCreds | null;
  const hadCreds = stored !== null;
  const liveCreds = stored ?? initAuthCreds();

  const state: AuthenticationState = {
    creds: liveCreds,
    keys: {
      get: async <T extends keyof SignalDataTypeMap>(type: T, ids: string[]) => {
        const keys = ids.map((id) => keyOf(type as AuthCategory, encodeKeyId(id)));
        await fetchMissing(keys);
        const data: { [id: string]: SignalDataTypeMap[T] } = {};
        ids.forEach((id, i) => {
          const value = reviveKey(type, parse(keys[i]!));
          if (value !== null && value !== undefined) data[id] = value as SignalDataTypeMap[T];
        });
        return data;
      },
      set: async (data: SignalDataSet) => {
        const entries: Array<[string, string | null]> = [];
        for (const category of Object.keys(data) as (keyof SignalDataSet)[]) {
          for (const [id, value] of Object.entries(data[category] ?? {})) {
            entries.push([
              keyOf(category as AuthCategory, encodeKeyId(id)),
              value ? JSON.stringify(value, BufferJSON.replacer) : null,
            ]);
          }
        }
        await enqueue(entries);
      },
    },
  };

  return {
    state,
    hadCreds,
    stats,
    saveCreds: () => enqueue([[credsKey, JSON.stringify(liveCreds, BufferJSON.replacer)]]),
    flush: async () => {
      while (pending.size > 0 || timer || draining) {
        if (!draining) startDrain();
        await draining;
      }
    },
  };
}
