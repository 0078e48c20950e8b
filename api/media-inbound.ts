/**
 * Inbound media: the files of received messages, handed over by the session's worker. One object per
 * message in the media store (`<tenant>/in_<id>`, streamed there, capped, checked against the size and SHA-256 the worker signed)
 * plus a tenant-scoped record in Redis; both kept MEDIA_RETENTION_HOURS. Customers download a file with their key
 * (`GET /api/media/:id`) or through a signed, expiring URL: HMAC-SHA256 over media id, tenant and expiry with a server
 * key (MEDIA_URL_SECRET), so the URL itself is the credential and names no tenant.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import type { Config } from '../common/config.js';
import type { InboundMediaMeta } from '../common/media.js';
import { mediaKey, type MediaStore } from '../common/media-store.js';
import { redisKeys } from '../common/redis-keys.js';
import { ApiError } from './errors.js';

export interface InboundMediaRecord {
  mediaId: string;
  tenant: string;
  sessionId: string;
  waMessageId: string;
  type: InboundMediaMeta['type'];
  mimetype: string;
  size: number;
  sha256: string;
  fileName: string | null;
  createdAt: number;
}

/** Query parameters of a signed download URL. */
export interface MediaUrlQuery {
  expires: string;
  sig: string;
}

export class InboundMediaStore {
  private readonly keys;
  private readonly urlKey: Buffer;
  private readonly idKey: Buffer;
  readonly retentionMs: number;
  private readonly publicUrl: string;

  constructor(
    private readonly redis: Redis,
    private readonly config: Config,
    readonly files: MediaStore,
  ) {
    this.keys = redisKeys(config.REDIS_KEY_PREFIX);
    const root = config.MEDIA_URL_SECRET ?? config.WEBHOOK_SECRET;
    this.urlKey = createHmac('sha256', root).update('wa-media-download-url-v1').digest();
    // ids are not guessable from the session and message ids (both may be known to others)
    this.idKey = createHmac('sha256', root).update('wa-media-id-v1').digest();
    this.retentionMs = config.MEDIA_RETENTION_HOURS * 3_600_000;
    const host = config.API_HOST === '0.0.0.0' || config.API_HOST === '::' ? '127.0.0.1' : config.API_HOST;
    this.publicUrl = (
      config.API_PUBLIC_URL ?? `http://${host.includes(':') ? `[${host}]` : host}:${config.API_PORT}`
    ).replace(/\/+$/, '');
  }

  /** One id per session and WhatsApp message: a worker's retry replaces the same file instead of adding one. */
  idFor(sessionId: string, waMessageId: string): string {
    const mac = createHmac('sha256', this.idKey).update(`${sessionId}\n${waMessageId}`).digest('hex');
    return `in_${mac.slice(0, 32)}`;
  }

  /**
   * Streams `source` into the file of the message `meta` describes: refuses (413) past MEDIA_MAX_BYTES or the signed
   * size, and (400) bytes whose size or SHA-256 differ from what the worker signed.
   */
  async store(
    tenant: string,
    sessionId: string,
    meta: InboundMediaMeta,
    source: Readable,
  ): Promise<InboundMediaRecord> {
    const max = Math.min(this.config.MEDIA_MAX_BYTES, meta.size);
    if (meta.size > this.config.MEDIA_MAX_BYTES)
      throw new ApiError(413, 'MEDIA_TOO_LARGE', `body: larger than ${this.config.MEDIA_MAX_BYTES} bytes`, 'body');
    const mediaId = this.idFor(sessionId, meta.waMessageId);
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > max) {
          done(new ApiError(413, 'MEDIA_TOO_LARGE', 'body: more bytes than described', 'body'));
          return;
        }
        hash.update(chunk);
        done(null, chunk);
      },
      // before the store commits: bytes that are not what the worker signed never replace a stored file
      flush(done) {
        if (size !== meta.size || hash.digest('hex') !== meta.sha256)
          done(new ApiError(400, 'MEDIA_MISMATCH', 'body: size or SHA-256 differ from the signed description', 'body'));
        else done();
      },
    });
    try {
      await this.files.write(mediaKey(tenant, mediaId), source, [meter]);
    } catch (err) {
      source.resume();
      throw err;
    }
    const record: InboundMediaRecord = {
      mediaId,
      tenant,
      sessionId,
      waMessageId: meta.waMessageId,
      type: meta.type,
      mimetype: meta.mimetype,
      size,
      sha256: meta.sha256,
      fileName: meta.fileName ? path.basename(meta.fileName).slice(0, 255) : null,
      createdAt: Date.now(),
    };
    await this.redis.set(this.keys.mediaInbound(mediaId), JSON.stringify(record), 'PX', this.retentionMs);
    return record;
  }

  /** The record when it exists and belongs to `tenant` (undefined: any tenant); another tenant's is not found. */
  async get(mediaId: string, tenant?: string): Promise<InboundMediaRecord | null> {
    const raw = await this.redis.get(this.keys.mediaInbound(mediaId));
    if (!raw) return null;
    const record = JSON.parse(raw) as InboundMediaRecord;
    return tenant === undefined || record.tenant === tenant ? record : null;
  }

  open(record: InboundMediaRecord): Promise<Readable> {
    return this.files.read(mediaKey(record.tenant, record.mediaId));
  }

  private signature(mediaId: string, tenant: string, expires: number): string {
    return createHmac('sha256', this.urlKey).update(`${mediaId}\n${tenant}\n${expires}`).digest('base64url');
  }

  /** A download URL for `record` that works without a key until MEDIA_URL_TTL_MS from now (or the retention end). */
  signedUrl(record: InboundMediaRecord, now = Date.now()): { url: string; expiresAt: number } {
    const expiresAt = Math.min(now + this.config.MEDIA_URL_TTL_MS, record.createdAt + this.retentionMs);
    const sig = this.signature(record.mediaId, record.tenant, expiresAt);
    return { url: `${this.publicUrl}/api/media/${record.mediaId}?expires=${expiresAt}&sig=${sig}`, expiresAt };
  }

  /**
   * The record a signed URL grants, or a 403 ApiError: an unknown id, a wrong signature and an expired one are
   * refused alike until the signature is proven (nobody learns which ids exist).
   */
  async verifyUrl(
    mediaId: string,
    query: { [K in keyof MediaUrlQuery]?: string | undefined },
    now = Date.now(),
  ): Promise<InboundMediaRecord> {
    const refuse = (message: string) => new ApiError(403, 'BAD_MEDIA_SIGNATURE', message, 'sig');
    const expires = Number(query.expires);
    if (!query.sig || !/^\d{1,16}$/.test(query.expires ?? '') || !Number.isSafeInteger(expires))
      throw refuse('invalid download signature');
    const record = /^in_[a-f0-9]{32}$/.test(mediaId) ? await this.get(mediaId) : null;
    const expected = Buffer.from(this.signature(mediaId, record?.tenant ?? '', expires));
    const given = Buffer.from(query.sig);
    if (!record || expected.length !== given.length || !timingSafeEqual(expected, given))
      throw refuse('invalid download signature');
    if (expires < now) throw new ApiError(403, 'MEDIA_URL_EXPIRED', 'the download URL expired', 'expires');
    return record;
  }

  /** Removes inbound files older than the retention (their records expired in Redis already). */
  sweep(now = Date.now()): Promise<number> {
    return this.files.sweep(/^in_[a-f0-9]{32}$/, this.retentionMs, now);
  }
}
