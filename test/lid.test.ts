/**
 * Issue 12 item 6: LID in the API. Contacts write by LID as WhatsApp addresses 1:1 chats today: one without sharing
 * its number, one with (`sender_pn`). The customer webhook says who wrote (`from`: the phone number when known, else
 * `<lid>@lid`; `fromPhone`, `fromLid`), and `POST /api/send` answers both — to the LID address, and to the phone
 * number of a contact first seen by LID. Real stack: API + orchestrator, Temporal, Redis, the real wa-worker
 * (Baileys 7) through a SOCKS5 proxy, the simulator.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { lidUserFor } from '../simulator/index.js';
import { ClientReceiver, SECRET } from './helpers/client-receiver.js';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { Stack, TENANT_KEY, waitFor } from './helpers/stack.js';

describe('LID-addressed contacts', () => {
  let stack: Stack;
  const receiver = new ClientReceiver();
  const S = { id: 'lid1', phone: '15550009501' };
  const HIDDEN = '15557772001'; // writes by LID, never shares its number
  const SHARED = '15557772002'; // writes by LID and shares its number

  before(async () => {
    await receiver.up();
    stack = await new Stack({
      proxies: 1,
      extraEnv: {
        CLIENT_WEBHOOK_POLL_MS: '100',
        ANTIBAN_COLD_GAP_MS: '300',
        ANTIBAN_IDLE_POLL_MS: '500',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
      },
    }).start();
    const put = await stack.call('PUT', '/api/v1/webhooks', { url: receiver.url, secret: SECRET }, TENANT_KEY);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await connectedSession(stack, S.id, S.phone, TENANT_KEY);
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [S.id]);
    await stack?.stop();
    await receiver.down().catch(() => undefined);
  });

  const inbound = (text: string) =>
    waitFor(`"${text}" at the customer webhook`, () =>
      receiver.of('message.received').find((d) => d.json.data.text === text),
    );
  const send = async (to: string, text: string) => {
    const r = await stack.call('POST', '/api/send', { sessionId: S.id, to, text }, TENANT_KEY);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.messageId as string;
  };
  const delivered = (id: string) =>
    waitFor(
      `${id} delivered`,
      async () => (await stack.call('GET', `/api/messages/${id}`, undefined, TENANT_KEY)).body.status === 'delivered',
      30_000,
    );
  const receivedBy = (contact: string, text: string) =>
    stack.sim.messages(S.phone).filter((m) => m.text === text && owns(m.to, contact));
  const owns = (to: string, contact: string) => {
    const user = to.split('@')[0]!.split(':')[0]!;
    return user === contact || user === lidUserFor(contact);
  };

  it('a contact writing by LID without its number: the webhook carries the LID; a reply to the LID arrives', async () => {
    const lid = lidUserFor(HIDDEN);
    await stack.sim.sendInbound(S.phone, `${lid}@lid`, 'hello from a LID');
    const d = await inbound('hello from a LID');
    assert.equal(d.json.data.from, `${lid}@lid`);
    assert.equal(d.json.data.fromLid, lid);
    assert.equal(d.json.data.fromPhone, null, 'the number was not shared: not invented either');

    const id = await send(d.json.data.from as string, 'reply to the LID');
    await delivered(id);
    assert.equal(receivedBy(HIDDEN, 'reply to the LID').length, 1, 'the contact decrypted the reply once');
  });

  it('a contact first seen by LID gets a message sent to its phone number', async () => {
    const id = await send(HIDDEN, 'now by phone number');
    await delivered(id);
    assert.equal(receivedBy(HIDDEN, 'now by phone number').length, 1);
  });

  it('a contact writing by LID and sharing its number: the webhook carries the phone; the reply arrives', async () => {
    const lid = lidUserFor(SHARED);
    await stack.sim.sendInbound(S.phone, `${lid}@lid`, 'hello, number shared', { revealPhone: true });
    const d = await inbound('hello, number shared');
    assert.equal(d.json.data.from, SHARED);
    assert.equal(d.json.data.fromPhone, SHARED);
    assert.equal(d.json.data.fromLid, lid);

    const id = await send(SHARED, 'reply by phone number');
    await delivered(id);
    assert.equal(receivedBy(SHARED, 'reply by phone number').length, 1);
    const record = (await stack.call('GET', `/api/messages/${id}`, undefined, TENANT_KEY)).body;
    assert.equal(record.messageId, id, 'statuses stay keyed by our message id whatever the addressing');
  });

  it('a malformed LID address is a 400 naming the field', async () => {
    const r = await stack.call('POST', '/api/send', { sessionId: S.id, to: 'abc@lid', text: 'x' }, TENANT_KEY);
    assert.equal(r.status, 400);
    assert.equal(r.body.error.field, 'to');
  });
});
