/**
 * Media sends end to end (issue 16 items 1 and 5): real API and orchestrator processes, real Temporal and Redis, the
 * real wa-worker sending through Baileys and its SOCKS5 proxy; Baileys uploads the encrypted file to the
 * simulator's HTTPS media host, and the simulator decrypts it with the message's mediaKey as a WhatsApp client does
 * and records the plaintext's SHA-256.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import https from 'node:https';
import { encryptedStream } from '@whiskeysockets/baileys';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pdf, png } from './helpers/media-files.js';
import { mediaStoreEnv } from './helpers/media-s3.js';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { startControlApi } from '../simulator/control-api.js';
import { MediaServer } from '../simulator/media.js';
import { API_KEY, Stack, TENANT_KEY, waitFor } from './helpers/stack.js';

const MAX_BYTES = 4 * 1024 * 1024;

/** Minimal files of each kind: the real signatures (what the API sniffs), random payload. */
function opus(): Buffer {
  const page = (payload: Buffer) => {
    const h = Buffer.alloc(27);
    h.write('OggS', 0);
    h[5] = 2; // beginning of stream
    h[26] = 1; // one segment
    return Buffer.concat([h, Buffer.from([payload.length]), payload]);
  };
  const head = Buffer.concat([Buffer.from('OpusHead'), Buffer.from([1, 1, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0])]);
  return Buffer.concat([page(head), randomBytes(20_000)]);
}
function mp3(): Buffer {
  return Buffer.concat([
    Buffer.from('ID3'),
    Buffer.from([4, 0, 0, 0, 0, 0, 0, 0xff, 0xfb, 0x90, 0x64]),
    randomBytes(30_000),
  ]);
}
function mp4(): Buffer {
  const ftyp = Buffer.alloc(24);
  ftyp.writeUInt32BE(24, 0);
  ftyp.write('ftypisom', 4);
  ftyp.writeUInt32BE(512, 12);
  ftyp.write('isomiso2', 16);
  return Buffer.concat([ftyp, randomBytes(40_000)]);
}
function webp(): Buffer {
  const body = Buffer.concat([Buffer.from('WEBPVP8 '), randomBytes(10_000)]);
  const size = Buffer.alloc(4);
  size.writeUInt32LE(body.length);
  return Buffer.concat([Buffer.from('RIFF'), size, body]);
}

/** Two seconds of a 440 Hz tone encoded by ffmpeg (the system's, as the API uses). */
function tone(format: 'mp3' | 'wav'): Buffer {
  return execFileSync(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:duration=2',
      '-f',
      format,
      'pipe:1',
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function upload(stack: Stack, bytes: Buffer, fileName: string, type: string, key = API_KEY) {
  const form = new FormData();
  form.append('file', new Blob([bytes], { type }), fileName);
  const res = await fetch(`${stack.apiUrl}/api/media`, { method: 'POST', headers: { 'x-api-key': key }, body: form });
  return { status: res.status, body: (await res.json()) as any };
}

/** Peak and current RSS of a process (kB), from /proc. */
function memoryOf(pid: number): { rssKb: number; hwmKb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}

/**
 * Streams a multipart body of `total` bytes (chunked, no Content-Length) to POST /api/media as fast as the API
 * takes it; stops at the first answer. Returns the status and how much was sent by then.
 */
function streamUpload(apiUrl: string, total: number, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; sent: number; body: string }>((resolve, reject) => {
    const boundary = 'xBOUNDARYx';
    const req = http.request(`${apiUrl}/api/media`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY, 'content-type': `multipart/form-data; boundary=${boundary}`, ...headers },
    });
    let sent = 0;
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sent, body }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, sent, body }));
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const chunk = randomBytes(256 * 1024);
    const write = () => {
      if (sent === 0) {
        req.write(
          `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\n` +
            `content-type: application/octet-stream\r\n\r\n`,
        );
      }
      while (!answered && !req.destroyed && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', write);
          return;
        }
      }
      if (!answered && !req.destroyed) req.end(`\r\n--${boundary}--\r\n`);
    };
    write();
  });
}

for (const kind of ['disk', 's3'] as const)
  describe(`media (${kind} store): POST /api/media and media sends → worker → Baileys upload → simulator (decrypted)`, () => {
    const media = mediaStoreEnv(kind);
    let stack: Stack;
    let files: http.Server;
    let filesUrl = '';
    const served = new Map<string, { bytes: Buffer; type: string }>();
    const S = { id: 'media1', phone: '15550008001' };

    before(async () => {
      files = http.createServer((req, res) => {
        const f = served.get(req.url ?? '');
        if (!f) return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': f.type, 'content-length': f.bytes.length }).end(f.bytes);
      });
      await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
      filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
      stack = await new Stack({
        proxies: 1,
        extraEnv: {
          ANTIBAN_COLD_GAP_MS: '300',
          ANTIBAN_COLD_DAILY: '1000',
          ANTIBAN_IDLE_POLL_MS: '500',
          ANTIBAN_BURST_COUNT: '1000',
          RATE_LIMIT_MAX_REQUESTS: '1000',
          MEDIA_MAX_BYTES: String(MAX_BYTES),
          WORKER_ENV_OUTBOX_POLL_MS: '50',
          // short typing, so a voice note's `recording` shows
          ANTIBAN_TYPING: 'true',
          ANTIBAN_COLD_TYPING_MIN_MS: '100',
          ANTIBAN_COLD_TYPING_MAX_MS: '300',
          ...media.env,
        },
      }).start();
      await connectedSession(stack, S.id, S.phone);
    });
    after(async () => {
      if (stack) await terminateDispatchers(stack, [S.id]);
      await stack?.stop();
      files?.close();
    });

    const received = (to: string) => stack.sim.messages(S.phone).filter((m) => m.to.startsWith(to) && m.media);

    it('image and document by upload and by URL arrive decrypted and byte-identical, with caption and file name', async () => {
      const image = png(120, 90);
      const doc = pdf();
      const urlImage = png(64, 64);
      const urlDoc = pdf();
      served.set('/files/photo.png', { bytes: urlImage, type: 'image/png' });
      served.set('/files/Invoice%2042.pdf', { bytes: urlDoc, type: 'application/pdf' });

      const up1 = await upload(stack, image, 'photo.png', 'image/png');
      assert.equal(up1.status, 201, JSON.stringify(up1.body));
      assert.match(up1.body.uploadId, /^up_[a-f0-9]{32}$/);
      assert.equal(up1.body.mimeType, 'image/png');
      assert.equal(up1.body.size, image.length);
      assert.equal(up1.body.sha256, sha(image));
      const up2 = await upload(stack, doc, 'contract.pdf', 'application/octet-stream');
      assert.equal(up2.status, 201, JSON.stringify(up2.body));
      assert.equal(up2.body.mimeType, 'application/pdf', 'sniffed from the content');

      const sends = [
        { to: '15559000001', type: 'image', caption: 'product photo', media: { uploadId: up1.body.uploadId } },
        { to: '15559000002', type: 'document', caption: 'your contract', media: { uploadId: up2.body.uploadId } },
        { to: '15559000003', type: 'image', caption: 'by url', media: { url: `${filesUrl}/files/photo.png` } },
        { to: '15559000004', type: 'document', media: { url: `${filesUrl}/files/Invoice%2042.pdf` } },
      ];
      const ids: string[] = [];
      for (const s of sends) {
        const r = await stack.call('POST', '/api/send', { sessionId: S.id, ...s });
        assert.equal(r.status, 202, JSON.stringify(r.body));
        ids.push(r.body.messageId);
      }
      await waitFor('4 media messages at the simulator', () => sends.every((s) => received(s.to).length >= 1), 60_000);
      const expect = [
        { bytes: image, type: 'image', mimetype: 'image/png', caption: 'product photo', fileName: null },
        {
          bytes: doc,
          type: 'document',
          mimetype: 'application/pdf',
          caption: 'your contract',
          fileName: 'contract.pdf',
        },
        { bytes: urlImage, type: 'image', mimetype: 'image/png', caption: 'by url', fileName: null },
        { bytes: urlDoc, type: 'document', mimetype: 'application/pdf', caption: null, fileName: 'Invoice 42.pdf' },
      ];
      for (const [i, s] of sends.entries()) {
        const got = received(s.to);
        assert.equal(got.length, 1, `${s.to}: exactly one message`);
        const m = got[0]!.media!;
        const e = expect[i]!;
        assert.equal(m.verified, true, `${s.to}: ${m.error}`);
        assert.equal(m.sha256, sha(e.bytes), `${s.to}: byte-identical (SHA-256 of the decrypted file)`);
        assert.equal(m.size, e.bytes.length);
        assert.equal(m.type, e.type);
        assert.equal(m.mimetype, e.mimetype);
        assert.equal(m.caption, e.caption);
        assert.equal(m.fileName, e.fileName);
        // an image carries its inline preview (Baileys makes it with sharp): a JPEG of a few KB at most
        if (e.type === 'image') assert.ok(m.thumbnailBytes && m.thumbnailBytes < 64 * 1024, `${s.to}: thumbnail`);
      }
      assert.ok(stack.sim.media.uploadsReceived >= 4, 'uploads went to the simulator media host');
      // Baileys uploads through the session's SOCKS5 proxy (its outgoing side is bound to its own address)
      assert.deepEqual(
        [...new Set(stack.sim.media.uploadSources)],
        [stack.proxies[0]!.bindAddress],
        'every upload came through the proxy',
      );
      const rec = await waitFor('the records at least sent', async () => {
        const r = await stack.call('GET', `/api/messages/${ids[1]}`);
        return ['sent', 'delivered', 'read'].includes(r.body.status) ? r.body : null;
      });
      assert.equal(rec.media.type, 'document');
      assert.equal(rec.media.fileName, 'contract.pdf');
      assert.equal(rec.text, 'your contract');
      // the simulator's control API shows what each contact received, decrypted
      const control = await startControlApi(stack.sim, { port: 0 });
      try {
        const shown = (await (await fetch(`${control.url}/messages?phone=${S.phone}`)).json()) as {
          messages: Array<{ to: string; media?: { sha256: string; fileName: string | null } }>;
        };
        const doc2 = shown.messages.find((m) => m.to.startsWith('15559000002'));
        assert.equal(doc2?.media?.sha256, sha(doc));
        assert.equal(doc2?.media?.fileName, 'contract.pdf');
      } finally {
        await control.close();
      }
    });

    it('audio, voice note (shows recording), video and sticker by upload and by URL arrive decrypted and byte-identical', async () => {
      const kinds = [
        { to: '15559000021', type: 'audio', bytes: mp3(), name: 'song.mp3', mime: 'audio/mpeg', want: 'audio/mpeg' },
        {
          to: '15559000022',
          type: 'voice',
          bytes: opus(),
          name: 'note.ogg',
          mime: 'audio/ogg',
          want: 'audio/ogg; codecs=opus',
        },
        { to: '15559000023', type: 'video', bytes: mp4(), name: 'clip.mp4', mime: 'video/mp4', want: 'video/mp4' },
        { to: '15559000024', type: 'sticker', bytes: webp(), name: 's.webp', mime: 'image/webp', want: 'image/webp' },
      ];
      /** The same file by URL goes to a second number (…3x instead of …2x). */
      const byUrl = (to: string) => to.replace(/2(\d)$/, '3$1');
      for (const k of kinds) {
        const up = await upload(stack, k.bytes, k.name, k.mime);
        assert.equal(up.status, 201, JSON.stringify(up.body));
        const r = await stack.call('POST', '/api/send', {
          sessionId: S.id,
          to: k.to,
          type: k.type,
          media: { uploadId: up.body.uploadId },
        });
        assert.equal(r.status, 202, `${k.type}: ${JSON.stringify(r.body)}`);
        served.set(`/files/by-url-${k.name}`, { bytes: k.bytes, type: k.mime });
        const u = await stack.call('POST', '/api/send', {
          sessionId: S.id,
          to: byUrl(k.to),
          type: k.type,
          media: { url: `${filesUrl}/files/by-url-${k.name}` },
        });
        assert.equal(u.status, 202, `${k.type} by URL: ${JSON.stringify(u.body)}`);
      }
      await waitFor(
        '8 more media messages',
        () => kinds.every((k) => received(k.to).length >= 1 && received(byUrl(k.to)).length >= 1),
        60_000,
      );
      for (const k of kinds) {
        for (const to of [k.to, byUrl(k.to)]) {
          const m = received(to)[0]!.media!;
          assert.equal(m.verified, true, `${k.type} to ${to}: ${m.error}`);
          assert.equal(m.type, k.type);
          assert.equal(m.sha256, sha(k.bytes), `${k.type} to ${to}: byte-identical`);
          assert.equal(m.mimetype, k.want);
        }
      }
      const states = (to: string) => stack.sim.presence(S.phone, to).map((p) => p.state);
      assert.ok(states('15559000022').includes('recording'), `voice: ${states('15559000022').join(',')}`);
      assert.ok(!states('15559000022').includes('composing'), 'a voice note is not typed');
      assert.ok(states('15559000021').includes('composing'), `audio: ${states('15559000021').join(',')}`);
    });

    it('MP3 and WAV sent as voice notes are converted to Opus in OGG (ffmpeg) and arrive as voice notes', async () => {
      const sources = [
        { to: '15559000025', name: 'note.mp3', mime: 'audio/mpeg', bytes: tone('mp3') },
        { to: '15559000026', name: 'note.wav', mime: 'audio/wav', bytes: tone('wav') },
      ];
      served.set('/files/voice.mp3', { bytes: sources[0]!.bytes, type: 'audio/mpeg' });
      for (const src of sources) {
        const up = await upload(stack, src.bytes, src.name, src.mime);
        assert.equal(up.status, 201, JSON.stringify(up.body));
        assert.notEqual(up.body.mimeType, 'audio/ogg; codecs=opus');
        const r = await stack.call('POST', '/api/send', {
          sessionId: S.id,
          to: src.to,
          type: 'voice',
          media: { uploadId: up.body.uploadId },
        });
        assert.equal(r.status, 202, `${src.name}: ${JSON.stringify(r.body)}`);
      }
      // and a voice note by URL
      const byUrl = await stack.call('POST', '/api/send', {
        sessionId: S.id,
        to: '15559000027',
        type: 'voice',
        media: { url: `${filesUrl}/files/voice.mp3` },
      });
      assert.equal(byUrl.status, 202, JSON.stringify(byUrl.body));
      const tos = [...sources.map((x) => x.to), '15559000027'];
      await waitFor('3 voice notes', () => tos.every((to) => received(to).length >= 1), 60_000);
      for (const to of tos) {
        const m = received(to)[0]!.media!;
        assert.equal(m.verified, true, `${to}: ${m.error}`);
        assert.equal(m.type, 'voice');
        assert.equal(m.ptt, true);
        assert.equal(m.mimetype, 'audio/ogg; codecs=opus');
        const head = Buffer.from(m.head, 'hex');
        assert.equal(head.subarray(0, 4).toString('latin1'), 'OggS', `${to}: an Ogg stream`);
        assert.ok(head.includes(Buffer.from('OpusHead')), `${to}: Opus inside`);
      }
      // audio that is not audio (random bytes behind an MP3 header) cannot be converted: 422, nothing queued
      const junk = await upload(stack, mp3(), 'x.mp3', 'audio/mpeg');
      const v = await stack.call('POST', '/api/send', {
        sessionId: S.id,
        to: '15559000028',
        type: 'voice',
        media: { uploadId: junk.body.uploadId },
      });
      assert.equal(v.status, 422, JSON.stringify(v.body));
      assert.equal(v.body.error.code, 'MEDIA_CONVERSION_FAILED');
      assert.equal(v.body.error.field, 'media');
      // an image is no voice note
      const img = await upload(stack, png(8, 8), 'x.png', 'image/png');
      const notAudio = await stack.call('POST', '/api/send', {
        sessionId: S.id,
        to: '15559000028',
        type: 'voice',
        media: { uploadId: img.body.uploadId },
      });
      assert.equal(notAudio.status, 415, JSON.stringify(notAudio.body));
    });

    it('a URL to a private, loopback or link-local address is refused (403) and nothing is fetched', async () => {
      const port = (files.address() as AddressInfo).port;
      let hits = 0;
      files.on('request', () => hits++);
      for (const url of [
        `http://localhost:${port}/files/photo.png`, // resolves to loopback, not allow-listed
        'http://10.1.2.3/x.png',
        'http://169.254.169.254/latest/meta-data',
        'http://[::1]/x.png',
      ]) {
        const r = await stack.call('POST', '/api/send', {
          sessionId: S.id,
          to: '15559000010',
          type: 'image',
          media: { url },
        });
        assert.equal(r.status, 403, `${url}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, 'URL_NOT_ALLOWED', url);
        assert.equal(r.body.error.field, 'media.url', url);
      }
      for (const url of ['ftp://example.com/x.png', 'http://user:pw@example.com/x.png']) {
        const r = await stack.call('POST', '/api/send', {
          sessionId: S.id,
          to: '15559000010',
          type: 'image',
          media: { url },
        });
        assert.equal(r.status, 400, `${url}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.error.field, /^media/, url);
      }
      assert.equal(hits, 0, 'the file server was never reached');
      // allowed, but not there: the URL is unusable (422), nothing queued
      const missing = await stack.call('POST', '/api/send', {
        sessionId: S.id,
        to: '15559000010',
        type: 'image',
        media: { url: `${filesUrl}/files/missing.png` },
      });
      assert.equal(missing.status, 422, JSON.stringify(missing.body));
      assert.equal(missing.body.error.code, 'MEDIA_URL_FAILED');
      assert.match(missing.body.error.message, /answered 404/);
      const unparsable = await stack.call('POST', '/api/send', {
        sessionId: S.id,
        to: '15559000010',
        type: 'image',
        media: { url: 'http://0yw]1' },
      });
      assert.equal(unparsable.status, 422, JSON.stringify(unparsable.body));
      assert.equal(received('15559000010').length, 0);
    });

    it('a file whose content contradicts its type is refused (415); a generic claim is re-typed', async () => {
      const image = png(8, 8);
      const asPdf = await upload(stack, image, 'invoice.pdf', 'application/pdf');
      assert.equal(asPdf.status, 415, JSON.stringify(asPdf.body));
      assert.equal(asPdf.body.error.code, 'MEDIA_TYPE_MISMATCH');
      assert.equal(asPdf.body.error.field, 'file');
      assert.match(asPdf.body.error.message, /content is image\/png/);
      const textAsJpeg = await upload(stack, Buffer.from('just some text, not a picture\n'), 'a.jpg', 'image/jpeg');
      assert.equal(textAsJpeg.status, 415, JSON.stringify(textAsJpeg.body));
      // a PNG declared as JPEG is still an image: stored as what it is
      const retyped = await upload(stack, image, 'pic.jpg', 'image/jpeg');
      assert.equal(retyped.status, 201, JSON.stringify(retyped.body));
      assert.equal(retyped.body.mimeType, 'image/png');
      // only the extension lies (no declared type): re-typed to what the content is
      const byExt = await upload(stack, image, 'invoice.pdf', 'application/octet-stream');
      assert.equal(byExt.status, 201, JSON.stringify(byExt.body));
      assert.equal(byExt.body.mimeType, 'image/png');
      const textByExt = await upload(stack, Buffer.from('plain words\n'), 'photo.jpg', 'application/octet-stream');
      assert.equal(textByExt.status, 201, JSON.stringify(textByExt.body));
      assert.equal(textByExt.body.mimeType, 'application/octet-stream', 'not an image, whatever the name says');
      const notImage = await stack.call('POST', '/api/send', {
        sessionId: S.id,
        to: '15559000011',
        type: 'image',
        media: { uploadId: textByExt.body.uploadId },
      });
      assert.equal(notImage.status, 415, JSON.stringify(notImage.body));
      // a PDF sent as an image: refused at the send
      const doc = await upload(stack, pdf(), 'a.pdf', 'application/pdf');
      const r = await stack.call('POST', '/api/send', {
        sessionId: S.id,
        to: '15559000011',
        type: 'image',
        media: { uploadId: doc.body.uploadId },
      });
      assert.equal(r.status, 415, JSON.stringify(r.body));
      assert.equal(r.body.error.field, 'media');
      // a multipart body without a boundary is the client's error, not a crash
      const noBoundary = await fetch(`${stack.apiUrl}/api/media`, {
        method: 'POST',
        headers: { 'x-api-key': API_KEY, 'content-type': 'multipart/form-data' },
        body: 'x',
      });
      assert.equal(noBoundary.status, 400, await noBoundary.text());
      // input errors name the field
      const bad = await stack.call('POST', '/api/send', { sessionId: S.id, to: '15559000011', type: 'image' });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.field, 'media');
      const badSrc = await stack.call('POST', '/api/send', {
        sessionId: S.id,
        to: '15559000011',
        type: 'gif',
        media: { uploadId: doc.body.uploadId },
      });
      assert.equal(badSrc.status, 400);
      assert.equal(badSrc.body.error.field, 'type');
    });

    it("another tenant's upload is not found (404)", async () => {
      const mine = await upload(stack, png(8, 8), 'x.png', 'image/png', TENANT_KEY);
      assert.equal(mine.status, 201, JSON.stringify(mine.body));
      const r = await stack.call('POST', '/api/send', {
        sessionId: S.id,
        to: '15559000012',
        type: 'image',
        media: { uploadId: mine.body.uploadId },
      });
      assert.equal(r.status, 404, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'UPLOAD_NOT_FOUND');
      assert.equal(r.body.error.field, 'media.uploadId');
      // the bytes sit under the owner's folder or key prefix, in the configured store only
      const acmeDir = path.join(stack.dataDir, 'media', 'acme');
      if (media.bucket) {
        assert.equal((await media.bucket.objects()).get(`acme/${mine.body.uploadId}`), mine.body.size);
        assert.ok(!existsSync(acmeDir), 'nothing in MEDIA_DIR');
      } else assert.ok(readdirSync(acmeDir).includes(mine.body.uploadId));
    });

    it('an oversized upload is refused early while the API memory stays low', async () => {
      const pid = stack.api!.pid!;
      const beforeMem = memoryOf(pid);
      // declared 2 GB: refused before a byte of the body is read
      const declared = await new Promise<number>((resolve, reject) => {
        const req = http.request(`${stack.apiUrl}/api/media`, {
          method: 'POST',
          headers: {
            'x-api-key': API_KEY,
            'content-type': 'multipart/form-data; boundary=b',
            'content-length': String(2 * 1024 ** 3),
          },
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.write('--b\r\n');
      });
      assert.equal(declared, 413);
      // streamed 2 GB without a length: cut off at the cap
      let peakKb = 0;
      const sampler = setInterval(() => {
        peakKb = Math.max(peakKb, memoryOf(pid).rssKb);
      }, 20);
      const t0 = Date.now();
      const streamed = await streamUpload(stack.apiUrl, 2 * 1024 ** 3).finally(() => clearInterval(sampler));
      const ms = Date.now() - t0;
      assert.equal(streamed.status, 413, streamed.body);
      assert.match(streamed.body, /MEDIA_TOO_LARGE/);
      const afterMem = memoryOf(pid);
      console.log(
        `oversized upload: refused after ${(streamed.sent / 1024 ** 2).toFixed(1)} MB sent of 2048 MB (cap ` +
          `${MAX_BYTES / 1024 ** 2} MB) in ${ms} ms; API RSS before ${(beforeMem.rssKb / 1024).toFixed(0)} MB, ` +
          `peak during ${(peakKb / 1024).toFixed(0)} MB, process peak (VmHWM) ${(afterMem.hwmKb / 1024).toFixed(0)} MB`,
      );
      assert.ok(streamed.sent < 256 * 1024 ** 2, `refused early: ${streamed.sent} bytes sent`);
      assert.ok(peakKb - beforeMem.rssKb < 64 * 1024, `RSS grew by ${(peakKb - beforeMem.rssKb) / 1024} MB`);
      assert.ok(afterMem.hwmKb < 512 * 1024, 'the API never held anything near 2 GB');
    });
  });

describe('simulator media host: decrypts and checks uploads as a WhatsApp client does', () => {
  let media: MediaServer;
  before(async () => {
    media = await MediaServer.start();
  });
  after(async () => media?.close());

  async function uploadEncrypted(plain: Buffer, type: 'image' | 'document') {
    const enc = await encryptedStream(plain, type);
    const body = readFileSync(enc.encFilePath);
    const token = enc.fileEncSha256.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        `https://${media.host}/mms/${type}/${token}?auth=${encodeURIComponent(media.auth)}&token=${token}`,
        { method: 'POST', ca: readFileSync(media.certPath), headers: { 'content-length': body.length } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    return { enc, status };
  }

  it('verifies a good upload and names what is wrong with a bad one', async () => {
    const plain = png(16, 16);
    const { enc, status } = await uploadEncrypted(plain, 'image');
    assert.equal(status, 200);
    const message = {
      imageMessage: {
        mediaKey: enc.mediaKey,
        fileEncSha256: enc.fileEncSha256,
        fileSha256: enc.fileSha256,
        fileLength: enc.fileLength,
        mimetype: 'image/png',
        caption: 'c',
      },
    };
    const ok = media.open(message)!;
    assert.equal(ok.verified, true, ok.error);
    assert.equal(ok.sha256, sha(plain));
    assert.equal(ok.size, plain.length);
    const wrongKey = media.open({ imageMessage: { ...message.imageMessage, mediaKey: randomBytes(32) } })!;
    assert.equal(wrongKey.verified, false);
    assert.equal(wrongKey.error, 'media MAC mismatch');
    const wrongHash = media.open({ imageMessage: { ...message.imageMessage, fileSha256: randomBytes(32) } })!;
    assert.equal(wrongHash.error, 'fileSha256 mismatch');
    const wrongLength = media.open({ imageMessage: { ...message.imageMessage, fileLength: plain.length + 1 } })!;
    assert.equal(wrongLength.error, 'fileLength mismatch');
    // the document keys differ from the image keys (HKDF info): the same upload announced as a document fails
    const asDoc = media.open({ documentMessage: { ...message.imageMessage } })!;
    assert.equal(asDoc.error, 'media MAC mismatch');
    const unknown = media.open({ imageMessage: { ...message.imageMessage, fileEncSha256: randomBytes(32) } })!;
    assert.equal(unknown.error, 'no upload with that fileEncSha256');
    assert.equal(media.open({ conversation: 'text' }), null);
  });

  it('refuses an upload whose bytes do not hash to its name, or without the auth token', async () => {
    const { enc } = await uploadEncrypted(png(4, 4), 'image');
    const token = enc.fileEncSha256.toString('base64url');
    const post = (pathAndQuery: string, body: Buffer) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request(
          `https://${media.host}${pathAndQuery}`,
          { method: 'POST', ca: readFileSync(media.certPath) },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    assert.equal(await post(`/mms/image/${token}?auth=${encodeURIComponent(media.auth)}`, randomBytes(100)), 400);
    assert.equal(await post(`/mms/image/${token}?auth=wrong`, readFileSync(enc.encFilePath)), 401);
  });
});

describe('media with the Docker runner: the worker container uploads through its proxy', () => {
  let stack: Stack;
  const S = { id: 'mediadk1', phone: '15550008101' };
  before(async () => {
    stack = await new Stack({
      proxies: 1,
      runner: 'docker',
      extraEnv: {
        DOCKER_NETWORK: 'host',
        // the image scripts/build-images.sh built for this checkout (IMAGE_NAME, default whatsapp-worker-image)
        WORKER_IMAGE: `${process.env.IMAGE_NAME ?? 'whatsapp-worker-image'}:0.1.0`,
        ANTIBAN_COLD_GAP_MS: '300',
        ANTIBAN_IDLE_POLL_MS: '500',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
      },
    }).start();
    await connectedSession(stack, S.id, S.phone);
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [S.id]);
    await stack?.stop();
  });

  it('an image and a document arrive decrypted and byte-identical', async () => {
    const image = png(100, 80);
    const doc = pdf();
    const sends = [
      { to: '15559100001', bytes: image, name: 'p.png', mime: 'image/png', type: 'image', caption: 'from a container' },
      { to: '15559100002', bytes: doc, name: 'offer.pdf', mime: 'application/pdf', type: 'document' },
    ];
    for (const x of sends) {
      const up = await upload(stack, x.bytes, x.name, x.mime);
      assert.equal(up.status, 201, JSON.stringify(up.body));
      const r = await stack.call('POST', '/api/send', {
        sessionId: S.id,
        to: x.to,
        type: x.type,
        media: { uploadId: up.body.uploadId },
        ...(x.caption ? { caption: x.caption } : {}),
      });
      assert.equal(r.status, 202, JSON.stringify(r.body));
    }
    const got = (to: string) => stack.sim.messages(S.phone).filter((m) => m.to.startsWith(to) && m.media);
    await waitFor('both at the simulator', () => sends.every((x) => got(x.to).length === 1), 90_000);
    for (const x of sends) {
      const m = got(x.to)[0]!.media!;
      assert.equal(m.verified, true, m.error);
      assert.equal(m.sha256, sha(x.bytes));
    }
    assert.equal(got('15559100001')[0]!.media!.caption, 'from a container');
    // the preview is made in the container too: sharp and its libraries are in the worker image
    const thumb = got('15559100001')[0]!.media!.thumbnailBytes;
    assert.ok(thumb && thumb > 100 && thumb < 64 * 1024, `thumbnail of the image: ${thumb}`);
    assert.equal(got('15559100002')[0]!.media!.fileName, 'offer.pdf');
    assert.deepEqual([...new Set(stack.sim.media.uploadSources)], [stack.proxies[0]!.bindAddress]);
  });
});
