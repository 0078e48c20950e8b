/**
 * Groups end to end: real API and orchestrator processes, Temporal, Redis, the real wa-worker (Baileys 7) through its
 * SOCKS5 proxy, and the simulator answering Baileys' `w:g2` queries as WhatsApp does. Group operations go through
 * the typed API client (the OpenAPI contract) → worker commands → Baileys; group sends are sender-key messages
 * (`skmsg` + per-device `pkmsg` with the distribution) that every simulated member decrypts itself; a member's
 * message comes back as WhatsApp delivers it and reaches the customer webhook with the group and the member.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { apiClient } from '../api/client/index.js';
import type { GroupSummary } from '../simulator/wa-server.js';
import { connectedSuite, OTHER_KEY } from './helpers/connected-suite.js';
import { png } from './helpers/media-files.js';
import { TENANT_KEY, waitFor } from './helpers/stack.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('groups: create / members / send / inbound / leave through the API, worker and Baileys', () => {
  const S = { id: 'groups1', phone: '15550008401' };
  const suite = connectedSuite({
    session: S,
    env: {
      ANTIBAN_COLD_GAP_MS: '300',
      ANTIBAN_BURST_COUNT: '1000',
      RATE_LIMIT_MAX_REQUESTS: '1000',
      WORKER_ENV_OUTBOX_POLL_MS: '50',
    },
  });
  const { receiver } = suite;
  const [A, B, C, D] = ['15557774001', '15557774002', '15557774003', '15557774004'];
  let jid = '';
  const api = () => apiClient(suite.stack.apiUrl, TENANT_KEY);
  const other = () => apiClient(suite.stack.apiUrl, OTHER_KEY);
  const simGroup = () => suite.stack.sim.group(jid) as GroupSummary;
  const members = () =>
    simGroup()
      .participants.map((p) => p.phone)
      .sort();

  it('creates a group with two contacts and adds a third; list and metadata show it', async () => {
    const created = await api().POST('/api/sessions/{id}/groups', {
      params: { path: { id: S.id } },
      body: { subject: 'Order 42', participants: [A, `+${B}`] },
    });
    assert.equal(created.response.status, 201, JSON.stringify(created.error));
    const group = created.data!.group;
    assert.match(group.jid, /^\d{6,32}@g\.us$/);
    jid = group.jid;
    assert.equal(group.subject, 'Order 42');
    assert.equal(group.owner, S.phone);
    const byPhone = new Map(group.participants.map((p) => [p.phone, p.admin]));
    assert.deepEqual([...byPhone.keys()].sort(), [S.phone, A, B].sort());
    assert.equal(byPhone.get(S.phone), 'superadmin', 'the creator is the admin');
    // the simulator (WhatsApp) has the group with these members
    assert.deepEqual(members(), [S.phone, A, B].sort());

    const added = await api().POST('/api/sessions/{id}/groups/{jid}/participants', {
      params: { path: { id: S.id, jid } },
      body: { action: 'add', participants: [C] },
    });
    assert.equal(added.response.status, 200, JSON.stringify(added.error));
    assert.deepEqual(added.data!.results, [{ phone: C, status: '200' }]);
    assert.deepEqual(members(), [S.phone, A, B, C].sort());
    // adding a member twice: WhatsApp's per-number answer, not a failure of the call
    const again = await api().POST('/api/sessions/{id}/groups/{jid}/participants', {
      params: { path: { id: S.id, jid } },
      body: { action: 'add', participants: [C] },
    });
    assert.deepEqual(again.data!.results, [{ phone: C, status: '409' }]);

    const list = await api().GET('/api/sessions/{id}/groups', { params: { path: { id: S.id } } });
    assert.equal(list.response.status, 200, JSON.stringify(list.error));
    const listed = list.data!.groups.find((g) => g.jid === jid);
    assert.equal(listed?.subject, 'Order 42');
    assert.equal(listed?.size, 4);

    const meta = await api().GET('/api/sessions/{id}/groups/{jid}', { params: { path: { id: S.id, jid } } });
    assert.equal(meta.response.status, 200, JSON.stringify(meta.error));
    assert.equal(meta.data!.group.jid, jid);
    assert.deepEqual(meta.data!.group.participants.map((p) => p.phone).sort(), [S.phone, A, B, C].sort());
    assert.ok(
      meta.data!.group.participants.every((p) => p.jid === `${p.phone}@s.whatsapp.net`),
      'members are listed by their addresses',
    );
    // the bare group id is accepted in the path too
    const bare = await api().GET('/api/sessions/{id}/groups/{jid}', {
      params: { path: { id: S.id, jid: jid.replace('@g.us', '') } },
    });
    assert.equal(bare.data?.group.jid, jid);
  });

  it('text and an image sent to the group reach every member, each decrypting it itself', async () => {
    const before = (await suite.stack.call('GET', `/api/anti-ban/sessions/${S.id}/limits`, undefined, TENANT_KEY)).body;
    const text = await suite.stack.call(
      'POST',
      '/api/send',
      { sessionId: S.id, to: jid, text: 'hello group' },
      TENANT_KEY,
    );
    assert.equal(text.status, 202, JSON.stringify(text.body));
    const image = png(160, 120);
    const form = new FormData();
    form.append('file', new Blob([image], { type: 'image/png' }), 'photo.png');
    const up = await fetch(`${suite.stack.apiUrl}/api/media`, {
      method: 'POST',
      headers: { 'x-api-key': TENANT_KEY },
      body: form,
    });
    const upBody = (await up.json()) as { uploadId: string };
    assert.equal(up.status, 201, JSON.stringify(upBody));
    const img = await suite.stack.call(
      'POST',
      '/api/send',
      { sessionId: S.id, to: jid, type: 'image', caption: 'the photo', media: { uploadId: upBody.uploadId } },
      TENANT_KEY,
    );
    assert.equal(img.status, 202, JSON.stringify(img.body));

    const outbound = () => simGroup().messages.filter((m) => m.direction === 'outbound');
    await waitFor('two group messages at the simulator', () => outbound().length >= 2, 60_000);
    const [first, second] = outbound();
    for (const m of [first!, second!]) {
      assert.equal(m.from, S.phone);
      assert.deepEqual(m.received.map((r) => r.participant).sort(), [A, B, C].sort(), 'one copy per other member');
      for (const r of m.received) assert.equal(r.decrypted, true, `${r.participant} decrypted the message`);
    }
    for (const r of first!.received) assert.equal(r.text, 'hello group');
    for (const r of second!.received) {
      assert.equal(r.media?.verified, true, `${r.participant}: ${r.media?.error}`);
      assert.equal(r.media?.sha256, sha(image), `${r.participant}: the image byte-identical`);
      assert.equal(r.media?.caption, 'the photo');
    }
    // the control API shows the same
    const shown = (await (
      await fetch(`${suite.control.url}/groups/${encodeURIComponent(jid)}`)
    ).json()) as GroupSummary;
    assert.equal(shown.messages.filter((m) => m.direction === 'outbound').length, 2);

    for (const id of [text.body.messageId, img.body.messageId]) {
      const rec = await waitFor(`${id} sent`, async () => {
        const r = await suite.stack.call('GET', `/api/messages/${id}`, undefined, TENANT_KEY);
        return ['sent', 'delivered', 'read'].includes(r.body.status) ? r.body : null;
      });
      assert.equal(rec.to, jid);
    }
    // counted against the session's anti-ban budget like 1:1 sends
    const afterLimits = (await suite.stack.call('GET', `/api/anti-ban/sessions/${S.id}/limits`, undefined, TENANT_KEY))
      .body;
    assert.equal(afterLimits.sentInWindow, before.sentInWindow + 2);
  });

  it("members' messages reach the customer webhook with the group and the member", async () => {
    const post = async (from: string, text: string) => {
      const body = await suite.contact<{ id: string; deliveredTo: string[] }>(
        `/groups/${encodeURIComponent(jid)}/inbound`,
        { from, text },
      );
      assert.deepEqual(body.deliveredTo, [S.phone]);
      return body.id;
    };
    // A's first message carries its sender key; the second one only the skmsg; then B's first
    const sent = [
      { from: A, text: 'hi from A', id: await post(A, 'hi from A') },
      { from: A, text: 'A again', id: await post(A, 'A again') },
      { from: B, text: 'and B', id: await post(B, 'and B') },
    ];
    for (const m of sent) {
      const d = await waitFor(
        `message.received ${m.id}`,
        () => receiver.of('message.received').find((x) => x.json.data.messageId === m.id),
        30_000,
      );
      assert.equal(d.json.data.from, m.from, 'from: the member who wrote');
      assert.equal(d.json.data.fromPhone, m.from);
      assert.equal(d.json.data.group, jid, 'group: the group JID');
      assert.equal(d.json.data.text, m.text);
    }
    // marking one read: a group read receipt names the member who wrote
    const read = await suite.stack.call(
      'POST',
      `/api/sessions/${S.id}/read`,
      { messageIds: [sent[2]!.id] },
      TENANT_KEY,
    );
    assert.equal(read.status, 202, JSON.stringify(read.body));
    const receipt = await waitFor('the read receipt at the simulator', () =>
      suite.stack.sim.readReceipts(S.phone).find((r) => r.messageIds.includes(sent[2]!.id)),
    );
    assert.equal(receipt.contact, jid.replace('@g.us', ''));
    assert.equal(receipt.participant, B);
  });

  it('removes a member; a member added later gets the sender key with the next message', async () => {
    const removed = await api().POST('/api/sessions/{id}/groups/{jid}/participants', {
      params: { path: { id: S.id, jid } },
      body: { action: 'remove', participants: [C] },
    });
    assert.equal(removed.response.status, 200, JSON.stringify(removed.error));
    assert.deepEqual(removed.data!.results, [{ phone: C, status: '200' }]);
    assert.deepEqual(members(), [S.phone, A, B].sort());
    // the next message goes to the members left (Baileys reads the members from WhatsApp before each group send)
    const r = await suite.stack.call('POST', '/api/send', { sessionId: S.id, to: jid, text: 'without C' }, TENANT_KEY);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const m = await waitFor(
      'the message after the removal at the simulator',
      () => simGroup().messages.find((x) => x.direction === 'outbound' && x.text === 'without C'),
      60_000,
    );
    assert.deepEqual(m.received.map((x) => [x.participant, x.decrypted, x.text]).sort(), [
      [A, true, 'without C'],
      [B, true, 'without C'],
    ]);
    // D joins after the group's sender key went out: the next send distributes it to D's device only
    const added = await api().POST('/api/sessions/{id}/groups/{jid}/participants', {
      params: { path: { id: S.id, jid } },
      body: { action: 'add', participants: [D] },
    });
    assert.deepEqual(added.data?.results, [{ phone: D, status: '200' }]);
    const r2 = await suite.stack.call('POST', '/api/send', { sessionId: S.id, to: jid, text: 'welcome D' }, TENANT_KEY);
    assert.equal(r2.status, 202, JSON.stringify(r2.body));
    const m2 = await waitFor(
      'the message after D joined at the simulator',
      () => simGroup().messages.find((x) => x.direction === 'outbound' && x.text === 'welcome D'),
      60_000,
    );
    assert.deepEqual(m2.received.map((x) => [x.participant, x.decrypted, x.text]).sort(), [
      [A, true, 'welcome D'],
      [B, true, 'welcome D'],
      [D, true, 'welcome D'],
    ]);
    const removeD = await api().POST('/api/sessions/{id}/groups/{jid}/participants', {
      params: { path: { id: S.id, jid } },
      body: { action: 'remove', participants: [D] },
    });
    assert.deepEqual(removeD.data?.results, [{ phone: D, status: '200' }]);
  });

  it("another tenant's key gets 404 on every group route; bad input is a 400 naming the field", async () => {
    const o = other();
    const path = { id: S.id, jid };
    const answers = [
      await o.GET('/api/sessions/{id}/groups', { params: { path: { id: S.id } } }),
      await o.GET('/api/sessions/{id}/groups/{jid}', { params: { path } }),
      await o.POST('/api/sessions/{id}/groups', {
        params: { path: { id: S.id } },
        body: { subject: 'x', participants: [A] },
      }),
      await o.POST('/api/sessions/{id}/groups/{jid}/participants', {
        params: { path },
        body: { action: 'add', participants: [C] },
      }),
      await o.POST('/api/sessions/{id}/groups/{jid}/leave', { params: { path } }),
    ];
    for (const a of answers) {
      assert.equal(a.response.status, 404, JSON.stringify(a.error));
      assert.equal((a.error as { error: { code: string } }).error.code, 'SESSION_NOT_FOUND');
    }
    assert.deepEqual(members(), [S.phone, A, B].sort(), 'nothing changed');
    const bad = await suite.stack.call('GET', `/api/sessions/${S.id}/groups/not-a-group`, undefined, TENANT_KEY);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'jid');
    const noSubject = await suite.stack.call('POST', `/api/sessions/${S.id}/groups`, { participants: [A] }, TENANT_KEY);
    assert.equal(noSubject.status, 400);
    assert.equal(noSubject.body.error.field, 'subject');
    const badAction = await suite.stack.call(
      'POST',
      `/api/sessions/${S.id}/groups/${jid}/participants`,
      { action: 'promote', participants: [A] },
      TENANT_KEY,
    );
    assert.equal(badAction.status, 400);
    assert.equal(badAction.body.error.field, 'action');
    // a group the session was never in
    const unknown = await api().GET('/api/sessions/{id}/groups/{jid}', {
      params: { path: { id: S.id, jid: '120363000000000000@g.us' } },
    });
    assert.equal(unknown.response.status, 404);
    assert.equal((unknown.error as { error: { code: string } }).error.code, 'GROUP_NOT_FOUND');
  });

  it("a young number's group message refused with 479 ends failed with the reason; nothing reaches the members", async () => {
    const delivered = simGroup().messages.length;
    suite.stack.sim.coldOutreach = { youngForMs: 7 * 24 * 3_600_000 };
    try {
      const r = await suite.stack.call('POST', '/api/send', { sessionId: S.id, to: jid, text: 'cold' }, TENANT_KEY);
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const rec = await waitFor(
        'the refused group message failed',
        async () => {
          const m = await suite.stack.call('GET', `/api/messages/${r.body.messageId}`, undefined, TENANT_KEY);
          return m.body.status === 'failed' ? m.body : null;
        },
        30_000,
      );
      assert.equal(rec.reason, 'rejected_cold_outreach');
      assert.equal(suite.stack.sim.phones().find((p) => p.phone === S.phone)?.rejected479, 1);
      assert.equal(simGroup().messages.length, delivered, 'no member got it');
    } finally {
      suite.stack.sim.coldOutreach = null;
    }
  });

  it('a session that is not connected: 409 naming the session', async () => {
    // one live session per tenant: the other tenant's
    const api2 = other();
    const provisioned = await api2.POST('/api/sessions/provision', { body: { sessionId: 'groups2' } });
    assert.equal(provisioned.response.status, 201, JSON.stringify(provisioned.error));
    const list = await api2.GET('/api/sessions/{id}/groups', { params: { path: { id: 'groups2' } } });
    assert.equal(list.response.status, 409);
    assert.equal((list.error as { error: { code: string; field: string } }).error.code, 'SESSION_NOT_CONNECTED');
    const del = await suite.stack.call('DELETE', '/api/sessions/groups2', undefined, OTHER_KEY);
    assert.ok(del.status < 300, JSON.stringify(del.body));
  });

  it('leaves the group: gone from the list, its metadata 404', async () => {
    const left = await api().POST('/api/sessions/{id}/groups/{jid}/leave', { params: { path: { id: S.id, jid } } });
    assert.equal(left.response.status, 200, JSON.stringify(left.error));
    assert.deepEqual(left.data, { sessionId: S.id, jid, left: true });
    assert.deepEqual(members(), [A, B].sort());
    assert.ok(simGroup().formerParticipants.includes(S.phone));
    const list = await api().GET('/api/sessions/{id}/groups', { params: { path: { id: S.id } } });
    assert.equal(list.response.status, 200);
    assert.equal(
      list.data!.groups.find((g) => g.jid === jid),
      undefined,
    );
    const meta = await api().GET('/api/sessions/{id}/groups/{jid}', { params: { path: { id: S.id, jid } } });
    assert.equal(meta.response.status, 404);
    assert.equal((meta.error as { error: { code: string } }).error.code, 'GROUP_NOT_FOUND');
  });

  it('a group a contact created with the session in it: listed, its metadata, messages to it', async () => {
    const made = await suite.contact<GroupSummary>('/groups', {
      creator: A,
      subject: 'From A',
      participants: [S.phone, B],
    });
    const list = await api().GET('/api/sessions/{id}/groups', { params: { path: { id: S.id } } });
    assert.equal(list.response.status, 200, JSON.stringify(list.error));
    assert.deepEqual(
      list.data!.groups.map((g) => g.jid),
      [made.jid],
      'the group it left is gone, the new one is there',
    );
    const meta = await api().GET('/api/sessions/{id}/groups/{jid}', {
      params: { path: { id: S.id, jid: made.jid } },
    });
    assert.equal(meta.data?.group.owner, A);
    assert.equal(meta.data?.group.participants.find((p) => p.phone === S.phone)?.admin, null, 'a plain member');
    // not an admin: WhatsApp refuses adding anyone
    const add = await api().POST('/api/sessions/{id}/groups/{jid}/participants', {
      params: { path: { id: S.id, jid: made.jid } },
      body: { action: 'add', participants: [C] },
    });
    assert.equal(add.response.status, 403, JSON.stringify(add.error));
    assert.equal((add.error as { error: { code: string } }).error.code, 'GROUP_FORBIDDEN');
    assert.deepEqual(
      suite.stack.sim
        .group(made.jid)
        ?.participants.map((p) => p.phone)
        .sort(),
      [S.phone, A, B].sort(),
    );
    const r = await suite.stack.call(
      'POST',
      '/api/send',
      { sessionId: S.id, to: made.jid, text: 'hi A and B' },
      TENANT_KEY,
    );
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const m = await waitFor(
      'the message to the contact-made group',
      () => suite.stack.sim.group(made.jid)?.messages.find((x) => x.text === 'hi A and B'),
      60_000,
    );
    assert.deepEqual(m.received.map((x) => [x.participant, x.decrypted]).sort(), [
      [A, true],
      [B, true],
    ]);
  });

  it("a LID-addressed group: members by LID with their numbers; sends decrypt, a member's message names its number", async () => {
    const made = await suite.contact<GroupSummary>('/groups', {
      creator: B,
      subject: 'LID group',
      participants: [S.phone, A],
      addressingMode: 'lid',
    });
    const meta = await api().GET('/api/sessions/{id}/groups/{jid}', {
      params: { path: { id: S.id, jid: made.jid } },
    });
    assert.equal(meta.response.status, 200, JSON.stringify(meta.error));
    assert.equal(meta.data!.group.owner, B);
    assert.deepEqual(meta.data!.group.participants.map((p) => p.phone).sort(), [S.phone, A, B].sort());
    assert.ok(
      meta.data!.group.participants.every((p) => p.jid.endsWith('@lid')),
      JSON.stringify(meta.data!.group.participants),
    );
    const r = await suite.stack.call(
      'POST',
      '/api/send',
      { sessionId: S.id, to: made.jid, text: 'hi by LID' },
      TENANT_KEY,
    );
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const m = await waitFor(
      'the message to the LID group',
      () => suite.stack.sim.group(made.jid)?.messages.find((x) => x.text === 'hi by LID'),
      60_000,
    );
    assert.deepEqual(m.received.map((x) => [x.participant, x.decrypted]).sort(), [
      [A, true],
      [B, true],
    ]);
    const posted = await suite.contact(`/groups/${encodeURIComponent(made.jid)}/inbound`, {
      from: A,
      text: 'A by LID',
    });
    const d = await waitFor(
      `message.received ${posted.id}`,
      () => receiver.of('message.received').find((x) => x.json.data.messageId === posted.id),
      30_000,
    );
    assert.equal(d.json.data.group, made.jid);
    assert.equal(d.json.data.from, A, 'the number that came with the LID');
    assert.equal(d.json.data.fromPhone, A);
    assert.equal(d.json.data.text, 'A by LID');
  });
});
