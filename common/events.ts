/**
 * The ONE schema of the wa-worker webhook envelope and of every event's data, plus the HMAC helpers used by the
 * worker (signing) and by the API's webhook bridge (verification).
 *
 * Signature: HMAC-SHA256(secret, `${timestamp}.${body}`) as lower-case hex, sent in `x-wa-signature` (prefixed with
 * `sha256=`), with the millisecond timestamp in `x-wa-timestamp`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { InboundMediaEventSchema } from './media.js';
import { INBOUND_ACTION_KINDS } from './message-actions.js';

export const WEBHOOK_TIMESTAMP_HEADER = 'x-wa-timestamp';
export const WEBHOOK_SIGNATURE_HEADER = 'x-wa-signature';
export const WEBHOOK_NONCE_HEADER = 'x-wa-nonce';
/**
 * The sender's worker generation (WORKER_GENERATION), covered by the signature: the API refuses calls of a replaced
 * (older) worker with 409 STALE_GENERATION. Absent only from workers started before generations were fenced.
 */
export const WORKER_GENERATION_HEADER = 'x-wa-generation';
const GENERATION_RE = /^\d{1,15}$/;

export const EVENT_TYPES = [
  'QR_CODE',
  'CONNECTED',
  'DISCONNECTED',
  'PING',
  'PROXY_ERROR',
  'AUTH_FAILURE',
  'AUTH_STATE_INVALID',
  'CLIENT_OUTDATED',
  'MESSAGE_RECEIVED',
  'MESSAGE_STATUS',
  'MESSAGE_ACTION',
  'PAIRING_CODE',
  'PAIRING_FAILED',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const SessionIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must match ^[A-Za-z0-9_-]{1,64}$');

export const QrCodeData = z.object({ qr: z.string().min(1) });
export const ConnectedData = z.object({
  phoneNumber: z.string().regex(/^\d{5,20}$/),
  jid: z.string().min(1),
  fingerprint: z.string().min(1),
});
export const DisconnectedData = z.object({
  reason: z.string(),
  code: z.number().int().nullable(),
  isProxyError: z.boolean(),
});
export const PingData = z.object({ timestamp: z.number().int() });
export const ProxyErrorData = z.object({ error: z.string() });
export const AuthFailureData = z.object({ reason: z.string() });
/** The session folder has a foreign/newer schema or cannot be read: the worker idles, the files are kept. */
export const AuthStateInvalidData = z.object({ reason: z.string() });
/** WhatsApp refused the client version (405 client_too_old): the worker stops reconnecting. */
export const ClientOutdatedData = z.object({ reason: z.string(), version: z.string() });
export const MessageReceivedData = z.object({
  messageId: z.string().min(1),
  /** the sender's phone number when known, else its LID jid (`<lid>@lid`): an address `POST /api/send` accepts */
  from: z.string().min(1),
  /** the sender's phone number, null when the contact writes by LID and has not shared it */
  fromPhone: z.string().nullable().optional(),
  /** the sender's LID user, null when not known */
  fromLid: z.string().nullable().optional(),
  /** the chat's JID (`…@s.whatsapp.net`, `…@lid` or a group's `…@g.us`): where a read receipt goes */
  chat: z.string().min(3).max(256).optional(),
  /** a group message: the group's JID (`from` is the member who wrote) */
  group: z.string().min(3).max(256).optional(),
  /** the text, or a media message's caption ('' without one) */
  text: z.string(),
  timestamp: z.number().int(),
  /** a media message's file: stored by the API under `id` (the customer webhook adds a signed download URL) */
  media: InboundMediaEventSchema.optional(),
});
export const MESSAGE_STATUSES = ['sent', 'delivered', 'read', 'failed'] as const;
export const MessageStatusData = z.object({
  messageId: z.string().min(1),
  waMessageId: z.string().nullable(),
  status: z.enum(MESSAGE_STATUSES),
  reason: z.string().optional(),
});

/** A contact reacted to, edited or deleted (for everyone) a message of the chat. */
export const MessageActionData = z.object({
  kind: z.enum(INBOUND_ACTION_KINDS),
  /** the WhatsApp id of the reaction / edit / revoke itself */
  messageId: z.string().min(1),
  /** the WhatsApp id of the message it is about */
  targetId: z.string().min(1).max(128),
  /** the target is a message this session sent */
  targetFromMe: z.boolean(),
  /** our outbox id (msg_…) of the target, when this worker sent it and still knows it */
  targetOutboxId: z.string().min(1).max(128).optional(),
  from: z.string().min(1),
  fromPhone: z.string().nullable().optional(),
  fromLid: z.string().nullable().optional(),
  chat: z.string().min(3).max(256),
  group: z.string().min(3).max(256).optional(),
  /** reaction: the emoji ('' = the reaction was removed) */
  emoji: z.string().max(64).optional(),
  /** edit: the new text */
  text: z.string().max(65536).optional(),
  timestamp: z.number().int(),
});

/** The code to type on the phone (WhatsApp > Linked devices > Link with phone number) and when it stops working. */
export const PairingCodeData = z.object({
  code: z.string().regex(/^[0-9A-Z]{8}$/),
  phone: z.string().regex(/^\d{8,15}$/),
  expiresAt: z.number().int(),
});
/** Linking by code ended without a link: the code expired, or WhatsApp refused it (a wrong code typed). */
export const PairingFailedData = z.object({ reason: z.enum(['expired', 'refused']), message: z.string() });

export const EventDataSchemas = {
  QR_CODE: QrCodeData,
  CONNECTED: ConnectedData,
  DISCONNECTED: DisconnectedData,
  PING: PingData,
  PROXY_ERROR: ProxyErrorData,
  AUTH_FAILURE: AuthFailureData,
  AUTH_STATE_INVALID: AuthStateInvalidData,
  CLIENT_OUTDATED: ClientOutdatedData,
  MESSAGE_RECEIVED: MessageReceivedData,
  MESSAGE_STATUS: MessageStatusData,
  MESSAGE_ACTION: MessageActionData,
  PAIRING_CODE: PairingCodeData,
  PAIRING_FAILED: PairingFailedData,
} as const satisfies Record<EventType, z.ZodTypeAny>;

export type EventData<T extends EventType> = z.infer<(typeof EventDataSchemas)[T]>;

const base = {
  sessionId: SessionIdSchema,
  /** Milliseconds since the epoch, when the worker produced the event. */
  timestamp: z.number().int().nonnegative(),
  /** Unique per event; a redelivered event keeps its id (dedupe on it). */
  eventId: z.string().min(1).max(128),
  /** Which start of the worker produced the event (WORKER_GENERATION): old workers are told apart by it. */
  generation: z.number().int().nonnegative().optional(),
};

export const WebhookEnvelopeSchema = z.discriminatedUnion('type', [
  z.object({ ...base, type: z.literal('QR_CODE'), data: QrCodeData }),
  z.object({ ...base, type: z.literal('CONNECTED'), data: ConnectedData }),
  z.object({ ...base, type: z.literal('DISCONNECTED'), data: DisconnectedData }),
  z.object({ ...base, type: z.literal('PING'), data: PingData }),
  z.object({ ...base, type: z.literal('PROXY_ERROR'), data: ProxyErrorData }),
  z.object({ ...base, type: z.literal('AUTH_FAILURE'), data: AuthFailureData }),
  z.object({ ...base, type: z.literal('AUTH_STATE_INVALID'), data: AuthStateInvalidData }),
  z.object({ ...base, type: z.literal('CLIENT_OUTDATED'), data: ClientOutdatedData }),
  z.object({ ...base, type: z.literal('MESSAGE_RECEIVED'), data: MessageReceivedData }),
  z.object({ ...base, type: z.literal('MESSAGE_STATUS'), data: MessageStatusData }),
  z.object({ ...base, type: z.literal('MESSAGE_ACTION'), data: MessageActionData }),
  z.object({ ...base, type: z.literal('PAIRING_CODE'), data: PairingCodeData }),
  z.object({ ...base, type: z.literal('PAIRING_FAILED'), data: PairingFailedData }),
]);
export type WebhookEnvelope = z.infer<typeof WebhookEnvelopeSchema>;
export type WebhookEnvelopeOf<T extends EventType> = Extract<WebhookEnvelope, { type: T }>;

/**
 * Hex HMAC-SHA256 over `${timestamp}.${body}` (or `gen${generation}.${timestamp}.${body}` when the sender names its
 * generation), returned as `sha256=<hex>`.
 */
export function signWebhook(
  secret: string,
  timestamp: number | string,
  body: string | Buffer,
  generation?: number | string,
): string {
  const mac = createHmac('sha256', secret);
  mac.update(generation === undefined ? `${timestamp}.` : `gen${generation}.${timestamp}.`);
  mac.update(body);
  return `sha256=${mac.digest('hex')}`;
}

/** Headers for a signed webhook; `generation`: the sender's WORKER_GENERATION (signed with the body). */
export function signedHeaders(
  secret: string,
  body: string,
  now: number = Date.now(),
  generation?: number,
): Record<string, string> {
  return {
    'content-type': 'application/json',
    [WEBHOOK_TIMESTAMP_HEADER]: String(now),
    ...(generation !== undefined ? { [WORKER_GENERATION_HEADER]: String(generation) } : {}),
    [WEBHOOK_SIGNATURE_HEADER]: signWebhook(secret, now, body, generation),
  };
}

/** `generation`: the signed sender generation (absent: a worker from before generations were fenced). */
export type VerifyResult =
  { ok: true; generation?: number } | { ok: false; reason: 'missing' | 'stale' | 'bad-signature' };

type HeaderBag = Record<string, string | string[] | undefined> | { get(name: string): string | null };

function header(headers: HeaderBag, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const v = (headers as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Verify a signed request: the timestamp must be within `toleranceMs` of `now` and the signature must match
 * (constant-time comparison). `body` must be the raw request body exactly as received.
 */
export function verifyWebhook(
  secret: string,
  headers: HeaderBag,
  body: string | Buffer,
  opts: { toleranceMs?: number; now?: number } = {},
): VerifyResult {
  const ts = header(headers, WEBHOOK_TIMESTAMP_HEADER);
  const sig = header(headers, WEBHOOK_SIGNATURE_HEADER);
  const gen = header(headers, WORKER_GENERATION_HEADER);
  if (!ts || !sig || !/^\d{1,16}$/.test(ts)) return { ok: false, reason: 'missing' };
  if (gen !== undefined && !GENERATION_RE.test(gen)) return { ok: false, reason: 'missing' };
  const tolerance = opts.toleranceMs ?? 5 * 60_000;
  const now = opts.now ?? Date.now();
  if (Math.abs(now - Number(ts)) > tolerance) return { ok: false, reason: 'stale' };
  const expected = Buffer.from(signWebhook(secret, ts, body, gen));
  const given = Buffer.from(sig);
  if (expected.length !== given.length || !timingSafeEqual(expected, given))
    return { ok: false, reason: 'bad-signature' };
  return gen === undefined ? { ok: true } : { ok: true, generation: Number(gen) };
}

/**
 * Request-bound signature of the worker's outbox calls: HMAC-SHA256 over
 * `v2.${timestamp}.${nonce}.${METHOD}.${path}.${body}` (`v3.${timestamp}.${nonce}.${generation}.…` when the sender
 * names its generation), so a captured request cannot be replayed (the nonce is accepted once) nor pointed at
 * another operation or session (method and path are covered), nor passed off as another generation's.
 */
export function signRequest(
  secret: string,
  timestamp: number | string,
  nonce: string,
  method: string,
  path: string,
  body: string | Buffer,
  generation?: number | string,
): string {
  const mac = createHmac('sha256', secret);
  mac.update(
    generation === undefined
      ? `v2.${timestamp}.${nonce}.${method.toUpperCase()}.${path}.`
      : `v3.${timestamp}.${nonce}.${generation}.${method.toUpperCase()}.${path}.`,
  );
  mac.update(body);
  return `sha256=${mac.digest('hex')}`;
}

/** Headers of a request-bound signed call (see {@link signRequest}). */
export function signedRequestHeaders(
  secret: string,
  method: string,
  path: string,
  body: string,
  now: number = Date.now(),
  nonce: string = randomBytes(16).toString('hex'),
  generation?: number,
): Record<string, string> {
  return {
    'content-type': 'application/json',
    [WEBHOOK_TIMESTAMP_HEADER]: String(now),
    [WEBHOOK_NONCE_HEADER]: nonce,
    ...(generation !== undefined ? { [WORKER_GENERATION_HEADER]: String(generation) } : {}),
    [WEBHOOK_SIGNATURE_HEADER]: signRequest(secret, now, nonce, method, path, body, generation),
  };
}

/** Verifies a request-bound signature; the caller must still refuse a nonce it has seen (replay). */
export function verifySignedRequest(
  secret: string,
  headers: HeaderBag,
  req: { method: string; path: string; body: string | Buffer },
  opts: { toleranceMs?: number; now?: number } = {},
): VerifyResult & { nonce?: string } {
  const ts = header(headers, WEBHOOK_TIMESTAMP_HEADER);
  const sig = header(headers, WEBHOOK_SIGNATURE_HEADER);
  const nonce = header(headers, WEBHOOK_NONCE_HEADER);
  const gen = header(headers, WORKER_GENERATION_HEADER);
  if (!ts || !sig || !nonce || !/^\d{1,16}$/.test(ts) || !/^[A-Za-z0-9_-]{16,64}$/.test(nonce))
    return { ok: false, reason: 'missing' };
  if (gen !== undefined && !GENERATION_RE.test(gen)) return { ok: false, reason: 'missing' };
  const tolerance = opts.toleranceMs ?? 5 * 60_000;
  if (Math.abs((opts.now ?? Date.now()) - Number(ts)) > tolerance) return { ok: false, reason: 'stale' };
  const expected = Buffer.from(signRequest(secret, ts, nonce, req.method, req.path, req.body, gen));
  const given = Buffer.from(sig);
  if (expected.length !== given.length || !timingSafeEqual(expected, given))
    return { ok: false, reason: 'bad-signature' };
  return gen === undefined ? { ok: true, nonce } : { ok: true, nonce, generation: Number(gen) };
}
