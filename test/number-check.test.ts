/**
 * Number checks (issue 15 item 4) on the real stack: POST /api/contacts/check → worker command → Baileys 7 usync
 * query (contact + LID protocols) through the session's SOCKS5 proxy → the simulator's contact registry. Cached in
 * Redis, limited per session and minute (429 + Retry-After), and POST /api/send refuses a number known absent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { API_KEY, Stack, TENANT_KEY } from './helpers/stack.js';

const PER_MINUTE = 5;

describe('POST /api/contacts/check', () => {
  let stack: Stack;
  const S = { id: 'check1', phone: '15550016001' };
  const PRESENT = '15557016101';
  const ABSENT = '15557016102';

  before(async () => {
    stack = await new Stack({
      proxies: 1,
      extraEnv: {
        CONTACT_CHECK_PER_MINUTE: String(PER_MINUTE),
        CONTACT_CHECK_TIMEOUT_MS: '10000',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
      },
    }).start();
    await connectedSession(stack, S.id, S.phone);
    stack.sim.setOnWhatsApp(ABSENT, false);
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [S.id]);
    await stack?.stop();
  });

  const check = (body: unknown, key?: string) => stack.call('POST', '/api/contacts/check', body, key);
  const cacheKeys = () => stack.redis.keys(`${stack.prefix}contact:wa:*`);

  it('bad input → 4xx naming the field; nothing looked up, cached or counted', async () => {
    const cases: Array<[string, unknown, number, string, RegExp]> = [
      ['empty list', { sessionId: S.id, phones: [] }, 400, 'phones', /must not be empty/],
      ['no list', { sessionId: S.id }, 400, 'phones', /phones is required/],
      ['malformed phone', { sessionId: S.id, phones: [PRESENT, '12ab'] }, 400, 'phones.1', /international number/],
      [
        'over the batch limit',
        { sessionId: S.id, phones: Array.from({ length: 51 }, (_, i) => `155500000${String(i).padStart(2, '0')}`) },
        400,
        'phones',
        /at most 50/,
      ],
      ['no session', { phones: [PRESENT] }, 400, 'sessionId', /sessionId is required/],
      ['unknown field', { sessionId: S.id, phones: [PRESENT], x: 1 }, 400, 'x', /unknown field/],
      ['unknown session', { sessionId: 'nope', phones: [PRESENT] }, 404, 'sessionId', /not found/],
    ];
    for (const [name, body, status, field, message] of cases) {
      const r = await check(body);
      assert.equal(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.field, field, name);
      assert.match(r.body.error.message, message, name);
    }
    const otherTenant = await check({ sessionId: S.id, phones: [PRESENT] }, TENANT_KEY);
    assert.equal(otherTenant.status, 404, "another tenant's session answers like a missing one");
    assert.equal(otherTenant.body.error.field, 'sessionId');
    assert.deepEqual(stack.sim.lookups(S.phone), [], 'no lookup reached WhatsApp');
    assert.deepEqual(await cacheKeys(), [], 'nothing cached');
    assert.equal(await stack.redis.exists(`${stack.prefix}ratelimit:contactcheck:${S.id}`), 0, 'nothing counted');
  });

  it('known and unknown numbers answered from the registry (JID, LID); the second call is served from the cache', async () => {
    const first = await check({ sessionId: S.id, phones: [PRESENT, ABSENT, PRESENT] });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const [p, a, again] = first.body.results;
    assert.equal(p.phone, PRESENT);
    assert.equal(p.onWhatsApp, true);
    assert.equal(p.jid, `${PRESENT}@s.whatsapp.net`);
    assert.match(p.lid, /^\d+@lid$/);
    assert.equal(p.cached, false);
    assert.deepEqual(a, { phone: ABSENT, onWhatsApp: false, jid: null, lid: null, cached: false });
    assert.deepEqual(again, p, 'a repeated number gets the same answer');
    const lookups = stack.sim.lookups(S.phone);
    assert.equal(lookups.length, 1, 'one usync query for the batch');
    assert.deepEqual(lookups[0]!.numbers.sort(), [PRESENT, ABSENT].sort(), 'each number asked once');

    const second = await check({ sessionId: S.id, phones: [ABSENT, PRESENT] });
    assert.equal(second.status, 200);
    assert.deepEqual(
      second.body.results.map((r: { phone: string; onWhatsApp: boolean; cached: boolean }) => [
        r.phone,
        r.onWhatsApp,
        r.cached,
      ]),
      [
        [ABSENT, false, true],
        [PRESENT, true, true],
      ],
    );
    assert.equal(stack.sim.lookups(S.phone).length, 1, 'the second call did not reach WhatsApp');
    const ttl = await stack.redis.pttl(`${stack.prefix}contact:wa:${PRESENT}`);
    assert.ok(ttl > 0, `cached with a TTL (${ttl} ms)`);
    const limits = await stack.call('GET', `/api/anti-ban/sessions/${S.id}/limits`);
    assert.equal(limits.body.stats.lookups, 2, 'lookups counted in the session anti-ban stats');
  });

  it('at most N lookups per minute per session: 429 with Retry-After, nothing sent; cached numbers still answered', async () => {
    // 2 of 5 used by the previous test
    const ok = await check({ sessionId: S.id, phones: ['15557016201', '15557016202', '15557016203'] });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const before = stack.sim.lookups(S.phone).length;
    const res = await fetch(`${stack.apiUrl}/api/contacts/check`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ sessionId: S.id, phones: ['15557016204'] }),
    });
    const limited = { status: res.status, body: (await res.json()) as { error: { code: string } } };
    assert.equal(limited.status, 429, JSON.stringify(limited.body));
    assert.equal(limited.body.error.code, 'RATE_LIMITED');
    const retryAfter = Number(res.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} s`);
    assert.equal(stack.sim.lookups(S.phone).length, before, 'the refused request reached nobody');
    assert.equal(await stack.redis.exists(`${stack.prefix}contact:wa:15557016204`), 0, 'nothing cached');
    const cachedOnly = await check({ sessionId: S.id, phones: [PRESENT, ABSENT] });
    assert.equal(cachedOnly.status, 200, 'cache hits cost nothing');
  });

  it('POST /api/send refuses a number known not to be on WhatsApp (400, field to); a known one is accepted', async () => {
    const refused = await stack.call('POST', '/api/send', { sessionId: S.id, to: ABSENT, text: 'hello?' });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'NOT_ON_WHATSAPP');
    assert.equal(refused.body.error.field, 'to');
    assert.equal(await stack.redis.llen(`${stack.prefix}dispatch:pending:${S.id}`), 0, 'nothing queued');
    const accepted = await stack.call('POST', '/api/send', { sessionId: S.id, to: PRESENT, text: 'hello' });
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  });
});
