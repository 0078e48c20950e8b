/**
 * Attack: fill Redis for ever (every message text kept without end, every ACK/failure record of a busy session
 * kept in one hash that only grows). Message records now expire MESSAGE_RETENTION_MS after their last change, and
 * the outbox's ACK/failure hashes drop records older than the retention and expire when idle.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signedRequestHeaders } from '../../common/events.js';
import { sessionWebhookSecret } from '../../common/session.js';
import { OutboxStore } from '../../state/outbox.js';
import { TENANT_KEY, WEBHOOK_SECRET } from '../helpers/stack.js';
import { ApiOnly } from './api-only.js';

const RETENTION = 60_000;

describe('records expire', () => {
  let api: ApiOnly;
  let outbox: OutboxStore;
  before(async () => {
    api = await new ApiOnly({ MESSAGE_RETENTION_MS: String(RETENTION) }).start();
    outbox = new OutboxStore(api.redis, api.prefix);
    await api.sessions.create('sec_exp', 'acme');
  });
  after(async () => api?.stop());

  const worker = (op: string, payload: object) => {
    const path = `/api/worker/sessions/sec_exp/outbox/${op}`;
    const body = JSON.stringify(payload);
    return api.call(
      'POST',
      path,
      body,
      null,
      signedRequestHeaders(sessionWebhookSecret(WEBHOOK_SECRET, 'sec_exp'), 'POST', path, body),
    );
  };

  it('message records carry an expiry', async () => {
    const sent = await api.call('POST', '/api/send', { sessionId: 'sec_exp', to: '15550004', text: 'hi' }, TENANT_KEY);
    assert.equal(sent.status, 202, sent.text);
    const ttl = await api.redis.pttl(`${api.prefix}message:${sent.body.messageId}`);
    assert.ok(ttl > 0 && ttl <= RETENTION, `message TTL ${ttl}`);
  });

  it('outbox ACK and failure records are dropped after the retention and expire when idle', async () => {
    const k = outbox.keys('sec_exp');
    // An ACK recorded long ago (as the settled log would show it after the retention).
    await api.redis.hset(k.acked, 'msg_old', 'WAOLD');
    await api.redis.zadd(k.settled, Date.now() - 2 * RETENTION, 'msg_old');

    await outbox.enqueue('sec_exp', { messageId: 'msg_new1', to: '15550004', text: 'one' });
    await outbox.enqueue('sec_exp', { messageId: 'msg_new2', to: '15550004', text: 'two' });
    const c1 = await worker('claim', {});
    assert.equal(c1.status, 200, c1.text);
    assert.equal((await worker('ack', { messageId: c1.body.item.messageId, waMessageId: 'WA1' })).status, 200);
    const c2 = await worker('claim', {});
    assert.equal(
      (await worker('nack', { messageId: c2.body.item.messageId, reason: 'bad number', permanent: true })).status,
      200,
    );

    assert.equal(await api.redis.hget(k.acked, 'msg_old'), null, 'the old ACK record is gone');
    assert.equal(await api.redis.hget(k.acked, 'msg_new1'), 'WA1', 'a fresh ACK is kept');
    assert.ok(await api.redis.hget(k.failed, 'msg_new2'), 'a fresh failure is kept');
    for (const key of [k.acked, k.failed, k.settled]) {
      const ttl = await api.redis.pttl(key);
      assert.ok(ttl > 0 && ttl <= RETENTION, `${key} TTL ${ttl}`);
    }
  });
});
