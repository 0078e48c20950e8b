/**
 * Media in the real SeaweedFS S3 gateway that scripts/services.sh builds and starts (S3_ENDPOINT and credentials
 * from data/services.env): the env of a stack with MEDIA_STORE=s3 under a fresh prefix, and a client that reads the
 * bucket directly (not through the product's code).
 */
import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

export type MediaStoreKind = 'disk' | 's3';

/** A setting of the real S3 store from data/services.env. */
export const s3Setting = (name: string): string => {
  const v = process.env[name];
  // Never skipped: without the store a suite (or its S3 half) fails and says how to get it.
  if (!v)
    throw new Error(
      `${name} is not set: run scripts/services.sh (it builds and starts SeaweedFS) and load data/services.env`,
    );
  return v;
};

export const MEDIA_BUCKET = 'wa-e2e-media';

export class MediaBucket {
  readonly prefix = `run-${randomBytes(4).toString('hex')}/`;
  readonly s3: S3Client;
  constructor() {
    this.s3 = new S3Client({
      region: process.env.S3_REGION ?? 'us-east-1',
      endpoint: s3Setting('S3_ENDPOINT'),
      forcePathStyle: true,
      credentials: { accessKeyId: s3Setting('S3_ACCESS_KEY_ID'), secretAccessKey: s3Setting('S3_SECRET_ACCESS_KEY') },
    });
  }
  /** The stack env of a media store in this bucket and prefix. */
  env(): Record<string, string> {
    return {
      MEDIA_STORE: 's3',
      MEDIA_S3_BUCKET: MEDIA_BUCKET,
      MEDIA_S3_PREFIX: this.prefix,
      S3_ENDPOINT: s3Setting('S3_ENDPOINT'),
      S3_ACCESS_KEY_ID: s3Setting('S3_ACCESS_KEY_ID'),
      S3_SECRET_ACCESS_KEY: s3Setting('S3_SECRET_ACCESS_KEY'),
    };
  }
  /** Keys under this run's prefix (without it), with their sizes. */
  async objects(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    let token: string | undefined;
    do {
      const r = await this.s3.send(
        new ListObjectsV2Command({ Bucket: MEDIA_BUCKET, Prefix: this.prefix, ContinuationToken: token }),
      );
      for (const o of r.Contents ?? []) out.set(o.Key!.slice(this.prefix.length), o.Size ?? 0);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }
}

/** The env of a stack on `kind` (disk: nothing to add) and, for s3, the bucket to look into. */
export function mediaStoreEnv(kind: MediaStoreKind): { env: Record<string, string>; bucket: MediaBucket | null } {
  if (kind === 'disk') return { env: {}, bucket: null };
  const bucket = new MediaBucket();
  return { env: bucket.env(), bucket };
}
