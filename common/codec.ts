import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';

/**
 * The Temporal payload codec: every payload a client or worker sends to Temporal (workflow and
 * activity inputs and results, signals, updates, queries, memos, continue-as-new state) is AES-256-GCM encrypted,
 * so proxy passwords, keys and webhook secrets are never readable in the server's history or the Web UI.
 *
 * Keys: TEMPORAL_CODEC_KEYS = `id1:base64key1,id2:base64key2` (32-byte keys). The FIRST key encrypts; every key
 * decrypts (the key id travels in the payload metadata). Rotation = put a new key first, keep the old ones until
 * no open workflow still holds a payload encrypted with them.
 *
 * Payloads without our encoding pass through decode unchanged: histories recorded before the codec (the replay
 * fixtures) still decode.
 */
// A CommonJS module: its namespace is the default export under ESM.
const { Payload: PayloadProto } = proto.temporal.api.common.v1;

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';

export interface CodecKey {
  id: string;
  key: Buffer;
}

export class CodecKeyError extends Error {
  override readonly name = 'CodecKeyError';
}

/** Parses TEMPORAL_CODEC_KEYS; throws {@link CodecKeyError} with a message that never repeats key material. */
export function parseCodecKeys(raw: string): CodecKey[] {
  const keys: CodecKey[] = [];
  const entries = raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new CodecKeyError('at least one key id:base64key is required');
  for (const [i, entry] of entries.entries()) {
    const sep = entry.indexOf(':');
    const id = entry.slice(0, sep);
    if (sep <= 0 || !/^[A-Za-z0-9_.-]{1,32}$/.test(id))
      throw new CodecKeyError(`entry ${i + 1}: must be id:base64key with an id of 1-32 letters, digits, ".", "_", "-"`);
    const b64 = entry.slice(sep + 1);
    const key = Buffer.from(b64, 'base64');
    if (key.length !== 32 || !/^[A-Za-z0-9+/=_-]+$/.test(b64))
      throw new CodecKeyError(`key ${id}: must be 32 bytes in base64 (openssl rand -base64 32)`);
    if (keys.some((k) => k.id === id)) throw new CodecKeyError(`key ${id}: duplicate id`);
    keys.push({ id, key });
  }
  return keys;
}

/** A fresh TEMPORAL_CODEC_KEYS value with one key (scripts and tests). */
export function generateCodecKeys(id = `k${Date.now().toString(36)}`): string {
  return `${id}:${randomBytes(32).toString('base64')}`;
}

const enc = new TextEncoder();
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class AesGcmCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;
  private readonly active: CodecKey;

  constructor(keys: CodecKey[]) {
    if (keys.length === 0) throw new CodecKeyError('at least one key is required');
    this.active = keys[0]!;
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  static fromEnv(raw: string): AesGcmCodec {
    return new AesGcmCodec(parseCodecKeys(raw));
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const plain = PayloadProto.encode(p).finish();
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', this.active.key, iv);
      // The key id is authenticated too: a payload cannot be relabelled to another key.
      cipher.setAAD(Buffer.from(this.active.id));
      const body = Buffer.concat([cipher.update(plain), cipher.final()]);
      return {
        metadata: { encoding: enc.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: enc.encode(this.active.id) },
        data: Buffer.concat([iv, body, cipher.getAuthTag()]),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const encoding = p.metadata?.encoding ? Buffer.from(p.metadata.encoding).toString() : '';
      if (encoding !== ENCRYPTED_ENCODING) return p;
      const idBytes = p.metadata?.[KEY_ID_METADATA];
      const id = idBytes ? Buffer.from(idBytes).toString() : '';
      const key = this.byId.get(id);
      if (!key) throw new CodecKeyError(`payload encrypted with unknown key id ${JSON.stringify(id)}`);
      const data = Buffer.from(p.data ?? new Uint8Array());
      if (data.length < IV_BYTES + TAG_BYTES) throw new CodecKeyError('encrypted payload too short');
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(id));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const plain = Buffer.concat([
        decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)),
        decipher.final(),
      ]);
      return PayloadProto.decode(plain) as Payload;
    });
  }
}

/** The data converter every Temporal client and worker of the deployment uses. */
export function codecDataConverter(rawKeys: string) {
  return { payloadCodecs: [AesGcmCodec.fromEnv(rawKeys)] };
}
