/**
 * The worker ↔ API contract of login slots (signed scope, like the outbox):
 *   POST /api/worker/sessions/:id/login/acquire → LoginAcquireResponse
 *   POST /api/worker/sessions/:id/login/release → 200
 */
import { z } from 'zod';

export const LoginAcquireResponseSchema = z.union([
  z.object({ granted: z.literal(true) }),
  z.object({ granted: z.literal(false), retryAfterMs: z.number().int().positive() }),
]);
export type LoginAcquireResponse = z.infer<typeof LoginAcquireResponseSchema>;

/** The login URL of a worker, next to its outbox URL. */
export const loginUrlOf = (outboxUrl: string) => outboxUrl.replace(/\/outbox$/, '/login');
