import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../common/config.js';
import { ApiError } from './errors.js';

/** Who is calling: the admin (every tenant) or one tenant. */
export interface Principal {
  tenant: string | null;
  admin: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * `X-API-Key` on every /api route except the ones signed with HMAC (worker webhooks and outbox). Keys are
 * compared in constant time (as SHA-256 digests, so lengths never leak either).
 */
export function installApiKeyAuth(app: FastifyInstance, config: Config) {
  const keys = [
    { digest: digest(config.API_KEY), principal: { tenant: null, admin: true } satisfies Principal },
    ...config.TENANT_API_KEYS.map((t) => ({ digest: digest(t.key), principal: { tenant: t.tenant, admin: false } })),
  ];
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const url = request.url.split('?')[0]!;
    if (
      !url.startsWith('/api/') ||
      url === '/api/webhook' ||
      url.startsWith('/api/worker/') ||
      url === '/api/openapi.json'
    ) {
      return;
    }
    const given =
      request.headers['x-api-key'] ??
      (url === '/api/events' ? (request.query as { apiKey?: string }).apiKey : undefined);
    if (typeof given !== 'string' || given.length === 0)
      throw new ApiError(401, 'UNAUTHORIZED', 'missing X-API-Key header');
    const d = digest(given);
    let match: Principal | null = null;
    for (const k of keys) if (timingSafeEqual(k.digest, d)) match = k.principal;
    if (!match) throw new ApiError(401, 'UNAUTHORIZED', 'invalid API key');
    request.principal = match;
  });
}

/** The tenant a new session belongs to. */
export function tenantOf(principal: Principal): string {
  return principal.tenant ?? 'admin';
}

/** A tenant key reaches only its own sessions. */
export function assertSessionAccess(principal: Principal, sessionTenant: string) {
  if (!principal.admin && principal.tenant !== sessionTenant) {
    throw new ApiError(403, 'FORBIDDEN', 'this API key does not reach that session');
  }
}
