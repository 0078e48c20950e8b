import type { Redis } from 'ioredis';
import { proxyIdOf } from '../common/proxy-id.js';
import { parseProxyUrl } from '../common/proxy-url.js';
import { redisKeys, type ProxyKeyFamily, type RedisKeys } from '../common/redis-keys.js';
import { luaCommand } from './lua.js';

// The pool's scripts (headers in the .lua files): every change to a counter is one of them.
const reserveScript = luaCommand<
  [slot: string, temp: string, all: string, available: string, urls: string, privateTo: string, sticky: string],
  [
    prefix: string,
    request: { sessionId: string; tenant: string; limit: number; exclude: string[]; phone?: string; override?: string },
  ],
  [proxyUrl: string, source: string, countAfter: number]
>(new URL('./proxy-reserve.lua', import.meta.url));
const releaseScript = luaCommand<
  [slot: string, temp: string, all: string, available: string, urls: string, privateTo: string],
  [prefix: string, sessionId: string],
  string
>(new URL('./proxy-release.lua', import.meta.url));
const registerScript = luaCommand<
  [all: string, urls: string, privateTo: string, status: string, counter: string, available: string],
  [proxyUrl: string, proxyId: string],
  number
>(new URL('./proxy-register.lua', import.meta.url));
const setStatusScript = luaCommand<
  [all: string, status: string, badAt: string, available: string, privateTo: string],
  [proxyUrl: string, proxyId: string, status: ProxyStatus, nowMs: number],
  number
>(new URL('./proxy-set-status.lua', import.meta.url));
const removeScript = luaCommand<
  [
    all: string,
    available: string,
    urls: string,
    privateTo: string,
    counter: string,
    status: string,
    badAt: string,
    sessions: string,
  ],
  [proxyUrl: string, proxyId: string],
  1 | 0 | -1
>(new URL('./proxy-remove.lua', import.meta.url));
const recountScript = luaCommand<[sessionsAll: string, proxiesAll: string], [prefix: string], Array<string | number>>(
  new URL('./proxy-recount.lua', import.meta.url),
);
const freeCountScript = luaCommand<
  [proxiesAll: string, proxiesPrivate: string],
  [prefix: string, limit: number],
  number
>(new URL('./proxy-free-count.lua', import.meta.url));
const migrateKeyScript = luaCommand<
  [oldKey: string, newKey: string, all: string, urls: string],
  [family: ProxyKeyFamily, proxyUrl: string, proxyId: string],
  number
>(new URL('./proxy-migrate-key.lua', import.meta.url));

export type ProxyStatus = 'OK' | 'BAD';
export type ReservationSource = 'held' | 'override' | 'sticky' | 'pool';

export interface Reservation {
  proxyUrl: string;
  source: ReservationSource;
  /** Sessions on the proxy after this reservation. */
  load: number;
}

export interface ProxyInfo {
  /** Canonical URL with credentials: internal only, never returned by the API. */
  url: string;
  /** `host:port`. */
  endpoint: string;
  /** URL with the password replaced by `***`. */
  redacted: string;
  status: ProxyStatus;
  /** The tenant whose own (override) proxy this is; null for the shared pool. */
  privateTo: string | null;
  badAt: number | null;
  load: number;
  limit: number;
  sessions: string[];
}

/** Thrown when no healthy proxy has a free slot: the API answers 503. */
export class NoProxyCapacityError extends Error {
  override readonly name = 'NoProxyCapacityError';
  readonly code = 'NO_PROXY_CAPACITY';
}

/** A proxyOverride that cannot be honoured (SPEC §3.1): full, BAD, or another tenant's private proxy. */
export class ProxyOverrideRefusedError extends Error {
  override readonly name = 'ProxyOverrideRefusedError';
  readonly code = 'PROXY_OVERRIDE_REFUSED';
}

export class ProxyInUseError extends Error {
  override readonly name = 'ProxyInUseError';
  readonly code = 'PROXY_IN_USE';
}

/**
 * The proxy pool in Redis (SPEC §3.1, §3.5, §9): registration, atomic reservation (Lua), release, health
 * status and the sticky phone → proxy binding. Every mutation that touches counters is one Lua script, so
 * counters never exceed the limit and never go below zero, even with many orchestrators at once.
 */
export class ProxyPool {
  readonly keys: RedisKeys;

  /** Sessions per proxy (MAX_SESSIONS_PER_PROXY). */
  readonly limit: number;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    opts: { maxSessionsPerProxy: number },
  ) {
    this.keys = redisKeys(prefix);
    this.limit = opts.maxSessionsPerProxy;
  }

  private get prefix(): string {
    return this.keys.prefix;
  }

  /** Validates and registers proxies (idempotent). Returns the canonical URLs. Throws ProxyUrlError on bad input. */
  async register(...rawUrls: string[]): Promise<string[]> {
    const urls = rawUrls.map((raw) => parseProxyUrl(raw).url);
    const k = this.keys;
    for (const url of urls) {
      await registerScript(
        this.redis,
        [
          k.proxiesAll(),
          k.proxyUrls(),
          k.proxiesPrivate(),
          k.proxyStatus(url),
          k.proxyCounter(url),
          k.proxiesAvailable(),
        ],
        [url, proxyIdOf(url)],
      );
    }
    return urls;
  }

  /**
   * Start-up migration: proxy keys named by URL (`proxy:status:socks5h://user:pass@...`) move to their
   * proxy-id names, and `proxies:urls` is filled. Idempotent (a second run finds nothing); counters are recomputed
   * from the sessions' slots when anything moved. Returns how many keys moved.
   */
  async migrateLegacyKeys(): Promise<number> {
    let moved = 0;
    for (const family of this.keys.proxyKeyFamilies()) {
      const legacy: string[] = [];
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}${family}*`, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) {
          const rest = key.slice(this.prefix.length + family.length);
          if (rest.includes('://')) legacy.push(rest);
        }
      } while (cursor !== '0');
      const k = this.keys;
      for (const url of legacy) {
        moved += await migrateKeyScript(
          this.redis,
          [k.legacyProxyKey(family, url), k.proxyKeyOf(family, url), k.proxiesAll(), k.proxyUrls()],
          [family, url, proxyIdOf(url)],
        );
      }
    }
    for (const url of await this.redis.smembers(this.keys.proxiesAll()))
      await this.redis.hset(this.keys.proxyUrls(), proxyIdOf(url), url);
    if (moved > 0) await this.recomputeCounters();
    return moved;
  }

  /**
   * Reserves a slot for `sessionId`: override → sticky proxy of `phone` → least-loaded healthy proxy.
   * Idempotent per session (a retry returns the slot already held). Throws NoProxyCapacityError.
   */
  async reserve(req: {
    sessionId: string;
    phone?: string;
    override?: string;
    exclude?: string[];
    /** Owner of a new override proxy (private to it); another tenant's private proxy is refused. */
    tenant?: string;
  }): Promise<Reservation> {
    const override = req.override ? parseProxyUrl(req.override).url : '';
    const k = this.keys;
    const [proxyUrl, source, load] = await reserveScript(
      this.redis,
      [
        k.sessionSlot(req.sessionId),
        k.sessionTemp(req.sessionId),
        k.proxiesAll(),
        k.proxiesAvailable(),
        k.proxyUrls(),
        k.proxiesPrivate(),
        k.phoneProxy(req.phone ?? ''),
      ],
      [
        this.prefix,
        {
          sessionId: req.sessionId,
          tenant: req.tenant ?? 'admin',
          limit: this.limit,
          exclude: req.exclude ?? [],
          // absent, not '': the script tests presence
          ...(req.phone ? { phone: req.phone } : {}),
          ...(override ? { override } : {}),
        },
      ],
    );
    if (source.startsWith('override_')) {
      throw new ProxyOverrideRefusedError(
        source === 'override_full'
          ? `the proxy override already has ${this.limit} sessions`
          : source === 'override_bad'
            ? 'the proxy override is marked BAD'
            : 'the proxy override is not available',
      );
    }
    if (!proxyUrl) {
      throw new NoProxyCapacityError(
        `no proxy capacity: every healthy proxy already has ${this.limit} sessions (or none is healthy)`,
      );
    }
    return { proxyUrl, source: source as ReservationSource, load: Number(load) };
  }

  /** Releases the session's slot, if it holds one. Returns the proxy released, or null. Never below zero. */
  async release(sessionId: string): Promise<string | null> {
    const k = this.keys;
    const released = await releaseScript(
      this.redis,
      [
        k.sessionSlot(sessionId),
        k.sessionTemp(sessionId),
        k.proxiesAll(),
        k.proxiesAvailable(),
        k.proxyUrls(),
        k.proxiesPrivate(),
      ],
      [this.prefix, sessionId],
    );
    return released || null;
  }

  /** The URL of a registered proxy (pool or a tenant's override in use) by its id; null when it is gone. */
  async urlOf(proxyId: string): Promise<string | null> {
    return this.redis.hget(this.keys.proxyUrls(), proxyId);
  }

  /** The proxy whose slot the session holds, if any. */
  async heldBy(sessionId: string): Promise<string | null> {
    return this.redis.get(this.keys.sessionSlot(sessionId));
  }

  async markBad(proxyUrl: string, now = Date.now()): Promise<boolean> {
    return this.setStatus(proxyUrl, 'BAD', now);
  }

  async markOk(proxyUrl: string): Promise<boolean> {
    return this.setStatus(proxyUrl, 'OK', 0);
  }

  private async setStatus(proxyUrl: string, status: ProxyStatus, now: number): Promise<boolean> {
    const k = this.keys;
    const result = await setStatusScript(
      this.redis,
      [k.proxiesAll(), k.proxyStatus(proxyUrl), k.proxyBadAt(proxyUrl), k.proxiesAvailable(), k.proxiesPrivate()],
      [proxyUrl, proxyIdOf(proxyUrl), status, now],
    );
    return result === 1;
  }

  /** Removes a proxy with no sessions on it. Throws ProxyInUseError otherwise; false when unknown. */
  async remove(proxyUrl: string): Promise<boolean> {
    const k = this.keys;
    const result = await removeScript(
      this.redis,
      [
        k.proxiesAll(),
        k.proxiesAvailable(),
        k.proxyUrls(),
        k.proxiesPrivate(),
        k.proxyCounter(proxyUrl),
        k.proxyStatus(proxyUrl),
        k.proxyBadAt(proxyUrl),
        k.proxySessions(proxyUrl),
      ],
      [proxyUrl, proxyIdOf(proxyUrl)],
    );
    if (result === -1) throw new ProxyInUseError('proxy still has sessions; move or delete them first');
    return result === 1;
  }

  async getSticky(phone: string): Promise<string | null> {
    return this.redis.get(this.keys.phoneProxy(phone));
  }

  async setSticky(phone: string, proxyUrl: string): Promise<void> {
    await this.redis.set(this.keys.phoneProxy(phone), proxyUrl);
  }

  async clearSticky(phone: string): Promise<void> {
    await this.redis.del(this.keys.phoneProxy(phone));
  }

  /** The temporary binding (SPEC §3.1), set by reserve() and cleared at CONNECTED or release. */
  async getTemp(sessionId: string): Promise<string | null> {
    return this.redis.get(this.keys.sessionTemp(sessionId));
  }

  async clearTemp(sessionId: string): Promise<void> {
    await this.redis.del(this.keys.sessionTemp(sessionId));
  }

  async load(proxyUrl: string): Promise<number> {
    return Number((await this.redis.get(this.keys.proxyCounter(proxyUrl))) ?? 0);
  }

  async list(): Promise<ProxyInfo[]> {
    const urls = (await this.redis.smembers(this.keys.proxiesAll())).sort();
    return Promise.all(
      urls.map(async (url) => {
        const [status, badAt, load, sessions, privateTo] = await Promise.all([
          this.redis.get(this.keys.proxyStatus(url)),
          this.redis.get(this.keys.proxyBadAt(url)),
          this.redis.get(this.keys.proxyCounter(url)),
          this.redis.smembers(this.keys.proxySessions(url)),
          this.redis.hget(this.keys.proxiesPrivate(), proxyIdOf(url)),
        ]);
        const parsed = safeParse(url);
        return {
          url,
          endpoint: parsed?.endpoint ?? '?',
          redacted: parsed?.redacted ?? '?',
          status: status === 'BAD' ? 'BAD' : 'OK',
          privateTo: privateTo ?? null,
          badAt: badAt ? Number(badAt) : null,
          load: Number(load ?? 0),
          limit: this.limit,
          sessions: sessions.sort(),
        } satisfies ProxyInfo;
      }),
    );
  }

  /**
   * Recomputes every proxy's session set and counter from the slots known sessions hold (one Lua step, used by
   * the restore). Returns proxyUrl → count.
   */
  async recomputeCounters(): Promise<Record<string, number>> {
    const flat = await recountScript(this.redis, [this.keys.sessionsAll(), this.keys.proxiesAll()], [this.prefix]);
    const out: Record<string, number> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = Number(flat[i + 1]);
    return out;
  }

  /** Healthy proxies with at least one free slot: the inventory that low-inventory alerts watch. */
  async freeHealthyProxies(): Promise<number> {
    return freeCountScript(this.redis, [this.keys.proxiesAll(), this.keys.proxiesPrivate()], [this.prefix, this.limit]);
  }
}

function safeParse(url: string) {
  try {
    return parseProxyUrl(url);
  } catch {
    return null;
  }
}
