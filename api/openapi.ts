import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { zodToJsonSchema } from 'zod-to-json-schema';
import { WebhookEnvelopeSchema } from '../common/events.js';
import { ProvisionBodySchema, ProxyUrlSchema } from '../common/session.js';

const ErrorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});

const json = (schema: z.ZodTypeAny) => ({
  'application/json': { schema: zodToJsonSchema(schema, { target: 'openApi3' }) },
});
const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((c) => [String(c), { description: 'error', content: json(ErrorSchema) }]));
const ok = (description: string) => ({ '200': { description } });
const idParam = [
  { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
];

/** The OpenAPI 3 document, built from the same zod schemas the routes validate with. */
export function openApiDocument() {
  return {
    openapi: '3.0.3',
    info: { title: 'WhatsApp session orchestrator', version: '0.1.0' },
    components: {
      securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } },
    },
    security: [{ apiKey: [] }],
    paths: {
      '/api/sessions/provision': {
        post: {
          summary: 'Create a session: reserve a proxy, start its worker (then GET …/qr)',
          requestBody: { content: json(ProvisionBodySchema) },
          responses: { '201': { description: 'created' }, ...errors(400, 401, 403, 409, 503) },
        },
      },
      '/api/sessions/{id}/qr': {
        get: {
          summary: 'QR to scan: raw string, PNG data URL, terminal rendering',
          parameters: idParam,
          responses: { ...ok('QR'), ...errors(401, 403, 404) },
        },
      },
      '/api/sessions/{id}/status': {
        get: {
          summary: 'Session status',
          parameters: idParam,
          responses: { ...ok('status'), ...errors(401, 403, 404) },
        },
      },
      '/api/sessions/{id}/health': {
        get: {
          summary: '200 healthy, 503 not (with the reason)',
          parameters: idParam,
          responses: { ...ok('healthy'), ...errors(503) },
        },
      },
      '/api/sessions/{id}/restart': {
        post: {
          summary: 'Restart the worker (no new scan)',
          parameters: idParam,
          responses: { ...ok('restarted'), ...errors(401, 403, 404, 409) },
        },
      },
      '/api/sessions/{id}/failover': {
        post: {
          summary: 'Move the session to another proxy',
          parameters: idParam,
          responses: { ...ok('moved'), ...errors(401, 403, 404, 409) },
        },
      },
      '/api/sessions/{id}/logout': {
        post: {
          summary: 'Stop and wipe the auth data',
          parameters: idParam,
          responses: { ...ok('logged out'), ...errors(401, 403, 404, 409) },
        },
      },
      '/api/sessions/{id}': {
        delete: {
          summary: 'Delete: stop the worker, release the slot, clean keys (auth removed unless keepAuth=true)',
          parameters: [...idParam, { name: 'keepAuth', in: 'query', schema: { type: 'boolean' } }],
          responses: { ...ok('deleted'), ...errors(401, 403, 404) },
        },
      },
      '/api/v1/dashboard/sessions': { get: { summary: 'All sessions (tenant-filtered)', responses: ok('sessions') } },
      '/api/v1/dashboard/stats': { get: { summary: 'Statistics', responses: ok('stats') } },
      '/api/v1/proxies': {
        get: { summary: 'Proxies with load and status (admin)', responses: ok('proxies') },
        post: {
          summary: 'Add a proxy (admin)',
          requestBody: { content: json(z.object({ url: ProxyUrlSchema })) },
          responses: { '201': { description: 'added' }, ...errors(400, 403) },
        },
      },
      '/api/v1/proxies/{id}': {
        delete: {
          summary: 'Remove an empty proxy (admin)',
          parameters: idParam,
          responses: { ...ok('removed'), ...errors(404, 409) },
        },
      },
      '/api/v1/proxies/{id}/ok': {
        post: { summary: 'Mark a proxy healthy again (admin)', parameters: idParam, responses: ok('marked') },
      },
      '/api/webhook': {
        post: {
          summary: 'Worker events, signed with HMAC-SHA256 (x-wa-timestamp, x-wa-signature)',
          security: [],
          requestBody: { content: json(WebhookEnvelopeSchema) },
          responses: { '202': { description: 'accepted' }, ...errors(400, 401, 404, 503) },
        },
      },
      '/healthz': { get: { security: [], summary: 'Process alive', responses: ok('alive') } },
      '/readyz': {
        get: {
          security: [],
          summary: 'Redis and Temporal reachable',
          responses: { ...ok('ready'), '503': { description: 'not ready' } },
        },
      },
    },
  };
}

export function openApiRoutes() {
  const doc = openApiDocument();
  return async function plugin(app: FastifyInstance) {
    app.get('/api/openapi.json', async () => doc);
  };
}
