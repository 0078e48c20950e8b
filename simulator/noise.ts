import { aesDecryptGCM, aesEncryptGCM, hkdf, NOISE_MODE, sha256 } from '@whiskeysockets/baileys';

/**
 * Server (responder) side of WhatsApp's Noise_XX_25519_AESGCM_SHA256 handshake, mirroring Baileys'
 * client-side `makeNoiseHandler`. During the handshake one counter is shared by encrypt and decrypt;
 * after `finish()` each direction has its own key and counter and no associated data.
 */
export class ServerNoise {
  private hash: Buffer;
  private salt: Buffer;
  private handshakeKey: Buffer;
  private handshakeCounter = 0;
  private receiveKey: Buffer | null = null;
  private sendKey: Buffer | null = null;
  private readCounter = 0;
  private writeCounter = 0;

  constructor() {
    const mode = Buffer.from(NOISE_MODE);
    // NOISE_MODE is exactly 32 bytes, so the protocol name is used as the initial hash as-is.
    this.hash = mode.length === 32 ? mode : sha256(mode);
    this.salt = this.hash;
    this.handshakeKey = this.hash;
  }

  get finished(): boolean {
    return this.sendKey !== null;
  }

  /** mixHash: only meaningful before the transport keys are split */
  authenticate(data: Uint8Array): void {
    if (!this.finished) this.hash = sha256(Buffer.concat([this.hash, data]));
  }

  async mixIntoKey(inputKeyMaterial: Uint8Array): Promise<void> {
    const out = await hkdf(Buffer.from(inputKeyMaterial), 64, { salt: this.salt, info: '' });
    this.salt = Buffer.from(out.subarray(0, 32));
    this.handshakeKey = Buffer.from(out.subarray(32));
    this.handshakeCounter = 0;
  }

  handshakeEncrypt(plaintext: Uint8Array): Buffer {
    const ciphertext = aesEncryptGCM(plaintext, this.handshakeKey, ivFor(this.handshakeCounter++), this.hash);
    this.authenticate(ciphertext);
    return ciphertext;
  }

  handshakeDecrypt(ciphertext: Uint8Array): Buffer {
    const plaintext = aesDecryptGCM(ciphertext, this.handshakeKey, ivFor(this.handshakeCounter++), this.hash);
    this.authenticate(ciphertext);
    return plaintext;
  }

  /** Split into transport keys: the client writes with the first half, reads with the second. */
  async finish(): Promise<void> {
    const out = await hkdf(Buffer.alloc(0), 64, { salt: this.salt, info: '' });
    this.receiveKey = Buffer.from(out.subarray(0, 32));
    this.sendKey = Buffer.from(out.subarray(32));
  }

  encrypt(plaintext: Uint8Array): Buffer {
    if (!this.sendKey) throw new Error('noise handshake not finished');
    return aesEncryptGCM(plaintext, this.sendKey, ivFor(this.writeCounter++), Buffer.alloc(0));
  }

  decrypt(ciphertext: Uint8Array): Buffer {
    if (!this.receiveKey) throw new Error('noise handshake not finished');
    return aesDecryptGCM(ciphertext, this.receiveKey, ivFor(this.readCounter++), Buffer.alloc(0));
  }
}

function ivFor(counter: number): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeUInt32BE(counter, 8);
  return iv;
}

/** Every Noise frame on the wire is a 3-byte big-endian length followed by the payload. */
export function encodeFrame(payload: Uint8Array): Buffer {
  const framed = Buffer.alloc(3 + payload.length);
  framed.writeUInt8(payload.length >> 16, 0);
  framed.writeUInt16BE(payload.length & 0xffff, 1);
  framed.set(payload, 3);
  return framed;
}

/**
 * Reassembles frames from WebSocket messages. The client's first write carries the intro header
 * `WA 06 <dict>` (optionally preceded by an `ED 00 01 <len24> routingInfo` block); it is returned once.
 */
export class FrameReader {
  private buffered = Buffer.alloc(0);
  private introSeen = false;

  constructor(private readonly expectedHeader: Uint8Array) {}

  push(data: Buffer): { header?: Buffer; frames: Buffer[] } {
    this.buffered = Buffer.concat([this.buffered, data]);
    let header: Buffer | undefined;
    if (!this.introSeen) {
      if (this.buffered.length < 4) return { frames: [] };
      let offset = 0;
      if (this.buffered[0] === 0x45 && this.buffered[1] === 0x44) {
        if (this.buffered.length < 7) return { frames: [] };
        offset = 7 + ((this.buffered.readUInt8(4) << 16) | this.buffered.readUInt16BE(5));
        if (this.buffered.length < offset + 4) return { frames: [] };
      }
      header = this.buffered.subarray(offset, offset + 4);
      if (!header.equals(this.expectedHeader)) throw new Error(`bad intro header ${header.toString('hex')}`);
      this.buffered = this.buffered.subarray(offset + 4);
      this.introSeen = true;
    }
    const frames: Buffer[] = [];
    while (this.buffered.length >= 3) {
      const size = (this.buffered.readUInt8(0) << 16) | this.buffered.readUInt16BE(1);
      if (this.buffered.length < size + 3) break;
      frames.push(this.buffered.subarray(3, size + 3));
      this.buffered = this.buffered.subarray(size + 3);
    }
    return { header, frames };
  }
}
