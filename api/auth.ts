/**
 * Authentication by Fastify encapsulation, failing closed:
 *   - every route declares its scope through the plugin that registers it (`onRoute` marks `config.auth`):
 *     `public` (health, dashboard page, OpenAPI), `apiKey` (everything a client calls), `signed` (worker webhooks
 *     and outbox, see api/signed.ts), `metrics` (bearer token);
 *   - one root `preHandler` guard refuses (401) any matched route whose request does not carry the proof its scope
 *     requires — a route registered outside every scope, or reached by an unusual path encoding, gets nothing;
 *   - the API-key check is ONE function ({@link ApiKeys.authenticate}) used by HTTP, SSE and the WebSocket upgrade;
 *     live events also accept a short-lived single-use ticket (`POST /api/events/ticket`) instead of a key in the
 *     URL; the admin sub-scope adds ONE {@link requireAdmin};
 *   - a route marked `signedUrl` (media downloads) also answers a signed URL without a key: its plugin verifies the
 *     signature before the guard and sets `request.urlGrant`, which the guard accepts for that route only.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../common/config.js';
import { redisKeys } from '../common/redis-keys.js';
import { ApiError } from './errors.js';

/** Who is calling: the admin (every tenant) or one tenant; `keyId` tells keys apart without naming them. */
export interface Principal {
  tenant: string | null;
  admin: boolean;
  keyId: string;
}

export type AuthScope = 'public' | 'apiKey' | 'signed' | 'metrics';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
    /** Set by the signed scope's verifier: the session whose key signed the request. */
    signedSession: string | null;
    /** Set by the metrics scope once the bearer token matched. */
    metricsAuthorized: boolean;
    /** Set by a `signedUrl` route's own verifier: what the request's signed URL grants (e.g. one media id). */
    urlGrant: string | null;
  }
  interface FastifyContextConfig {
    auth?: AuthScope;
    /** apiKey routes that also accept a live-events ticket (`?ticket=`). */
    ticket?: boolean;
    /**
     * apiKey routes that also answer a signed URL (`?sig=` and no X-API-Key): the route's plugin verifies the
     * signature in its own `onRequest` hook and sets `request.urlGrant`; without it the guard refuses.
     */
    signedUrl?: boolean;
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time comparison of two secrets (as digests, so lengths never leak either). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** Marks every route registered in this scope (and its children) with its auth scope. */
export function markScope(app: FastifyInstance, scope: AuthScope) {
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), auth: scope } as typeof route.config;
  });
}

/** The API keys of the deployment, and the live-events tickets. */
export class ApiKeys {
  private readonly keys: Array<{ digest: Buffer; principal: Principal }>;

  constructor(
    config: Config,
    private readonly redis: Redis,
    private readonly ticketTtlMs = config.EVENTS_TICKET_TTL_MS,
  ) {
    const id = (key: string) => createHash('sha256').update(`key-id:${key}`).digest('hex').slice(0, 12);
    this.keys = [
      { digest: digest(config.API_KEY), principal: { tenant: null, admin: true, keyId: id(config.API_KEY) } },
      ...config.TENANT_API_KEYS.map((t) => ({
        digest: digest(t.key),
        principal: { tenant: t.tenant, admin: false, keyId: id(t.key) },
      })),
    ];
    this.ticketKey = (ticket: string) =>
      redisKeys(config.REDIS_KEY_PREFIX).eventsTicket(createHash('sha256').update(ticket).digest('hex'));
  }

  private readonly ticketKey: (ticket: string) => string;

  /** The principal of an API key; every key is compared, in constant time. */
  principalForKey(key: string | undefined): Principal | null {
    if (typeof key !== 'string' || key.length === 0) return null;
    const d = digest(key);
    let match: Principal | null = null;
    for (const k of this.keys) if (timingSafeEqual(k.digest, d)) match = k.principal;
    return match;
  }

  /**
   * THE API-key check (HTTP routes, SSE and the WebSocket upgrade): the `X-API-Key` header, or — where the caller
   * allows it — a live-events ticket in `?ticket=` (redeemed once). Throws a 401 ApiError.
   */
  async authenticate(headers: IncomingHttpHeaders, ticket: string | null, allowTicket: boolean): Promise<Principal> {
    const given = headers['x-api-key'];
    if (typeof given === 'string' && given.length > 0) {
      const p = this.principalForKey(given);
      if (!p) throw new ApiError(401, 'UNAUTHORIZED', 'invalid API key');
      return p;
    }
    if (allowTicket && ticket) {
      const p = await this.redeemTicket(ticket);
      if (!p) throw new ApiError(401, 'UNAUTHORIZED', 'invalid or expired ticket');
      return p;
    }
    throw new ApiError(
      401,
      'UNAUTHORIZED',
      allowTicket ? 'missing X-API-Key header or ticket' : 'missing X-API-Key header',
    );
  }

  async issueTicket(principal: Principal): Promise<{ ticket: string; expiresInMs: number }> {
    const ticket = randomBytes(24).toString('base64url');
    await this.redis.set(this.ticketKey(ticket), JSON.stringify(principal), 'PX', this.ticketTtlMs);
    return { ticket, expiresInMs: this.ticketTtlMs };
  }

  private async redeemTicket(ticket: string): Promise<Principal | null> {
    if (!/^[A-Za-z0-9_-]{16,64}$/.test(ticket)) return null;
    const raw = await this.redis.getdel(this.ticketKey(ticket));
    return raw ? (JSON.parse(raw) as Principal) : null;
  }
}

const queryTicket = (request: FastifyRequest): string | null => {
  const t = (request.query as { ticket?: unknown } | undefined)?.ticket;
  return typeof t === 'string' ? t : null;
};

/** A request presenting a signed URL instead of a key: `?sig=` and no X-API-Key header. */
export function isSignedUrlRequest(request: FastifyRequest): boolean {
  const sig = (request.query as { sig?: unknown } | undefined)?.sig;
  return typeof sig === 'string' && request.headers['x-api-key'] === undefined;
}

/** The api-key scope: routes registered by `register` need a valid key (or a ticket where allowed). */
export function apiKeyScope(keys: ApiKeys, register: (scope: FastifyInstance) => Promise<void>) {
  return async function scope(app: FastifyInstance) {
    markScope(app, 'apiKey');
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.config.signedUrl === true && isSignedUrlRequest(request)) return;
      const allowTicket = request.routeOptions.config.ticket === true;
      request.principal = await keys.authenticate(request.headers, queryTicket(request), allowTicket);
    });
    await register(app);
  };
}

/** THE admin check: the admin sub-scope's hook, and the route-level guard of admin-only routes. */
export async function requireAdmin(request: FastifyRequest) {
  if (!request.principal?.admin) throw new ApiError(403, 'FORBIDDEN', 'this needs the admin API key');
}

/** The admin sub-scope (inside the api-key scope). */
export function adminScope(register: (scope: FastifyInstance) => Promise<void>) {
  return async function scope(app: FastifyInstance) {
    app.addHook('onRequest', requireAdmin);
    await register(app);
  };
}

/** The public scope: routes that need no principal (health, the dashboard page, the OpenAPI document). */
export function publicScope(register: (scope: FastifyInstance) => Promise<void>) {
  return async function scope(app: FastifyInstance) {
    markScope(app, 'public');
    await register(app);
  };
}

/**
 * The root guard, installed before any route: whatever the path and however it was encoded, a matched route runs
 * only when its request carries its scope's proof; a route of no scope never runs.
 */
export function installAuthGuard(app: FastifyInstance) {
  app.decorateRequest('principal', null as unknown as Principal);
  app.decorateRequest('signedSession', null);
  app.decorateRequest('metricsAuthorized', false);
  app.decorateRequest('urlGrant', null);
  app.addHook('preHandler', async (request) => {
    if (request.is404) return;
    const scope = request.routeOptions.config?.auth;
    if (scope === 'public') return;
    if (scope === 'apiKey' && request.principal) return;
    if (scope === 'apiKey' && request.routeOptions.config.signedUrl === true && request.urlGrant) return;
    if (scope === 'signed' && request.signedSession) return;
    if (scope === 'metrics' && request.metricsAuthorized) return;
    throw new ApiError(401, 'UNAUTHORIZED', 'authentication required');
  });
}

/** The tenant a new session belongs to. */
export function tenantOf(principal: Principal): string {
  return principal.tenant ?? 'admin';
}

/** True when the principal reaches a session of `sessionTenant`. */
export function reaches(principal: Principal, sessionTenant: string): boolean {
  return principal.admin || principal.tenant === sessionTenant;
}

/**
 * A tenant key reaches only its own sessions. Another tenant's session answers exactly like a missing one, so
 * ids cannot be probed across tenants.
 */
export function assertSessionAccess(principal: Principal, sessionTenant: string, sessionId: string) {
  if (!reaches(principal, sessionTenant)) throw sessionNotFound(sessionId);
}

export const sessionNotFound = (sessionId: string, field?: string) =>
  new ApiError(404, 'SESSION_NOT_FOUND', `session ${sessionId} not found`, field);
