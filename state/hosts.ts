import type { Redis } from 'ioredis';
import { redisKeys, type RedisKeys } from '../common/redis-keys.js';
import { luaCommand } from './lua.js';

const placeScript = luaCommand<
  [hosts: string, draining: string],
  [prefix: string, sessionId: string, staleMs: number, nowMs: number],
  string
>(new URL('./host-place.lua', import.meta.url));
const moveScript = luaCommand<
  [hosts: string, draining: string, record: string],
  [prefix: string, sessionId: string, from: string, staleMs: number, nowMs: number, exclude: string[], to: string],
  string
>(new URL('./host-move.lua', import.meta.url));

export interface HostInfo {
  hostId: string;
  /** The host's own Temporal task queue: its container activities run only there. */
  queue: string;
  capacity: number;
  heartbeatAt: number;
}

/** A host as the API lists it. */
export interface HostView extends HostInfo {
  load: number;
  alive: boolean;
  draining: boolean;
}

/**
 * The Docker hosts of a deployment (one orchestrator each). Each registers itself and heartbeats; a session is
 * placed at provision on the live host with the most free capacity (atomic, Lua). It stays there unless a host
 * failover or a drain moves it (workflows/host-failover.ts), which needs its auth state off the host's disk.
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

  /** Every registered host, by id; `alive`: a heartbeat at most `staleMs` old. */
  async list(staleMs = Infinity, now = Date.now()): Promise<HostView[]> {
    const [raw, draining] = await Promise.all([
      this.redis.hgetall(this.keys.hosts()),
      this.redis.smembers(this.keys.hostsDraining()),
    ]);
    const hosts = await Promise.all(
      Object.entries(raw).map(async ([hostId, json]) => {
        const info = JSON.parse(json) as Omit<HostInfo, 'hostId'>;
        return {
          ...info,
          hostId,
          load: await this.redis.scard(this.keys.hostSessions(hostId)),
          alive: now - info.heartbeatAt <= staleMs,
          draining: draining.includes(hostId),
        };
      }),
    );
    return hosts.sort((a, b) => a.hostId.localeCompare(b.hostId));
  }

  async get(hostId: string): Promise<HostInfo | null> {
    const json = await this.redis.hget(this.keys.hosts(), hostId);
    return json ? { ...(JSON.parse(json) as Omit<HostInfo, 'hostId'>), hostId } : null;
  }

  /** Places the session (idempotent); null when every live host is full or none is alive. */
  async place(sessionId: string, staleMs: number, now = Date.now()): Promise<HostInfo | null> {
    const hostId = await placeScript(
      this.redis,
      [this.keys.hosts(), this.keys.hostsDraining()],
      [this.keys.prefix, sessionId, staleMs, now],
    );
    return hostId ? this.get(hostId) : null;
  }

  /**
   * Moves the session from `from` to the best other live host (not draining, not in `exclude`), in one step.
   * Idempotent: a session already off `from` answers the host it is on. null: no host can take it (unchanged).
   * `to`: that host whatever its load or state (the way back of a move whose start failed).
   */
  async move(
    sessionId: string,
    from: string,
    opts: { staleMs: number; exclude?: string[]; to?: string; now?: number },
  ): Promise<HostInfo | null> {
    const hostId = await moveScript(
      this.redis,
      [this.keys.hosts(), this.keys.hostsDraining(), this.keys.session(sessionId)],
      [this.keys.prefix, sessionId, from, opts.staleMs, opts.now ?? Date.now(), opts.exclude ?? [], opts.to ?? ''],
    );
    return hostId ? this.get(hostId) : null;
  }

  /** The sessions placed on a host. */
  async sessionsOn(hostId: string): Promise<string[]> {
    return (await this.redis.smembers(this.keys.hostSessions(hostId))).sort();
  }

  /** A draining host keeps its sessions until they are moved, and takes no new ones. */
  async setDraining(hostId: string, draining: boolean): Promise<void> {
    if (draining) await this.redis.sadd(this.keys.hostsDraining(), hostId);
    else await this.redis.srem(this.keys.hostsDraining(), hostId);
  }

  async release(hostId: string, sessionId: string): Promise<void> {
    await this.redis.srem(this.keys.hostSessions(hostId), sessionId);
  }
}

/** The task queue of a host's container activities. */
export const hostQueueFor = (taskQueue: string, hostId: string) => `${taskQueue}@${hostId}`;
