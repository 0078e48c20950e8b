/**
 * Lua scripts live as `.lua` files beside the store that runs them, each with a header naming its KEYS, ARGV and
 * return value. `luaCommand` reads a file once and defines it on each client with ioredis `defineCommand`: calls go
 * as EVALSHA, and ioredis itself re-sends the source when Redis answers NOSCRIPT (restarted or SCRIPT FLUSHed).
 *
 * Keys a script knows before it runs are passed as KEYS; keys it derives from what it reads (set members, a proxy
 * it picks) are built from the key prefix passed in ARGV, with the names of common/redis-keys.ts. With a hash-tag
 * prefix (REDIS_KEY_PREFIX=`{wa}:`) every key of a deployment lives in one Redis Cluster slot, derived ones too.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';

/**
 * The script's source with each `--- @include "other.lua"` line replaced by that file (beside it), recursively and
 * once per file, as BullMQ composes its scripts: helpers shared by several scripts live in one place.
 */
function withIncludes(file: URL, seen = new Set<string>()): string {
  const key = fileURLToPath(file);
  if (seen.has(key)) return '';
  seen.add(key);
  return readFileSync(file, 'utf8').replace(/^--- @include "([\w./-]+)"$/gm, (_, name: string) =>
    withIncludes(new URL(name, file), seen),
  );
}

/** One ARGV value; an object is sent as one JSON argument (the script reads it with cjson.decode). */
export type LuaArg = string | number | object;

export type LuaCommand<Keys extends readonly string[], Args extends readonly LuaArg[], Result> = (
  redis: Redis,
  keys: Keys,
  args: Args,
) => Promise<Result>;

type ScriptFn = (...args: Array<string | number>) => Promise<unknown>;

/** Command name → file: two files with one name would silently share one definition on a client. */
const names = new Map<string, string>();

/**
 * A typed wrapper of the script in `file` (a URL beside the caller: `new URL('./x.lua', import.meta.url)`).
 * `Keys` and `Args` are labelled tuples in the order of the file's header; `Result` is what the header says it
 * returns, as ioredis converts it (Lua numbers are integers, tables arrays, false nil).
 */
export function luaCommand<Keys extends readonly string[], Args extends readonly LuaArg[], Result>(
  file: URL,
): LuaCommand<Keys, Args, Result> {
  const lua = withIncludes(file);
  // One name per file, e.g. `lua:outbox-claim`: cannot clash with a Redis command or another script.
  const path = fileURLToPath(file);
  const name = `lua:${basename(path, '.lua')}`;
  if (names.has(name) && names.get(name) !== path) throw new Error(`two Lua scripts named ${name}: ${path}`);
  names.set(name, path);
  return async (redis, keys, args) => {
    const client = redis as unknown as Record<string, ScriptFn | undefined>;
    let fn = client[name];
    if (!fn) {
      // numberOfKeys left open: each call passes its own count, so the KEYS tuple is the only place it is stated.
      redis.defineCommand(name, { lua });
      // An auto-pipeline batch made before this definition does not know the command (ioredis copies the scripts
      // into a pipeline when it creates it): scripts go outside auto-pipelining, straight to the connection.
      const ignored = redis.options.autoPipeliningIgnoredCommands ?? [];
      redis.options.autoPipeliningIgnoredCommands = [...ignored, name];
      fn = client[name]!;
    }
    const argv = args.map((a) => (typeof a === 'object' ? JSON.stringify(a) : a));
    return (await fn.call(redis, keys.length, ...keys, ...argv)) as Result;
  };
}
