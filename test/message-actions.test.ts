/**
 * Reactions, replies, edits, deletes for everyone, locations and contact cards end to end: real API and
 * orchestrator processes, Temporal, Redis, the real wa-worker (Baileys 7) through its SOCKS5 proxy, and the
 * simulator, whose contacts decrypt every copy and show what their phone would (the reaction and its target, the
 * quoted message of a reply, the edited text…). Every action goes through POST /api/send or the message routes, the
 * outbox, the anti-ban dispatcher and the worker like a text; the contacts' own reactions, edits and deletes come
 * back as customer webhooks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GroupSummary, RecordedMessage } from '../simulator/wa-server.js';
import { connectedSuite, OTHER_KEY } from './helpers/connected-suite.js';
import { TENANT_KEY, waitFor } from './helpers/stack.js';

const EDIT_WINDOW_MS = 12_000;
const VCARD_A = 'BEGIN:VCARD\nVERSION:3.0\nFN:Ana Shop\nTEL;type=CELL;waid=15557775001:+1 555 777 5001\nEND:VCARD';
const VCARD_B = 'BEGIN:VCARD\nVERSION:3.0\nFN:Bo Desk\nTEL;type=CELL:+1 555 777 5002\nEND:VCARD';

describe('message actions: react, reply, edit, revoke, location, contact', () => {
  const S = { id: 'actions1', phone: '15550008501' };
  const OTHER_SESSION = 'actions-other';
  const suite = connectedSuite({
    session: S,
    env: {
      ANTIBAN_COLD_GAP_MS: '300',
      // more sends than a cold number's daily cap (10): the cap itself is not under test here
      ANTIBAN_COLD_DAILY: '200',
      ANTIBAN_BURST_COUNT: '1000',
      RATE_LIMIT_MAX_REQUESTS: '1000',
      WORKER_ENV_OUTBOX_POLL_MS: '50',
      MESSAGE_EDIT_WINDOW_MS: String(EDIT_WINDOW_MS),
      // a shared checkout's staged worker bundle may be another branch's: WORKER_COMMAND runs this one's
      ...(process.env.WORKER_COMMAND ? { WORKER_COMMAND: process.env.WORKER_COMMAND } : {}),
    },
    moreSessions: [OTHER_SESSION],
  });
  const { receiver } = suite;
  const [A, B] = ['15557775001', '15557775002'];
  const jidOf = (p: string) => `${p}@s.whatsapp.net`;

  const send = async (body: Record<string, unknown>, key = TENANT_KEY) =>
    suite.stack.call('POST', '/api/send', { sessionId: S.id, ...body }, key);
  /** The message record once WhatsApp has it (sent, then delivered / read). */
  const sent = (id: string) =>
    waitFor(
      `${id} sent`,
      async () => {
        const r = await suite.stack.call('GET', `/api/messages/${id}`, undefined, TENANT_KEY);
        return ['sent', 'delivered', 'read'].includes(r.body.status) ? r.body : null;
      },
      60_000,
    );
  /** What the contact's phone got for one of our messages. */
  const atSim = (waId: string) =>
    waitFor(`${waId} at the simulator`, () => suite.stack.sim.messages(S.phone).find((m) => m.id === waId), 60_000);
  const inbound = async (from: string, text: string) => {
    const body = await suite.contact(`/phones/${S.phone}/inbound`, { from, text });
    await waitFor(`message.received ${body.id}`, () =>
      receiver.of('message.received').find((d) => d.json.data.messageId === body.id),
    );
    return body.id;
  };
  const contactAction = async (path: string, body: Record<string, unknown>) => (await suite.contact(path, body)).id;

  it('replies quote our message and a received one, as WhatsApp shows them (contextInfo)', async () => {
    const first = await send({ to: A, text: 'your order is ready' });
    assert.equal(first.status, 202, JSON.stringify(first.body));
    const ours = await sent(first.body.messageId);
    const theirs = await inbound(A, 'great, thanks!');

    const r1 = await send({ to: A, text: 'you are welcome', replyTo: theirs });
    assert.equal(r1.status, 202, JSON.stringify(r1.body));
    const r2 = await send({ to: A, text: 'pick it up today', replyTo: first.body.messageId });
    assert.equal(r2.status, 202, JSON.stringify(r2.body));
    const m1 = await atSim((await sent(r1.body.messageId)).waMessageId);
    assert.equal(m1.text, 'you are welcome');
    assert.deepEqual(m1.quoted, { id: theirs, participant: jidOf(A), text: 'great, thanks!' });
    const m2 = await atSim((await sent(r2.body.messageId)).waMessageId);
    assert.equal(m2.quoted?.id, ours.waMessageId, 'stanzaId: our message');
    assert.equal(m2.quoted?.participant, jidOf(S.phone), 'participant: the session itself');
    assert.equal(m2.quoted?.text, 'your order is ready');
    // a message id nobody knows: 404 naming the field
    const unknown = await send({ to: A, text: 'x', replyTo: 'ABCDEF0123456789' });
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error.field, 'replyTo');
  });

  it('reacts to a received message and to our own, removes a reaction; statuses and webhooks as for text', async () => {
    const theirs = await inbound(A, 'is it in stock?');
    const ours = await send({ to: A, text: 'yes, 3 left' });
    const oursRec = await sent(ours.body.messageId);

    const react = await send({ type: 'reaction', reaction: { messageId: theirs, emoji: '👍' } });
    assert.equal(react.status, 202, JSON.stringify(react.body));
    const reactOurs = await send({
      to: A,
      type: 'reaction',
      reaction: { messageId: ours.body.messageId, emoji: '❤️' },
    });
    assert.equal(reactOurs.status, 202, JSON.stringify(reactOurs.body));
    const remove = await send({ type: 'reaction', reaction: { messageId: theirs, emoji: '' } });
    assert.equal(remove.status, 202, JSON.stringify(remove.body));

    const rec = await sent(react.body.messageId);
    assert.equal(rec.to, A, 'a reaction goes to the chat of its message');
    const m = await atSim(rec.waMessageId);
    assert.equal(m.kind, 'reaction');
    assert.deepEqual(m.reaction, { targetId: theirs, targetFromMe: false, text: '👍' });
    const mo = await atSim((await sent(reactOurs.body.messageId)).waMessageId);
    // in the reactor's (our) view the message is ours
    assert.deepEqual(mo.reaction, { targetId: oursRec.waMessageId, targetFromMe: true, text: '❤️' });
    const mr = await atSim((await sent(remove.body.messageId)).waMessageId);
    assert.deepEqual(mr.reaction, { targetId: theirs, targetFromMe: false, text: '' }, 'an empty reaction removes it');

    // delivered like a text, with message.status webhooks
    await waitFor('the reaction delivered', async () => {
      const r = await suite.stack.call('GET', `/api/messages/${react.body.messageId}`, undefined, TENANT_KEY);
      return ['delivered', 'read'].includes(r.body.status);
    });
    const statuses = receiver
      .of('message.status')
      .filter((d) => d.json.data.messageId === react.body.messageId)
      .map((d) => d.json.data.status);
    assert.ok(statuses.includes('sent'), `statuses ${statuses.join(',')}`);

    // `to` naming another chat than the message's: a conflict, named
    const wrongChat = await send({ to: B, type: 'reaction', reaction: { messageId: theirs, emoji: '👍' } });
    assert.equal(wrongChat.status, 409, JSON.stringify(wrongChat.body));
    assert.equal(wrongChat.body.error.field, 'to');
    // a reaction cannot be reacted to
    const onReaction = await send({ type: 'reaction', reaction: { messageId: react.body.messageId, emoji: '😀' } });
    assert.equal(onReaction.status, 409, JSON.stringify(onReaction.body));
    assert.equal(onReaction.body.error.field, 'reaction.messageId');
  });

  it('sends a location and contact cards (one: contactMessage, two: contactsArrayMessage)', async () => {
    const loc = await send({
      to: A,
      type: 'location',
      location: { latitude: 52.520008, longitude: 13.404954, name: 'Our shop', address: 'Alexanderplatz 1, Berlin' },
    });
    assert.equal(loc.status, 202, JSON.stringify(loc.body));
    const one = await send({ to: A, type: 'contact', contacts: [{ vcard: VCARD_A, displayName: 'Ana Shop' }] });
    assert.equal(one.status, 202, JSON.stringify(one.body));
    const two = await send({ to: A, type: 'contact', contacts: [{ vcard: VCARD_A }, { vcard: VCARD_B }] });
    assert.equal(two.status, 202, JSON.stringify(two.body));

    const ml = await atSim((await sent(loc.body.messageId)).waMessageId);
    assert.equal(ml.kind, 'location');
    assert.deepEqual(ml.location, {
      latitude: 52.520008,
      longitude: 13.404954,
      name: 'Our shop',
      address: 'Alexanderplatz 1, Berlin',
    });
    const m1 = await atSim((await sent(one.body.messageId)).waMessageId);
    assert.equal(m1.kind, 'contact');
    assert.deepEqual(m1.contacts, [{ displayName: 'Ana Shop', vcard: VCARD_A }]);
    const m2 = await atSim((await sent(two.body.messageId)).waMessageId);
    assert.deepEqual(
      m2.contacts?.map((c) => c.vcard),
      [VCARD_A, VCARD_B],
    );
    const rec = await suite.stack.call('GET', `/api/messages/${loc.body.messageId}`, undefined, TENANT_KEY);
    assert.equal(rec.body.extra.action.kind, 'location', 'the record says what it sends');
  });

  it('edits our text within the window and refuses after it (409); deletes for everyone', async () => {
    const orig = await send({ to: A, text: 'delivery at 5 pm' });
    const rec = await sent(orig.body.messageId);
    const edit = await suite.stack.call(
      'POST',
      `/api/messages/${orig.body.messageId}/edit`,
      { text: 'delivery at 6 pm' },
      TENANT_KEY,
    );
    assert.equal(edit.status, 202, JSON.stringify(edit.body));
    const me = await atSim((await sent(edit.body.messageId)).waMessageId);
    assert.equal(me.kind, 'edit');
    assert.deepEqual(me.edit, { targetId: rec.waMessageId, text: 'delivery at 6 pm' });

    const revoke = await suite.stack.call('POST', `/api/messages/${orig.body.messageId}/revoke`, undefined, TENANT_KEY);
    assert.equal(revoke.status, 202, JSON.stringify(revoke.body));
    const mv = await atSim((await sent(revoke.body.messageId)).waMessageId);
    assert.equal(mv.kind, 'revoke');
    assert.deepEqual(mv.revoke, { targetId: rec.waMessageId });

    // an edit or a revoke is not itself editable; a location is not a text
    const editOfEdit = await suite.stack.call(
      'POST',
      `/api/messages/${edit.body.messageId}/edit`,
      { text: 'x' },
      TENANT_KEY,
    );
    assert.equal(editOfEdit.status, 409, JSON.stringify(editOfEdit.body));
    assert.equal(editOfEdit.body.error.code, 'NOT_EDITABLE');

    // the edit window (MESSAGE_EDIT_WINDOW_MS) passes: 409, and nothing is queued
    await waitFor(
      'the edit window passed',
      () => Date.now() > rec.sentAt + EDIT_WINDOW_MS + 200,
      EDIT_WINDOW_MS + 30_000,
    );
    const late = await suite.stack.call(
      'POST',
      `/api/messages/${orig.body.messageId}/edit`,
      { text: 'too late' },
      TENANT_KEY,
    );
    assert.equal(late.status, 409, JSON.stringify(late.body));
    assert.equal(late.body.error.code, 'EDIT_WINDOW_PASSED');
    assert.equal(late.body.error.field, 'id');
  });

  it("refuses to delete a contact's message (403); unknown ids 404; bad input names the field", async () => {
    const theirs = await inbound(A, 'please cancel');
    const r = await suite.stack.call('POST', `/api/messages/${theirs}/revoke`, { sessionId: S.id }, TENANT_KEY);
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'NOT_OWN_MESSAGE');
    const e = await suite.stack.call(
      'POST',
      `/api/messages/${theirs}/edit`,
      { text: 'x', sessionId: S.id },
      TENANT_KEY,
    );
    assert.equal(e.status, 403, JSON.stringify(e.body));
    const noSession = await suite.stack.call('POST', `/api/messages/${theirs}/edit`, { text: 'x' }, TENANT_KEY);
    assert.equal(noSession.status, 404, JSON.stringify(noSession.body));
    assert.equal(noSession.body.error.field, 'sessionId', 'a WhatsApp id needs its session');
    const unknownWa = await suite.stack.call(
      'POST',
      '/api/messages/ABCDEF0123456789/revoke',
      { sessionId: S.id },
      TENANT_KEY,
    );
    assert.equal(unknownWa.status, 404, JSON.stringify(unknownWa.body));
    const unknownOurs = await suite.stack.call('POST', '/api/messages/msg_0000000000/revoke', undefined, TENANT_KEY);
    assert.equal(unknownOurs.status, 404, JSON.stringify(unknownOurs.body));

    const bad: Array<[Record<string, unknown>, string]> = [
      [{ type: 'reaction' }, 'reaction'],
      [{ type: 'reaction', reaction: { messageId: theirs, emoji: '👍' }, replyTo: theirs }, 'replyTo'],
      [{ to: A, type: 'location', location: { latitude: 91, longitude: 0 } }, 'location.latitude'],
      [{ to: A, type: 'contact', contacts: [{ vcard: 'not a card' }] }, 'contacts.0.vcard'],
      [{ to: A, type: 'location', text: 'x', location: { latitude: 1, longitude: 2 } }, 'text'],
      [{ type: 'location', location: { latitude: 1, longitude: 2 } }, 'to'],
    ];
    for (const [body, field] of bad) {
      const res = await send(body);
      assert.equal(res.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.field, field, JSON.stringify(res.body));
    }
    const noText = await suite.stack.call('POST', '/api/messages/msg_0000000000/edit', {}, TENANT_KEY);
    assert.equal(noText.status, 400, JSON.stringify(noText.body));
    assert.equal(noText.body.error.field, 'text');
  });

  it("tenants are walls: another tenant cannot react to, reply to, edit or delete this tenant's messages", async () => {
    const ours = await send({ to: A, text: 'private to acme' });
    await sent(ours.body.messageId);
    const theirs = await inbound(A, 'acme only');
    // the other tenant's own session (not linked: the refusal comes before anything is queued)
    const prov = await suite.stack.call('POST', '/api/sessions/provision', { sessionId: OTHER_SESSION }, OTHER_KEY);
    assert.equal(prov.status, 201, JSON.stringify(prov.body));

    const id = ours.body.messageId as string;
    for (const [method, url, body] of [
      ['GET', `/api/messages/${id}`, undefined],
      ['POST', `/api/messages/${id}/edit`, { text: 'hijack' }],
      ['POST', `/api/messages/${id}/revoke`, undefined],
      ['POST', `/api/messages/${theirs}/revoke`, { sessionId: S.id }],
    ] as const) {
      const r = await suite.stack.call(method, url, body, OTHER_KEY);
      assert.equal(r.status, 404, `${method} ${url}: ${JSON.stringify(r.body)}`);
    }
    for (const body of [
      { sessionId: OTHER_SESSION, type: 'reaction', reaction: { messageId: id, emoji: '👎' } },
      { sessionId: OTHER_SESSION, type: 'reaction', reaction: { messageId: theirs, emoji: '👎' } },
      { sessionId: OTHER_SESSION, to: A, text: 'x', replyTo: id },
    ]) {
      const r = await suite.stack.call('POST', '/api/send', body, OTHER_KEY);
      assert.equal(r.status, 404, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'MESSAGE_NOT_FOUND');
    }
    // and this tenant's session is not reachable with the other key at all
    const viaSession = await suite.stack.call(
      'POST',
      '/api/send',
      { sessionId: S.id, type: 'reaction', reaction: { messageId: id, emoji: '👎' } },
      OTHER_KEY,
    );
    assert.equal(viaSession.status, 404, JSON.stringify(viaSession.body));
    assert.equal(viaSession.body.error.code, 'SESSION_NOT_FOUND');
    // nothing of it reached WhatsApp
    assert.equal(suite.stack.sim.messages(S.phone).filter((m) => m.reaction?.text === '👎').length, 0);
  });

  it("a contact's reaction, edit and delete reach the customer webhook", async () => {
    const ours = await send({ to: B, text: 'shall we confirm?' });
    const oursRec = await sent(ours.body.messageId);
    const theirs = await inbound(B, 'yes, confirm for 3 pm');

    const reactId = await contactAction(`/phones/${S.phone}/inbound-action`, {
      from: B,
      kind: 'reaction',
      messageId: oursRec.waMessageId,
      emoji: '🙏',
    });
    const r = await waitFor('message.reaction', () =>
      receiver.of('message.reaction').find((d) => d.json.data.messageId === reactId),
    );
    assert.equal(r.json.data.emoji, '🙏');
    assert.equal(r.json.data.targetFromMe, true);
    assert.equal(r.json.data.targetWaMessageId, oursRec.waMessageId);
    assert.equal(r.json.data.targetMessageId, ours.body.messageId, 'our own id for our message');
    assert.equal(r.json.data.from, B);
    assert.equal(r.json.data.sessionId, S.id);

    const editId = await contactAction(`/phones/${S.phone}/inbound-action`, {
      from: B,
      kind: 'edit',
      messageId: theirs,
      text: 'yes, confirm for 4 pm',
    });
    const e = await waitFor('message.edited', () =>
      receiver.of('message.edited').find((d) => d.json.data.messageId === editId),
    );
    assert.equal(e.json.data.text, 'yes, confirm for 4 pm');
    assert.equal(e.json.data.targetMessageId, theirs);
    assert.equal(e.json.data.targetFromMe, false);

    const revokeId = await contactAction(`/phones/${S.phone}/inbound-action`, {
      from: B,
      kind: 'revoke',
      messageId: theirs,
    });
    const v = await waitFor('message.revoked', () =>
      receiver.of('message.revoked').find((d) => d.json.data.messageId === revokeId),
    );
    assert.equal(v.json.data.targetWaMessageId, theirs);
    assert.equal(v.json.data.from, B);
    // a contact cannot edit the session's message (the simulator refuses, as WhatsApp would)
    const res = await fetch(`${suite.control.url}/phones/${S.phone}/inbound-action`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ from: B, kind: 'edit', messageId: oursRec.waMessageId, text: 'x' }),
    });
    assert.equal(res.status, 409);
  });

  it('in a group: we react to a member message and members see it; a member reacts to ours', async () => {
    const created = await suite.stack.call(
      'POST',
      `/api/sessions/${S.id}/groups`,
      { subject: 'Team', participants: [A, B] },
      TENANT_KEY,
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const jid = created.body.group.jid as string;
    const simGroup = () => suite.stack.sim.group(jid) as GroupSummary;

    const ours = await send({ to: jid, text: 'standup in 5' });
    const oursRec = await sent(ours.body.messageId);
    const memberMsg = (
      await suite.contact(`/groups/${encodeURIComponent(jid)}/inbound`, { from: A, text: 'on my way' })
    ).id;
    await waitFor('the member message at the API', () =>
      receiver.of('message.received').find((d) => d.json.data.messageId === memberMsg),
    );

    const react = await send({ type: 'reaction', reaction: { messageId: memberMsg, emoji: '👍' } });
    assert.equal(react.status, 202, JSON.stringify(react.body));
    const reply = await send({ to: jid, text: 'thanks A', replyTo: memberMsg });
    assert.equal(reply.status, 202, JSON.stringify(reply.body));
    const reactRec = await sent(react.body.messageId);
    assert.equal(reactRec.to, jid, 'the reaction goes to the group');
    const m = await waitFor('our group reaction at the members', () =>
      simGroup().messages.find((x) => x.id === reactRec.waMessageId),
    );
    assert.deepEqual(m.received.map((r) => r.participant).sort(), [A, B].sort());
    for (const r of m.received) {
      assert.equal(r.decrypted, true, `${r.participant} decrypted it`);
      assert.deepEqual(r.details?.reaction, { targetId: memberMsg, targetFromMe: false, text: '👍' });
    }
    const replyRec = await sent(reply.body.messageId);
    const mr = await waitFor('the group reply at the members', () =>
      simGroup().messages.find((x) => x.id === replyRec.waMessageId),
    );
    for (const r of mr.received)
      assert.deepEqual(r.details?.quoted, { id: memberMsg, participant: jidOf(A), text: 'on my way' });

    // B reacts to our group message: the webhook names the group, B and our message
    const actBody = await suite.contact(`/groups/${encodeURIComponent(jid)}/inbound-action`, {
      from: B,
      kind: 'reaction',
      messageId: oursRec.waMessageId,
      emoji: '✅',
    });
    const d = await waitFor('the group message.reaction', () =>
      receiver.of('message.reaction').find((x) => x.json.data.messageId === actBody.id),
    );
    assert.equal(d.json.data.group, jid);
    assert.equal(d.json.data.from, B);
    assert.equal(d.json.data.emoji, '✅');
    assert.equal(d.json.data.targetFromMe, true);
    assert.equal(d.json.data.targetMessageId, ours.body.messageId);
    const simMessages: RecordedMessage[] = suite.stack.sim.messages(S.phone);
    assert.ok(simMessages.some((x) => x.id === reactRec.waMessageId && x.kind === 'reaction'));
  });
});
