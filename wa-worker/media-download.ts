/**
 * Inbound media: the encrypted blob is streamed from the media host, decrypted and checked on the way as WhatsApp
 * clients do (HMAC-SHA256 over iv‖ciphertext, first 10 bytes = the blob's trailer; SHA-256 of the blob =
 * fileEncSha256; SHA-256 and length of the plaintext = fileSha256, fileLength) into a local file; never whole in
 * memory, cut off at the size cap.
 */
import { createDecipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import https from 'node:https';
import type { Agent } from 'node:https';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const MAC_BYTES = 10;

/** Why a download did not give a verified file. */
export class MediaDownloadError extends Error {
  constructor(
    readonly reason: 'too_large' | 'download_failed' | 'verification_failed',
    message: string,
  ) {
    super(message);
  }
}

export interface MediaKeys {
  iv: Buffer;
  cipherKey: Buffer;
  macKey: Buffer;
}

export interface ExpectedMedia {
  fileEncSha256: Buffer;
  fileSha256: Buffer;
  /** the plaintext length the message announces (null: not announced) */
  fileLength: number | null;
}

/** Decrypts and checks an encrypted media stream into `file`; returns the plaintext's size and hex SHA-256. */
export async function decryptMediaTo(
  source: Readable,
  keys: MediaKeys,
  expected: ExpectedMedia,
  file: string,
  maxBytes: number,
): Promise<{ size: number; sha256: string }> {
  const encHash = createHash('sha256');
  const mac = createHmac('sha256', keys.macKey).update(keys.iv);
  const decipher = createDecipheriv('aes-256-cbc', keys.cipherKey, keys.iv);
  const plainHash = createHash('sha256');
  // the last 10 bytes seen so far may be the MAC trailer: they are held back until more arrive
  let tail = Buffer.alloc(0);
  let encBytes = 0;
  let size = 0;
  // AES-CBC adds at most one block of padding
  const maxEncBytes = maxBytes + 16 + MAC_BYTES;
  const emit = (self: Transform, plain: Buffer) => {
    if (plain.length === 0) return;
    size += plain.length;
    plainHash.update(plain);
    self.push(plain);
  };
  const decrypt = new Transform({
    transform(chunk: Buffer, _enc, done) {
      encBytes += chunk.length;
      if (encBytes > maxEncBytes) {
        done(new MediaDownloadError('too_large', `media larger than ${maxBytes} bytes`));
        return;
      }
      encHash.update(chunk);
      const all = tail.length ? Buffer.concat([tail, chunk]) : chunk;
      const body = all.subarray(0, Math.max(0, all.length - MAC_BYTES));
      tail = Buffer.from(all.subarray(body.length));
      try {
        mac.update(body);
        emit(this, decipher.update(body));
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done) {
      if (tail.length !== MAC_BYTES || !timingSafeEqual(tail, mac.digest().subarray(0, MAC_BYTES))) {
        done(new MediaDownloadError('verification_failed', 'media MAC mismatch'));
        return;
      }
      try {
        emit(this, decipher.final());
        done();
      } catch {
        done(new MediaDownloadError('verification_failed', 'media could not be decrypted'));
      }
    },
  });
  try {
    await pipeline(source, decrypt, createWriteStream(file, { mode: 0o600 }));
    if (!encHash.digest().equals(expected.fileEncSha256))
      throw new MediaDownloadError('verification_failed', 'fileEncSha256 mismatch');
    const sha = plainHash.digest();
    if (!sha.equals(expected.fileSha256)) throw new MediaDownloadError('verification_failed', 'fileSha256 mismatch');
    if (expected.fileLength !== null && expected.fileLength !== size)
      throw new MediaDownloadError('verification_failed', 'fileLength mismatch');
    return { size, sha256: sha.toString('hex') };
  } catch (err) {
    await rm(file, { force: true });
    if (err instanceof MediaDownloadError) throw err;
    throw new MediaDownloadError('download_failed', (err as Error).message);
  }
}

/** GET `url` through `agent` (the session's proxy, as Baileys' uploads go); resolves with the body stream. */
export function httpsGet(url: string, agent: Agent, timeoutMs: number, headers: Record<string, string>) {
  return new Promise<Readable>((resolve, reject) => {
    const req = https.request(url, { method: 'GET', agent, headers });
    // the whole download, not only the answer's headers, must fit the time limit
    const timer = setTimeout(() => req.destroy(new Error(`media download timed out after ${timeoutMs} ms`)), timeoutMs);
    req.on('response', (res) => {
      res.on('close', () => clearTimeout(timer));
      if (res.statusCode !== 200) {
        res.resume();
        reject(new MediaDownloadError('download_failed', `the media host answered ${res.statusCode}`));
        return;
      }
      resolve(res);
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof MediaDownloadError ? err : new MediaDownloadError('download_failed', err.message));
    });
    req.end();
  });
}
