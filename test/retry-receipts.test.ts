/**
 * Issue 12 item 4: retry receipts. The recipient's device loses its Signal session (simulator control call), so
 * the next message cannot be decrypted. Like WhatsApp, the recipient device answers with a retry receipt carrying a
 * fresh key bundle; the worker re-sends the message from its sent-message store (Baileys' getMessage) and the
 * recipient decrypts it. The status reaches `delivered` only after that. Real stack: API + orchestrator processes,
 * Temporal, Redis, the real wa-worker (Baileys 7) through a SOCKS5 proxy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { Stack, waitFor } from './helpers/stack.js';

describe('retry receipts: a recipient device that cannot decrypt', () => {
  let stack: Stack;
  const S = { id: 'retry1', phone: '15550009401' };
  const CONTACT = '15557771001';

  before(async () => {
    stack = await new Stack({
      proxies: 1,
      extraEnv: {
        ANTIBAN_COLD_GAP_MS: '300',
        ANTIBAN_IDLE_POLL_MS: '500',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
      },
    }).start();
    await connectedSession(stack, S.id, S.phone);
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [S.id]);
    await stack?.stop();
  });

  const send = async (text: string) => {
    const r = await stack.call('POST', '/api/send', { sessionId: S.id, to: CONTACT, text });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.messageId as string;
  };
  const record = async (id: string) => (await stack.call('GET', `/api/messages/${id}`)).body;
  const delivered = (id: string) =>
    waitFor(
      `${id} delivered`,
      async () => ((await record(id)).status === 'delivered' ? record(id) : undefined),
      30_000,
    );
  const counters = () => stack.sim.phones().find((p) => p.phone === S.phone)!;

  it('the recipient lost its Signal session: decrypted through the retry path, delivered only after', async () => {
    await delivered(await send('first, the session is set up'));
    await delivered(await send('second'));
    assert.equal(counters().decryptFailures, 0, 'no decrypt failure so far');
    // The contact's device lost its sessions (like a reinstall, or the sender restored an older Signal state).
    await stack.sim.resetContactSessions(CONTACT);

    const text = 'after the reset';
    const id = await send(text);
    const m = await delivered(id);
    const c = counters();
    assert.ok(c.decryptFailures >= 1, `the recipient could not decrypt the first copy: ${JSON.stringify(c)}`);
    assert.ok(c.retryReceiptsSent >= 1, JSON.stringify(c));
    assert.ok(c.resentDecrypted >= 1, `a re-sent copy was decrypted: ${JSON.stringify(c)}`);
    assert.equal(c.undecryptable, 0, 'nothing left undecryptable');
    const got = stack.sim.messages(S.phone).filter((x) => x.text === text);
    assert.equal(got.length, 1, 'the recipient has the message exactly once, with its text');
    assert.ok(m.deliveredAt >= got[0]!.at, `delivered (${m.deliveredAt}) only after the decrypt (${got[0]!.at})`);
  });
});
