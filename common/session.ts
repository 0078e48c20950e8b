import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { SessionIdSchema } from './events.js';
import { parseProxyUrl, ProxyUrlError } from './proxy-url.js';

export { LIVE_STATUSES, SESSION_STATUSES, WATCHED_STATUSES, type SessionStatus } from './session-status.js';

/** Safe as a file name, a container name and a workflow id part (one schema, shared with the webhook envelope). */
export { SessionIdSchema };

/** International number, digits only, country code first (E.164 without "+"). */
export const PhoneSchema = z
  .string()
  .transform((s) => s.replace(/^\+/, ''))
  .pipe(z.string().regex(/^[1-9]\d{7,14}$/, 'must be an international number: country code and digits, 8-15 digits'));

export const ProxyUrlSchema = z.string().transform((raw, ctx) => {
  try {
    return parseProxyUrl(raw).url;
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof ProxyUrlError ? err.message : 'invalid proxy URL' });
    return z.NEVER;
  }
});

export const ProvisionBodySchema = z
  .object({
    sessionId: SessionIdSchema.optional(),
    phone: PhoneSchema.optional(),
    proxyOverride: ProxyUrlSchema.optional(),
    /** Alias of proxyOverride (seed naming). */
    proxy: ProxyUrlSchema.optional(),
  })
  .strict();
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
