/**
 * WhatsApp's media path, simulated: the `media_conn` answer names this HTTPS upload host
 * (127.0.0.1:<port>, a self-signed certificate the workers trust through NODE_EXTRA_CA_CERTS); clients upload the
 * encrypted file there as Baileys does (`POST /mms/<type>/<fileEncSha256>?auth=…&token=…`, through their proxy).
 * When a message referencing the upload arrives, the recipient's side decrypts it exactly as WhatsApp clients do:
 * HKDF(mediaKey, "WhatsApp <Type> Keys") → iv, cipherKey, macKey; HMAC-SHA256(iv‖ciphertext)[0..10] must match the
 * trailing 10 bytes; AES-256-CBC; fileEncSha256, fileSha256 and fileLength checked.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { hkdf, type proto } from '@whiskeysockets/baileys';

/** Per media kind: the proto field, the HKDF info of its keys, the upload path segment. */
const KINDS = {
  imageMessage: { type: 'image', info: 'Image' },
  videoMessage: { type: 'video', info: 'Video' },
  audioMessage: { type: 'audio', info: 'Audio' },
  documentMessage: { type: 'document', info: 'Document' },
  stickerMessage: { type: 'sticker', info: 'Image' },
} as const;
type MediaField = keyof typeof KINDS;

/** Media a contact sends to a session: encrypted here, served from the media host at its directPath. */
export interface InboundMediaInput {
  type: 'image' | 'document';
  data: Buffer;
  mimetype: string;
  caption?: string;
  fileName?: string;
}

/** What the simulator sent inbound (control API answer): the plaintext's hash and where the encrypted blob is. */
export interface SentMedia {
  type: 'image' | 'document';
  mimetype: string;
  size: number;
  /** SHA-256 (hex) of the plaintext */
  sha256: string;
  directPath: string;
}

/** What a contact received as media, decrypted and checked (control API `GET /messages`). */
export interface RecordedMedia {
  type: 'image' | 'video' | 'audio' | 'voice' | 'document' | 'sticker';
  mimetype: string | null;
  caption: string | null;
  fileName: string | null;
  /** plaintext size in bytes */
  size: number;
  /** SHA-256 (hex) of the decrypted plaintext */
  sha256: string;
  /** every check passed (MAC, fileEncSha256, fileSha256, fileLength); otherwise `error` says which failed */
  verified: boolean;
  error?: string;
  /** audio sent as a voice note (push to talk) */
  ptt: boolean;
  /** size of the inline JPEG preview (jpegThumbnail) the message carries; null: none */
  thumbnailBytes: number | null;
  /** the first 64 bytes of the plaintext (hex), to tell what the file is (OggS/OpusHead, JPEG, ...) */
  head: string;
}

interface Certificate {
  key: string;
  cert: string;
  /** the certificate in a PEM file (NODE_EXTRA_CA_CERTS of the workers) */
  certPath: string;
}

let certificate: Certificate | undefined;

/** One self-signed certificate per process for 127.0.0.1 (openssl from Debian), made on first use. */
export function mediaCertificate(): Certificate {
  if (certificate) return certificate;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wa-sim-media-'));
  const keyPath = path.join(dir, 'key.pem');
  const certPath = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-days',
      '30',
      '-subj',
      '/CN=wa-simulator-media',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore' },
  );
  certificate = { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8'), certPath };
  return certificate;
}

const b64url = (b: Buffer) => b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

export class MediaServer {
  /** url-safe base64 of fileEncSha256 → the encrypted upload */
  private readonly uploads = new Map<string, Buffer>();
  readonly auth = b64url(randomBytes(24));
  uploadsReceived = 0;
  /** the remote address of each accepted upload (a session's proxy binds its outgoing side to its own address) */
  readonly uploadSources: string[] = [];
  /** the remote address of each download of an encrypted blob */
  readonly downloadSources: string[] = [];
  /** Tests: downloads are held (no answer) while set; `downloadsHeld` counts the requests that came meanwhile. */
  holdDownloads = false;
  downloadsHeld = 0;

  private constructor(
    private readonly server: https.Server,
    /** `127.0.0.1:<port>`: the `hostname` of the media_conn answer */
    readonly host: string,
    readonly certPath: string,
    private readonly maxBytes: number,
  ) {}

  static async start(maxBytes = 128 * 1024 * 1024): Promise<MediaServer> {
    const { key, cert, certPath } = mediaCertificate();
    const server = https.createServer({ key, cert });
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
      server.listen(0, '127.0.0.1');
    });
    const media = new MediaServer(server, `127.0.0.1:${(server.address() as AddressInfo).port}`, certPath, maxBytes);
    server.on('request', (req, res) => {
      const url = new URL(req.url ?? '/', 'https://x');
      const m = /^\/mms\/(image|video|audio|document)\/([A-Za-z0-9_-]{43})$/.exec(url.pathname);
      const deny = (status: number, reason: string) => {
        req.resume();
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: reason }));
      };
      // A download: WhatsApp's media hosts serve the encrypted blob at its directPath (clients decrypt it).
      const d = /^\/v\/t62\.7118-24\/([A-Za-z0-9_-]{43})$/.exec(url.pathname);
      if (req.method === 'GET' && d) {
        const blob = media.uploads.get(d[1]!);
        if (!blob) return deny(404, 'not found');
        req.resume();
        if (media.holdDownloads) {
          media.downloadsHeld++;
          return;
        }
        media.downloadSources.push((req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''));
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length }).end(blob);
        return;
      }
      if (req.method !== 'POST' || !m) return deny(404, 'not found');
      if (url.searchParams.get('auth') !== media.auth) return deny(401, 'bad auth');
      const token = m[2]!;
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > media.maxBytes) {
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        // WhatsApp addresses an upload by the SHA-256 of the encrypted bytes: a body that does not hash to its name
        // was corrupted on the way.
        if (b64url(createHash('sha256').update(body).digest()) !== token) return deny(400, 'hash mismatch');
        media.uploads.set(token, body);
        media.uploadsReceived++;
        media.uploadSources.push((req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''));
        const directPath = `/v/t62.7118-24/${token}`;
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ url: `https://${media.host}${directPath}`, direct_path: directPath }));
      });
    });
    return media;
  }

  /**
   * Encrypts `input` as a WhatsApp client does before it uploads (mediaKey, HKDF "WhatsApp <Type> Keys",
   * AES-256-CBC, HMAC-SHA256 over iv‖ciphertext truncated to 10 bytes appended), keeps the blob for download at its
   * directPath, and returns the message content a contact sends (`documentWithCaptionMessage` for a captioned
   * document, as WhatsApp wraps it).
   */
  encryptInbound(input: InboundMediaInput): { message: proto.IMessage; sent: SentMedia } {
    const field: MediaField = input.type === 'image' ? 'imageMessage' : 'documentMessage';
    const mediaKey = randomBytes(32);
    const keys = hkdf(mediaKey, 112, { info: `WhatsApp ${KINDS[field].info} Keys` });
    const iv = keys.subarray(0, 16);
    const cipher = createCipheriv('aes-256-cbc', keys.subarray(16, 48), iv);
    const ciphertext = Buffer.concat([cipher.update(input.data), cipher.final()]);
    const mac = createHmac('sha256', keys.subarray(48, 80)).update(iv).update(ciphertext).digest().subarray(0, 10);
    const enc = Buffer.concat([ciphertext, mac]);
    const fileEncSha256 = createHash('sha256').update(enc).digest();
    const fileSha256 = createHash('sha256').update(input.data).digest();
    const token = b64url(fileEncSha256);
    this.uploads.set(token, enc);
    const directPath = `/v/t62.7118-24/${token}`;
    const common = {
      url: `https://${this.host}${directPath}`,
      directPath,
      mediaKey,
      fileEncSha256,
      fileSha256,
      fileLength: input.data.length,
      mimetype: input.mimetype,
      mediaKeyTimestamp: Math.floor(Date.now() / 1000),
    };
    const sent: SentMedia = {
      type: input.type,
      mimetype: input.mimetype,
      size: input.data.length,
      sha256: fileSha256.toString('hex'),
      directPath,
    };
    if (input.type === 'image')
      return { message: { imageMessage: { ...common, ...(input.caption ? { caption: input.caption } : {}) } }, sent };
    const fileName = input.fileName ?? 'file';
    const documentMessage = {
      ...common,
      fileName,
      title: fileName,
      ...(input.caption ? { caption: input.caption } : {}),
    };
    return {
      message: input.caption ? { documentWithCaptionMessage: { message: { documentMessage } } } : { documentMessage },
      sent,
    };
  }

  /** Media in a decrypted message (looking through the sender-device wrapper), decrypted and checked; else null. */
  open(message: proto.IMessage): RecordedMedia | null {
    let inner = message.deviceSentMessage?.message ?? message;
    inner = inner.documentWithCaptionMessage?.message ?? inner;
    const field = (Object.keys(KINDS) as MediaField[]).find((f) => inner[f]);
    if (!field) return null;
    const m = inner[field]! as proto.Message.IImageMessage &
      proto.Message.IDocumentMessage &
      proto.Message.IAudioMessage;
    const kind = KINDS[field];
    const type: RecordedMedia['type'] = field === 'audioMessage' && m.ptt ? 'voice' : kind.type;
    const thumb = (m as proto.Message.IImageMessage).jpegThumbnail;
    const base = {
      type,
      mimetype: m.mimetype ?? null,
      caption: m.caption ?? null,
      fileName: m.fileName ?? null,
      ptt: Boolean(m.ptt),
      thumbnailBytes: thumb && thumb.length > 0 ? thumb.length : null,
    };
    const fail = (error: string): RecordedMedia => ({ ...base, size: 0, sha256: '', head: '', verified: false, error });
    if (!m.mediaKey || !m.fileEncSha256 || !m.fileSha256) return fail('mediaKey, fileEncSha256 or fileSha256 missing');
    const token = b64url(Buffer.from(m.fileEncSha256));
    const enc = this.uploads.get(token);
    if (!enc) return fail('no upload with that fileEncSha256');
    if (m.directPath && !m.directPath.endsWith(token)) return fail('directPath does not name the upload');
    const keys = hkdf(Buffer.from(m.mediaKey), 112, { info: `WhatsApp ${kind.info} Keys` });
    const iv = keys.subarray(0, 16);
    const cipherKey = keys.subarray(16, 48);
    const macKey = keys.subarray(48, 80);
    const ciphertext = enc.subarray(0, enc.length - 10);
    const mac = enc.subarray(enc.length - 10);
    const expected = createHmac('sha256', macKey).update(iv).update(ciphertext).digest().subarray(0, 10);
    if (!timingSafeEqual(mac, expected)) return fail('media MAC mismatch');
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-cbc', cipherKey, iv);
      plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      return fail('could not decrypt');
    }
    const sha256 = createHash('sha256').update(plain).digest();
    const recorded = {
      ...base,
      size: plain.length,
      sha256: sha256.toString('hex'),
      head: plain.subarray(0, 64).toString('hex'),
    };
    if (!sha256.equals(Buffer.from(m.fileSha256)))
      return { ...recorded, verified: false, error: 'fileSha256 mismatch' };
    if (m.fileLength !== undefined && m.fileLength !== null && Number(m.fileLength) !== plain.length)
      return { ...recorded, verified: false, error: 'fileLength mismatch' };
    return { ...recorded, verified: true };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
