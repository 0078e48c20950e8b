/**
 * Customer webhooks (issue 7): an inbound message from a simulator contact reaches the tenant's webhook, signed
 * (HMAC-SHA256 over `${timestamp}.${body}`); with the receiver down for a minute — and the API killed with -9 and
 * restarted in the middle — it is delivered once the receiver returns (retries come from Redis, not memory).
 * Message status and session status events, a dead-letter list, tenant isolation and validation too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clientRetryDelay } from '../api/client-webhook-deliverer.js';
import { terminateDispatchers, connectedSession } from './helpers/messaging.js';
import { ClientReceiver, SECRET } from './helpers/client-receiver.js';
import { Stack, TENANT_KEY, sleep, waitFor } from './helpers/stack.js';

// The acceptance: the receiver is down for a minute.
const DOWN_MS = 60_000;

describe('customer webhooks: signed, retried from Redis, dead letters', () => {
  let stack: Stack;
  const receiver = new ClientReceiver();
  const S = { id: 'acme1', phone: '15550006001' };

  before(async () => {
    await receiver.up();
    stack = await new Stack({
      proxies: 1,
      extraEnv: {
        CLIENT_WEBHOOK_RETRY_BASE_MS: '500',
        CLIENT_WEBHOOK_RETRY_MAX_MS: '4000',
        CLIENT_WEBHOOK_MAX_ATTEMPTS: '60',
        CLIENT_WEBHOOK_POLL_MS: '100',
        ANTIBAN_COLD_GAP_MS: '300',
        ANTIBAN_IDLE_POLL_MS: '500',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
      },
    }).start();
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [S.id]);
    await stack?.stop();
    await receiver.down().catch(() => undefined);
  });

  it('configuration: validated, per tenant, the secret never shown', async () => {
    const bad = await stack.call('PUT', '/api/v1/webhooks', { url: 'ftp://x', secret: SECRET }, TENANT_KEY);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'url');
    const short = await stack.call('PUT', '/api/v1/webhooks', { url: receiver.url, secret: 'short' }, TENANT_KEY);
    assert.equal(short.body.error.field, 'secret');
    const badEvent = await stack.call(
      'PUT',
      '/api/v1/webhooks',
      { url: receiver.url, secret: SECRET, events: ['nope'] },
      TENANT_KEY,
    );
    assert.equal(badEvent.body.error.field, 'events.0');
    assert.equal((await stack.call('GET', '/api/v1/webhooks', undefined, TENANT_KEY)).status, 404);
    const put = await stack.call('PUT', '/api/v1/webhooks', { url: receiver.url, secret: SECRET }, TENANT_KEY);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.tenant, 'acme');
    const get = await stack.call('GET', '/api/v1/webhooks', undefined, TENANT_KEY);
    assert.equal(get.body.url, receiver.url);
    assert.equal(get.body.secretSet, true);
    assert.ok(!JSON.stringify(get.body).includes(SECRET), 'the secret is never returned');
    assert.equal((await stack.call('GET', '/api/v1/webhooks?tenant=other', undefined, TENANT_KEY)).status, 403);
    assert.equal((await stack.call('GET', '/api/v1/webhooks?tenant=acme')).status, 200, 'the admin reaches it');
  });

  it('session status and outbound message statuses reach the tenant, signed', async () => {
    await connectedSession(stack, S.id, S.phone, TENANT_KEY);
    await waitFor('session.status connected', () =>
      receiver.of('session.status').some((d) => d.json.data.status === 'connected'),
    );
    const r = await stack.call('POST', '/api/send', { sessionId: S.id, to: '15554440001', text: 'hello' }, TENANT_KEY);
    assert.equal(r.status, 202);
    const id = r.body.messageId as string;
    await waitFor(
      'message.status sent and delivered',
      () => {
        const st = receiver
          .of('message.status')
          .filter((d) => d.json.data.messageId === id)
          .map((d) => d.json.data.status);
        return st.includes('sent') && st.includes('delivered');
      },
      20_000,
    );
    const d = receiver.of('message.status')[0]!;
    assert.equal(d.json.tenant, 'acme');
    assert.match(String(d.headers['x-webhook-signature']), /^sha256=[0-9a-f]{64}$/);
    assert.ok(Math.abs(Number(d.headers['x-webhook-timestamp']) - d.at) < 5_000);
    assert.equal(receiver.badSignatures, 0);
    assert.equal((await stack.call('GET', `/api/messages/${id}`, undefined, TENANT_KEY)).body.status, 'delivered');
  });

  it(`inbound message with the receiver down ${DOWN_MS / 1000} s and the API killed -9 meanwhile → delivered after`, async () => {
    await receiver.down();
    const tDown = Date.now();
    const text = `inbound while down ${stack.id}`;
    await stack.sim.sendInbound(S.phone, '15553330001', text);
    const itemsKey = `${stack.prefix}clienthook:items`;
    // the delivery is in Redis and being retried
    await waitFor(
      'a failed attempt recorded in Redis',
      async () => {
        const items = (await stack.redis.hvals(itemsKey)).map(
          (x) => JSON.parse(x) as { event: string; attempt: number },
        );
        return items.some((i) => i.event === 'message.received' && i.attempt >= 2);
      },
      10_000,
    );
    await stack.killApi('SIGKILL');
    await sleep(1000);
    await stack.startApi();
    const remaining = DOWN_MS - (Date.now() - tDown);
    if (remaining > 0) await sleep(remaining);
    const attemptsWhileDown = Math.max(
      ...(await stack.redis.hvals(itemsKey))
        .map((x) => JSON.parse(x) as { event: string; attempt: number })
        .filter((i) => i.event === 'message.received')
        .map((i) => i.attempt),
    );
    await receiver.up();
    const tUp = Date.now();
    const got = await waitFor(
      'the inbound message at the receiver',
      () => receiver.of('message.received').find((d) => d.json.data.text === text),
      15_000,
    );
    console.log(
      `receiver down ${tUp - tDown} ms (API killed and restarted meanwhile), ${attemptsWhileDown} failed attempts, delivered ${got.at - tUp} ms after it came back`,
    );
    assert.equal(got.json.data.from, '15553330001');
    assert.equal(got.json.data.sessionId, S.id);
    assert.equal(got.json.tenant, 'acme');
    assert.ok(tUp - tDown >= DOWN_MS);
    await sleep(1000);
    assert.equal(receiver.of('message.received').filter((d) => d.json.data.text === text).length, 1, 'once');
    assert.equal(receiver.badSignatures, 0);
  });

  it('a receiver that refuses (4xx) → the dead-letter list, visible through the API', async () => {
    receiver.status = 422;
    const text = `refused ${stack.id}`;
    await stack.sim.sendInbound(S.phone, '15553330002', text);
    const dead = await waitFor(
      'a dead letter',
      async () => {
        const r = await stack.call('GET', '/api/v1/webhooks/dead-letters', undefined, TENANT_KEY);
        return (r.body.deadLetters as Array<{ payload: { data: { text: string } } }>).find(
          (d) => d.payload.data.text === text,
        );
      },
      15_000,
    );
    assert.match(JSON.stringify(dead), /HTTP 422/);
    receiver.status = 200;
    const admin = await stack.call('GET', '/api/v1/webhooks/dead-letters?tenant=admin');
    assert.equal(admin.body.deadLetters.length, 0, 'other tenants see nothing of it');
  });

  it('retry delays: exponential with full jitter, capped', () => {
    const lo = () => 0;
    const hi = () => 0.999999;
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => clientRetryDelay(n, 1000, 5000, lo)),
      [500, 1000, 2000, 2500],
    );
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => clientRetryDelay(n, 1000, 5000, hi)),
      [1000, 2000, 4000, 5000],
    );
  });
});
