/**
 * The worker ↔ orchestrator outbox HTTP contract (served under OUTBOX_URL =
 * `http://host/api/worker/sessions/<id>/outbox`). Every request is signed like a webhook (common/events.ts
 * `signedHeaders`) with the session's WEBHOOK_SECRET.
 *
 *   POST {OUTBOX_URL}/claim  {}                                     → 200 {item} | 204 (empty)
 *   POST {OUTBOX_URL}/ack    {messageId, waMessageId}               → 200 {ok, duplicate}
 *   POST {OUTBOX_URL}/nack   {messageId, reason, permanent}         → 200 {ok, requeued}
 */
import { z } from 'zod';
import { OutboxMediaSchema } from './media.js';
import { OutboxExtraSchema } from './message-actions.js';

export const OutboxMessageIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must match ^[A-Za-z0-9_.:-]{1,128}$');

export const OutboxItemSchema = z.object({
  messageId: OutboxMessageIdSchema,
  /** Digits only (E.164 without '+') or a full JID. */
  to: z.string().regex(/^(\d{5,20}|[^\s@]+@[a-z.]+)$/, 'must be a phone number (digits) or a JID'),
  /** the text, or a media message's caption (then possibly empty) */
  text: z.string().max(4096),
  /** a media message: what to fetch from the API and send */
  media: OutboxMediaSchema.optional(),
  /** a reaction, location, contact, edit or revoke, and/or the message a reply quotes */
  extra: OutboxExtraSchema.optional(),
  /** 1 on the first delivery, +1 on each re-delivery. */
  attempt: z.number().int().positive(),
  /** Show `composing` to the recipient this long before sending; absent or 0: send at once. */
  typingMs: z.number().int().min(0).max(30_000).optional(),
  /** The session's shortest gap between two sends: the worker holds this one back so the wire keeps it too. */
  minGapMs: z.number().int().min(0).max(86_400_000).optional(),
});
export type OutboxItem = z.infer<typeof OutboxItemSchema>;

/** MESSAGE_STATUS reason of a message WhatsApp refused with error 463 (1:1) or 479 (group): no privacy token. */
export const REJECTED_COLD_OUTREACH = 'rejected_cold_outreach';

/** The longest a claim may wait for an item (a long-poll); 0 or absent: answer at once. */
export const MAX_CLAIM_WAIT_MS = 60_000;
/** A claim (outbox or commands): `waitMs` holds the request until an item is claimable or the time is up (204). */
export const ClaimRequestSchema = z
  .object({ waitMs: z.number().int().min(0).max(MAX_CLAIM_WAIT_MS).optional() })
  .strict();
export const ClaimResponseSchema = z.object({ item: OutboxItemSchema });

export const AckRequestSchema = z.object({
  messageId: OutboxMessageIdSchema,
  waMessageId: z.string().min(1).max(256),
});
export type AckRequest = z.infer<typeof AckRequestSchema>;
export const AckResponseSchema = z.object({ ok: z.literal(true), duplicate: z.boolean() });

export const NackRequestSchema = z.object({
  messageId: OutboxMessageIdSchema,
  reason: z.string().min(1).max(1000),
  permanent: z.boolean(),
});
export type NackRequest = z.infer<typeof NackRequestSchema>;
export const NackResponseSchema = z.object({ ok: z.literal(true), requeued: z.boolean() });

export const OutboxErrorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});
