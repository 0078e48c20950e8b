/**
 * Uploaded media: each upload is one object in the media store (common/media-store.ts: MEDIA_DIR or an S3
 * bucket; streamed there, never whole in memory, the size cap enforced while streaming) plus a tenant-scoped
 * metadata record in Redis (TTL MEDIA_UPLOAD_TTL_MS). The
 * MIME type is sniffed from the content (file-type); a file whose content contradicts the type it claims is refused.
 * Media URLs are fetched with the customer-webhook SSRF rules (common/net-policy.ts): pinned checked addresses, no
 * redirects, the admin allow-list CLIENT_WEBHOOK_ALLOW_HOSTS.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { fileTypeFromBuffer } from 'file-type';
import type { Redis } from 'ioredis';
import type { Config } from '../common/config.js';
import { mediaKey, type MediaStore } from '../common/media-store.js';
import { isForbiddenAddress, parseTenantUrl, pinnedLookup, UrlRefusedError } from '../common/net-policy.js';
import { redisKeys } from '../common/redis-keys.js';
import { ApiError } from './errors.js';

export interface UploadRecord {
  uploadId: string;
  tenant: string;
  mimeType: string;
  /** the MIME type came from the content itself (false: nothing recognisable, the declared type was kept) */
  sniffed: boolean;
  size: number;
  sha256: string;
  fileName: string | null;
  createdAt: number;
}

/** Bytes looked at to recognise the type (file-type needs a few KB; Office formats look further into the zip). */
const SNIFF_BYTES = 64 * 1024;

/** Extensions whose type a client's generic `application/octet-stream` hides. */
const EXTENSION_MIME: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  pdf: 'application/pdf',
  mp4: 'video/mp4',
  '3gp': 'video/3gpp',
  ogg: 'audio/ogg',
  opus: 'audio/ogg',
  mp3: 'audio/mpeg',
  m4a: 'audio/mp4',
  zip: 'application/zip',
};

/** Types file-type always recognises: a file claiming one of these that is not recognised is not what it says. */
const RECOGNISABLE = (mime: string) => /^(image|video|audio)\//.test(mime) || mime === 'application/pdf';

/** Declarations that say nothing (text/plain is what a multipart part without a Content-Type defaults to). */
const GENERIC = new Set(['', 'application/octet-stream', 'binary/octet-stream', 'text/plain']);

/**
 * What the client claims: its declared type (explicit), else what the file name's extension suggests (not
 * explicit: a wrong extension is re-typed, never refused).
 */
function claimedType(mimeType: string | undefined, fileName: string | undefined): { mime: string; explicit: boolean } {
  const declared = (mimeType ?? '').split(';')[0]!.trim().toLowerCase();
  if (!GENERIC.has(declared)) return { mime: declared, explicit: true };
  const ext = fileName?.toLowerCase().match(/\.([a-z0-9]{1,8})$/)?.[1];
  return { mime: (ext && EXTENSION_MIME[ext]) || '', explicit: false };
}

/**
 * The type to store: the sniffed one. An explicit claim of another kind (image vs application, ...) is a
 * contradiction and refused (415), as is an explicit claim of a type that would have been recognised; anything
 * else is re-typed to what the content is (unrecognised content: the explicit claim, else application/octet-stream).
 */
export function resolveMime(
  sniffed: string | undefined,
  claim: { mime: string; explicit: boolean },
  field: string,
): { mimeType: string; sniffed: boolean } {
  const claimed = claim.explicit ? claim.mime : '';
  if (sniffed) {
    if (claimed && claimed.split('/')[0] !== sniffed.split('/')[0])
      throw new ApiError(
        415,
        'MEDIA_TYPE_MISMATCH',
        `${field}: content is ${sniffed}, not the declared ${claimed}`,
        field,
      );
    return { mimeType: sniffed, sniffed: true };
  }
  if (claimed && RECOGNISABLE(claimed))
    throw new ApiError(415, 'MEDIA_TYPE_MISMATCH', `${field}: content is not ${claimed}`, field);
  const kept = claimed || (claim.mime && !RECOGNISABLE(claim.mime) ? claim.mime : '');
  return { mimeType: kept || 'application/octet-stream', sniffed: false };
}

export class MediaUploads {
  private readonly keys;

  constructor(
    private readonly redis: Redis,
    private readonly config: Config,
    readonly files: MediaStore,
  ) {
    this.keys = redisKeys(config.REDIS_KEY_PREFIX);
  }

  /**
   * Streams `source` into a new upload: counts and hashes every chunk, keeps the first bytes for sniffing, stops
   * with 413 as soon as the cap is passed (the partial file removed).
   */
  async put(
    tenant: string,
    source: Readable,
    claim: { mimeType?: string; fileName?: string; field: string },
  ): Promise<UploadRecord> {
    const uploadId = `up_${randomBytes(16).toString('hex')}`;
    const key = mediaKey(tenant, uploadId);
    const max = this.config.MEDIA_MAX_BYTES;
    const hash = createHash('sha256');
    const head: Buffer[] = [];
    let headSize = 0;
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > max) {
          done(
            new ApiError(413, 'MEDIA_TOO_LARGE', `${claim.field}: larger than ${max} bytes`, claim.field, {
              connection: 'close',
            }),
          );
          return;
        }
        hash.update(chunk);
        if (headSize < SNIFF_BYTES) {
          head.push(chunk.subarray(0, SNIFF_BYTES - headSize));
          headSize += Math.min(chunk.length, SNIFF_BYTES - headSize);
        }
        done(null, chunk);
      },
    });
    let written = false;
    try {
      await this.files.write(key, source, [meter]);
      written = true;
      if (size === 0) throw new ApiError(400, 'VALIDATION_ERROR', `${claim.field}: the file is empty`, claim.field);
      const sniffed = await fileTypeFromBuffer(Buffer.concat(head));
      const type = resolveMime(sniffed?.mime, claimedType(claim.mimeType, claim.fileName), claim.field);
      const record: UploadRecord = {
        uploadId,
        tenant,
        mimeType: type.mimeType,
        sniffed: type.sniffed,
        size,
        sha256: hash.digest('hex'),
        fileName: claim.fileName ? path.basename(claim.fileName).slice(0, 255) : null,
        createdAt: Date.now(),
      };
      await this.redis.set(
        this.keys.mediaUpload(uploadId),
        JSON.stringify(record),
        'PX',
        this.config.MEDIA_UPLOAD_TTL_MS,
      );
      return record;
    } catch (err) {
      source.resume();
      if (written) await this.files.remove(key).catch(() => undefined);
      throw err;
    }
  }

  /** The upload when it exists and belongs to `tenant` (undefined: any tenant); another tenant's is not found. */
  async get(uploadId: string, tenant?: string): Promise<UploadRecord | null> {
    const raw = await this.redis.get(this.keys.mediaUpload(uploadId));
    if (!raw) return null;
    const record = JSON.parse(raw) as UploadRecord;
    return tenant === undefined || record.tenant === tenant ? record : null;
  }

  open(record: UploadRecord): Promise<Readable> {
    return this.files.read(mediaKey(record.tenant, record.uploadId));
  }

  /**
   * GET `raw` under the customer-webhook rules, streamed into a new upload. Refusals name `field`: 400 for a URL
   * the policy refuses, 413 over the cap (a declared Content-Length is refused before reading), 502 for a failed
   * fetch.
   */
  async fromUrl(tenant: string, raw: string, field: string): Promise<UploadRecord> {
    const policy = { allowHosts: this.config.CLIENT_WEBHOOK_ALLOW_HOSTS };
    // Well-formed but refused by the address policy: 403, as for customer webhooks.
    const refused = (why: string) => new ApiError(403, 'URL_NOT_ALLOWED', `${field}: ${why}`, field);
    let url: URL;
    try {
      url = parseTenantUrl(raw);
    } catch (err) {
      // the request's shape was checked already (an http(s) URL without credentials): a host that does not parse
      // makes the URL unusable, like an unreachable one
      throw new ApiError(422, 'MEDIA_URL_FAILED', `${field}: ${(err as Error).message}`, field);
    }
    const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
    // An address literal never goes through lookup: check it here.
    if (isIP(host) && !policy.allowHosts.includes(host) && isForbiddenAddress(host))
      throw refused('private, loopback, link-local or reserved address');
    const timeoutMs = this.config.MEDIA_URL_TIMEOUT_MS;
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      const req = mod.request(url, {
        method: 'GET',
        lookup: pinnedLookup(policy),
        agent: false,
        timeout: timeoutMs,
        headers: { 'user-agent': 'wa-orchestrator-media/1' },
      });
      const timer = setTimeout(
        () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
        timeoutMs,
      );
      req.on('response', (r) => {
        // the whole download, not just the headers, must fit the time limit
        r.on('close', () => clearTimeout(timer));
        resolve(r);
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end();
    }).catch((err: unknown) => {
      if (err instanceof UrlRefusedError) throw refused('private, loopback, link-local or reserved address');
      throw new ApiError(422, 'MEDIA_URL_FAILED', `${field}: could not fetch the URL`, field);
    });
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      res.destroy();
      const why = status >= 300 && status < 400 ? 'redirects are not followed' : `the URL answered ${status}`;
      throw new ApiError(422, 'MEDIA_URL_FAILED', `${field}: ${why}`, field);
    }
    const declared = Number(res.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > this.config.MEDIA_MAX_BYTES) {
      res.destroy();
      throw new ApiError(413, 'MEDIA_TOO_LARGE', `${field}: larger than ${this.config.MEDIA_MAX_BYTES} bytes`, field);
    }
    const fileName = decodeURIComponent(url.pathname.split('/').pop() ?? '') || undefined;
    try {
      return await this.put(tenant, res, {
        mimeType: res.headers['content-type'],
        ...(fileName ? { fileName } : {}),
        field,
      });
    } finally {
      res.destroy();
    }
  }

  async remove(record: UploadRecord): Promise<void> {
    await this.redis.del(this.keys.mediaUpload(record.uploadId));
    await this.files.remove(mediaKey(record.tenant, record.uploadId));
  }

  /** Removes uploads older than the upload lifetime (their records expired in Redis already). */
  sweep(now = Date.now()): Promise<number> {
    return this.files.sweep(/^up_[a-f0-9]{32}$/, this.config.MEDIA_UPLOAD_TTL_MS, now);
  }
}
