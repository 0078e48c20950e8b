/**
 * Per-tenant quotas, each one atomic Lua script (the quota-*.lua files beside this one): live sessions and provision rate
 * (ONE_SESSION_PER_TENANT is a live-session limit of 1), and the rate of manual failovers. The admin key is not
 * limited.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../common/config.js';
import { redisKeys } from '../common/redis-keys.js';
import { luaCommand } from '../state/lua.js';

/** How long an admitted provision counts before its session record exists (covers a slow first activity). */
const RESERVE_MS = 120_000;

const provisionAdmitScript = luaCommand<
  [tenantSessions: string, tenantProvisioning: string, provisionRate: string],
  [prefix: string, sessionId: string, maxLive: number, rateMax: number, windowMs: number, reserveMs: number],
  [kind: 'ok' | 'sessions' | 'rate', n: number]
>(new URL('./quota-provision-admit.lua', import.meta.url));
const failoverAdmitScript = luaCommand<
  [failoverRate: string],
  [max: number, windowMs: number, sessionId: string],
  [ok: number, retryAfterMs: number]
>(new URL('./quota-failover-admit.lua', import.meta.url));

export type Admission =
  { ok: true } | { ok: false; limit: 'sessions'; max: number } | { ok: false; limit: 'rate'; retryAfterMs: number };

export class TenantQuotas {
  private readonly keys;

  constructor(
    private readonly redis: Redis,
    private readonly config: Config,
  ) {
    this.keys = redisKeys(config.REDIS_KEY_PREFIX);
  }

  get maxLiveSessions(): number {
    return this.config.ONE_SESSION_PER_TENANT ? 1 : this.config.TENANT_MAX_SESSIONS;
  }

  async admitProvision(tenant: string, sessionId: string): Promise<Admission> {
    const max = this.maxLiveSessions;
    const [kind, n] = await provisionAdmitScript(
      this.redis,
      [this.keys.tenantSessions(tenant), this.keys.tenantProvisioning(tenant), this.keys.provisionRate(tenant)],
      [
        this.config.REDIS_KEY_PREFIX,
        sessionId,
        max,
        this.config.TENANT_PROVISION_MAX,
        this.config.TENANT_PROVISION_WINDOW_MS,
        RESERVE_MS,
      ],
    );
    if (kind === 'sessions') return { ok: false, limit: 'sessions', max };
    if (kind === 'rate') return { ok: false, limit: 'rate', retryAfterMs: Number(n) };
    return { ok: true };
  }

  /** The provision ended (recorded or refused): its reservation no longer counts on its own. */
  async settleProvision(tenant: string, sessionId: string): Promise<void> {
    await this.redis.zrem(this.keys.tenantProvisioning(tenant), sessionId);
  }

  async admitFailover(tenant: string, sessionId: string): Promise<{ ok: boolean; retryAfterMs: number }> {
    const [ok, retry] = await failoverAdmitScript(
      this.redis,
      [this.keys.failoverRate(tenant)],
      [this.config.TENANT_FAILOVER_MAX, this.config.TENANT_FAILOVER_WINDOW_MS, sessionId],
    );
    return { ok: Number(ok) === 1, retryAfterMs: Number(retry) };
  }
}
