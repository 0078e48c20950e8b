/**
 * Attack: a compromised worker container (it holds its own session's key) reaches beyond its session — it
 * reports MESSAGE_STATUS for another session's (another tenant's) message, replays a captured outbox call,
 * re-points a signed call at another operation or session, or burns another session's event ids. A worker's status
 * reports now touch only its own session's messages; event de-duplication is per session; outbox signatures cover
 * method and path and carry a single-use nonce.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signedHeaders, signedRequestHeaders } from '../../common/events.js';
import { sessionWebhookSecret } from '../../common/session.js';
import { OutboxStore } from '../../state/outbox.js';
import { TENANT_KEY, WEBHOOK_SECRET } from '../helpers/stack.js';
import { ApiOnly } from './api-only.js';

describe('a worker forging beyond its own session', () => {
  let api: ApiOnly;
  let outbox: OutboxStore;
  before(async () => {
    api = await new ApiOnly().start();
    outbox = new OutboxStore(api.redis, api.prefix);
    await api.sessions.create('sec_worker_a', 'admin');
    await api.sessions.create('sec_worker_b', 'acme');
  });
  after(async () => api?.stop());

  const webhook = (sessionId: string, messageId: string, status: string) => {
    const body = JSON.stringify({
      sessionId,
      type: 'MESSAGE_STATUS',
      timestamp: Date.now(),
      eventId: `ev-${randomBytes(6).toString('hex')}`,
      data: { messageId, waMessageId: null, status },
    });
    return api.call(
      'POST',
      '/api/webhook',
      body,
      null,
      signedHeaders(sessionWebhookSecret(WEBHOOK_SECRET, sessionId), body),
    );
  };

  it("MESSAGE_STATUS from one session's worker does not move another session's message", async () => {
    const sent = await api.call(
      'POST',
      '/api/send',
      { sessionId: 'sec_worker_b', to: '15550002', text: 'hello' },
      TENANT_KEY,
    );
    assert.equal(sent.status, 202, sent.text);
    const id = sent.body.messageId as string;

    const forged = await webhook('sec_worker_a', id, 'read');
    assert.ok(forged.status < 500, forged.text);
    const forgedFail = await webhook('sec_worker_a', id, 'failed');
    assert.ok(forgedFail.status < 500);
    let m = await api.call('GET', `/api/messages/${id}`, undefined, TENANT_KEY);
    assert.equal(m.body.status, 'queued', 'the forged reports changed nothing');

    // The owning session's worker still moves it.
    assert.equal((await webhook('sec_worker_b', id, 'sent')).status, 202);
    m = await api.call('GET', `/api/messages/${id}`, undefined, TENANT_KEY);
    assert.equal(m.body.status, 'sent');
  });

  it("one session's worker cannot pre-empt another session's event ids", async () => {
    const ping = (sessionId: string, at: number) => {
      const body = JSON.stringify({
        sessionId,
        type: 'PING',
        timestamp: Date.now(),
        eventId: 'ev-guessed-id',
        data: { timestamp: at },
      });
      return api.call(
        'POST',
        '/api/webhook',
        body,
        null,
        signedHeaders(sessionWebhookSecret(WEBHOOK_SECRET, sessionId), body),
      );
    };
    assert.equal((await ping('sec_worker_a', 1111)).status, 202);
    const b = await ping('sec_worker_b', 2222);
    assert.equal(b.status, 202, `B's event is not a duplicate of A's: ${b.text}`);
    assert.equal((await api.sessions.get('sec_worker_b'))?.lastPing, 2222);
    assert.equal((await ping('sec_worker_b', 3333)).body.duplicate, true, "B's own replay still is");
  });

  it('outbox calls are bound to method and path and cannot be replayed', async () => {
    await outbox.enqueue('sec_worker_a', { messageId: 'msg_sec1', to: '15550003', text: 'one' });
    await outbox.enqueue('sec_worker_a', { messageId: 'msg_sec2', to: '15550003', text: 'two' });
    const secretA = sessionWebhookSecret(WEBHOOK_SECRET, 'sec_worker_a');
    const claimPath = '/api/worker/sessions/sec_worker_a/outbox/claim';
    const body = '{}';
    const headers = signedRequestHeaders(secretA, 'POST', claimPath, body);

    const first = await api.call('POST', claimPath, body, null, headers);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.body.item.messageId, 'msg_sec1');

    const replay = await api.call('POST', claimPath, body, null, headers);
    assert.equal(replay.status, 401, 'the captured claim cannot be replayed');
    assert.equal(replay.body.error.code, 'BAD_SIGNATURE');

    // The same signed bytes pointed at another operation or at another session's outbox.
    const fresh = signedRequestHeaders(secretA, 'POST', claimPath, body);
    const otherOp = await api.call('POST', '/api/worker/sessions/sec_worker_a/outbox/nack', body, null, fresh);
    assert.equal(otherOp.status, 401);
    const otherSession = await api.call('POST', '/api/worker/sessions/sec_worker_b/outbox/claim', body, null, {
      ...signedRequestHeaders(secretA, 'POST', '/api/worker/sessions/sec_worker_b/outbox/claim', body),
    });
    assert.equal(otherSession.status, 401, "A's key does not open B's outbox");
    // A body-only (webhook-style) signature is not accepted on the outbox.
    const bodyOnly = await api.call('POST', claimPath, body, null, signedHeaders(secretA, body));
    assert.equal(bodyOnly.status, 401);

    assert.equal((await outbox.counts('sec_worker_a')).queued, 1, 'only the one genuine claim took a message');
  });
});
