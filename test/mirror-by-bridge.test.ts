/**
 * The status writes the webhook bridge makes ahead of the workflow (state/session-mirror-loss.lua,
 * session-mirror-reconnect.lua), on the real Redis: each only from the state the workflow last wrote, only when
 * nothing but the status would change, each moving the record's status-write count that tells the workflow
 * whether the bridge's write came straight after its own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { SessionStore } from '../state/sessions.js';
import { connectTestRedis } from './helpers/redis.js';

const PROXY = 'socks5h://u:p@127.0.0.1:1080';
const OTHER_PROXY = 'socks5h://u:p@127.0.0.2:1080';
const PHONE = '15550001234';
const JID = `${PHONE}@s.whatsapp.net`;

describe('status writes by the webhook bridge', () => {
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  let sessions: SessionStore;
  before(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
    sessions = new SessionStore(redis, prefix);
  });
  after(async () => {
    await cleanup();
    redis.disconnect();
  });

  /** A session connected as PHONE through PROXY by worker generation 3 (as the CONNECTED activity leaves it). */
  async function connected(id: string): Promise<number> {
    const k = sessions.keys;
    await sessions.create(id, 'acme');
    await sessions.setWorkerGeneration(id, 3);
    await redis.set(k.sessionSlot(id), PROXY);
    await redis.set(k.phoneProxy(PHONE), PROXY);
    await redis.set(k.phoneSession(PHONE), id);
    const seq = await sessions.update(id, { status: 'connected', phone: PHONE, jid: JID, connectedAt: 1000 });
    assert.equal(typeof seq, 'number');
    return seq!;
  }

  it('a status write moves the count and returns it; other fields do not', async () => {
    await sessions.create('c1', 'acme');
    const a = await sessions.update('c1', { status: 'pending' });
    const b = await sessions.update('c1', { status: 'qr_ready' });
    assert.equal(b, a! + 1);
    assert.equal(await sessions.update('c1', { lastError: 'x' }), null);
    assert.equal(await sessions.update('c1', { status: 'qr_ready' }), b! + 1);
  });

  it('a loss: connected → reconnecting from the current worker only, on top of the last count', async () => {
    const seq = await connected('l1');
    assert.equal(await sessions.mirrorLoss('l1', 2, 'connection lost (515): x'), null, 'an old worker');
    assert.equal((await sessions.get('l1'))?.status, 'connected');
    assert.equal(await sessions.mirrorLoss('l1', 3, 'connection lost (515): x'), seq);
    const rec = await sessions.get('l1');
    assert.equal(rec?.status, 'reconnecting');
    assert.equal(rec?.lastError, 'connection lost (515): x');
    assert.equal(await sessions.mirrorLoss('l1', 3, 'again'), null, 'no longer connected: the workflow writes');
    // The next write by anyone counts on from the bridge's.
    assert.equal(await sessions.update('l1', { status: 'failing_over' }), seq + 2);
  });

  it('a reconnect: → connected only for the same phone, bound here, its sticky proxy the one it holds', async () => {
    const seq = await connected('r1');
    const k = sessions.keys;
    assert.equal(await sessions.mirrorReconnect('r1', 3, PHONE, JID), null, 'not reconnecting');
    assert.equal(await sessions.mirrorLoss('r1', 3, 'lost'), seq);
    assert.equal(await sessions.mirrorReconnect('r1', 3, '15550009999', JID), null, 'another phone');
    assert.equal(await sessions.mirrorReconnect('r1', 4, PHONE, JID), null, 'another worker');
    await redis.set(k.phoneProxy(PHONE), OTHER_PROXY);
    assert.equal(await sessions.mirrorReconnect('r1', 3, PHONE, JID), null, 'the sticky proxy moves (failover)');
    await redis.set(k.phoneProxy(PHONE), PROXY);
    await redis.set(k.phoneSession(PHONE), 'someone-else');
    assert.equal(await sessions.mirrorReconnect('r1', 3, PHONE, JID), null, 'the phone bound elsewhere');
    await redis.set(k.phoneSession(PHONE), 'r1');
    await redis.set(k.sessionQr('r1'), '{}');
    await redis.set(k.sessionTemp('r1'), PROXY);
    assert.deepEqual(await sessions.mirrorReconnect('r1', 3, PHONE, JID, 5000), { proxyUrl: PROXY, from: seq + 1 });
    const rec = await sessions.get('r1');
    assert.equal(rec?.status, 'connected');
    assert.equal(rec?.lastError, null);
    assert.equal(rec?.connectedAt, 5000);
    assert.equal(rec?.lastPing, 5000);
    assert.equal(await redis.exists(k.sessionQr('r1'), k.sessionTemp('r1')), 0);
    assert.equal(await sessions.update('r1', { status: 'connected' }), seq + 3);
  });

  it('a session never connected is the CONNECTED activity’s to write (the first link binds the phone)', async () => {
    await sessions.create('f1', 'acme');
    await sessions.setWorkerGeneration('f1', 1);
    await redis.set(sessions.keys.sessionSlot('f1'), PROXY);
    await sessions.update('f1', { status: 'reconnecting', phone: PHONE });
    assert.equal(await sessions.mirrorReconnect('f1', 1, PHONE, JID), null);
  });
});
