/**
 * Human-like sending (issue 15 items 2 and 3): before each dispatched message the real wa-worker shows `composing` to
 * the recipient for a time that grows with the text (jittered, clamped to the session's bounds), sends, then
 * `paused`; inbound messages are marked read (automatically after a delay, or by POST /api/sessions/:id/read), and a
 * contact's read receipt reaches the customer as a `message.status` webhook.
 * Real API, orchestrator, Temporal, Redis, SOCKS5 proxy, Baileys 7 worker; the simulator records every
 * `<chatstate>` per contact.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { Stack, TENANT_KEY, waitFor } from './helpers/stack.js';
import type { RecordedMessage } from '../simulator/wa-server.js';

const MIN = 300;
const MAX = 1_500;
const PER_CHAR = 20;
/** composing → message at the simulator also covers the encryption and the trip through the proxy */
const SEND_SLACK_MS = 1_000;

describe('typing before sends', () => {
  let stack: Stack;
  const S = { id: 'typing1', phone: '15550015001' };

  before(async () => {
    stack = await new Stack({
      proxies: 1,
      extraEnv: {
        ANTIBAN_TYPING: 'true',
        ANTIBAN_COLD_TYPING_MIN_MS: String(MIN),
        ANTIBAN_COLD_TYPING_MAX_MS: String(MAX),
        ANTIBAN_TYPING_MS_PER_CHAR: String(PER_CHAR),
        ANTIBAN_TYPING_JITTER_PERCENT: '25',
        // the shortest gap (3000 − 30%) · 0.9 = 1890 ms holds the longest typing
        ANTIBAN_COLD_GAP_MS: '3000',
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

  /** The composing → message → paused sequence the simulator saw for one contact. */
  function typingOf(contact: string, text: string) {
    const msg = stack.sim.messages(S.phone).find((m) => m.text === text);
    assert.ok(msg, `message "${text.slice(0, 20)}" reached the simulator`);
    const states = stack.sim.presence(S.phone, contact);
    const composing = states.filter((p) => p.state === 'composing' && p.at <= msg.at).at(-1);
    const paused = states.find((p) => p.state === 'paused' && p.at >= msg.at - 5);
    return { msg, composing, paused, typedMs: composing ? msg.at - composing.at : null };
  }

  async function send(to: string, text: string) {
    const r = await stack.call('POST', '/api/send', { sessionId: S.id, to, text });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.messageId as string;
  }

  it('composing before every message, duration within the bounds and growing with the length, then paused', async () => {
    const texts = ['ok', 'see you at 5', 'x'.repeat(60), `a longer message ${'y'.repeat(300)}`];
    const sends = texts.map((text, i) => ({ to: `155570150${String(i).padStart(2, '0')}`, text }));
    const ids: string[] = [];
    for (const s of sends) ids.push(await send(s.to, s.text));
    await waitFor('all messages at the simulator', () => stack.sim.messages(S.phone).length >= sends.length, 40_000);
    const typed: number[] = [];
    for (const [i, s] of sends.entries()) {
      const { composing, paused, typedMs, msg } = typingOf(s.to, s.text);
      assert.ok(composing, `composing before message ${i}: ${JSON.stringify(stack.sim.presence(S.phone, s.to))}`);
      assert.ok(paused, `paused after message ${i}`);
      assert.ok(typedMs! >= MIN, `message ${i} typed ${typedMs} ms ≥ min ${MIN}`);
      assert.ok(typedMs! <= MAX + SEND_SLACK_MS, `message ${i} typed ${typedMs} ms ≤ max ${MAX} + slack`);
      // Never later than the dispatcher's hand-off by more than the typing time (+ worker poll and send).
      const record = (await stack.call('GET', `/api/messages/${ids[i]}`)).body;
      const late = (msg as RecordedMessage).at - record.dispatchedAt;
      assert.ok(late <= MAX + SEND_SLACK_MS, `message ${i} arrived ${late} ms after its hand-off`);
      assert.ok(late >= typedMs! - 50, `typing started after the hand-off (late ${late}, typed ${typedMs})`);
      typed.push(typedMs!);
    }
    console.log(`typing durations (text lengths ${texts.map((t) => t.length).join('/')}): ${typed.join('/')} ms`);
    // 2 chars: 300 + 40 ± 25% (clamped ≥ 300); 300+ chars: clamped to the 1500 ms cap
    assert.ok(typed[0]! < 300 + 2 * PER_CHAR * 1.25 + SEND_SLACK_MS, `short text typed briefly (${typed[0]})`);
    assert.ok(typed[3]! >= MAX, `long text typed up to the cap (${typed[3]})`);
    assert.ok(typed[3]! > typed[0]!, 'longer text, longer typing');
  });

  it('per-session bounds: PUT limits changes the typing time; 0/0 turns typing off; out-of-range bounds → 400', async () => {
    // A min above the max counts as the max (JSON Schema cannot say "min ≤ max"; the contract test holds us to it).
    const inverted = await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, {
      typingMinMs: 3000,
      typingMaxMs: 1000,
    });
    assert.equal(inverted.status, 200, JSON.stringify(inverted.body));
    assert.equal(inverted.body.limits.typingMinMs, 1000);
    const tooBig = await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, { typingMaxMs: 31_000 });
    assert.equal(tooBig.status, 400);
    assert.equal(tooBig.body.error.field, 'typingMaxMs');

    const put = await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, {
      typingMinMs: 1_200,
      typingMaxMs: 1_400,
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.limits.typingMinMs, 1_200);
    assert.equal(put.body.limits.typingMaxMs, 1_400);
    const slow = { to: '15557015101', text: `slow ${stack.id}` };
    await send(slow.to, slow.text);
    await waitFor('the slow message', () => stack.sim.messages(S.phone).some((m) => m.text === slow.text), 20_000);
    const t = typingOf(slow.to, slow.text);
    assert.ok(t.typedMs! >= 1_200 && t.typedMs! <= 1_400 + SEND_SLACK_MS, `typed ${t.typedMs} ms within 1200..1400`);

    // A gap shorter than the typing: typing shrinks to fit the shortest gap (500 − 30%) · 0.9 = 315 ms.
    const tight = await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, {
      typingMinMs: 1_200,
      typingMaxMs: 1_400,
      gapMs: 500,
    });
    assert.equal(tight.status, 200);
    const quick = { to: '15557015103', text: `quick ${stack.id}` };
    await send(quick.to, quick.text);
    await waitFor('the quick message', () => stack.sim.messages(S.phone).some((m) => m.text === quick.text), 20_000);
    const q = typingOf(quick.to, quick.text);
    assert.ok(q.typedMs! >= 315 && q.typedMs! < 1_200, `typed ${q.typedMs} ms: fitted into the gap, not 1200+`);

    const off = await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, { typingMinMs: 0, typingMaxMs: 0 });
    assert.equal(off.status, 200);
    const quiet = { to: '15557015102', text: `no typing ${stack.id}` };
    await send(quiet.to, quiet.text);
    await waitFor('the untyped message', () => stack.sim.messages(S.phone).some((m) => m.text === quiet.text), 20_000);
    assert.deepEqual(stack.sim.presence(S.phone, quiet.to), [], 'no chat state with typing turned off');
  });

  it("auto-read: an inbound message is marked read after the session's delay (the simulator sees the receipt)", async () => {
    const put = await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, {
      autoRead: true,
      readDelayMinMs: 800,
      readDelayMaxMs: 1_200,
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.limits.autoRead, true);
    const contact = '15557015201';
    const sentAt = Date.now();
    const id = await stack.sim.sendInbound(S.phone, contact, `hi there ${stack.id}`);
    const receipt = await waitFor(
      'the read receipt',
      () => stack.sim.readReceipts(S.phone).find((r) => r.messageIds.includes(id)),
      20_000,
      20,
    );
    assert.equal(receipt.contact, contact);
    assert.equal(receipt.type, 'read');
    const delay = receipt.at - sentAt;
    console.log(`auto-read after ${delay} ms (configured 800..1200)`);
    // + the webhook to the API and the worker's command poll
    assert.ok(delay >= 800 && delay <= 1_200 + 1_500, `read ${delay} ms after the message`);
  });

  it('POST /api/sessions/:id/read marks chosen messages read; bad input → 4xx naming the field', async () => {
    await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, { autoRead: false });
    const contact = '15557015202';
    const id1 = await stack.sim.sendInbound(S.phone, contact, `one ${stack.id}`);
    const id2 = await stack.sim.sendInbound(S.phone, contact, `two ${stack.id}`);
    const read = (body: unknown, sessionId = S.id, key?: string) =>
      stack.call('POST', `/api/sessions/${sessionId}/read`, body, key);
    // the inbound messages reach the API through the worker's webhooks
    await waitFor(
      'both inbound ids known',
      async () => (await read({ messageIds: [id1, id2] }, 'nope')).status === 404,
    );
    const cases: Array<[string, unknown, string, number, string]> = [
      ['empty list', { messageIds: [] }, S.id, 400, 'messageIds'],
      ['no list', {}, S.id, 400, 'messageIds'],
      ['malformed id', { messageIds: ['a b'] }, S.id, 400, 'messageIds.0'],
      ['over the limit', { messageIds: Array.from({ length: 101 }, (_, i) => `ID${i}`) }, S.id, 400, 'messageIds'],
      ['unknown message', { messageIds: [id1, 'NOTANINBOUNDID'] }, S.id, 400, 'messageIds'],
      ['unknown session', { messageIds: [id1] }, 'nope', 404, 'id'],
    ];
    for (const [name, body, sid, status, field] of cases) {
      const r = await read(body, sid);
      assert.equal(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.field, field, name);
    }
    const otherTenant = await read({ messageIds: [id1] }, S.id, TENANT_KEY);
    assert.equal(otherTenant.status, 404, "another tenant's session answers like a missing one");
    assert.equal(
      stack.sim.readReceipts(S.phone).filter((r) => r.messageIds.includes(id1)).length,
      0,
      'no receipt from the refused requests (nothing half-written)',
    );
    await waitFor('inbound ids indexed', async () => {
      const r = await read({ messageIds: [id1, id2] });
      if (r.status === 202) return true;
      assert.equal(r.body.error?.code, 'UNKNOWN_MESSAGE', JSON.stringify(r.body));
      return false;
    });
    const receipt = await waitFor('the read receipts', () =>
      stack.sim.readReceipts(S.phone).find((r) => r.messageIds.includes(id1)),
    );
    assert.deepEqual(receipt.messageIds.sort(), [id1, id2].sort(), 'one receipt for both messages of the chat');
    assert.equal(receipt.contact, contact);
  });

  it("a contact's read receipt moves our message to read and sends a message.status webhook", async () => {
    const deliveries: Array<{ event: string; data: Record<string, unknown> }> = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        deliveries.push(JSON.parse(body) as { event: string; data: Record<string, unknown> });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const hook = await stack.call('PUT', '/api/v1/webhooks', {
        url,
        secret: 'client-webhook-secret-0123456789',
        events: ['message.status'],
      });
      assert.equal(hook.status, 200, JSON.stringify(hook.body));
      const to = '15557015301';
      const messageId = await send(to, `read me ${stack.id}`);
      const msg = await waitFor('the message at the simulator', () =>
        stack.sim.messages(S.phone).find((m) => m.text === `read me ${stack.id}`),
      );
      // A phone reads what it received, a moment later (a receipt racing Baileys' own processing of the send can
      // be folded away by Baileys: the simulator's note on receipts).
      await waitFor('sent', async () =>
        ['sent', 'delivered'].includes((await stack.call('GET', `/api/messages/${messageId}`)).body.status),
      );
      await waitFor('a moment after the delivery', () => Date.now() - msg.at > 1_000, 5_000);
      stack.sim.markRead(S.phone, msg.id);
      await waitFor(
        'status read',
        async () => (await stack.call('GET', `/api/messages/${messageId}`)).body.status === 'read',
      );
      const hookRead = await waitFor('the message.status read webhook', () =>
        deliveries.find(
          (d) => d.event === 'message.status' && d.data.messageId === messageId && d.data.status === 'read',
        ),
      );
      assert.equal(hookRead.data.sessionId, S.id);
    } finally {
      await stack.call('DELETE', '/api/v1/webhooks');
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
