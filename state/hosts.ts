import type { Redis } from 'ioredis';
import { redisKeys, type RedisKeys } from '../common/redis-keys.js';
import { luaCommand } from './lua.js';

const placeScript = luaCommand<
  [hosts: string],
  [prefix: string, sessionId: string, staleMs: number, nowMs: number],
  string
>(new URL('./host-place.lua', import.meta.url));

export interface HostInfo {
  hostId: string;
  /** The host's own Temporal task queue: its container activities run only there. */
  queue: string;
  capacity: number;
  heartbeatAt: number;
}

/**
 * The Docker hosts of a deployment (one orchestrator each). Each registers itself and heartbeats; a session is
 * placed at provision on the live host with the most free capacity (atomic, Lua) and stays there for life,
 * because its auth volume lives on that host's disk.
 */
export class HostRegistry {
  readonly keys: RedisKeys;

  constructor(
    private readonly redis: Redis,
    prefix = '',
  ) {
    this.keys = redisKeys(prefix);
  }

  async heartbeat(host: Omit<HostInfo, 'heartbeatAt'>, now = Date.now()): Promise<void> {
    await this.redis.hset(this.keys.hosts(), host.hostId, JSON.stringify({ ...host, heartbeatAt: now }));
  }

  async list(): Promise<Array<HostInfo & { load: number }>> {
    const raw = await this.redis.hgetall(this.keys.hosts());
    return Promise.all(
      Object.entries(raw).map(async ([hostId, json]) => ({
        ...(JSON.parse(json) as Omit<HostInfo, 'hostId'>),
        hostId,
        load: await this.redis.scard(this.keys.hostSessions(hostId)),
      })),
    );
  }

  /** Places the session (idempotent); null when every live host is full or none is alive. */
  async place(sessionId: string, staleMs: number, now = Date.now()): Promise<HostInfo | null> {
    const hostId = await placeScript(this.redis, [this.keys.hosts()], [this.keys.prefix, sessionId, staleMs, now]);
    if (!hostId) return null;
    const json = await this.redis.hget(this.keys.hosts(), hostId);
    return json ? { ...(JSON.parse(json) as Omit<HostInfo, 'hostId'>), hostId } : null;
  }

  async release(hostId: string, sessionId: string): Promise<void> {
    await this.redis.srem(this.keys.hostSessions(hostId), sessionId);
  }
}

/** The task queue of a host's container activities. */
export const hostQueueFor = (taskQueue: string, hostId: string) => `${taskQueue}@${hostId}`;
