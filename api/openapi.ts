import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { zodToJsonSchema } from 'zod-to-json-schema';
import { WebhookEnvelopeSchema } from '../common/events.js';
import { ProvisionBodySchema, ProxyUrlSchema } from '../common/session.js';
import { LimitsOverrideSchema } from '../common/anti-ban.js';
import { ClientWebhookConfigSchema } from '../state/client-webhooks.js';
import { SendBodySchema } from './routes/send.js';

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
          responses: { '201': { description: 'created' }, ...errors(400, 401, 409, 429, 503) },
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
          responses: { ...ok('moved'), ...errors(401, 404, 409, 429) },
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
      '/api/v1/backups': {
        get: { summary: 'Backups with size, date, sessions and verification status (admin)', responses: ok('backups') },
      },
      '/api/v1/backups/create': {
        post: {
          summary: 'Run a backup now (admin)',
          responses: { '201': { description: 'written' }, ...errors(403, 409, 500) },
        },
      },
      '/api/v1/backups/restore/{id}': {
        post: {
          summary:
            'Restore a backup (admin): verified first, rolled back on failure; { sessionId } restores one session',
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^backup_[0-9_-]+$' } },
          ],
          requestBody: { content: json(z.object({ sessionId: z.string().optional() })) },
          responses: { ...ok('restored'), ...errors(400, 403, 404, 409, 422, 500) },
        },
      },
      '/api/send': {
        post: {
          summary:
            'Queue a message (idempotent with idempotencyKey / Idempotency-Key); paced by the anti-ban dispatcher',
          requestBody: { content: json(SendBodySchema) },
          responses: {
            '202': { description: '{messageId, sessionId, status: queued|scheduled, plannedAt?}' },
            ...errors(400, 401, 403, 404, 409, 429),
          },
        },
      },
      '/api/messages/{id}': {
        get: {
          summary: 'A message and its status: queued, scheduled (plannedAt), sent, delivered, read, failed (reason)',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { ...ok('message'), ...errors(400, 401, 403, 404) },
        },
      },
      '/api/anti-ban/sessions/{id}/limits': {
        get: {
          summary: 'Effective pacing limits, window usage, burst state, promotion counters',
          parameters: idParam,
          responses: { ...ok('limits'), ...errors(401, 403, 404) },
        },
        put: {
          summary: 'Replace the pacing overrides (admin key)',
          parameters: idParam,
          requestBody: { content: json(LimitsOverrideSchema) },
          responses: { ...ok('limits'), ...errors(400, 401, 403, 404) },
        },
      },
      '/api/v1/webhooks': {
        get: {
          summary: "The tenant's customer webhook (never the secret)",
          responses: { ...ok('config'), ...errors(404) },
        },
        put: {
          summary: 'Set the tenant customer webhook: url, secret (HMAC-SHA256), event types',
          requestBody: { content: json(ClientWebhookConfigSchema) },
          responses: { ...ok('config'), ...errors(400, 401, 403) },
        },
        delete: { summary: 'Remove the tenant customer webhook', responses: { ...ok('deleted'), ...errors(404) } },
      },
      '/api/v1/webhooks/dead-letters': {
        get: { summary: 'Deliveries that exhausted their retries or were refused', responses: ok('dead letters') },
      },
      '/api/webhook': {
        post: {
          summary: 'Worker events, signed with HMAC-SHA256 (x-wa-timestamp, x-wa-signature)',
          security: [],
          requestBody: { content: json(WebhookEnvelopeSchema) },
          responses: { '202': { description: 'accepted' }, ...errors(400, 401, 404, 503) },
        },
      },
      '/api/events/ticket': {
        post: {
          summary: 'A single-use live-events ticket for ?ticket= (valid EVENTS_TICKET_TTL_MS)',
          responses: { '201': { description: '{ticket, expiresInMs}' }, ...errors(401) },
        },
      },
      '/api/events': {
        get: {
          summary:
            'Live events (Server-Sent Events; WebSocket on the same path). X-API-Key, or ?ticket= (EventSource). ' +
            'Types: status, qr, connected, disconnected, message, error, logout, reconnect_failed, ' +
            'health_check_failed, failover, backup. Tenant keys receive only their sessions.',
          parameters: [
            { name: 'ticket', in: 'query', required: false, schema: { type: 'string' } },
            { name: 'types', in: 'query', required: false, schema: { type: 'string' }, description: 'comma-separated' },
            { name: 'sessionId', in: 'query', required: false, schema: { type: 'string' } },
          ],
          responses: { '200': { description: 'text/event-stream' }, ...errors(400, 401, 429) },
        },
      },
      '/metrics': {
        get: {
          security: [],
          summary: 'Prometheus metrics (text format 0.0.4); Authorization: Bearer <METRICS_TOKEN>',
          responses: { ...ok('metrics'), ...errors(401) },
        },
      },
      '/dashboard/': {
        get: { security: [], summary: 'Operator dashboard (asks for an API key)', responses: ok('html') },
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
