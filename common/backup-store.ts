/**
 * Where backup archives live: `local` keeps them in BACKUPS_DIR as before; `s3` keeps them in an
 * S3-compatible bucket (AWS S3, SeaweedFS, MinIO), so a host's loss does not take its backups with it. Every
 * archive is still written and verified on local disk first; the store only moves verified archives.
 *
 * S3 layout under S3_PREFIX: `<id>.zip` (the archive) and `<id>.manifest.json` (its manifest, written after the
 * archive: an archive without one is an upload that did not finish and is neither listed nor restored).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { BACKUP_ID_RE, listArchives, type BackupManifest } from './backup-archive.js';
import type { Config } from './config.js';

export type BackupLocation = 'local' | 's3';

export interface StoredBackup {
  id: string;
  size: number;
  createdAt: number;
  location: BackupLocation;
  /** A local path, or `s3://bucket/key`. */
  where: string;
  /** The archive's manifest when the store keeps it beside the archive (s3); local archives are read to get it. */
  manifest?: BackupManifest;
}

/** A local file holding the archive; `release()` removes it when it was downloaded for this read. */
export interface OpenedArchive {
  file: string;
  release(): Promise<void>;
}

/** A failure to reach or use the store (credentials, network, bucket): its message names the store, never a secret. */
export class BackupStoreError extends Error {
  override readonly name = 'BackupStoreError';
  /** The store refused (4xx: credentials, permission, bad request): retrying will not help, unlike a 5xx or a network error. */
  constructor(
    message: string,
    readonly refused = false,
  ) {
    super(message);
  }
}

export interface BackupStore {
  readonly location: BackupLocation;
  /** Archives, newest first. */
  list(): Promise<StoredBackup[]>;
  exists(id: string): Promise<boolean>;
  /** Takes a verified local archive: `local` leaves it in place, `s3` uploads it (and its manifest), then removes it. */
  publish(id: string, localFile: string, manifest: BackupManifest): Promise<StoredBackup>;
  /** A local copy of the archive to read (`tmpDir`: where a download goes). Throws {@link BackupNotFoundError}. */
  open(id: string, tmpDir: string): Promise<OpenedArchive>;
  remove(id: string): Promise<void>;
  /** Checks the store answers (and creates the bucket if missing). */
  check(): Promise<void>;
  /**
   * Per-host copies of a backup in progress (s3 only: hosts then share no folder). `key` names the backup run,
   * `host` the host whose sessions the archive holds.
   */
  staging?: {
    put(key: string, host: string, localFile: string): Promise<void>;
    open(key: string, host: string, tmpDir: string): Promise<OpenedArchive>;
    remove(key: string): Promise<void>;
    /** Removes the copies of runs older than `ageMs` (a backup that failed before assembling them). */
    prune(ageMs: number): Promise<number>;
  };
}

export class BackupNotFoundError extends Error {
  override readonly name = 'BackupNotFoundError';
}

const newestFirst = (a: StoredBackup, b: StoredBackup) =>
  b.id.localeCompare(a.id, 'en', { numeric: true }) || b.createdAt - a.createdAt;

class LocalStore implements BackupStore {
  readonly location = 'local' as const;
  constructor(private readonly dir: string) {}
  async list(): Promise<StoredBackup[]> {
    return (await listArchives(this.dir)).map((b) => ({
      id: b.id,
      size: b.size,
      createdAt: b.createdAt,
      location: 'local' as const,
      where: b.file,
    }));
  }
  async exists(id: string) {
    return fs.lstat(path.join(this.dir, `${id}.zip`)).then(
      () => true,
      () => false,
    );
  }
  async publish(id: string, localFile: string): Promise<StoredBackup> {
    const st = await fs.stat(localFile);
    return { id, size: st.size, createdAt: st.mtimeMs, location: 'local', where: localFile };
  }
  async open(id: string): Promise<OpenedArchive> {
    const file = path.join(this.dir, `${id}.zip`);
    if (!(await this.exists(id))) throw new BackupNotFoundError(`backup ${id} not found`);
    return { file, release: async () => undefined };
  }
  async remove(id: string) {
    await fs.rm(path.join(this.dir, `${id}.zip`), { force: true });
  }
  async check() {}
}

class S3Store implements BackupStore {
  readonly location = 's3' as const;
  private bucketReady = false;
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly prefix: string,
  ) {}
  private key(id: string, ext: 'zip' | 'manifest.json') {
    return `${this.prefix}${id}.${ext}`;
  }
  private where(id: string) {
    return `s3://${this.bucket}/${this.key(id, 'zip')}`;
  }
  /** Turns an SDK failure into one line naming the bucket and what S3 answered (no request ids, no secrets). */
  private fail(what: string, err: unknown): never {
    if (err instanceof BackupNotFoundError) throw err;
    const e = err as S3ServiceException & { code?: string };
    const status = e.$metadata?.httpStatusCode;
    const detail =
      e.name && e.name !== 'Error' && e.name !== 'Unknown'
        ? e.name
        : status === 403
          ? 'AccessDenied (wrong credentials or no permission on the bucket)'
          : (e.code ?? '');
    throw new BackupStoreError(
      `S3 ${what} in bucket ${this.bucket} failed: ${[detail, status ? `HTTP ${status}` : '', e.message]
        .filter(Boolean)
        .join(' ')}`.trim(),
      status !== undefined && status >= 400 && status < 500,
    );
  }
  async check() {
    if (this.bucketReady) return;
    await ensureBucket(this.s3, this.bucket, this.prefix, (stage, err) => this.fail(stage, err));
    this.bucketReady = true;
  }
  async list(): Promise<StoredBackup[]> {
    await this.check();
    const objects = new Map<string, { size: number; modified: number }>();
    const manifests = new Set<string>();
    let token: string | undefined;
    try {
      do {
        const page = await this.s3.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) {
          const name = (o.Key ?? '').slice(this.prefix.length);
          if (name.includes('/')) continue;
          if (name.endsWith('.manifest.json')) manifests.add(name.slice(0, -'.manifest.json'.length));
          else if (name.endsWith('.zip') && BACKUP_ID_RE.test(name.slice(0, -4)))
            objects.set(name.slice(0, -4), { size: o.Size ?? 0, modified: o.LastModified?.getTime() ?? 0 });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      this.fail('listing', err);
    }
    const out: StoredBackup[] = [];
    for (const [id, o] of objects) {
      if (!manifests.has(id)) continue; // its upload did not finish
      out.push({ id, size: o.size, createdAt: o.modified, location: 's3', where: this.where(id) });
    }
    return out.sort(newestFirst);
  }
  /** The manifest kept beside an archive (for listings that should not download every archive). */
  async manifest(id: string): Promise<BackupManifest> {
    try {
      const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(id, 'manifest.json') }));
      return JSON.parse(await r.Body!.transformToString('utf8')) as BackupManifest;
    } catch (err) {
      if ((err as Error).name === 'NoSuchKey') throw new BackupNotFoundError(`backup ${id} not found`);
      return this.fail(`read of ${id}'s manifest`, err);
    }
  }
  async exists(id: string) {
    await this.check();
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(id, 'zip') }));
      return true;
    } catch (err) {
      if ((err as S3ServiceException).$metadata?.httpStatusCode === 404) return false;
      return this.fail(`lookup of ${id}`, err);
    }
  }
  async publish(id: string, localFile: string, manifest: BackupManifest): Promise<StoredBackup> {
    await this.check();
    const st = await fs.stat(localFile);
    try {
      // Multipart above 8 MiB (lib-storage), one PUT below; the manifest goes last: it marks the archive complete.
      await new Upload({
        client: this.s3,
        params: {
          Bucket: this.bucket,
          Key: this.key(id, 'zip'),
          Body: createReadStream(localFile),
          ContentType: 'application/zip',
          ContentLength: st.size,
        },
        partSize: 8 * 1024 * 1024,
        queueSize: 2,
      }).done();
      const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(id, 'zip') }));
      if (head.ContentLength !== st.size)
        throw new BackupStoreError(`S3 upload of ${id}: ${head.ContentLength} bytes stored, ${st.size} written`);
      await new Upload({
        client: this.s3,
        params: {
          Bucket: this.bucket,
          Key: this.key(id, 'manifest.json'),
          Body: JSON.stringify(manifest),
          ContentType: 'application/json',
        },
      }).done();
    } catch (err) {
      if (err instanceof BackupStoreError) throw err;
      this.fail(`upload of ${id}`, err);
    }
    await fs.rm(localFile, { force: true });
    return { id, size: st.size, createdAt: Date.now(), location: 's3', where: this.where(id), manifest };
  }
  async open(id: string, tmpDir: string): Promise<OpenedArchive> {
    await this.check();
    await fs.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const file = path.join(tmpDir, `${id}.download-${process.pid}-${Date.now()}.zip`);
    if (!(await this.exists(id)) || !(await this.hasManifest(id)))
      throw new BackupNotFoundError(`backup ${id} not found`);
    await this.download(this.key(id, 'zip'), file, id);
    return { file, release: () => fs.rm(file, { force: true }) };
  }
  private async hasManifest(id: string) {
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(id, 'manifest.json') }));
      return true;
    } catch (err) {
      if ((err as S3ServiceException).$metadata?.httpStatusCode === 404) return false;
      return this.fail(`lookup of ${id}'s manifest`, err);
    }
  }
  private stagingKey(key: string, host = '') {
    const safe = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, '_');
    return `${this.prefix}.staging/${safe(key)}/${host ? `${safe(host)}.zip` : ''}`;
  }
  private async download(key: string, file: string, what: string) {
    try {
      const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      await pipeline(r.Body as Readable, createWriteStream(file, { mode: 0o600 }));
    } catch (err) {
      await fs.rm(file, { force: true });
      this.fail(`download of ${what}`, err);
    }
  }
  private async deleteKeys(keys: string[], what: string) {
    for (let i = 0; i < keys.length; i += 1000)
      try {
        await this.s3.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) },
          }),
        );
      } catch (err) {
        this.fail(`removal of ${what}`, err);
      }
  }
  private async listKeys(prefix: string): Promise<Array<{ key: string; modified: number }>> {
    const out: Array<{ key: string; modified: number }> = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.s3.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) out.push({ key: o.Key!, modified: o.LastModified?.getTime() ?? 0 });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      this.fail('listing', err);
    }
    return out;
  }
  readonly staging = {
    put: async (key: string, host: string, localFile: string) => {
      await this.check();
      try {
        await new Upload({
          client: this.s3,
          params: { Bucket: this.bucket, Key: this.stagingKey(key, host), Body: createReadStream(localFile) },
          partSize: 8 * 1024 * 1024,
          queueSize: 2,
        }).done();
      } catch (err) {
        this.fail(`upload of host ${host}'s copy`, err);
      }
    },
    open: async (key: string, host: string, tmpDir: string): Promise<OpenedArchive> => {
      await fs.mkdir(tmpDir, { recursive: true, mode: 0o700 });
      const file = path.join(tmpDir, `staging-${process.pid}-${Date.now()}.zip`);
      await this.download(this.stagingKey(key, host), file, `host ${host}'s copy`);
      return { file, release: () => fs.rm(file, { force: true }) };
    },
    remove: async (key: string) => {
      const keys = (await this.listKeys(this.stagingKey(key))).map((o) => o.key);
      await this.deleteKeys(keys, 'staging copies');
    },
    prune: async (ageMs: number) => {
      const old = (await this.listKeys(`${this.prefix}.staging/`)).filter((o) => Date.now() - o.modified > ageMs);
      await this.deleteKeys(
        old.map((o) => o.key),
        'stale staging copies',
      );
      return old.length;
    },
  };
  async remove(id: string) {
    await this.check();
    try {
      // The manifest first: an archive without one is no longer listed, even if the second delete fails.
      await this.s3.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: [{ Key: this.key(id, 'manifest.json') }] },
        }),
      );
      await this.s3.send(
        new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: [{ Key: this.key(id, 'zip') }] } }),
      );
    } catch (err) {
      this.fail(`removal of ${id}`, err);
    }
  }
}

/**
 * Makes sure `bucket` exists: a listing under `prefix` (rather than HeadBucket: its error has a body, so a refusal
 * says why, e.g. SignatureDoesNotMatch), and on a 404 its creation (another process creating it meanwhile is fine).
 * `fail` gets any other error with the step it came from; by default it is thrown as it is.
 */
export async function ensureBucket(
  s3: S3Client,
  bucket: string,
  prefix: string,
  fail: (step: 'access check' | 'bucket creation', err: unknown) => never = (_step, err) => {
    throw err;
  },
): Promise<void> {
  try {
    await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1 }));
  } catch (err) {
    if ((err as S3ServiceException).$metadata?.httpStatusCode !== 404) fail('access check', err);
    try {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    } catch (created) {
      const name = (created as Error).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') fail('bucket creation', created);
    }
  }
}

/** The S3 client of a configuration (path-style addressing: SeaweedFS and MinIO serve buckets under the path). */
export function s3ClientFor(
  config: Pick<Config, 'S3_ENDPOINT' | 'S3_REGION' | 'S3_ACCESS_KEY_ID' | 'S3_SECRET_ACCESS_KEY'>,
): S3Client {
  return new S3Client({
    region: config.S3_REGION,
    endpoint: config.S3_ENDPOINT,
    forcePathStyle: Boolean(config.S3_ENDPOINT),
    credentials:
      config.S3_ACCESS_KEY_ID && config.S3_SECRET_ACCESS_KEY
        ? { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY }
        : undefined,
    maxAttempts: 3,
  });
}

export function backupStoreFor(
  config: Pick<
    Config,
    | 'BACKUP_STORE'
    | 'BACKUPS_DIR'
    | 'S3_BUCKET'
    | 'S3_PREFIX'
    | 'S3_ENDPOINT'
    | 'S3_REGION'
    | 'S3_ACCESS_KEY_ID'
    | 'S3_SECRET_ACCESS_KEY'
  >,
): BackupStore & { manifest?: (id: string) => Promise<BackupManifest> } {
  if (config.BACKUP_STORE === 's3') return new S3Store(s3ClientFor(config), config.S3_BUCKET!, config.S3_PREFIX);
  return new LocalStore(path.resolve(config.BACKUPS_DIR));
}
