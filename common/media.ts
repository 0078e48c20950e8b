/**
 * Media: the types a message can carry, the descriptor that travels with a queued message (Redis,
 * outbox), the worker's signed fetch of the bytes, and inbound media the worker hands to the API. The bytes
 * themselves never go through Redis or Temporal: they stay in the API's media store (common/media-store.ts).
 *
 *   POST …/sessions/:id/media          {uploadId}   → 200 application/octet-stream (the file) | 404
 *   POST …/sessions/:id/inbound-media  the decrypted file (application/octet-stream), its description in the
 *        signed header `x-wa-media`      → 201 {mediaId}
 */
import { z } from 'zod';

export const MEDIA_TYPES = ['image', 'document', 'audio', 'voice', 'video', 'sticker'] as const;
export type MediaType = (typeof MEDIA_TYPES)[number];

export const UploadIdSchema = z.string().regex(/^up_[a-f0-9]{32}$/, 'not an upload id');

/** MIME types WhatsApp shows inline for each type; other types go as documents. */
export const INLINE_MIME: Record<Exclude<MediaType, 'document'>, readonly string[]> = {
  image: ['image/jpeg', 'image/png'],
  video: ['video/mp4', 'video/3gpp'],
  audio: ['audio/mpeg', 'audio/mp4', 'audio/ogg', 'audio/aac', 'audio/amr'],
  // a voice note is Opus in OGG (what the phone records); the API converts other audio (api/media-convert.ts)
  voice: ['audio/ogg; codecs=opus'],
  sticker: ['image/webp'],
};

/** A MIME type without its parameters (`audio/ogg; codecs=opus` → `audio/ogg`). */
export const baseMime = (mime: string) => mime.split(';')[0]!.trim().toLowerCase();

/** Whether a file of `mime` can go as a `type` message (a document takes anything). */
export function suits(type: MediaType, mime: string): boolean {
  if (type === 'document') return true;
  const allowed = INLINE_MIME[type];
  return allowed.includes(mime) || (type !== 'voice' && allowed.includes(baseMime(mime)));
}

export const OutboxMediaSchema = z.object({
  type: z.enum(MEDIA_TYPES),
  uploadId: UploadIdSchema,
  /** as sniffed from the content (a document may carry what the client declared when nothing was recognised) */
  mimeType: z.string().min(3).max(255),
  size: z.number().int().nonnegative(),
  /** hex SHA-256 of the bytes: the worker refuses a fetched file that does not match */
  sha256: z.string().regex(/^[a-f0-9]{64}$/),
  fileName: z.string().min(1).max(255).optional(),
});
export type OutboxMedia = z.infer<typeof OutboxMediaSchema>;

export const MediaFetchRequestSchema = z.object({ uploadId: UploadIdSchema }).strict();

/** An inbound media file's id (the API derives it from the session and the WhatsApp message id). */
export const InboundMediaIdSchema = z.string().regex(/^in_[a-f0-9]{32}$/, 'not a media id');

/**
 * The header describing the bytes of an inbound-media call: base64url of the JSON {@link InboundMediaMetaSchema}.
 * The signature covers this header instead of the body; the API checks the body against its size and SHA-256.
 */
export const INBOUND_MEDIA_HEADER = 'x-wa-media';

/** A MIME type with optional parameters (`audio/ogg; codecs=opus`): what a Content-Type header can carry safely. */
export const MIME_TYPE_RE = /^[A-Za-z0-9][\w.+-]*\/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+-]+)*$/;

export const InboundMediaMetaSchema = z
  .object({
    waMessageId: z.string().min(1).max(128),
    type: z.enum(MEDIA_TYPES),
    mimetype: z.string().max(255).regex(MIME_TYPE_RE, 'not a MIME type'),
    size: z.number().int().positive(),
    sha256: z.string().regex(/^[a-f0-9]{64}$/),
    fileName: z.string().min(1).max(255).nullable(),
  })
  .strict();
export type InboundMediaMeta = z.infer<typeof InboundMediaMetaSchema>;

export const INBOUND_MEDIA_ERRORS = ['too_large', 'download_failed', 'verification_failed', 'store_failed'] as const;

/** The media of an inbound message, as the worker reports it in MESSAGE_RECEIVED (no bytes, no URL). */
export const InboundMediaEventSchema = z.object({
  /** null when the file could not be stored (`error` says why) */
  id: InboundMediaIdSchema.nullable(),
  type: z.enum(MEDIA_TYPES),
  mimetype: z.string().min(1).max(255),
  /** plaintext size in bytes (the announced size when the file was not stored) */
  size: z.number().int().nonnegative(),
  /** hex SHA-256 of the plaintext, null when it was not downloaded */
  sha256: z
    .string()
    .regex(/^[a-f0-9]{64}$/)
    .nullable(),
  fileName: z.string().max(255).nullable(),
  caption: z.string().nullable(),
  error: z.enum(INBOUND_MEDIA_ERRORS).optional(),
});
export type InboundMediaEvent = z.infer<typeof InboundMediaEventSchema>;
