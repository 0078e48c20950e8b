import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { SessionIdSchema } from './events.js';
import { documentAs } from './json-schema.js';
import { parseProxyUrl, ProxyUrlError } from './proxy-url.js';

export { LIVE_STATUSES, SESSION_STATUSES, WATCHED_STATUSES, type SessionStatus } from './session-status.js';

/** Safe as a file name, a container name and a workflow id part (one schema, shared with the webhook envelope). */
export { SessionIdSchema };

/** International number, digits only, country code first (E.164 without "+"). */
export const PhoneSchema = z
  .string()
  .regex(/^\+?[1-9][0-9]{7,14}$/, 'must be an international number: country code and digits, 8-15 digits')
  .transform((s) => s.replace(/^\+/, ''));

/**
 * Whom a message goes to: a phone number, a contact's LID (`<lid>@lid`) when it wrote by LID without sharing
 * its number (the inbound webhook's `from` is always one of the two), or a group the session is in (`<id>@g.us`).
 */
export const RecipientSchema = z
  .string()
  .regex(
    /^(\+?[1-9][0-9]{7,14}|[1-9][0-9]{5,19}@lid|[0-9]{6,32}(-[0-9]{6,12})?@g\.us)$/,
    'must be an international number (8-15 digits), a LID address (<digits>@lid) or a group JID (<digits>@g.us)',
  )
  .transform((s) => s.replace(/^\+/, ''));

/**
 * The proxy URLs the API accepts: parseProxyUrl's rules narrowed to a regular expression the OpenAPI document can
 * carry (credentials of URL-unreserved characters, a DNS name or IPv4 of at most 4 labels, a port 1-65535).
 */
const PROXY_PORT = '(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
const PROXY_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
export const PROXY_URL_PATTERN = `^socks5h://[A-Za-z0-9._~-]{1,64}:[A-Za-z0-9._~-]{1,128}@${PROXY_LABEL}(?:\\.${PROXY_LABEL}){0,3}:${PROXY_PORT}$`;
const PROXY_URL_RE = new RegExp(PROXY_URL_PATTERN);

export const ProxyUrlSchema = documentAs(
  z.string().transform((raw, ctx) => {
    try {
      const url = parseProxyUrl(raw).url;
      if (PROXY_URL_RE.test(raw)) return url;
      ctx.addIssue({
        code: 'custom',
        message: 'must be socks5h://user:pass@host:port (user and password of letters, digits, ".", "_", "~", "-")',
      });
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof ProxyUrlError ? err.message : 'invalid proxy URL' });
    }
    return z.NEVER;
  }),
  { type: 'string', pattern: PROXY_URL_PATTERN, example: 'socks5h://user:secret@proxy.example.com:1080' },
);

export const ProvisionBodySchema = documentAs(
  z
    .object({
      sessionId: SessionIdSchema.optional(),
      phone: PhoneSchema.optional(),
      proxyOverride: ProxyUrlSchema.optional(),
      /** Alias of proxyOverride (seed naming). */
      proxy: ProxyUrlSchema.optional(),
      /** How the device is linked: a QR to scan (default) or a pairing code to type on the phone (needs `phone`). */
      pairing: z.enum(['qr', 'code']).optional(),
    })
    .strict()
    .superRefine((b, ctx) => {
      if (b.pairing === 'code' && !b.phone)
        ctx.addIssue({ code: 'custom', path: ['phone'], message: 'is required when pairing is "code"' });
    }),
  // the same rule in the document: pairing "code" needs the phone
  { if: { properties: { pairing: { const: 'code' } }, required: ['pairing'] }, then: { required: ['phone'] } },
  'extend',
);
export type ProvisionBody = z.infer<typeof ProvisionBodySchema>;

/**
 * Workflow ids are unique per Temporal namespace, so they carry the deployment's prefix (WORKFLOW_ID_PREFIX):
 * two deployments, or two test runs, on one Temporal server never collide.
 */
export const workflowIdFor = (prefix: string, sessionId: string) => `${prefix}:session:${sessionId}`;
export const containerNameFor = (sessionId: string) => `wa_session_${sessionId}`;

/**
 * Each worker gets its own webhook secret, derived from the master WEBHOOK_SECRET and its session id, so a
 * compromised container cannot forge events for another session.
 */
export function sessionWebhookSecret(masterSecret: string, sessionId: string): string {
  return createHmac('sha256', masterSecret).update(`wa-worker:${sessionId}`).digest('hex');
}
