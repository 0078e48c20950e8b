import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Payload } from '@temporalio/common';
import { AesGcmCodec, CodecKeyError } from '../../common/codec.js';
import type { Config } from '../../common/config.js';
import { ApiError, parseInput } from '../errors.js';

/**
 * The codec server of the Temporal Web UI (its "remote codec endpoint" protocol): `POST /codec/encode` and
 * `POST /codec/decode` with `{payloads: [{metadata: {k: base64}, data: base64}]}`. Decoding shows secrets, so the
 * POST routes live in the admin scope (admin API key only); the CORS preflight is public and names only the Web UI's
 * origin (TEMPORAL_UI_URL).
 */
const b64 = z
  .string()
  .max(4 * 1024 * 1024)
  .regex(/^[A-Za-z0-9+/=_-]*$/, 'must be base64');
export const CodecBody = z
  .object({
    payloads: z
      .array(z.object({ metadata: z.record(b64).default({}), data: b64.default('') }).passthrough())
      .max(10_000),
  })
  .strict();

const toPayload = (p: { metadata: Record<string, string>; data: string }): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data, 'base64'),
});

const fromPayload = (p: Payload) => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

const ALLOW_HEADERS = 'content-type, x-namespace, x-api-key, authorization';

/** CORS for the Web UI's origin only (credentials allowed: the browser may send its cookies). */
function corsFor(config: Config) {
  const uiOrigin = new URL(config.TEMPORAL_UI_URL).origin;
  return (request: FastifyRequest, reply: FastifyReply) => {
    reply.header('vary', 'Origin');
    if (request.headers.origin !== uiOrigin) return;
    reply.header('access-control-allow-origin', uiOrigin);
    reply.header('access-control-allow-credentials', 'true');
  };
}

/** Public part: the preflight (no secret involved; the browser sends no key on OPTIONS). */
export function codecPreflightRoutes(config: Config) {
  const cors = corsFor(config);
  return async function plugin(app: FastifyInstance) {
    for (const op of ['encode', 'decode'])
      app.options(`/codec/${op}`, async (request, reply) => {
        cors(request, reply);
        reply.header('access-control-allow-methods', 'POST, OPTIONS');
        reply.header('access-control-allow-headers', ALLOW_HEADERS);
        reply.header('access-control-max-age', '600');
        return reply.status(204).send();
      });
  };
}

/** Admin part: register inside the admin scope. */
export function codecRoutes(config: Config) {
  const codec = AesGcmCodec.fromEnv(config.TEMPORAL_CODEC_KEYS);
  const cors = corsFor(config);
  return async function plugin(app: FastifyInstance) {
    // On every answer, 401/403 included, so the Web UI can tell "not allowed" from a network error.
    app.addHook('onSend', async (request, reply, payload) => {
      cors(request, reply);
      return payload;
    });
    for (const op of ['encode', 'decode'] as const)
      app.post(`/codec/${op}`, async (request) => {
        const body = parseInput(CodecBody, request.body, 'body');
        const payloads = body.payloads.map(toPayload);
        try {
          const out = op === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
          return { payloads: out.map(fromPayload) };
        } catch (err) {
          // A wrong key id or a tampered payload: say so, nothing more.
          if (err instanceof CodecKeyError || (err as Error).message?.includes('authenticate'))
            throw new ApiError(
              400,
              'CODEC_ERROR',
              err instanceof CodecKeyError ? err.message : 'payload failed authentication',
            );
          throw err;
        }
      });
  };
}
