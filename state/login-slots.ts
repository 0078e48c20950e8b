import type { Redis } from 'ioredis';
import { redisKeys, type RedisKeys } from '../common/redis-keys.js';
import { luaCommand } from './lua.js';

const acquireScript = luaCommand<
  [slots: string],
  [sessionId: string, max: number, leaseMs: number, nowMs: number],
  [granted: number, retryAfterMs: number]
>(new URL('./login-slot-acquire.lua', import.meta.url));

export type LoginSlotAnswer = { granted: true } | { granted: false; retryAfterMs: number };

/**
 * Logins in flight per host. Every worker asks for a slot before it connects and gives it back once its socket
 * opened, showed a QR or closed; a lease frees the slot of a worker that died holding it. So after a host reboot
 * its workers log in a few at a time, as a phone fleet would, instead of all at once through their proxies.
 */
export class LoginSlots {
  readonly keys: RedisKeys;

  constructor(
    private readonly redis: Redis,
    prefix = '',
  ) {
    this.keys = redisKeys(prefix);
  }

  async acquire(
    hostId: string,
    sessionId: string,
    opts: { max: number; leaseMs: number },
    now = Date.now(),
  ): Promise<LoginSlotAnswer> {
    const [granted, retryAfterMs] = await acquireScript(
      this.redis,
      [this.keys.loginSlots(hostId)],
      [sessionId, opts.max, opts.leaseMs, now],
    );
    return granted === 1 ? { granted: true } : { granted: false, retryAfterMs };
  }

  async release(hostId: string, sessionId: string): Promise<void> {
    await this.redis.zrem(this.keys.loginSlots(hostId), sessionId);
  }

  /** Logins holding a live lease on the host. */
  async inFlight(hostId: string, now = Date.now()): Promise<number> {
    return this.redis.zcount(this.keys.loginSlots(hostId), `(${now}`, '+inf');
  }
}
