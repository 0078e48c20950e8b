/**
 * The signed scope: worker → API calls (`POST /api/webhook`, `/api/worker/*`), authenticated by HMAC with the
 * session's own key instead of an API key. ONE verifier (a `preValidation` hook, after the raw body is kept) for
 * every route of the scope; each route says where its session id is (`body.sessionId` or `:id`) and whether the
 * signature must be request-bound (method, path, nonce — the outbox) or body-only (the webhook, de-duplicated by
 * eventId instead). Errors use the one error handler: 401 BAD_SIGNATURE for anything unverified, never "no such
 * session" (existence is checked by the route only after the signature proved the caller holds that key).
 *
 * A route streaming a file (inbound media) signs a description header instead of the body (`payload.header`): the
 * route checks the bytes against the size and SHA-256 it describes.
 *
 * Fencing: a worker names its generation (WORKER_GENERATION) in a signed header; a call from a generation older than
 * the session's current worker (mirrored in Redis at every worker start) is refused with 409 STALE_GENERATION, and
 * the worker stops itself: it has been replaced.
 */
import type { FastifyInstance } from 'fastify';
import { SessionIdSchema, verifySignedRequest, verifyWebhook } from '../common/events.js';
import { markScope } from './auth.js';
import { ApiError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * `payload`: a header whose value is signed instead of the body (a streamed file: the header describes the
     * bytes, size and SHA-256, and the route checks the body against it).
     */
    signed?: { session: 'body' | 'params'; bound: boolean; payload?: { header: string } };
  }
  interface FastifyRequest {
    rawBody?: string;
    /** The worker generation the signed call named (undefined: none). */
    signedGeneration?: number;
  }
}

export interface SignedScopeOptions {
  /** The key a session's worker signs with (derived per session); undefined = nobody can sign for it. */
  secretFor: (sessionId: string) => string | undefined | Promise<string | undefined>;
  /** Records a request nonce; false when it was seen before (a replay). */
  claimNonce: (sessionId: string, nonce: string, ttlMs: number) => Promise<boolean>;
  /** Accepted clock skew (default 5 min). */
  toleranceMs?: number;
  bodyLimit?: number;
  /** The session's current worker generation (null: none recorded yet, nothing is fenced). */
  generationOf?: (sessionId: string) => Promise<number | null>;
  /** Called for each refused call of an older generation (metrics). Never throws into the request. */
  onStale?: (route: string, sessionId: string) => void | Promise<void>;
}

export function signedScope(opts: SignedScopeOptions, register: (scope: FastifyInstance) => Promise<void>) {
  const tolerance = opts.toleranceMs ?? 5 * 60_000;
  return async function scope(app: FastifyInstance) {
    markScope(app, 'signed');
    if (!app.hasRequestDecorator('signedSession')) app.decorateRequest('signedSession', null);
    // The signature covers the exact bytes: keep the raw body (scoped to this plugin).
    app.addContentTypeParser(
      'application/json',
      { parseAs: 'string', bodyLimit: opts.bodyLimit ?? 256 * 1024 },
      (request, body, done) => {
        request.rawBody = body as string;
        if (body === '') return done(null, {});
        try {
          done(null, JSON.parse(body as string));
        } catch {
          done(new ApiError(400, 'INVALID_JSON', 'body is not valid JSON'), undefined);
        }
      },
    );
    app.addHook('preValidation', async (request) => {
      const how = request.routeOptions.config.signed;
      if (!how) throw new ApiError(401, 'BAD_SIGNATURE', 'route is not signable');
      const candidate =
        how.session === 'params'
          ? (request.params as { id?: unknown } | undefined)?.id
          : (request.body as { sessionId?: unknown } | null | undefined)?.sessionId;
      const sid = SessionIdSchema.safeParse(candidate);
      // Without a well-formed session id there is no key to verify with: unauthenticated, like a bad signature.
      if (!sid.success)
        throw new ApiError(401, 'BAD_SIGNATURE', 'signature cannot be verified: session id missing or invalid');
      const secret = await opts.secretFor(sid.data);
      const described = how.payload ? request.headers[how.payload.header] : undefined;
      if (how.payload && typeof described !== 'string')
        throw new ApiError(401, 'BAD_SIGNATURE', `signature cannot be verified: ${how.payload.header} missing`);
      const raw = how.payload ? (described as string) : (request.rawBody ?? '');
      const verdict = !secret
        ? ({ ok: false, reason: 'bad-signature' } as const)
        : how.bound
          ? verifySignedRequest(
              secret,
              request.headers,
              { method: request.method, path: request.url.split('?')[0]!, body: raw },
              { toleranceMs: tolerance },
            )
          : verifyWebhook(secret, request.headers, raw, { toleranceMs: tolerance });
      if (!verdict.ok) {
        throw new ApiError(
          401,
          'BAD_SIGNATURE',
          verdict.reason === 'stale'
            ? 'timestamp outside the accepted window'
            : verdict.reason === 'missing'
              ? 'signature headers missing'
              : 'signature invalid',
        );
      }
      if (how.bound) {
        const nonce = (verdict as { nonce?: string }).nonce!;
        if (!(await opts.claimNonce(sid.data, nonce, tolerance * 2)))
          throw new ApiError(401, 'BAD_SIGNATURE', 'request replayed (nonce already used)');
      }
      // Checked only after the signature: the generation header is covered by it.
      const generation = verdict.generation;
      if (generation !== undefined && opts.generationOf) {
        const current = await opts.generationOf(sid.data);
        if (current !== null && generation < current) {
          await Promise.resolve(opts.onStale?.(routeName(request.routeOptions.url), sid.data)).catch(() => undefined);
          throw new ApiError(
            409,
            'STALE_GENERATION',
            `worker generation ${generation} was replaced by generation ${current}: stop`,
            'x-wa-generation',
          );
        }
      }
      request.signedSession = sid.data;
      request.signedGeneration = generation;
    });
    await register(app);
  };
}

/** A short route label for metrics: webhook, outbox, commands or auth. */
function routeName(url: string | undefined): string {
  if (!url) return 'unknown';
  if (url.includes('/outbox/')) return 'outbox';
  if (url.includes('/commands/')) return 'commands';
  if (url.includes('/auth/')) return 'auth';
  return url.endsWith('/webhook') ? 'webhook' : 'other';
}

/** An in-process nonce memory (tests and single-process tools; the API uses Redis). */
export function memoryNonces(): SignedScopeOptions['claimNonce'] {
  const seen = new Map<string, number>();
  return async (sessionId, nonce, ttlMs) => {
    const now = Date.now();
    for (const [k, until] of seen) if (until < now) seen.delete(k);
    const key = `${sessionId}:${nonce}`;
    if (seen.has(key)) return false;
    seen.set(key, now + ttlMs);
    return true;
  };
}
