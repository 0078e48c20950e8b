/**
 * The device-profile inventory in Redis: seeded with DEFAULT_DEVICE_PROFILES, extended and
 * retired by the admin API, handed out at provision by one Lua script (state/device-profile-assign.lua) so two
 * sessions on the same proxy never present the same profile, and a session keeps its profile for life.
 */
import type { Redis } from 'ioredis';
import { DEFAULT_DEVICE_PROFILES, deviceProfileId, type DeviceProfile } from '../common/device-profiles.js';
import { redisKeys, type RedisKeys } from '../common/redis-keys.js';
import { luaCommand } from './lua.js';
import { execAll } from './redis.js';

const assignScript = luaCommand<
  // proxy:sessions of the session's proxy only when it has one
  | [sessionProfile: string, profiles: string, retired: string]
  | [sessionProfile: string, profiles: string, retired: string, proxySessions: string],
  [prefix: string, sessionId: string],
  [id: string, json: string]
>(new URL('./device-profile-assign.lua', import.meta.url));
const retireScript = luaCommand<
  [profiles: string, profileSessions: string, retired: string],
  [profileId: string],
  'retired' | 'in_use' | 'unknown'
>(new URL('./device-profile-retire.lua', import.meta.url));

export interface DeviceProfileView extends DeviceProfile {
  retired: boolean;
  sessions: string[];
}

export class DeviceProfileStore {
  readonly keys: RedisKeys;

  constructor(
    private readonly redis: Redis,
    prefix = '',
  ) {
    this.keys = redisKeys(prefix);
  }

  /** Adds the default inventory (idempotent: existing and retired profiles are left as they are). */
  async seed(): Promise<number> {
    let added = 0;
    for (const [i, p] of DEFAULT_DEVICE_PROFILES.entries()) {
      const id = deviceProfileId(p);
      const profile: DeviceProfile = { id, ...p, seq: i };
      added += await this.redis.hsetnx(this.keys.deviceProfiles(), id, JSON.stringify(profile));
    }
    return added;
  }

  /** Adds one profile; false when its id exists already. */
  async add(p: Omit<DeviceProfile, 'id' | 'seq'>): Promise<DeviceProfile | null> {
    const id = deviceProfileId(p);
    const seq = 1000 + (await this.redis.hlen(this.keys.deviceProfiles()));
    const profile: DeviceProfile = { id, os: p.os, browser: p.browser, osVersion: p.osVersion, seq };
    const ok = await this.redis.hsetnx(this.keys.deviceProfiles(), id, JSON.stringify(profile));
    return ok ? profile : null;
  }

  async list(): Promise<DeviceProfileView[]> {
    const all = await this.redis.hgetall(this.keys.deviceProfiles());
    const retired = new Set(await this.redis.smembers(this.keys.deviceProfilesRetired()));
    const out: DeviceProfileView[] = [];
    for (const json of Object.values(all)) {
      const p = JSON.parse(json) as DeviceProfile;
      const sessions = (await this.redis.smembers(this.keys.deviceProfileSessions(p.id))).sort();
      out.push({ ...p, retired: retired.has(p.id), sessions });
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  async retire(id: string): Promise<'retired' | 'in_use' | 'unknown'> {
    const k = this.keys;
    return retireScript(this.redis, [k.deviceProfiles(), k.deviceProfileSessions(id), k.deviceProfilesRetired()], [id]);
  }

  /** The session's profile (assigned once, kept for life); null when none is free on its proxy. */
  async assign(sessionId: string, proxyUrl: string | null): Promise<DeviceProfile | null> {
    const k = this.keys;
    const keys = [k.sessionDeviceProfile(sessionId), k.deviceProfiles(), k.deviceProfilesRetired()] as const;
    const [id, json] = await assignScript(this.redis, proxyUrl ? [...keys, k.proxySessions(proxyUrl)] : [...keys], [
      k.prefix,
      sessionId,
    ]);
    return id && json ? (JSON.parse(json) as DeviceProfile) : null;
  }

  async of(sessionId: string): Promise<DeviceProfile | null> {
    const id = await this.redis.get(this.keys.sessionDeviceProfile(sessionId));
    const json = id ? await this.redis.hget(this.keys.deviceProfiles(), id) : null;
    return json ? (JSON.parse(json) as DeviceProfile) : null;
  }

  /** The session is gone (deleted, logged out, failed provision): its profile is free again. */
  async release(sessionId: string): Promise<void> {
    const id = await this.redis.get(this.keys.sessionDeviceProfile(sessionId));
    const tx = this.redis.multi().del(this.keys.sessionDeviceProfile(sessionId));
    if (id) tx.srem(this.keys.deviceProfileSessions(id), sessionId);
    await execAll(tx);
  }

  /** Active profiles no session presents. */
  async free(): Promise<number> {
    // Counted, not listed: every provision checks it, and each profile's session set grows with the fleet.
    const k = this.keys;
    const [ids, retired] = await Promise.all([
      this.redis.hkeys(k.deviceProfiles()),
      this.redis.smembers(k.deviceProfilesRetired()),
    ]);
    const active = ids.filter((id) => !retired.includes(id));
    const uses = await Promise.all(active.map((id) => this.redis.scard(k.deviceProfileSessions(id))));
    return uses.filter((n) => n === 0).length;
  }
}
