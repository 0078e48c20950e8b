/**
 * Inbound media end to end (issue 16 item 2): a simulated contact sends an image and a document (the simulator
 * encrypts them as WhatsApp does and serves the blobs from its media host); the real wa-worker downloads them through
 * its SOCKS5 proxy with Baileys' media keys, checks MAC and hashes, hands the bytes to the API over a signed call; the
 * customer webhook gets `message.received` with a media object and a signed, expiring download URL. Real API and
 * orchestrator processes, Temporal, Redis.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { getMediaKeys } from '@whiskeysockets/baileys';
import type { Redis } from 'ioredis';
import { InboundMediaStore } from '../api/media-inbound.js';
import { loadConfig } from '../common/config.js';
import { isMissing, mediaStoreFor } from '../common/media-store.js';
import { redisKeys } from '../common/redis-keys.js';
import { sessionWebhookSecret } from '../common/session.js';
import { MediaServer } from '../simulator/media.js';
import { decryptMediaTo, MediaDownloadError } from '../wa-worker/media-download.js';
import { SignedClient, SignedHttpError } from '../wa-worker/signed-post.js';
import type { Delivery } from './helpers/client-receiver.js';
import { connectedSuite, OTHER_KEY } from './helpers/connected-suite.js';
import { png, pdf } from './helpers/media-files.js';
import { MEDIA_BUCKET, MediaBucket, mediaStoreEnv } from './helpers/media-s3.js';
import { API_KEY, serviceEnv, TENANT_KEY, WEBHOOK_SECRET, waitFor } from './helpers/stack.js';

const URL_TTL_MS = 15_000;
const WORKER_MAX_BYTES = 2 * 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface WebhookMedia {
  id: string | null;
  type: string;
  mimetype: string;
  size: number;
  sha256: string | null;
  fileName: string | null;
  caption: string | null;
  url: string | null;
  urlExpiresAt: number | null;
  error?: string;
}

for (const kind of ['disk', 's3'] as const)
  describe(`inbound media (${kind} store): contact → simulator media host → worker (through its proxy) → API → customer webhook`, () => {
    const media = mediaStoreEnv(kind);
    const S = { id: 'inmedia1', phone: '15550008301' };
    const suite = connectedSuite({
      session: S,
      env: {
        MEDIA_URL_TTL_MS: String(URL_TTL_MS),
        WORKER_ENV_INBOUND_MEDIA_MAX_BYTES: String(WORKER_MAX_BYTES),
        ...media.env,
      },
    });
    const { receiver } = suite;
    const CONTACT = '15557773001';
    const image = png(300, 200);
    const doc = pdf(120_000);
    const sent: Record<'image' | 'document', { id: string; delivery?: Delivery }> = {
      image: { id: '' },
      document: { id: '' },
    };

    /** The simulator's control call: the contact sends a file. */
    async function contactSends(body: Record<string, unknown>) {
      return suite.contact<{ id: string; media: { sha256: string; size: number } }>(
        `/phones/${S.phone}/inbound-media`,
        { from: CONTACT, ...body },
      );
    }
    const delivered = (messageId: string) =>
      waitFor(
        `message.received ${messageId} at the customer webhook`,
        () => receiver.of('message.received').find((d) => d.json.data.messageId === messageId),
        60_000,
      );
    const mediaOf = (d: Delivery) => d.json.data.media as WebhookMedia;
    const download = async (url: string, headers: Record<string, string> = {}) => {
      const res = await fetch(url, { headers });
      const bytes = Buffer.from(await res.arrayBuffer());
      return { status: res.status, headers: res.headers, bytes, json: () => JSON.parse(bytes.toString()) as any };
    };

    it('an image and a document reach the webhook with media; the signed URL downloads them byte-identical', async () => {
      const img = await contactSends({
        type: 'image',
        data: image.toString('base64'),
        mimetype: 'image/png',
        caption: 'receipt photo',
      });
      assert.equal(img.media.sha256, sha(image));
      const pdfSent = await contactSends({
        type: 'document',
        data: doc.toString('base64'),
        mimetype: 'application/pdf',
        fileName: 'Invoice 42.pdf',
        caption: 'the invoice',
      });
      sent.image = { id: img.id, delivery: await delivered(img.id) };
      sent.document = { id: pdfSent.id, delivery: await delivered(pdfSent.id) };

      const expected = [
        { d: sent.image.delivery!, bytes: image, type: 'image', mimetype: 'image/png', caption: 'receipt photo' },
        {
          d: sent.document.delivery!,
          bytes: doc,
          type: 'document',
          mimetype: 'application/pdf',
          caption: 'the invoice',
          fileName: 'Invoice 42.pdf',
        },
      ];
      for (const e of expected) {
        const m = mediaOf(e.d);
        assert.ok(m, `${e.type}: the webhook carries media: ${e.d.body}`);
        assert.equal(e.d.json.data.from, CONTACT);
        assert.equal(e.d.json.data.text, e.caption, 'the text is the caption');
        assert.match(m.id ?? '', /^in_[a-f0-9]{32}$/);
        assert.equal(m.type, e.type);
        assert.equal(m.mimetype, e.mimetype);
        assert.equal(m.size, e.bytes.length);
        assert.equal(m.sha256, sha(e.bytes));
        assert.equal(m.caption, e.caption);
        assert.equal(m.fileName, e.fileName ?? null);
        assert.equal(m.error, undefined);
        assert.ok(m.url?.startsWith(`${suite.stack.apiUrl}/api/media/${m.id}?`), m.url ?? 'no url');
        assert.ok(m.urlExpiresAt! > Date.now() && m.urlExpiresAt! <= Date.now() + URL_TTL_MS);
        // no key: the signature is the credential
        const got = await download(m.url!);
        assert.equal(got.status, 200, got.bytes.toString().slice(0, 200));
        assert.equal(sha(got.bytes), sha(e.bytes), `${e.type}: byte-identical to what the contact sent`);
        assert.equal(got.headers.get('content-type'), e.mimetype);
      }
      // kept for the retention (MEDIA_RETENTION_HOURS, default 168 h): the record's TTL
      const ttl = await suite.stack.redis.pttl(
        redisKeys(suite.stack.prefix).mediaInbound(mediaOf(sent.image.delivery!).id!),
      );
      assert.ok(ttl > 167 * 3_600_000 && ttl <= 168 * 3_600_000, `TTL ${ttl} ms`);
      // the worker fetched both blobs through the session's proxy (bound to its own address), never directly
      assert.ok(suite.stack.sim.media.downloadSources.length >= 2, 'the worker downloaded from the media host');
      assert.deepEqual([...new Set(suite.stack.sim.media.downloadSources)], [suite.stack.proxies[0]!.bindAddress]);
      // where the bytes are: under the tenant's own folder or key prefix, in the configured store only
      const ids = [mediaOf(sent.image.delivery!).id!, mediaOf(sent.document.delivery!).id!];
      const diskDir = path.join(suite.stack.dataDir, 'media', 'acme');
      if (media.bucket) {
        const objects = await media.bucket.objects();
        for (const [id, bytes] of [
          [ids[0], image],
          [ids[1], doc],
        ] as const)
          assert.equal(objects.get(`acme/${id}`), bytes.length, `acme/${id} in the bucket: ${[...objects.keys()]}`);
        assert.ok(!existsSync(diskDir), 'nothing in MEDIA_DIR');
      } else for (const id of ids) assert.ok(readdirSync(diskDir).includes(id), `${id} in MEDIA_DIR/acme`);
    });

    it('GET /api/media/:id streams the file to its tenant and the admin; another tenant gets 404', async () => {
      const m = mediaOf(sent.image.delivery!);
      const own = await download(`${suite.stack.apiUrl}/api/media/${m.id}`, { 'x-api-key': TENANT_KEY });
      assert.equal(own.status, 200);
      assert.equal(sha(own.bytes), sha(image));
      const admin = await download(`${suite.stack.apiUrl}/api/media/${m.id}`, { 'x-api-key': API_KEY });
      assert.equal(admin.status, 200);
      assert.equal(sha(admin.bytes), sha(image));
      const other = await download(`${suite.stack.apiUrl}/api/media/${m.id}`, { 'x-api-key': OTHER_KEY });
      assert.equal(other.status, 404);
      assert.equal(other.json().error.code, 'MEDIA_NOT_FOUND');
      // exactly what an id that never existed answers: nothing tells the other tenant the file exists
      const none = await download(`${suite.stack.apiUrl}/api/media/in_${'0'.repeat(32)}`, { 'x-api-key': OTHER_KEY });
      assert.equal(none.status, 404);
      assert.deepEqual(none.json(), {
        error: { ...other.json().error, message: `media in_${'0'.repeat(32)} not found` },
      });
      // the signed URL with another tenant's key: the key decides, and it does not reach the file
      const withKey = await download(m.url!, { 'x-api-key': OTHER_KEY });
      assert.equal(withKey.status, 404);
      // no key and no signature
      const anon = await download(`${suite.stack.apiUrl}/api/media/${m.id}`);
      assert.equal(anon.status, 401);
      const bad = await download(`${suite.stack.apiUrl}/api/media/not-an-id`, { 'x-api-key': TENANT_KEY });
      assert.equal(bad.status, 400);
      assert.equal(bad.json().error.field, 'id');
    });

    it('a tampered signed URL is refused with 403, an expired one too', async () => {
      const m = mediaOf(sent.document.delivery!);
      const url = new URL(m.url!);
      const sig = url.searchParams.get('sig')!;
      const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
      const variants: Array<[string, URL]> = [];
      const tamperedSig = new URL(url);
      tamperedSig.searchParams.set('sig', flip(sig));
      variants.push(['signature changed', tamperedSig]);
      const later = new URL(url);
      later.searchParams.set('expires', String(Number(url.searchParams.get('expires')) + 3_600_000));
      variants.push(['expiry moved', later]);
      const otherFile = new URL(mediaOf(sent.image.delivery!).url!);
      otherFile.searchParams.set('sig', sig);
      otherFile.searchParams.set('expires', url.searchParams.get('expires')!);
      variants.push(["another file's id with this signature", otherFile]);
      const noExpiry = new URL(url);
      noExpiry.searchParams.delete('expires');
      variants.push(['expiry removed', noExpiry]);
      for (const [what, v] of variants) {
        const r = await download(v.toString());
        assert.equal(r.status, 403, `${what}: ${r.bytes.toString().slice(0, 200)}`);
        assert.equal(r.json().error.code, 'BAD_MEDIA_SIGNATURE', what);
      }
      // the untouched URL still works until it expires, then it is refused
      assert.equal((await download(m.url!)).status, 200);
      await waitFor('the signed URL to expire', () => Date.now() > m.urlExpiresAt!, URL_TTL_MS + 5_000, 200);
      const expired = await download(m.url!);
      assert.equal(expired.status, 403, expired.bytes.toString());
      assert.equal(expired.json().error.code, 'MEDIA_URL_EXPIRED');
      // the tenant's key still reaches the file within the retention
      assert.equal(
        (await download(`${suite.stack.apiUrl}/api/media/${m.id}`, { 'x-api-key': TENANT_KEY })).status,
        200,
      );
    });

    it('a file over the worker cap is reported without a URL (too_large)', async () => {
      const big = pdf(WORKER_MAX_BYTES + 100_000);
      const s = await contactSends({
        type: 'document',
        data: big.toString('base64'),
        mimetype: 'application/pdf',
        fileName: 'big.pdf',
      });
      const m = mediaOf(await delivered(s.id));
      assert.equal(m.error, 'too_large');
      assert.equal(m.id, null);
      assert.equal(m.url, null);
      assert.equal(m.size, big.length, 'the announced size');
      assert.equal(m.fileName, 'big.pdf');
    });

    it('a worker killed while downloading: its restart downloads and reports the message', async () => {
      const photo = png(64, 48);
      suite.stack.sim.media.holdDownloads = true;
      const held = suite.stack.sim.media.downloadsHeld;
      let s: Awaited<ReturnType<typeof contactSends>>;
      try {
        s = await contactSends({ type: 'image', data: photo.toString('base64'), mimetype: 'image/png' });
        await waitFor('the worker downloading (held)', () => suite.stack.sim.media.downloadsHeld > held, 30_000);
        const { pid } = JSON.parse(readFileSync(path.join(suite.stack.runDir(), `${S.id}.json`), 'utf8')) as {
          pid: number;
        };
        const logins = suite.stack.sim.connections(S.phone).length;
        process.kill(pid, 'SIGKILL');
        // The killed worker's download stays unanswered; the restarted worker's must not be held.
        suite.stack.sim.media.holdDownloads = false;
        await waitFor(
          'the restarted worker logging in',
          () => suite.stack.sim.connections(S.phone).length > logins,
          60_000,
        );
      } finally {
        suite.stack.sim.media.holdDownloads = false;
      }
      assert.equal(
        receiver.of('message.received').filter((d) => d.json.data.messageId === s.id).length,
        0,
        'not reported before the download',
      );
      const m = mediaOf(await delivered(s.id));
      assert.equal(m.sha256, sha(photo), `downloaded after the restart: ${JSON.stringify(m)}`);
      const got = await download(m.url!);
      assert.equal(got.status, 200);
      assert.equal(sha(got.bytes), sha(photo), 'byte-identical after the restart');
    });

    it('the signed worker call: bytes that differ from the signed description are refused, a bad signature too', async () => {
      const secret = sessionWebhookSecret(WEBHOOK_SECRET, S.id);
      const client = new SignedClient(`${suite.stack.apiUrl}/api/worker/sessions/${S.id}`, secret, 10_000, 'test');
      const file = path.join(os.tmpdir(), `inmedia-${randomBytes(4).toString('hex')}`);
      const bytes = randomBytes(5000);
      writeFileSync(file, bytes);
      const meta = {
        waMessageId: 'TESTMSG1',
        type: 'document',
        mimetype: 'application/octet-stream',
        size: bytes.length,
        sha256: sha(bytes),
        fileName: 'x.bin',
      };
      const ok = await client.postFile('inbound-media', 'x-wa-media', meta, file);
      assert.equal(ok.status, 201);
      const { mediaId } = (await ok.json()) as { mediaId: string };
      const again = await client.postFile('inbound-media', 'x-wa-media', meta, file);
      assert.equal(((await again.json()) as { mediaId: string }).mediaId, mediaId, 'a retry stores the same file');
      const status = async (p: Promise<unknown>) =>
        p.then(
          () => 0,
          (err: unknown) => (err instanceof SignedHttpError ? err.status : -1),
        );
      assert.equal(
        await status(client.postFile('inbound-media', 'x-wa-media', { ...meta, sha256: sha(randomBytes(8)) }, file)),
        400,
      );
      assert.equal(await status(client.postFile('inbound-media', 'x-wa-media', { ...meta, size: 4000 }, file)), 413);
      const forged = new SignedClient(
        `${suite.stack.apiUrl}/api/worker/sessions/${S.id}`,
        'f'.repeat(64),
        10_000,
        'test',
      );
      assert.equal(await status(forged.postFile('inbound-media', 'x-wa-media', meta, file)), 401);
      // another session's key does not store files for this one
      const otherSession = new SignedClient(
        `${suite.stack.apiUrl}/api/worker/sessions/${S.id}`,
        sessionWebhookSecret(WEBHOOK_SECRET, 'someone-else'),
        10_000,
        'test',
      );
      assert.equal(await status(otherSession.postFile('inbound-media', 'x-wa-media', meta, file)), 401);
    });
  });

describe('inbound media decryption (worker): checks what WhatsApp clients check', () => {
  let media: MediaServer;
  before(async () => {
    media = await MediaServer.start();
  });
  after(async () => media?.close());

  /** What the contact sends and the encrypted blob the media host serves, with the keys Baileys derives. */
  async function encrypted(plain: Buffer) {
    const { message } = media.encryptInbound({ type: 'image', data: plain, mimetype: 'image/png' });
    const m = message.imageMessage!;
    const blob = await new Promise<Buffer>((resolve, reject) => {
      https
        .get(`https://${media.host}${m.directPath}`, { ca: readFileSync(media.certPath) }, (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve(Buffer.concat(chunks)));
        })
        .on('error', reject);
    });
    const k = await getMediaKeys(m.mediaKey!, 'image');
    const keys = { iv: Buffer.from(k.iv), cipherKey: Buffer.from(k.cipherKey), macKey: Buffer.from(k.macKey!) };
    const expected = {
      fileEncSha256: Buffer.from(m.fileEncSha256!),
      fileSha256: Buffer.from(m.fileSha256!),
      fileLength: Number(m.fileLength),
    };
    return { blob, keys, expected };
  }
  const file = () => path.join(os.tmpdir(), `inmedia-dec-${randomBytes(4).toString('hex')}`);
  /** Feeds `blob` in small chunks (the MAC trailer split across them). */
  const chunked = (blob: Buffer) =>
    Readable.from(Array.from({ length: Math.ceil(blob.length / 7) }, (_, i) => blob.subarray(i * 7, i * 7 + 7)));

  it('a good blob decrypts byte-identical; a flipped byte, a wrong hash or length, an oversize are refused', async () => {
    const plain = png(40, 30);
    const { blob, keys, expected } = await encrypted(plain);
    const out = file();
    const ok = await decryptMediaTo(chunked(blob), keys, expected, out, 1024 * 1024);
    assert.equal(ok.sha256, sha(plain));
    assert.equal(ok.size, plain.length);
    assert.equal(sha(readFileSync(out)), sha(plain));
    const refused = async (source: Buffer, exp: typeof expected, max = 1024 * 1024) =>
      decryptMediaTo(Readable.from([source]), keys, exp, file(), max).then(
        () => 'accepted',
        (err: unknown) => (err instanceof MediaDownloadError ? `${err.reason}: ${err.message}` : String(err)),
      );
    const flipped = Buffer.from(blob);
    flipped[5] = flipped[5]! ^ 1;
    assert.equal(await refused(flipped, expected), 'verification_failed: media MAC mismatch');
    const badMac = Buffer.from(blob);
    badMac[badMac.length - 1] = badMac[badMac.length - 1]! ^ 1;
    assert.equal(await refused(badMac, expected), 'verification_failed: media MAC mismatch');
    assert.equal(
      await refused(blob, { ...expected, fileEncSha256: randomBytes(32) }),
      'verification_failed: fileEncSha256 mismatch',
    );
    assert.equal(
      await refused(blob, { ...expected, fileSha256: randomBytes(32) }),
      'verification_failed: fileSha256 mismatch',
    );
    assert.equal(
      await refused(blob, { ...expected, fileLength: plain.length + 1 }),
      'verification_failed: fileLength mismatch',
    );
    assert.match(await refused(blob, expected, 100), /^too_large/);
  });
});

describe('inbound media retention: the sweep removes files past MEDIA_RETENTION_HOURS', () => {
  const configFor = (extra: Record<string, string>) =>
    loadConfig({
      ...serviceEnv({
        apiPort: 1,
        redisUrl: 'redis://127.0.0.1:1',
        prefix: 'x:',
        temporalAddress: '127.0.0.1:1',
        taskQueue: 'x',
        workflowIdPrefix: 'x',
      }),
      MEDIA_RETENTION_HOURS: '2',
      ...extra,
    });

  it('disk: old inbound files go, recent ones and other files stay', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'inmedia-sweep-'));
    const config = configFor({ MEDIA_DIR: dir });
    // the sweep only reads the folder: no Redis needed
    const store = new InboundMediaStore(null as unknown as Redis, config, mediaStoreFor(config));
    const old = store.idFor('s1', 'OLD');
    const fresh = store.idFor('s1', 'NEW');
    const up = 'up_' + 'a'.repeat(32);
    for (const t of ['acme', 'other']) mkdirSync(path.join(dir, t));
    // files written before the tenant folders sit in MEDIA_DIR itself: swept by the same rule, and still read
    const legacyOld = store.idFor('s1', 'LEGACY-OLD');
    const legacyFresh = store.idFor('s1', 'LEGACY-NEW');
    const names = [
      `acme/${old}`,
      `acme/${fresh}`,
      `acme/${old}.123.0badcafe.part`,
      `other/${up}`,
      'acme/notes.txt',
      legacyOld,
      `${legacyOld}.123.456.part`,
      legacyFresh,
    ];
    for (const name of names) writeFileSync(path.join(dir, name), name);
    const threeHoursAgo = new Date(Date.now() - 3 * 3_600_000);
    for (const name of names.filter((n) => !n.includes(fresh) && n !== legacyFresh))
      utimesSync(path.join(dir, name), threeHoursAgo, threeHoursAgo);
    assert.equal(await store.sweep(), 4);
    const left = ['acme', 'other'].flatMap((t) => readdirSync(path.join(dir, t)).map((n) => `${t}/${n}`));
    assert.deepEqual(left.sort(), [`acme/${fresh}`, 'acme/notes.txt', `other/${up}`].sort());
    assert.deepEqual(
      readdirSync(dir)
        .filter((n) => !['acme', 'other'].includes(n))
        .sort(),
      [legacyFresh],
    );
    const legacy = await store.files.read(`acme/${legacyFresh}`);
    assert.equal(Buffer.concat(await legacy.toArray()).toString(), legacyFresh);
    const own = await store.files.read(`acme/${fresh}`);
    assert.equal(Buffer.concat(await own.toArray()).toString(), `acme/${fresh}`);
    // a missing file fails when opened, before a response could start
    await assert.rejects(store.files.read(`acme/in_${'0'.repeat(32)}`), (err) => isMissing(err));
    assert.notEqual(old, fresh);
    assert.equal(store.idFor('s1', 'OLD'), old, 'one id per session and message');
    assert.notEqual(store.idFor('s2', 'OLD'), old);
  });

  it('s3: old inbound objects go from the bucket, recent ones and uploads stay', async () => {
    const bucket = new MediaBucket();
    const config = configFor({ MEDIA_DIR: '/nonexistent', ...bucket.env() });
    const files = mediaStoreFor(config);
    assert.equal(files.kind, 's3');
    const store = new InboundMediaStore(null as unknown as Redis, config, files);
    const old = store.idFor('s1', 'OLD');
    const fresh = store.idFor('s1', 'NEW');
    const up = 'up_' + 'b'.repeat(32);
    await files.write(`acme/${old}`, Readable.from([Buffer.from('old')]));
    await files.write(`other/${up}`, Readable.from([Buffer.from('upload')]));
    const written = async () => {
      const r = await bucket.s3.send(new ListObjectsV2Command({ Bucket: MEDIA_BUCKET, Prefix: bucket.prefix }));
      return new Map((r.Contents ?? []).map((o) => [o.Key!.slice(bucket.prefix.length), o.LastModified!.getTime()]));
    };
    const oldAt = (await written()).get(`acme/${old}`)!;
    // S3 times are whole seconds: the fresh object is written until the store's clock has moved on
    await waitFor('a later LastModified', async () => {
      await files.write(`acme/${fresh}`, Readable.from([Buffer.from('new')]));
      return (await written()).get(`acme/${fresh}`)! > oldAt;
    });
    // "now" two hours and a half second after the old object: only it is past the retention
    assert.equal(await store.sweep(oldAt + 2 * 3_600_000 + 500), 1);
    assert.deepEqual([...(await written()).keys()].sort(), [`acme/${fresh}`, `other/${up}`].sort());
    const back = await files.read(`acme/${fresh}`);
    assert.equal(Buffer.concat(await back.toArray()).toString(), 'new');
    await assert.rejects(files.read(`acme/in_${'0'.repeat(32)}`), (err) => isMissing(err));
    await files.remove(`acme/${fresh}`);
    await files.remove(`other/${up}`);
    assert.deepEqual([...(await written()).keys()], []);
  });
});

describe('inbound media with the Docker runner: the worker container downloads through its proxy', () => {
  // a fresh session id per run: a container of an earlier run (same name) may still be going away
  const S = { id: `inmediadk_${randomBytes(3).toString('hex')}`, phone: '15550008302' };
  const suite = connectedSuite({
    session: S,
    runner: 'docker',
    env: {
      DOCKER_NETWORK: 'host',
      // the image scripts/build-images.sh built for this checkout (IMAGE_NAME, default whatsapp-worker-image)
      WORKER_IMAGE: `${process.env.IMAGE_NAME ?? 'whatsapp-worker-image'}:0.1.0`,
    },
  });
  const { receiver } = suite;

  it('a document arrives at the webhook and downloads byte-identical through the signed URL', async () => {
    const doc = pdf(200_000);
    const { id } = await suite.stack.sim.sendInboundMedia(S.phone, '15557773002', {
      type: 'document',
      data: doc,
      mimetype: 'application/pdf',
      fileName: 'from-a-container.pdf',
    });
    const d = await waitFor(
      'message.received from the container',
      () => receiver.of('message.received').find((x) => x.json.data.messageId === id),
      90_000,
    );
    const m = d.json.data.media as WebhookMedia;
    assert.equal(m.fileName, 'from-a-container.pdf');
    assert.equal(m.sha256, sha(doc));
    const res = await fetch(m.url!);
    assert.equal(res.status, 200);
    assert.equal(sha(Buffer.from(await res.arrayBuffer())), sha(doc));
    assert.deepEqual([...new Set(suite.stack.sim.media.downloadSources)], [suite.stack.proxies[0]!.bindAddress]);
  });
});
