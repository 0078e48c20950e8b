/**
 * Where media bytes live: `disk` (MEDIA_DIR) or `s3` (an S3-compatible bucket, the client set up as for backups).
 * Keys are `<tenant>/<id>`: one tenant's files never share a folder or key prefix with another's. Only the API
 * touches the store; Redis keeps the metadata and Temporal and Redis payloads carry ids only.
 *
 * A write is all or nothing: the bytes stream in (never whole in memory) and become visible under their key only
 * when the source and every transform finished without an error (disk: a partial file renamed; s3: the upload is
 * completed only after the last byte, and aborted on an error).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ensureBucket, s3ClientFor } from './backup-store.js';
import type { Config } from './config.js';

export interface MediaStore {
  readonly kind: 'disk' | 's3';
  /** Streams `source` through `through` into `key`; nothing is stored when any of them fails. */
  write(key: string, source: Readable, through?: Transform[]): Promise<void>;
  /** The bytes under `key` (a missing key: the stream errors with ENOENT / NoSuchKey). */
  read(key: string): Promise<Readable>;
  remove(key: string): Promise<void>;
  /** Removes objects whose name (the part after the tenant) matches `name` and that are older than `ageMs`. */
  sweep(name: RegExp, ageMs: number, now?: number): Promise<number>;
}

/** The key of `id` (an upload or inbound media id) of `tenant`: a safe folder name per tenant. */
export function mediaKey(tenant: string, id: string): string {
  const segment = /^[A-Za-z0-9_-]{1,64}$/.test(tenant)
    ? tenant
    : `t_${createHash('sha256').update(tenant).digest('hex').slice(0, 32)}`;
  return `${segment}/${id}`;
}

const KEY_RE = /^[A-Za-z0-9_-]{1,64}\/[A-Za-z0-9_]{1,64}$/;
function checkKey(key: string) {
  if (!KEY_RE.test(key)) throw new Error(`not a media key: ${key}`);
}

class DiskMediaStore implements MediaStore {
  readonly kind = 'disk' as const;
  constructor(private readonly dir: string) {}
  private fileOf(key: string) {
    checkKey(key);
    return path.join(this.dir, ...key.split('/'));
  }
  async write(key: string, source: Readable, through: Transform[] = []) {
    const file = this.fileOf(key);
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const partial = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.part`;
    try {
      await pipeline([source, ...through, createWriteStream(partial, { mode: 0o600 })]);
      await fs.rename(partial, file);
    } catch (err) {
      await fs.rm(partial, { force: true });
      throw err;
    }
  }
  async read(key: string): Promise<Readable> {
    const file = this.fileOf(key);
    // files written before the tenant folders sit directly in MEDIA_DIR: still served until they expire
    const legacy = path.join(this.dir, key.split('/')[1]!);
    // a missing file fails here (ENOENT), before the response has started
    const found = await fs.access(file).then(
      () => file,
      () => fs.access(legacy).then(() => legacy),
    );
    return createReadStream(found);
  }
  async remove(key: string) {
    await fs.rm(this.fileOf(key), { force: true });
    await fs.rm(path.join(this.dir, key.split('/')[1]!), { force: true });
  }
  async sweep(name: RegExp, ageMs: number, now = Date.now()) {
    let removed = 0;
    const tenants = await fs.readdir(this.dir, { withFileTypes: true }).catch(() => []);
    // MEDIA_DIR itself: files written before the tenant folders
    for (const folder of [
      this.dir,
      ...tenants.filter((t) => t.isDirectory()).map((t) => path.join(this.dir, t.name)),
    ]) {
      for (const file of await fs.readdir(folder).catch(() => [] as string[])) {
        // partial files of a write that never finished go with the same age (and the old `.part` names)
        if (!name.test(file.replace(/(\.\d+\.[a-f0-9]{8}|\.\d+\.\d+)?\.part$/, ''))) continue;
        const st = await fs.stat(path.join(folder, file)).catch(() => null);
        if (st && now - st.mtimeMs > ageMs) {
          await fs.rm(path.join(folder, file), { force: true });
          removed++;
        }
      }
    }
    return removed;
  }
}

/** Parts of a multipart upload: S3's minimum, one in flight, so an upload holds about 5 MiB at most in memory. */
const PART_SIZE = 5 * 1024 * 1024;

class S3MediaStore implements MediaStore {
  readonly kind = 's3' as const;
  private bucketReady: Promise<void> | null = null;
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
  ) {}
  private keyOf(key: string) {
    checkKey(key);
    return `${this.prefix}${key}`;
  }
  /** Creates the bucket when missing (once per process). */
  private ready(): Promise<void> {
    this.bucketReady ??= ensureBucket(this.s3, this.bucket, this.prefix).catch((err: unknown) => {
      this.bucketReady = null;
      throw err;
    });
    return this.bucketReady;
  }
  async write(key: string, source: Readable, through: Transform[] = []) {
    await this.ready();
    const body = new PassThrough();
    const upload = new Upload({
      client: this.s3,
      params: { Bucket: this.bucket, Key: this.keyOf(key), Body: body },
      partSize: PART_SIZE,
      queueSize: 1,
      leavePartsOnError: false,
    });
    // The source's own error (a cap, a hash mismatch) is the one to report, not the upload's abort.
    const [fed, sent] = await Promise.allSettled([pipeline([source, ...through, body]), upload.done()]);
    if (fed.status === 'rejected') {
      await upload.abort().catch(() => undefined);
      throw fed.reason;
    }
    if (sent.status === 'rejected') throw sent.reason;
  }
  async read(key: string): Promise<Readable> {
    const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(key) }));
    return r.Body as Readable;
  }
  async remove(key: string) {
    await this.s3.send(
      new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: [{ Key: this.keyOf(key) }] } }),
    );
  }
  async sweep(name: RegExp, ageMs: number, now = Date.now()) {
    await this.ready();
    const old: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) {
        const file = (o.Key ?? '').slice(this.prefix.length).split('/')[1] ?? '';
        if (name.test(file) && now - (o.LastModified?.getTime() ?? now) > ageMs) old.push(o.Key!);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    for (let i = 0; i < old.length; i += 1000)
      await this.s3.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: old.slice(i, i + 1000).map((Key) => ({ Key })) },
        }),
      );
    return old.length;
  }
}

export function mediaStoreFor(
  config: Pick<
    Config,
    | 'MEDIA_STORE'
    | 'MEDIA_DIR'
    | 'MEDIA_S3_BUCKET'
    | 'MEDIA_S3_PREFIX'
    | 'S3_BUCKET'
    | 'S3_ENDPOINT'
    | 'S3_REGION'
    | 'S3_ACCESS_KEY_ID'
    | 'S3_SECRET_ACCESS_KEY'
  >,
): MediaStore {
  if (config.MEDIA_STORE === 's3')
    return new S3MediaStore(s3ClientFor(config), (config.MEDIA_S3_BUCKET ?? config.S3_BUCKET)!, config.MEDIA_S3_PREFIX);
  return new DiskMediaStore(path.resolve(config.MEDIA_DIR));
}

/** Whether a read failed because the key does not exist (disk or s3). */
export function isMissing(err: unknown): boolean {
  const e = err as { code?: string; name?: string; $metadata?: { httpStatusCode?: number } };
  return e.code === 'ENOENT' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
}
