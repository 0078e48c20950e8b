/**
 * Issue 12 item 7: privacy tokens issued by contacts, as WhatsApp gates a young number's cold 1:1 sends today.
 * A contact that writes to the number (or otherwise grants it) issues its trusted-contact token: the simulator
 * pushes a `privacy_token` notification, the real worker (Baileys 7) stores it in its auth folder (`tctoken` key)
 * and attaches it to later sends to that contact; the simulator accepts a cold send only with a token issued by
 * THAT contact to THAT number (forged or foreign tokens → 463). Real stack: API + orchestrator processes, real
 * Temporal and Redis, the real wa-worker through a SOCKS5 proxy, the simulator.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BufferJSON } from '@whiskeysockets/baileys';
import { lidUserFor } from '../simulator/index.js';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { Stack, TENANT_KEY, waitFor } from './helpers/stack.js';

interface StoredToken {
  token?: Buffer;
  timestamp?: string;
  senderTimestamp?: number;
}

describe('privacy tokens issued by contacts', () => {
  let stack: Stack;
  const S = { id: 'tct1', phone: '15550009311' };
  const WRITER = '15557773001'; // writes first
  const GRANTER = '15557773002'; // grants its token without writing
  const FORGED = '15557773003'; // the session holds a made-up token for it
  const OTHER_ISSUER = '15557773004'; // the session holds WRITER's token under this contact
  const OTHER_RECIPIENT = '15557773005'; // the session holds a token this contact issued to another number
  const ANOTHER_NUMBER = '15550009399';

  before(async () => {
    stack = await new Stack({
      proxies: 1,
      simOptions: { coldOutreach: { youngForMs: 3_600_000 } },
      extraEnv: {
        ANTIBAN_COLD_GAP_MS: '300',
        ANTIBAN_IDLE_POLL_MS: '500',
        ANTIBAN_BURST_SLOWDOWN: '2',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
      },
    }).start();
    await connectedSession(stack, S.id, S.phone, TENANT_KEY);
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [S.id]);
    await stack?.stop();
  });

  const send = async (to: string, text: string) => {
    const r = await stack.call('POST', '/api/send', { sessionId: S.id, to, text }, TENANT_KEY);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.messageId as string;
  };
  const settled = (id: string) =>
    waitFor(
      `${id} delivered or failed`,
      async () => {
        const r = (await stack.call('GET', `/api/messages/${id}`, undefined, TENANT_KEY)).body;
        return r.status === 'delivered' || r.status === 'failed' ? r : undefined;
      },
      30_000,
    );
  const phone = () => stack.sim.phones().find((p) => p.phone === S.phone)!;
  /** The worker's stored token for `contact` (Baileys keys it by the contact's LID). */
  const tokenFile = (contact: string) => path.join(stack.sessionsDir, S.id, `tctoken-${lidUserFor(contact)}@lid.json`);
  const storedToken = (contact: string): StoredToken | undefined => {
    const file = tokenFile(contact);
    if (!existsSync(file)) return undefined;
    return JSON.parse(readFileSync(file, 'utf8'), BufferJSON.reviver) as StoredToken;
  };
  const plantToken = (contact: string, token: Buffer) =>
    writeFileSync(
      tokenFile(contact),
      JSON.stringify({ token, timestamp: String(Math.floor(Date.now() / 1000)) }, BufferJSON.replacer),
      { mode: 0o600 },
    );

  it("a young number's first send to a stranger is refused; once the stranger wrote, its token opens the chat", async () => {
    const cold = await settled(await send(WRITER, 'cold hello'));
    assert.equal(cold.status, 'failed', JSON.stringify(cold));
    assert.equal(cold.reason, 'rejected_cold_outreach');
    assert.equal(phone().rejected463, 1);

    await stack.sim.sendInbound(S.phone, WRITER, 'hi, write me');
    const stored = await waitFor('the worker stored the token WRITER issued', () => storedToken(WRITER)?.token?.length);
    assert.ok(stored > 0);
    const reply = await settled(await send(WRITER, 'reply to the writer'));
    assert.equal(reply.status, 'delivered', JSON.stringify(reply));
    const p = phone();
    assert.equal(p.privacyTokensIssued, 1, JSON.stringify(p));
    assert.equal(p.acceptedWithToken, 1, 'the reply went through because it carried the token');
    assert.equal(p.rejected463, 1);
  });

  it('a contact that grants its token without writing (LID-addressed) opens the chat too', async () => {
    stack.sim.grantPrivacyToken(S.phone, `${lidUserFor(GRANTER)}@lid`);
    await waitFor('the worker stored the token GRANTER issued', () => storedToken(GRANTER)?.token?.length);
    const first = await settled(await send(GRANTER, 'first message to a contact who granted a token'));
    assert.equal(first.status, 'delivered', JSON.stringify(first));
    assert.equal(phone().acceptedWithToken, 2);
    assert.deepEqual(
      stack.sim.messages(S.phone).map((m) => m.text),
      ['reply to the writer', 'first message to a contact who granted a token'],
    );
  });

  it('a forged token, a token issued by another contact and one issued to another number are refused (463)', async () => {
    const writers = storedToken(WRITER)?.token;
    assert.ok(writers?.length, 'WRITER token present');
    plantToken(FORGED, randomBytes(writers.length));
    plantToken(OTHER_ISSUER, writers);
    plantToken(OTHER_RECIPIENT, stack.sim.grantPrivacyToken(ANOTHER_NUMBER, OTHER_RECIPIENT));
    const before463 = phone().rejected463;
    for (const contact of [FORGED, OTHER_ISSUER, OTHER_RECIPIENT]) {
      const m = await settled(await send(contact, `cold with a bad token to ${contact}`));
      assert.equal(m.status, 'failed', `${contact}: ${JSON.stringify(m)}`);
      assert.equal(m.reason, 'rejected_cold_outreach');
    }
    const p = phone();
    assert.equal(p.rejected463, before463 + 3, JSON.stringify(p));
    assert.equal(p.rejectedInvalidToken, 3, 'each refused send carried the planted token');
    assert.equal(p.acceptedWithToken, 2);
    assert.equal(stack.sim.messages(S.phone).length, 2, 'none of them reached a recipient');
  });
});
