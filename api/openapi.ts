/**
 * The OpenAPI 3.1 document, generated from the same zod schemas the routes validate with (params, query, headers,
 * bodies), plus the response shapes below. Every status a route can answer is listed with the one error shape
 * (api/errors.ts); the only `$ref` is the shared error schema in `components`, so any tool resolves it.
 * `test/api-contract.test.ts` runs schemathesis against it; `npm run api:client` derives api/client/ from it.
 */
import type { FastifyInstance } from 'fastify';
import { z, type ZodTypeAny } from 'zod';
import { ignoreOverride, zodToJsonSchema } from 'zod-to-json-schema';
import { WebhookEnvelopeSchema } from '../common/events.js';
import { jsonSchemaHints } from '../common/json-schema.js';
import { ProvisionBodySchema, SESSION_STATUSES } from '../common/session.js';
import { DeviceProfileBodySchema } from '../common/device-profiles.js';
import { LimitsOverrideSchema, TRUST_LEVELS } from '../common/anti-ban.js';
import { OutboxMediaSchema } from '../common/media.js';
import { OutboxExtraSchema } from '../common/message-actions.js';
import { documentAs } from '../common/json-schema.js';
import { CLIENT_EVENT_TYPES, ClientWebhookConfigSchema } from '../state/client-webhooks.js';
import { LIVE_EVENT_TYPES } from '../state/events-bus.js';
import { MESSAGE_STATUSES } from '../state/messages.js';
import * as backups from './routes/backups.js';
import * as codec from './routes/codec.js';
import * as webhooks from './routes/client-webhooks.js';
import * as dashboard from './routes/dashboard.js';
import * as deviceProfiles from './routes/device-profiles.js';
import * as demo from './routes/demo.js';
import * as events from './routes/events.js';
import * as proxies from './routes/proxies.js';
import * as hosts from './routes/hosts.js';
import * as media from './routes/media.js';
import * as send from './routes/send.js';
import * as contacts from './routes/contacts.js';
import * as groups from './routes/groups.js';
import * as sessions from './routes/sessions.js';

type Json = Record<string, unknown>;

/** zod → JSON Schema (2020-12 compatible): inputs as the client sends them, every reuse inlined (no `$ref`). */
export function jsonSchema(schema: ZodTypeAny): Json {
  const out = zodToJsonSchema(schema, {
    target: 'jsonSchema7',
    $refStrategy: 'none',
    effectStrategy: 'input',
    pipeStrategy: 'input',
    removeAdditionalStrategy: 'strict',
    override: (def) => {
      const hint = jsonSchemaHints.get(def);
      if (!hint) return ignoreOverride;
      if (hint.mode === 'replace') return hint.json;
      const inner = (def as { schema?: ZodTypeAny }).schema;
      return { ...(inner ? jsonSchema(inner) : {}), ...hint.json };
    },
  }) as Json;
  delete out.$schema;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Response shapes (what the handlers return; schemathesis' response_schema_conformance checks them)
const nullable = <T extends ZodTypeAny>(s: T) => s.nullable();
const SessionView = z.object({
  sessionId: z.string(),
  tenant: z.string(),
  status: z.enum(SESSION_STATUSES),
  phone: nullable(z.string()),
  jid: nullable(z.string()),
  proxy: nullable(z.string()).describe('host:port of the sticky proxy (never its credentials)'),
  createdAt: z.number().int(),
  connectedAt: nullable(z.number().int()),
  lastPing: nullable(z.number().int()),
  lastPingAgeMs: nullable(z.number().int()),
  restarts: z.number().int(),
  watchdogRestarts: z.number().int(),
  failovers: z.number().int(),
  lastError: nullable(z.string()),
  host: nullable(z.string()),
  deviceProfile: nullable(z.string()).describe('the device profile id it presents for life (null: default, older)'),
  workflowId: z.string(),
  temporalUrl: z.string(),
});
const PairingCodeShape = z.object({
  code: z.string().describe('8 characters to type on the phone (WhatsApp > Linked devices > Link with phone number)'),
  phone: z.string(),
  expiresAt: z.number().int().describe('ms since the epoch; after it the session ends in qr_expired'),
});
const Provisioned = z.object({
  sessionId: z.string(),
  status: z.enum(SESSION_STATUSES),
  proxy: nullable(z.string()),
  workflowId: z.string(),
  pairingCode: nullable(PairingCodeShape)
    .optional()
    .describe('with pairing "code": the code (null when the worker did not report it within 25 s)'),
});
const PairingCode = PairingCodeShape.extend({
  sessionId: z.string(),
  status: z.enum(SESSION_STATUSES),
  generatedAt: z.number().int().optional(),
});
const Qr = z.object({
  sessionId: z.string(),
  status: z.enum(SESSION_STATUSES),
  qr: z.string().describe('the raw QR payload'),
  dataUrl: z.string().describe('PNG data URL'),
  terminal: z.string().describe('terminal rendering'),
  count: z.number().int(),
  generatedAt: z.number().int(),
});
const Health = z.object({
  sessionId: z.string(),
  healthy: z.boolean(),
  status: z.enum(SESSION_STATUSES),
  lastPingAgeMs: nullable(z.number().int()),
  reason: nullable(z.string()),
});
const Command = z.object({ sessionId: z.string() }).passthrough();
const Queued = z.object({
  messageId: z.string(),
  sessionId: z.string(),
  status: z.enum(['queued', 'scheduled']),
  plannedAt: z.number().int().optional(),
});
const MediaUploadBody = documentAs(z.object({ file: z.unknown() }), {
  type: 'object',
  properties: {
    file: {
      minLength: 1,
      type: 'string',
      format: 'binary',
      description: 'the file (its part Content-Type and filename are the claim)',
    },
  },
  required: ['file'],
});
const MediaUploaded = z.object({
  uploadId: z.string(),
  mimeType: z.string(),
  size: z.number().int(),
  sha256: z.string(),
  fileName: nullable(z.string()),
  expiresAt: z.number().int(),
});
const Message = z
  .object({
    messageId: z.string(),
    sessionId: z.string(),
    tenant: z.string(),
    to: z.string(),
    text: z.string(),
    /** a media message: what it sends (text is then its caption) */
    media: OutboxMediaSchema.optional(),
    /** a reaction, location, contact, edit or revoke (`action`) and/or the message a reply quotes (`quoted`) */
    extra: OutboxExtraSchema.optional(),
    status: z.enum(MESSAGE_STATUSES),
    plannedAt: nullable(z.number()),
    createdAt: z.number(),
    dispatchedAt: nullable(z.number()),
    sentAt: nullable(z.number()),
    deliveredAt: nullable(z.number()),
    readAt: nullable(z.number()),
    failedAt: nullable(z.number()),
    waMessageId: nullable(z.string()),
    reason: nullable(z.string()),
    idempotencyKey: nullable(z.string()),
  })
  .strict();
const Limits = z.object({
  sessionId: z.string(),
  limits: z.object({ level: z.enum(TRUST_LEVELS) }).passthrough(),
  windowMs: z.number().int(),
  sentInWindow: z.number().int(),
  pending: z.number().int(),
  burstUntil: nullable(z.number().int()),
  stats: z.object({}).passthrough(),
});
const HostView = z.object({
  hostId: z.string(),
  alive: z.boolean().describe('heartbeat within HOST_DEAD_AFTER_MS'),
  draining: z.boolean().describe('takes no new session until its drain is ended'),
  capacity: z.number().int(),
  load: z.number().int().describe('sessions placed on it'),
  heartbeatAt: z.number().int(),
});
const DrainProgress = z.object({
  hostId: z.string(),
  mode: z.enum(['dead', 'drain']),
  total: z.number().int(),
  moved: z.array(z.object({ sessionId: z.string(), hostId: z.string() })),
  stayed: z.array(z.object({ sessionId: z.string(), reason: z.string() })),
  done: z.boolean(),
});
const ProxyView = z.object({
  id: z.string(),
  endpoint: z.string(),
  status: z.enum(['OK', 'BAD']),
  badAt: nullable(z.number()),
  load: z.number().int(),
  limit: z.number().int(),
  sessions: z.array(z.string()),
});
const DeviceProfileView = z.object({
  id: z.string(),
  os: z.string(),
  browser: z.string(),
  osVersion: z.string(),
  seq: z.number().int(),
  retired: z.boolean(),
  sessions: z.array(z.string()).describe('sessions presenting it'),
});
const WebhookView = z.object({
  tenant: z.string(),
  url: z.string(),
  events: z.array(z.enum(CLIENT_EVENT_TYPES)),
  secretSet: z.literal(true),
  pending: z.number().int().optional(),
});
const anyObject = z.object({}).passthrough();

export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().describe('stable, machine-readable (e.g. VALIDATION_ERROR, SESSION_NOT_FOUND)'),
    message: z.string(),
    field: z.string().optional().describe('the input field at fault, when there is one'),
  }),
});

// ---------------------------------------------------------------------------------------------------------------
// Route table
type Access = 'apiKey' | 'apiKeyOrTicket' | 'apiKeyOrSignedUrl' | 'admin' | 'public' | 'signed' | 'metrics';
interface Reply {
  description: string;
  schema?: ZodTypeAny | Json;
  /** Non-JSON body (e.g. text/html). */
  contentType?: string;
  example?: unknown;
  links?: Json;
  headers?: Json;
}
interface Operation {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  access: Access;
  params?: z.AnyZodObject;
  query?: ZodTypeAny;
  headers?: Json[];
  body?: { schema: ZodTypeAny; required: boolean; example?: unknown; contentType?: string };
  ok: Record<number, Reply>;
  /** Error statuses besides the ones every route of its access level can answer. */
  errors: number[];
}

const EXAMPLE_SESSION = 'worker_1';
/** The header form of a queued send's idempotency key. */
const idempotencyKeyHeader = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  schema: { type: 'string', pattern: send.IDEMPOTENCY_KEY_PATTERN },
  description: 'alternative to the body field idempotencyKey (the body wins)',
} as const;
const retryAfter = { 'Retry-After': { description: 'seconds to wait', schema: { type: 'integer', minimum: 1 } } };

export const OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: '/api/sessions/provision',
    operationId: 'provisionSession',
    summary: 'Create a session: reserve a sticky proxy, start its worker (then GET …/qr)',
    tag: 'sessions',
    access: 'apiKey',
    body: {
      schema: ProvisionBodySchema,
      required: false,
      example: { sessionId: EXAMPLE_SESSION, phone: '15551234567' },
    },
    ok: {
      201: {
        description:
          'provisioned; the worker is starting and will show a QR (or, with pairing "code", its pairing code)',
        schema: Provisioned,
        example: { sessionId: EXAMPLE_SESSION, status: 'pending', proxy: '10.0.0.5:1080', workflowId: 'wa:worker_1' },
        links: {
          GetStatus: {
            operationId: 'getSessionStatus',
            parameters: { id: '$response.body#/sessionId' },
            description: 'the new session',
          },
          GetQr: {
            operationId: 'getSessionQr',
            parameters: { id: '$response.body#/sessionId' },
            description: 'its QR',
          },
        },
      },
    },
    errors: [409, 429, 503],
  },
  {
    method: 'get',
    path: '/api/sessions/:id/qr',
    operationId: 'getSessionQr',
    summary:
      'QR to scan: raw string, PNG data URL, terminal rendering (404 QR_NOT_AVAILABLE until the worker shows one)',
    tag: 'sessions',
    access: 'apiKey',
    params: sessions.IdParams,
    ok: { 200: { description: 'the current QR', schema: Qr } },
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/sessions/:id/status',
    operationId: 'getSessionStatus',
    summary: 'Session status',
    tag: 'sessions',
    access: 'apiKey',
    params: sessions.IdParams,
    ok: { 200: { description: 'the session', schema: SessionView } },
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/sessions/:id/health',
    operationId: 'getSessionHealth',
    summary: '200 healthy, 503 not (with the reason)',
    tag: 'sessions',
    access: 'apiKey',
    params: sessions.IdParams,
    ok: {
      200: { description: 'healthy', schema: Health },
      503: { description: 'not healthy (reason)', schema: Health },
    },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/sessions/:id/restart',
    operationId: 'restartSession',
    summary: 'Restart the worker (no new scan)',
    tag: 'sessions',
    access: 'apiKey',
    params: sessions.IdParams,
    ok: { 200: { description: 'restarted', schema: Command } },
    errors: [404, 409, 503],
  },
  {
    method: 'get',
    path: '/api/sessions/:id/pairing-code',
    operationId: 'getSessionPairingCode',
    summary:
      'The pairing code to type on the phone (404 PAIRING_CODE_NOT_AVAILABLE; 410 PAIRING_CODE_EXPIRED / PAIRING_CODE_REFUSED once linking by code failed)',
    tag: 'sessions',
    access: 'apiKey',
    params: sessions.IdParams,
    ok: { 200: { description: 'the current code', schema: PairingCode } },
    errors: [404, 410],
  },
  {
    method: 'post',
    path: '/api/sessions/:id/pairing-code',
    operationId: 'requestSessionPairingCode',
    summary:
      'Link a session that waits for its first link by pairing code for `phone` instead of a QR: the worker restarts and the answer carries the code',
    tag: 'sessions',
    access: 'apiKey',
    params: sessions.IdParams,
    body: { schema: sessions.PairingCodeBody, required: true, example: { phone: '15551234567' } },
    ok: {
      200: { description: 'the code to type on the phone', schema: PairingCode },
      202: {
        description: 'switched; the worker has not reported the code yet: GET …/pairing-code shows it shortly',
        schema: z.object({ sessionId: z.string(), status: z.enum(SESSION_STATUSES), pairingCode: z.null() }),
      },
    },
    errors: [404, 409, 503],
  },
  {
    method: 'post',
    path: '/api/sessions/:id/failover',
    operationId: 'failoverSession',
    summary: 'Move the session to another proxy (tenant keys: rate-limited)',
    tag: 'sessions',
    access: 'apiKey',
    params: sessions.IdParams,
    body: { schema: sessions.FailoverBody, required: false, example: { reason: 'proxy slow' } },
    ok: { 200: { description: 'moved', schema: Command } },
    errors: [404, 409, 429, 503],
  },
  {
    method: 'post',
    path: '/api/sessions/:id/logout',
    operationId: 'logoutSession',
    summary: 'Log out and wipe the auth data',
    tag: 'sessions',
    access: 'apiKey',
    params: sessions.IdParams,
    ok: { 200: { description: 'logged out', schema: Command } },
    errors: [404, 409, 503],
  },
  {
    method: 'delete',
    path: '/api/sessions/:id',
    operationId: 'deleteSession',
    summary: 'Delete: stop the worker, release the slot, clean keys (auth removed unless keepAuth=true)',
    tag: 'sessions',
    access: 'apiKey',
    params: sessions.IdParams,
    query: sessions.DeleteQuery,
    ok: { 200: { description: 'deleted', schema: Command } },
    errors: [404, 409, 503],
  },
  {
    method: 'get',
    path: '/api/v1/dashboard/sessions',
    operationId: 'listSessions',
    summary: 'All sessions (a tenant key sees its own)',
    tag: 'dashboard',
    access: 'apiKey',
    query: dashboard.ListQuery,
    ok: { 200: { description: 'sessions', schema: z.object({ sessions: z.array(SessionView) }) } },
    errors: [],
  },
  {
    method: 'get',
    path: '/api/v1/dashboard/stats',
    operationId: 'getStats',
    summary: 'Statistics (proxies: admin key only, null otherwise)',
    tag: 'dashboard',
    access: 'apiKey',
    ok: { 200: { description: 'stats', schema: z.object({ sessions: anyObject, proxies: nullable(anyObject) }) } },
    errors: [],
  },
  {
    method: 'get',
    path: '/api/v1/proxies',
    operationId: 'listProxies',
    summary: 'Proxies with load and status',
    tag: 'proxies',
    access: 'admin',
    ok: {
      200: {
        description: 'proxies',
        schema: z.object({ proxies: z.array(ProxyView), limitPerProxy: z.number().int() }),
      },
    },
    errors: [],
  },
  {
    method: 'post',
    path: '/api/v1/proxies',
    operationId: 'addProxy',
    summary: 'Add a proxy',
    tag: 'proxies',
    access: 'admin',
    body: { schema: proxies.AddBody, required: true, example: { url: 'socks5h://user:secret@proxy.example.com:1080' } },
    ok: { 201: { description: 'added', schema: ProxyView } },
    errors: [],
  },
  {
    method: 'delete',
    path: '/api/v1/proxies/:id',
    operationId: 'removeProxy',
    summary: 'Remove a proxy that carries no session',
    tag: 'proxies',
    access: 'admin',
    params: proxies.IdParams,
    ok: { 200: { description: 'removed', schema: z.object({ id: z.string(), removed: z.literal(true) }) } },
    errors: [404, 409],
  },
  {
    method: 'get',
    path: '/api/v1/hosts',
    operationId: 'listHosts',
    summary: 'The Docker hosts: alive, draining, capacity and load',
    tag: 'hosts',
    access: 'admin',
    ok: { 200: { description: 'hosts', schema: z.object({ hosts: z.array(HostView) }) } },
    errors: [],
  },
  {
    method: 'post',
    path: '/api/v1/hosts/:id/drain',
    operationId: 'drainHost',
    summary:
      'Move every session off a host for maintenance, one by one, each stopped before it starts elsewhere (needs AUTH_STORE=postgres; 409 AUTH_ON_HOST otherwise, 409 NO_OTHER_HOST without a live host to move to)',
    tag: 'hosts',
    access: 'admin',
    params: hosts.HostParams,
    ok: {
      202: {
        description: 'drain started (or already running)',
        schema: z.object({
          drain: z.object({ hostId: z.string(), sessions: z.number().int(), workflowId: z.string() }),
        }),
      },
    },
    errors: [404, 409],
  },
  {
    method: 'get',
    path: '/api/v1/hosts/:id/drain',
    operationId: 'getHostDrain',
    summary:
      'Whether the host is draining, and its last drain (null: never drained): sessions moved, sessions that stayed and why',
    tag: 'hosts',
    access: 'admin',
    params: hosts.HostParams,
    ok: {
      200: {
        description: 'drain state',
        schema: z.object({ hostId: z.string(), draining: z.boolean(), drain: nullable(DrainProgress) }),
      },
    },
    errors: [404],
  },
  {
    method: 'delete',
    path: '/api/v1/hosts/:id/drain',
    operationId: 'endHostDrain',
    summary: 'End a drain: the host takes new sessions again',
    tag: 'hosts',
    access: 'admin',
    params: hosts.HostParams,
    ok: {
      200: { description: 'ended', schema: z.object({ hostId: z.string(), draining: z.literal(false) }) },
    },
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/v1/device-profiles',
    operationId: 'listDeviceProfiles',
    summary: 'The device-profile inventory: each profile, retired or not, and the sessions presenting it',
    tag: 'proxies',
    access: 'admin',
    ok: {
      200: {
        description: 'profiles',
        schema: z.object({
          profiles: z.array(DeviceProfileView),
          free: z.number().int(),
          lowThreshold: z.number().int(),
        }),
      },
    },
    errors: [],
  },
  {
    method: 'post',
    path: '/api/v1/device-profiles',
    operationId: 'addDeviceProfile',
    summary: 'Add a device profile (Baileys browser triple) to the inventory',
    tag: 'proxies',
    access: 'admin',
    body: {
      schema: DeviceProfileBodySchema,
      required: true,
      example: { os: 'Windows', browser: 'Chrome', osVersion: '10.0.22631' },
    },
    ok: { 201: { description: 'added', schema: DeviceProfileView } },
    errors: [409],
  },
  {
    method: 'delete',
    path: '/api/v1/device-profiles/:id',
    operationId: 'retireDeviceProfile',
    summary: 'Retire a device profile (never handed out again); 409 PROFILE_IN_USE while a session presents it',
    tag: 'proxies',
    access: 'admin',
    params: deviceProfiles.ProfileParams,
    ok: { 200: { description: 'retired', schema: z.object({ id: z.string(), retired: z.literal(true) }) } },
    errors: [404, 409],
  },
  {
    method: 'post',
    path: '/api/v1/proxies/:id/ok',
    operationId: 'markProxyOk',
    summary: 'Mark a proxy healthy again',
    tag: 'proxies',
    access: 'admin',
    params: proxies.IdParams,
    ok: { 200: { description: 'marked', schema: ProxyView } },
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/v1/backups',
    operationId: 'listBackups',
    summary: 'Backups with size, date, sessions and verification status',
    tag: 'backups',
    access: 'admin',
    ok: {
      200: {
        description: 'backups (each with `location` local|s3 and `where`: its path or s3:// URL)',
        schema: z.object({
          backups: z.array(anyObject),
          maxBackups: z.number().int(),
          store: z.enum(['local', 's3']),
        }),
      },
    },
    errors: [502],
  },
  {
    method: 'post',
    path: '/api/v1/backups/create',
    operationId: 'createBackup',
    summary: 'Run a backup now',
    tag: 'backups',
    access: 'admin',
    body: { schema: backups.CreateBody, required: false },
    ok: { 201: { description: 'written', schema: z.object({ backup: anyObject }) } },
    errors: [409, 500],
  },
  {
    method: 'get',
    path: '/api/v1/backups/restore',
    operationId: 'getRestore',
    summary: 'The last restore: running, completed (with its report) or failed (with the error)',
    tag: 'backups',
    access: 'admin',
    ok: {
      200: {
        description: 'the last restore',
        schema: z.object({
          restore: z.object({
            workflowId: z.string(),
            runId: z.string(),
            status: z.enum(['running', 'completed', 'failed']),
            report: anyObject.optional(),
            error: z.string().optional(),
          }),
        }),
      },
    },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/v1/backups/restore/:id',
    operationId: 'restoreBackup',
    summary: 'Restore a backup: verified first, rolled back on failure; { sessionId } restores one session',
    tag: 'backups',
    access: 'admin',
    params: backups.IdParams,
    query: backups.WaitQuery,
    body: { schema: backups.RestoreBody, required: false },
    ok: {
      200: { description: 'restored', schema: z.object({ restore: anyObject }) },
      202: {
        description: 'started (wait=false), or still running after RESTORE_ANSWER_WAIT_MS: {workflowId, runId, status}',
        schema: z.object({ restore: anyObject }),
      },
    },
    errors: [404, 409, 422, 500, 502],
  },
  {
    method: 'post',
    path: '/api/media',
    operationId: 'uploadMedia',
    summary:
      'Upload a media file (multipart part "file"; streamed to disk, size-capped, type sniffed from the content)',
    tag: 'messages',
    access: 'apiKey',
    body: { schema: MediaUploadBody, required: true, contentType: 'multipart/form-data' },
    ok: {
      201: { description: 'stored; send it with POST /api/send {type, media: {uploadId}}', schema: MediaUploaded },
    },
    errors: [413, 415],
  },
  {
    method: 'get',
    path: '/api/media/:id',
    operationId: 'getMedia',
    summary:
      'Download an inbound media file (the `media.id` of a message.received webhook): with a key (a tenant key ' +
      "reaches its own files only; another tenant's answers 404 MEDIA_NOT_FOUND), or without a key through the " +
      "webhook's signed URL (`expires` + `sig`; tampered → 403 BAD_MEDIA_SIGNATURE, expired → 403 MEDIA_URL_EXPIRED). " +
      'Kept MEDIA_RETENTION_HOURS.',
    tag: 'messages',
    access: 'apiKeyOrSignedUrl',
    params: media.MediaParams,
    query: media.SignedUrlQuery,
    ok: {
      200: {
        description: 'the file, with its MIME type as Content-Type (Content-Disposition: attachment)',
        contentType: '*/*',
        schema: { type: 'string', format: 'binary' },
      },
    },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/send',
    operationId: 'sendMessage',
    summary:
      'Queue a message (idempotent with idempotencyKey / Idempotency-Key); paced by the anti-ban dispatcher. A text, ' +
      'a media message, a reaction (`type: reaction`, `reaction: {messageId, emoji}`; an empty emoji removes it; ' +
      "the chat is the message's), a location or contact card(s); `replyTo` quotes a message (our msg_… id or the " +
      "WhatsApp id of one the session received). 404: an unknown (or another tenant's) message; 409: not sent yet.",
    tag: 'messages',
    access: 'apiKey',
    headers: [idempotencyKeyHeader],
    body: {
      schema: send.SendBodySchema,
      required: true,
      example: { sessionId: EXAMPLE_SESSION, to: '15557654321', text: 'hello', idempotencyKey: 'order-42' },
    },
    ok: {
      202: {
        description: 'accepted (durable); a replay of the same idempotency key answers the first response',
        schema: Queued,
        links: {
          GetMessage: { operationId: 'getMessage', parameters: { id: '$response.body#/messageId' } },
        },
      },
    },
    errors: [404, 409, 413, 415, 422, 429, 504],
  },
  {
    method: 'get',
    path: '/api/messages/:id',
    operationId: 'getMessage',
    summary: 'A message and its status: queued, scheduled (plannedAt), sent, delivered, read, failed (reason)',
    tag: 'messages',
    access: 'apiKey',
    params: send.MessageIdParams,
    ok: { 200: { description: 'the message', schema: Message } },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/messages/:id/edit',
    operationId: 'editMessage',
    summary:
      "Edit one of our sent text messages (queued and paced like a send; 202 with the edit's own message id). 409 " +
      'EDIT_WINDOW_PASSED after MESSAGE_EDIT_WINDOW_MS (15 min), NOT_EDITABLE (not a text), MESSAGE_NOT_SENT; 403 ' +
      'for a message a contact wrote (a WhatsApp id, with sessionId)',
    tag: 'messages',
    access: 'apiKey',
    headers: [idempotencyKeyHeader],
    params: send.ActionParams,
    body: { schema: send.EditBodySchema, required: true, example: { text: 'delivery at 6 pm' } },
    ok: { 202: { description: 'the edit is queued', schema: Queued } },
    errors: [404, 409, 429],
  },
  {
    method: 'post',
    path: '/api/messages/:id/revoke',
    operationId: 'revokeMessage',
    summary:
      "Delete one of our sent messages for everyone (queued and paced like a send; 202 with the revoke's own " +
      'message id). 409 REVOKE_WINDOW_PASSED after MESSAGE_REVOKE_WINDOW_MS (2 days), MESSAGE_NOT_SENT; 403 ' +
      'NOT_OWN_MESSAGE for a message a contact wrote (a WhatsApp id, with sessionId)',
    tag: 'messages',
    access: 'apiKey',
    headers: [idempotencyKeyHeader],
    params: send.ActionParams,
    body: { schema: send.RevokeBodySchema, required: false, example: {} },
    ok: { 202: { description: 'the revoke is queued', schema: Queued } },
    errors: [404, 409, 429],
  },
  {
    method: 'get',
    path: '/api/anti-ban/sessions/:id/limits',
    operationId: 'getLimits',
    summary: 'Effective pacing limits, window usage, burst state, promotion counters',
    tag: 'messages',
    access: 'apiKey',
    params: send.SessionParams,
    ok: { 200: { description: 'limits', schema: Limits } },
    errors: [404],
  },
  {
    method: 'put',
    path: '/api/anti-ban/sessions/:id/limits',
    operationId: 'setLimits',
    summary: 'Replace the pacing overrides (admin key)',
    tag: 'messages',
    access: 'admin',
    params: send.SessionParams,
    body: { schema: LimitsOverrideSchema, required: false, example: { level: 'warm', autoPromote: false } },
    ok: { 200: { description: 'limits', schema: Limits } },
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/contacts/check',
    operationId: 'checkNumbers',
    summary:
      'Which numbers are on WhatsApp (JID, LID when known): cached answers are free, the rest is one lookup by the ' +
      "session's worker within its per-minute budget (CONTACT_CHECK_PER_MINUTE; 429 + Retry-After); at most 50 " +
      'numbers. POST /api/send refuses (400, field to) a number found not on WhatsApp.',
    tag: 'messages',
    access: 'apiKey',
    body: {
      schema: contacts.ContactCheckBodySchema,
      required: true,
      example: { sessionId: EXAMPLE_SESSION, phones: ['15557654321', '15550000000'] },
    },
    ok: {
      200: { description: 'one answer per number, in request order', schema: contacts.ContactCheckResponseSchema },
    },
    errors: [404, 409, 429, 502, 504],
  },
  {
    method: 'post',
    path: '/api/sessions/:id/read',
    operationId: 'markRead',
    summary:
      "Mark inbound messages read (WhatsApp ids from message.received); the session's worker sends the read receipts",
    tag: 'messages',
    access: 'apiKey',
    params: send.SessionParams,
    body: { schema: contacts.ReadBodySchema, required: true, example: { messageIds: ['3EB0A1B2C3D4E5F6'] } },
    ok: { 202: { description: 'queued for the worker', schema: contacts.ReadResponseSchema } },
    errors: [404, 409],
  },
  {
    method: 'get',
    path: '/api/sessions/:id/groups',
    operationId: 'listGroups',
    summary: "The groups the session is in, with their members (asked of WhatsApp by the session's worker)",
    tag: 'groups',
    access: 'apiKey',
    params: groups.SessionGroupsParams,
    ok: { 200: { description: 'groups', schema: groups.GroupListResponseSchema } },
    errors: [404, 409, 502, 504],
  },
  {
    method: 'post',
    path: '/api/sessions/:id/groups',
    operationId: 'createGroup',
    summary:
      'Create a group with a subject and members (phone numbers); the session is its admin. Numbers not on ' +
      'WhatsApp are left out. Send to it with POST /api/send, `to` = the group JID.',
    tag: 'groups',
    access: 'apiKey',
    params: groups.SessionGroupsParams,
    body: {
      schema: groups.GroupCreateBodySchema,
      required: true,
      example: { subject: 'Order 42', participants: ['15557654321', '15557654322'] },
    },
    ok: { 201: { description: 'the new group', schema: groups.GroupResponseSchema } },
    errors: [404, 409, 502, 504],
  },
  {
    method: 'get',
    path: '/api/sessions/:id/groups/:jid',
    operationId: 'getGroup',
    summary: "A group's metadata and members; 404 for a group the session is not in",
    tag: 'groups',
    access: 'apiKey',
    params: groups.GroupParams,
    ok: { 200: { description: 'the group', schema: groups.GroupResponseSchema } },
    errors: [404, 409, 502, 504],
  },
  {
    method: 'post',
    path: '/api/sessions/:id/groups/:jid/participants',
    operationId: 'updateGroupParticipants',
    summary:
      "Add or remove members (the session must be an admin, else 403); WhatsApp's answer per number ('200' = done)",
    tag: 'groups',
    access: 'apiKey',
    params: groups.GroupParams,
    body: {
      schema: groups.GroupParticipantsBodySchema,
      required: true,
      example: { action: 'add', participants: ['15557654323'] },
    },
    ok: { 200: { description: 'per-number results', schema: groups.GroupParticipantsResponseSchema } },
    errors: [403, 404, 409, 502, 504],
  },
  {
    method: 'post',
    path: '/api/sessions/:id/groups/:jid/leave',
    operationId: 'leaveGroup',
    summary: 'The session leaves the group',
    tag: 'groups',
    access: 'apiKey',
    params: groups.GroupParams,
    ok: { 200: { description: 'left', schema: groups.GroupLeaveResponseSchema } },
    errors: [404, 409, 502, 504],
  },
  {
    method: 'get',
    path: '/api/v1/webhooks',
    operationId: 'getClientWebhook',
    summary: "The tenant's customer webhook (never the secret); admin: ?tenant=",
    tag: 'webhooks',
    access: 'apiKey',
    query: webhooks.TenantQuery,
    ok: { 200: { description: 'config', schema: WebhookView } },
    errors: [404],
  },
  {
    method: 'put',
    path: '/api/v1/webhooks',
    operationId: 'setClientWebhook',
    summary: 'Set the customer webhook: url (must pass the address policy, else 403), secret (HMAC-SHA256), events',
    tag: 'webhooks',
    access: 'apiKey',
    query: webhooks.TenantQuery,
    body: {
      schema: ClientWebhookConfigSchema,
      required: true,
      example: { url: 'https://hooks.example.com/wa', secret: 'a-long-shared-secret', events: ['message.status'] },
    },
    ok: { 200: { description: 'config', schema: WebhookView } },
    errors: [],
  },
  {
    method: 'delete',
    path: '/api/v1/webhooks',
    operationId: 'deleteClientWebhook',
    summary: 'Remove the customer webhook',
    tag: 'webhooks',
    access: 'apiKey',
    query: webhooks.TenantQuery,
    ok: { 200: { description: 'deleted', schema: z.object({ tenant: z.string(), deleted: z.literal(true) }) } },
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/v1/webhooks/dead-letters',
    operationId: 'listDeadLetters',
    summary: 'Deliveries that exhausted their retries or were refused',
    tag: 'webhooks',
    access: 'apiKey',
    query: webhooks.TenantQuery,
    ok: {
      200: {
        description: 'dead letters',
        schema: z.object({ tenant: z.string(), deadLetters: z.array(anyObject) }),
      },
    },
    errors: [],
  },
  {
    method: 'post',
    path: '/api/events/ticket',
    operationId: 'createEventsTicket',
    summary: 'A single-use live-events ticket for ?ticket= (valid EVENTS_TICKET_TTL_MS)',
    tag: 'events',
    access: 'apiKey',
    ok: {
      201: { description: 'ticket', schema: z.object({ ticket: z.string(), expiresInMs: z.number().int() }) },
    },
    errors: [],
  },
  {
    method: 'get',
    path: '/api/events',
    operationId: 'streamEvents',
    summary:
      'Live events (Server-Sent Events; WebSocket on the same path). X-API-Key, or ?ticket= (EventSource). ' +
      `Types: ${LIVE_EVENT_TYPES.join(', ')}. Tenant keys receive only their sessions.`,
    tag: 'events',
    access: 'apiKeyOrTicket',
    query: events.EventsQuery.omit({ ticket: true }),
    ok: {
      200: {
        description: 'an endless event stream: `ready` first, then the events (data: JSON)',
        contentType: 'text/event-stream',
        schema: {
          type: 'object',
          properties: { event: { type: 'string' }, data: { type: 'string' }, id: { type: 'string' } },
        },
      },
    },
    errors: [429],
  },
  {
    method: 'post',
    path: '/api/webhook',
    operationId: 'workerEvent',
    summary:
      'Worker events, signed with the session key: HMAC-SHA256 (x-wa-timestamp, x-wa-generation, x-wa-signature)',
    tag: 'internal',
    access: 'signed',
    body: { schema: WebhookEnvelopeSchema, required: true },
    ok: {
      200: {
        description: 'duplicate (already seen)',
        schema: z.object({ ok: z.literal(true), duplicate: z.literal(true) }),
      },
      202: { description: 'accepted', schema: z.object({ ok: z.literal(true) }) },
    },
    // 409 STALE_GENERATION: the sender (x-wa-generation) was replaced by a newer worker.
    errors: [404, 409, 503],
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    summary: 'Prometheus metrics (text format 0.0.4)',
    tag: 'operations',
    access: 'metrics',
    ok: { 200: { description: 'metrics', contentType: 'text/plain', schema: { type: 'string' } } },
    errors: [],
  },
  {
    method: 'get',
    path: '/dashboard/',
    operationId: 'dashboard',
    summary: 'Operator dashboard (asks for an API key)',
    tag: 'operations',
    access: 'public',
    ok: { 200: { description: 'html', contentType: 'text/html', schema: { type: 'string' } } },
    errors: [],
  },
  ...(['encode', 'decode'] as const).map((op): Operation => ({
    method: 'post',
    path: `/codec/${op}`,
    operationId: `codec${op === 'encode' ? 'Encode' : 'Decode'}`,
    summary: `Temporal Web UI codec server: ${op} payloads (AES-256-GCM; admin key; CORS for TEMPORAL_UI_URL)`,
    tag: 'operations',
    access: 'admin',
    body: {
      schema: codec.CodecBody,
      required: true,
      example: { payloads: [{ metadata: { encoding: 'anNvbi9wbGFpbg==' }, data: 'eyJhIjoxfQ==' }] },
    },
    ok: { 200: { description: `the ${op}d payloads, in order`, schema: codec.CodecBody } },
    errors: [],
  })),
  {
    method: 'get',
    path: '/api/openapi.json',
    operationId: 'openApiDocument',
    summary: 'This document',
    tag: 'operations',
    access: 'public',
    ok: { 200: { description: 'OpenAPI 3.1', schema: z.object({ openapi: z.string() }).passthrough() } },
    errors: [],
  },
  {
    method: 'get',
    path: '/healthz',
    operationId: 'healthz',
    summary: 'Process alive',
    tag: 'operations',
    access: 'public',
    ok: { 200: { description: 'alive', schema: z.object({ ok: z.literal(true) }) } },
    errors: [],
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'readyz',
    summary: 'Redis and Temporal reachable (503 naming which is not)',
    tag: 'operations',
    access: 'public',
    ok: {
      200: { description: 'ready', schema: z.object({ ok: z.boolean(), checks: z.record(z.string()) }) },
      503: { description: 'not ready', schema: z.object({ ok: z.boolean(), checks: z.record(z.string()) }) },
    },
    errors: [],
  },
];

/** Demo mode only (DEMO_SIMULATOR_URL): listed when the API serves it. */
const DEMO_OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: '/api/demo/sessions/:id/scan',
    operationId: 'demoScan',
    summary: "Demo: the simulator's phone scans the session's QR",
    tag: 'demo',
    access: 'apiKey',
    params: demo.IdParams,
    body: { schema: demo.ScanBody, required: false },
    ok: {
      200: {
        description: 'scanned',
        schema: z.object({ sessionId: z.string(), phone: z.string(), scanned: z.literal(true) }),
      },
    },
    errors: [404, 409, 502],
  },
];

/** Statuses every route of an access level can answer besides its own (auth, validation). */
const COMMON_ERRORS: Record<Access, number[]> = {
  public: [],
  apiKey: [400, 401, 403],
  apiKeyOrTicket: [400, 401, 403],
  apiKeyOrSignedUrl: [400, 401, 403],
  admin: [400, 401, 403],
  signed: [400, 401],
  metrics: [401],
};
const ERROR_TEXT: Record<number, string> = {
  400: 'invalid input (VALIDATION_ERROR names the field)',
  401: 'missing or invalid credentials',
  403: 'the key does not reach this (admin-only route, other tenant, refused destination)',
  404: 'not found (another tenant’s resource answers the same)',
  409: 'conflicts with the current state',
  410: 'gone for good (e.g. a pairing code that expired or was refused)',
  422: 'well-formed but unusable (e.g. a corrupt backup, a media URL that cannot be fetched)',
  429: 'rate limited (Retry-After)',
  500: 'the operation failed',
  413: 'too large (refused while streaming, or at once from the declared length)',
  415: 'the content is not of the required or declared type',
  502: 'an upstream failed (the simulator, the backup store)',
  503: 'temporarily unavailable (capacity, an unreachable dependency); retry later',
  504: 'accepted, but the result did not come in time (ask again shortly)',
};
const SECURITY: Record<Access, Json[]> = {
  public: [],
  apiKey: [{ apiKey: [] }],
  // EventSource cannot send headers: a single-use ticket in the query stands for the key
  apiKeyOrTicket: [{ apiKey: [] }, { eventsTicket: [] }],
  // a signed download URL (`expires` + `sig` in the query) is its own credential: no key
  apiKeyOrSignedUrl: [{ apiKey: [] }, {}],
  admin: [{ adminApiKey: [] }],
  signed: [{ workerSignature: [], workerTimestamp: [] }],
  metrics: [{ metricsToken: [] }],
};

const openApiPath = (p: string) => p.replace(/:([A-Za-z]+)/g, '{$1}');

function parameters(op: Operation): Json[] {
  const out: Json[] = [];
  const add = (where: 'path' | 'query', schema: ZodTypeAny | undefined) => {
    if (!schema) return;
    const js = jsonSchema(schema) as { properties?: Record<string, Json>; required?: string[] };
    for (const [name, s] of Object.entries(js.properties ?? {})) {
      const { description, ...rest } = s;
      out.push({
        name,
        in: where,
        required: where === 'path' || (js.required ?? []).includes(name),
        schema: rest,
        ...(description ? { description } : {}),
        ...(where === 'path' && name === 'id' && op.tag === 'sessions' ? { example: EXAMPLE_SESSION } : {}),
      });
    }
  };
  add('path', op.params);
  add('query', op.query);
  return [...out, ...(op.headers ?? [])];
}

function response(r: Reply): Json {
  const schema = r.schema && '_def' in r.schema ? jsonSchema(r.schema as ZodTypeAny) : (r.schema ?? {});
  return {
    description: r.description,
    content: {
      [r.contentType ?? 'application/json']: { schema, ...(r.example !== undefined ? { example: r.example } : {}) },
    },
    ...(r.headers ? { headers: r.headers } : {}),
    ...(r.links ? { links: r.links } : {}),
  };
}

function operation(op: Operation): Json {
  const errors = [...new Set([...COMMON_ERRORS[op.access], ...op.errors])].sort();
  const responses: Json = {};
  for (const [status, r] of Object.entries(op.ok)) responses[status] = response(r);
  for (const status of errors) {
    if (responses[status]) continue;
    responses[status] = {
      description: ERROR_TEXT[status] ?? 'error',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      ...(status === 429 || status === 503 ? { headers: retryAfter } : {}),
    };
  }
  const params = parameters(op);
  return {
    operationId: op.operationId,
    summary: op.summary,
    tags: [op.tag],
    security: SECURITY[op.access],
    ...(op.access === 'admin' ? { 'x-admin-only': true } : {}),
    ...(params.length ? { parameters: params } : {}),
    ...(op.body
      ? {
          requestBody: {
            required: op.body.required,
            content: {
              [op.body.contentType ?? 'application/json']: {
                schema: jsonSchema(op.body.schema),
                ...(op.body.example !== undefined ? { example: op.body.example } : {}),
              },
            },
          },
        }
      : {}),
    responses,
  };
}

/** The document; `demo` adds the demo-mode routes (served only when the API runs them). */
export function openApiDocument(opts: { demo?: boolean } = {}) {
  const paths: Record<string, Record<string, Json>> = {};
  const ops = [...OPERATIONS, ...(opts.demo ? DEMO_OPERATIONS : [])];
  for (const op of ops) {
    const p = openApiPath(op.path);
    paths[p] = { ...(paths[p] ?? {}), [op.method]: operation(op) };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'WhatsApp session orchestrator',
      version: '0.1.0',
      description:
        'Every error is `{error: {code, message, field?}}`. A method a path does not serve answers 405 with `Allow`. ' +
        'Operations marked `x-admin-only` need the admin key (`adminApiKey`); a tenant key gets 403.',
    },
    tags: [...new Set(ops.map((o) => o.tag))].map((name) => ({ name })),
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'the admin key or a tenant key' },
        adminApiKey: {
          type: 'apiKey',
          in: 'header',
          name: 'X-API-Key',
          description: 'the admin key (API_KEY); a tenant key gets 403',
        },
        workerSignature: {
          type: 'apiKey',
          in: 'header',
          name: 'x-wa-signature',
          description: "HMAC-SHA256 of timestamp and body with the session's key (workers only)",
        },
        workerTimestamp: { type: 'apiKey', in: 'header', name: 'x-wa-timestamp', description: 'ms since the epoch' },
        metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN' },
        eventsTicket: {
          type: 'apiKey',
          in: 'query',
          name: 'ticket',
          description: 'a single-use ticket from POST /api/events/ticket (live events only)',
        },
      },
      schemas: { Error: jsonSchema(ErrorSchema) },
    },
    security: [{ apiKey: [] }],
    paths,
  };
}

export function openApiRoutes(opts: { demo?: boolean } = {}) {
  const doc = openApiDocument(opts);
  return async function plugin(app: FastifyInstance) {
    app.get('/api/openapi.json', async () => doc);
  };
}
