/**
 * Message actions and the non-media content kinds: reactions, replies (a quoted message), edits and revokes of our
 * own messages, locations and contact cards. The descriptor travels with a queued message like a media descriptor
 * does (message record → dispatcher → worker outbox) and the worker turns it into Baileys content.
 */
import { z } from 'zod';

/** A WhatsApp message key: which message in which chat, and (in a group) who wrote it. */
export const WaKeySchema = z.object({
  id: z.string().min(1).max(128),
  remoteJid: z.string().min(3).max(256),
  fromMe: z.boolean(),
  participant: z.string().min(3).max(256).optional(),
});
export type WaKey = z.infer<typeof WaKeySchema>;

export const ContactCardSchema = z.object({
  displayName: z.string().min(1).max(256).optional(),
  vcard: z.string().min(1).max(8192),
});

export const OutboxActionSchema = z.discriminatedUnion('kind', [
  /** an empty emoji removes our reaction */
  z.object({ kind: z.literal('reaction'), key: WaKeySchema, emoji: z.string().max(64) }),
  z.object({
    kind: z.literal('location'),
    latitude: z.number().min(-90).max(90),
    longitude: z.number().min(-180).max(180),
    name: z.string().min(1).max(256).optional(),
    address: z.string().min(1).max(1024).optional(),
  }),
  z.object({ kind: z.literal('contact'), contacts: z.array(ContactCardSchema).min(1).max(10) }),
  /** the message's text is the new text */
  z.object({ kind: z.literal('edit'), key: WaKeySchema }),
  z.object({ kind: z.literal('revoke'), key: WaKeySchema }),
]);
export type OutboxAction = z.infer<typeof OutboxActionSchema>;

/** The message a reply quotes: its key and what WhatsApp shows of it (its text or caption). */
export const OutboxQuotedSchema = z.object({ key: WaKeySchema, text: z.string().max(4096) });
export type OutboxQuoted = z.infer<typeof OutboxQuotedSchema>;

export const OutboxExtraSchema = z.object({
  action: OutboxActionSchema.optional(),
  quoted: OutboxQuotedSchema.optional(),
});
export type OutboxExtra = z.infer<typeof OutboxExtraSchema>;

/** Inbound actions of contacts (worker event MESSAGE_ACTION → customer webhooks message.reaction/edited/revoked). */
export const INBOUND_ACTION_KINDS = ['reaction', 'edit', 'revoke'] as const;
export const CUSTOMER_ACTION_EVENT = {
  reaction: 'message.reaction',
  edit: 'message.edited',
  revoke: 'message.revoked',
} as const;
