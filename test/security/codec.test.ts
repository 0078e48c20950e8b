/**
 * Attack: read secrets from Temporal history (the Web UI, `temporal workflow show`) — payloads are AES-256-GCM
 * encrypted by the codec every client and worker uses (common/codec.ts). The API's codec endpoint decodes for
 * the admin key only, answers CORS for the Web UI's origin only, and refuses tampered or unknown-key payloads.
 * Keys rotate by putting a new key first: old payloads still decode, new ones use the new key.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmCodec, generateCodecKeys, parseCodecKeys } from '../../common/codec.js';
import { API_KEY, CODEC_KEYS, TENANT_KEY } from '../helpers/stack.js';
import { ApiOnly } from './api-only.js';

const SECRET = 'socks5h://user:CodecTestPw42@10.9.8.7:1080';
const wire = (ps: Payload[]) => ({
  payloads: ps.map((p) => ({
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  })),
});

describe('payload codec: secrets out of Temporal history', () => {
  let api: ApiOnly;
  before(async () => {
    api = await new ApiOnly({ TEMPORAL_UI_URL: 'http://127.0.0.1:8233' }).start();
  });
  after(async () => api?.stop());

  it('encrypts: the ciphertext does not contain the secret; rotation keeps old payloads readable', async () => {
    const old = new AesGcmCodec(parseCodecKeys(CODEC_KEYS));
    const [enc] = await old.encode([defaultPayloadConverter.toPayload({ proxyUrl: SECRET })]);
    assert.ok(!Buffer.from(enc!.data!).toString('latin1').includes('CodecTestPw42'));
    assert.equal(Buffer.from(enc!.metadata!['encryption-key-id']!).toString(), 'test1');
    // Rotation: a new key first, the old one kept.
    const rotated = new AesGcmCodec(parseCodecKeys(`${generateCodecKeys('k2')},${CODEC_KEYS}`));
    const [back] = await rotated.decode([enc!]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(back!), { proxyUrl: SECRET });
    const [enc2] = await rotated.encode([defaultPayloadConverter.toPayload('x')]);
    assert.equal(Buffer.from(enc2!.metadata!['encryption-key-id']!).toString(), 'k2');
    await assert.rejects(old.decode([enc2!]), /unknown key id "k2"/);
    // Tampering (one bit of ciphertext, or relabelling the key id) fails authentication.
    const flipped = Buffer.from(enc!.data!);
    flipped[20]! ^= 1;
    await assert.rejects(old.decode([{ ...enc!, data: flipped }]));
    // Payloads recorded before the codec (plain JSON) pass through unchanged.
    const plain = defaultPayloadConverter.toPayload({ a: 1 });
    assert.deepEqual(await old.decode([plain]), [plain]);
  });

  it('the codec endpoint decodes for the admin key only', async () => {
    const codec = new AesGcmCodec(parseCodecKeys(CODEC_KEYS));
    const body = wire(await codec.encode([defaultPayloadConverter.toPayload({ proxyUrl: SECRET })]));
    assert.equal((await api.call('POST', '/codec/decode', body, null)).status, 401);
    assert.equal((await api.call('POST', '/%63odec/decode', body, null)).status, 401);
    assert.equal((await api.call('POST', '/codec/decode', body, 'wrong-key-0123456789abcdef')).status, 401);
    const tenant = await api.call('POST', '/codec/decode', body, TENANT_KEY);
    assert.equal(tenant.status, 403);
    assert.ok(!tenant.text.includes('CodecTestPw42'));
    assert.equal((await api.call('POST', '/codec/encode', { payloads: [] }, TENANT_KEY)).status, 403);

    const r = await api.call('POST', '/codec/decode', body);
    assert.equal(r.status, 200, r.text);
    const decoded = JSON.parse(Buffer.from(r.body.payloads[0].data, 'base64').toString());
    assert.deepEqual(decoded, { proxyUrl: SECRET });

    // encode → decode round trip through the endpoint; a payload of an unknown key is a 400.
    const e = await api.call('POST', '/codec/encode', wire([defaultPayloadConverter.toPayload('hello')]));
    assert.equal(e.status, 200, e.text);
    assert.equal(Buffer.from(e.body.payloads[0].metadata.encoding, 'base64').toString(), 'binary/encrypted');
    const d = await api.call('POST', '/codec/decode', e.body);
    assert.equal(JSON.parse(Buffer.from(d.body.payloads[0].data, 'base64').toString()), 'hello');
    const foreign = new AesGcmCodec(parseCodecKeys(`other:${randomBytes(32).toString('base64')}`));
    const bad = await api.call(
      'POST',
      '/codec/decode',
      wire(await foreign.encode([defaultPayloadConverter.toPayload(1)])),
    );
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'CODEC_ERROR');
    assert.equal((await api.call('POST', '/codec/decode', { payloads: [{ data: '!!' }] })).status, 400);
  });

  it('CORS answers the Web UI origin only, on the preflight and on refusals', async () => {
    const pre = await api.call('OPTIONS', '/codec/decode', undefined, null, {
      origin: 'http://127.0.0.1:8233',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type,x-namespace',
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'http://127.0.0.1:8233');
    assert.match(pre.headers.get('access-control-allow-headers') ?? '', /x-namespace/);
    const evil = await api.call('OPTIONS', '/codec/decode', undefined, null, { origin: 'http://evil.example' });
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
    const refused = await api.call('POST', '/codec/decode', { payloads: [] }, null, {
      origin: 'http://127.0.0.1:8233',
    });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('access-control-allow-origin'), 'http://127.0.0.1:8233');
    const ok = await api.call('POST', '/codec/decode', { payloads: [] }, API_KEY, { origin: 'http://127.0.0.1:8233' });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
  });
});
