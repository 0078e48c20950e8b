/**
 * Worker commands in Redis (contract: common/worker-commands.ts), the number-check cache and its per-session rate
 * limit, and the inbound-message index used by read receipts. Keys: common/redis-keys.ts.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { redisKeys, type RedisKeys } from '../common/redis-keys.js';
import type { GroupCommand, NumberCheckResult, WorkerCommand } from '../common/worker-commands.js';
import { luaCommand } from './lua.js';
import { execAll } from './redis.js';
import { wakeWorker } from './worker-wake.js';

const claimScript = luaCommand<[commands: string], [nowMs: number], string | null>(
  new URL('./worker-command-claim.lua', import.meta.url),
);
const admitLookupsScript = luaCommand<
  [rate: string],
  [nowMs: number, windowMs: number, limit: number, n: number, memberPrefix: string],
  [ok: number, retryAfterMs: number]
>(new URL('./contact-check-admit.lua', import.meta.url));

export interface CachedCheck {
  exists: boolean;
  jid?: string;
  lid?: string;
  checkedAt: number;
}

export type CommandInput =
  | { kind: 'check'; phones: string[] }
  | { kind: 'read'; messages: Array<{ id: string; chat: string; participant?: string }> }
  | Omit<GroupCommand, 'id' | 'deadline'>;

export class WorkerCommandStore {
  readonly keys: RedisKeys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = redisKeys(prefix);
  }

  /** Queues a command for the session's worker, due at `dueAt`, expiring at `deadline`. */
  async enqueue(sessionId: string, input: CommandInput, dueAt: number, deadline: number): Promise<WorkerCommand> {
    const command = { id: `cmd_${randomBytes(12).toString('hex')}`, deadline, ...input } as WorkerCommand;
    await this.add(sessionId, command, dueAt);
    return command;
  }

  /** Puts a claimed command back, due now: its worker hung up before the claim's answer reached it. */
  async release(sessionId: string, command: WorkerCommand): Promise<void> {
    await this.add(sessionId, command, Date.now());
  }

  private async add(sessionId: string, command: WorkerCommand, dueAt: number): Promise<void> {
    const key = this.keys.sessionCommands(sessionId);
    // The queue lives as long as its latest deadline (a session that never comes back leaves nothing behind).
    const ttl = String(Math.max(1, command.deadline - Date.now()) + 60_000);
    await execAll(
      this.redis
        .multi()
        .zadd(key, dueAt, JSON.stringify(command))
        .call('PEXPIRE', key, ttl, 'NX')
        .call('PEXPIRE', key, ttl, 'GT'),
    );
    await wakeWorker(this.redis, this.keys, sessionId);
  }

  /** When the earliest queued command is due, or null. */
  async nextDueAt(sessionId: string): Promise<number | null> {
    const first = await this.redis.zrange(this.keys.sessionCommands(sessionId), 0, 0, 'WITHSCORES');
    return first.length === 2 ? Number(first[1]) : null;
  }

  /** Withdraws a command not claimed yet (the caller stopped waiting); true when it was still queued. */
  async withdraw(sessionId: string, command: WorkerCommand): Promise<boolean> {
    return (await this.redis.zrem(this.keys.sessionCommands(sessionId), JSON.stringify(command))) === 1;
  }

  async claim(sessionId: string, now = Date.now()): Promise<WorkerCommand | null> {
    const raw = await claimScript(this.redis, [this.keys.sessionCommands(sessionId)], [now]);
    return raw ? (JSON.parse(raw) as WorkerCommand) : null;
  }

  /** Scoped by session: a worker can only answer its own session's commands. */
  async putResult(sessionId: string, commandId: string, result: object, ttlMs = 120_000): Promise<void> {
    await this.redis.set(this.keys.commandResult(sessionId, commandId), JSON.stringify(result), 'PX', ttlMs);
  }

  /** Polls for the worker's answer until `timeoutMs`; null when none came. */
  async waitResult<T>(sessionId: string, commandId: string, timeoutMs: number, everyMs = 50): Promise<T | null> {
    const key = this.keys.commandResult(sessionId, commandId);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const raw = await this.redis.getdel(key);
      if (raw) return JSON.parse(raw) as T;
      if (Date.now() >= deadline) return null;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  async pendingCount(sessionId: string): Promise<number> {
    return this.redis.zcard(this.keys.sessionCommands(sessionId));
  }

  // --- number checks ---

  async cached(phones: string[]): Promise<Map<string, CachedCheck>> {
    const out = new Map<string, CachedCheck>();
    if (phones.length === 0) return out;
    const raws = await this.redis.mget(...phones.map((p) => this.keys.contactCheck(p)));
    raws.forEach((raw, i) => {
      if (raw) out.set(phones[i]!, JSON.parse(raw) as CachedCheck);
    });
    return out;
  }

  async cache(results: NumberCheckResult[], ttlMs: number, now = Date.now()): Promise<void> {
    if (results.length === 0) return;
    const tx = this.redis.multi();
    for (const r of results) {
      const v: CachedCheck = {
        exists: r.exists,
        checkedAt: now,
        ...(r.jid ? { jid: r.jid } : {}),
        ...(r.lid ? { lid: r.lid } : {}),
      };
      tx.set(this.keys.contactCheck(r.phone), JSON.stringify(v), 'PX', ttlMs);
    }
    await execAll(tx);
  }

  /** Admits `n` lookups for the session within `limit` per `windowMs`: all or none. */
  async admitLookups(
    sessionId: string,
    n: number,
    limit: number,
    windowMs = 60_000,
  ): Promise<{ ok: true } | { ok: false; retryAfterMs: number }> {
    const [ok, retry] = await admitLookupsScript(
      this.redis,
      [this.keys.contactCheckRate(sessionId)],
      [Date.now(), windowMs, limit, n, randomBytes(6).toString('hex')],
    );
    return Number(ok) === 1 ? { ok: true } : { ok: false, retryAfterMs: Number(retry) };
  }

  // --- inbound messages (read receipts) ---

  /** `participant`: in a group, the member who wrote (a group read receipt names it). */
  async recordInbound(
    sessionId: string,
    waMessageId: string,
    chat: string,
    ttlMs: number,
    participant?: string,
    text?: string,
  ): Promise<void> {
    const key = this.keys.sessionInbound(sessionId);
    // JIDs hold no spaces: "<chat>" or "<group> <participant>", then the text (what a reply quotes) after a newline
    const value = (participant ? `${chat} ${participant}` : chat) + (text ? `\n${text}` : '');
    await execAll(this.redis.multi().hset(key, waMessageId, value).pexpire(key, ttlMs));
  }

  /**
   * The chat JID (and, in a group, the member) of each inbound message id, and its text when recorded (null when
   * the session never got it).
   */
  async inboundChats(
    sessionId: string,
    ids: string[],
  ): Promise<Array<{ chat: string; participant?: string; text?: string } | null>> {
    if (ids.length === 0) return [];
    const raws = await this.redis.hmget(this.keys.sessionInbound(sessionId), ...ids);
    return raws.map((raw) => {
      if (!raw) return null;
      const nl = raw.indexOf('\n');
      const [chat, participant] = (nl < 0 ? raw : raw.slice(0, nl)).split(' ');
      return {
        chat: chat!,
        ...(participant ? { participant } : {}),
        ...(nl >= 0 ? { text: raw.slice(nl + 1) } : {}),
      };
    });
  }
}
