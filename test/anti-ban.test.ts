/**
 * The product's main promise (issue 7): the simulator's anti-spam model bans a number that sends unpaced, while the
 * same load through the dispatcher keeps a second number alive. Also: burst detection, the per-tenant rate limit
 * (429 + Retry-After), pacing overrides, and the promotion rules and jitter as pure functions.
 *
 * Simulator rule used: a young number (linked < 7 days) that writes to more than 10 new contacts within an hour
 * is banned, as is any number sending more than 20 messages a minute. The dispatcher's rolling window is one
 * real hour here (ANTIBAN_WINDOW_MS = 3 600 000) and the cold cap is 10, the mean gap 400 ms.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { promotion } from '../common/anti-ban.js';
import { loadConfig } from '../common/config.js';
import { OutboxStore } from '../state/outbox.js';
import { jitteredGap } from '../workflows/dispatcher.js';
import { terminateDispatchers, connectedSession, describeGaps, gaps, waitForQuiet } from './helpers/messaging.js';
import { API_KEY, Stack, TENANT_KEY, sleep, waitFor } from './helpers/stack.js';

const GAP_MS = 400;
const SLOWDOWN = 3;

describe('anti-ban: unpaced sending gets banned, the dispatcher keeps the number alive', () => {
  let stack: Stack;
  const RAW = { id: 'raw1', phone: '15550008001' };
  const PACED = { id: 'paced1', phone: '15550008002' };
  const bans: Array<{ phone: string; reason: string }> = [];

  before(async () => {
    stack = await new Stack({
      proxies: 2,
      simOptions: { antiSpam: { maxPerMinute: 20, maxNewContactsPerHourYoung: 10, youngForMs: 7 * 86_400_000 } },
      extraEnv: {
        ANTIBAN_WINDOW_MS: '3600000',
        ANTIBAN_COLD_GAP_MS: String(GAP_MS),
        ANTIBAN_IDLE_POLL_MS: '500',
        ANTIBAN_BURST_COUNT: '20',
        ANTIBAN_BURST_WINDOW_MS: '10000',
        ANTIBAN_BURST_PAUSE_MS: '60000',
        ANTIBAN_BURST_SLOWDOWN: String(SLOWDOWN),
        RATE_LIMIT_MAX_REQUESTS: '30',
        RATE_LIMIT_WINDOW_MS: '60000',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
      },
    }).start();
    stack.sim.events.on('banned', (e: { phone: string; reason: string }) => bans.push(e));
    await connectedSession(stack, RAW.id, RAW.phone);
    await connectedSession(stack, PACED.id, PACED.phone);
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [RAW.id, PACED.id]);
    await stack?.stop();
  });

  it('25 messages to new contacts: straight into the outbox → banned; through POST /api/send → alive', async () => {
    const load = Array.from({ length: 25 }, (_, i) => ({ to: `1555660${String(i).padStart(4, '0')}`, n: i }));

    // 1. Unpaced: the same 25 messages pushed straight into the worker outbox (what a gateway without a queue does).
    const outbox = new OutboxStore(stack.redis, stack.prefix);
    for (const m of load) {
      await outbox.enqueue(RAW.id, { messageId: `raw-${m.n}`, to: m.to, text: `raw #${m.n}` });
    }
    await waitFor('the unpaced number to be banned', () => bans.some((b) => b.phone === RAW.phone), 30_000);
    const rawSent = stack.sim.messages(RAW.phone).length;
    const rawBan = bans.find((b) => b.phone === RAW.phone)!;
    console.log(`unpaced: banned after ${rawSent} messages (${rawBan.reason})`);
    assert.ok(stack.sim.phones().find((p) => p.phone === RAW.phone)!.banned);

    // 2. Paced: the same load through the gateway and the dispatcher.
    const ids: string[] = [];
    for (const m of load) {
      const r = await stack.call('POST', '/api/send', { sessionId: PACED.id, to: m.to, text: `paced #${m.n}` });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      ids.push(r.body.messageId);
    }
    // 25 enqueues in well under 10 s: a burst (more than 20) → the session is slowed down ×3 and it is visible
    const lim = await stack.call('GET', `/api/anti-ban/sessions/${PACED.id}/limits`);
    assert.ok(lim.body.burstUntil > Date.now(), `burst detected: ${JSON.stringify(lim.body)}`);

    await waitFor('10 paced messages', () => stack.sim.messages(PACED.phone).length >= 10, 40_000);
    // the other 15 wait for the next window: nothing queued or in flight any more, and for two slowed-down gaps
    // (when an 11th hand-off would be due) none follows
    await waitForQuiet(stack, [PACED.id], { allowScheduled: true });
    await sleep(GAP_MS * SLOWDOWN * 2);
    const paced = stack.sim.messages(PACED.phone);
    assert.equal(paced.length, 10, 'the cold cap (10 per rolling window) holds');
    assert.deepEqual(
      paced.map((m) => m.text),
      load.slice(0, 10).map((m) => `paced #${m.n}`),
    );
    assert.equal(bans.filter((b) => b.phone === PACED.phone).length, 0, 'the paced number is not banned');
    assert.equal(stack.sim.phones().find((p) => p.phone === PACED.phone)!.banned, false);
    assert.equal((await stack.status(PACED.id)).status, 'connected');
    const records = await Promise.all(ids.map(async (id) => (await stack.call('GET', `/api/messages/${id}`)).body));
    for (const m of records.slice(10)) {
      assert.equal(m.status, 'scheduled');
      assert.ok(m.plannedAt >= paced[0]!.at + 3_600_000 - 1000, 'planned for the next window (one hour later)');
    }
    const released = records.slice(0, 10).map((m) => m.dispatchedAt as number);
    const g = gaps(released);
    const burstStart = (lim.body.burstUntil as number) - 60_000;
    // a gap is planned at the hand-off before it: those planned after the burst was detected are slowed down ×3
    const slowed = g.filter((_, i) => released[i]! >= burstStart);
    console.log(`gaps planned before the burst was detected: ${g.length - slowed.length}`);
    console.log(describeGaps('paced gaps during the burst slowdown', slowed, GAP_MS * SLOWDOWN));
    assert.ok(slowed.length >= 7);
    for (const x of slowed) assert.ok(x >= GAP_MS * SLOWDOWN * 0.7 - 60, `slowed-down gap ${x}`);
    console.log(`paced: ${paced.length} sent, ${records.length - 10} scheduled for the next window, not banned`);
  });

  it('per-tenant rate limit: the 31st message in a minute → 429 with Retry-After', async () => {
    // 25 already accepted in this window by the test above; 5 more fit
    for (let i = 0; i < 5; i++) {
      const r = await stack.call('POST', '/api/send', { sessionId: PACED.id, to: '15556619999', text: `more ${i}` });
      assert.equal(r.status, 202, `request ${26 + i}: ${JSON.stringify(r.body)}`);
    }
    const res = await fetch(`${stack.apiUrl}/api/send`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY },
      body: JSON.stringify({ sessionId: PACED.id, to: '15556619999', text: 'one too many' }),
    });
    assert.equal(res.status, 429);
    const retryAfter = Number(res.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'RATE_LIMITED');
    assert.match(body.error.message, /at most 30 messages per 60 s/);
  });

  it('manual overrides: validated, admin only, reflected in the effective limits', async () => {
    const url = `/api/anti-ban/sessions/${PACED.id}/limits`;
    const bad = await stack.call('PUT', url, { gapMs: 5 });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'gapMs');
    assert.equal((await stack.call('PUT', url, { level: 'hot' }, TENANT_KEY)).status, 403);
    assert.equal((await stack.call('PUT', '/api/anti-ban/sessions/nope/limits', { level: 'hot' })).status, 404);
    const ok = await stack.call('PUT', url, { level: 'warm', autoPromote: false });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.limits.level, 'warm');
    assert.equal(ok.body.limits.dailyCap, 50);
    assert.equal(ok.body.limits.autoPromote, false);
    const get = await stack.call('GET', url);
    assert.deepEqual(get.body.limits, ok.body.limits);
    // a warm cap of 50 releases the scheduled messages
    await waitFor('more messages once the cap is raised', () => stack.sim.messages(PACED.phone).length > 10, 20_000);
  });
});

describe('anti-ban rules (pure)', () => {
  const config = loadConfig({
    API_KEY: 'a'.repeat(32),
    WEBHOOK_SECRET: 'b'.repeat(32),
    TEMPORAL_CODEC_KEYS: `k1:${'A'.repeat(43)}=`,
  });
  const DAY = 86_400_000;

  it('defaults: cold 10/day, warm 50/day, hot 200/day', () => {
    assert.deepEqual([config.ANTIBAN_COLD_DAILY, config.ANTIBAN_WARM_DAILY, config.ANTIBAN_HOT_DAILY], [10, 50, 200]);
    assert.equal(config.ANTIBAN_WINDOW_MS, DAY);
    assert.equal(config.ANTIBAN_JITTER_PERCENT, 30);
  });

  it('promotion: cold → warm after 3 days, 20 sent, ≥90% delivered; warm → hot after 14 days, 100 sent', () => {
    const now = 100 * DAY;
    const s = (ageDays: number, released: number, delivered: number) => ({
      firstConnectedAt: now - ageDays * DAY,
      released,
      delivered,
      failed: 0,
    });
    assert.equal(promotion(config, 'cold', s(2.9, 50, 50), now), null, 'too young');
    assert.equal(promotion(config, 'cold', s(4, 19, 19), now), null, 'too few messages');
    assert.equal(promotion(config, 'cold', s(4, 20, 17), now), null, '85% delivered is not enough');
    assert.equal(promotion(config, 'cold', s(4, 20, 18), now)?.to, 'warm');
    assert.equal(promotion(config, 'warm', s(10, 200, 200), now), null, 'warm needs 14 days');
    assert.equal(promotion(config, 'warm', s(15, 99, 99), now), null, 'warm needs 100 messages');
    assert.equal(promotion(config, 'warm', s(15, 100, 95), now)?.to, 'hot');
    assert.equal(promotion(config, 'hot', s(100, 1000, 1000), now), null, 'hot is the top');
    assert.equal(promotion(config, 'cold', { ...s(4, 20, 20), firstConnectedAt: null }, now), null);
  });

  it('jitter: uniform within ±30% of the mean', () => {
    const xs = Array.from({ length: 20_000 }, () => jitteredGap(1000, 30));
    assert.ok(Math.min(...xs) >= 700 && Math.max(...xs) <= 1300);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(Math.abs(mean - 1000) < 10, `mean ${mean}`);
    assert.ok(Math.min(...xs) < 710 && Math.max(...xs) > 1290, 'the whole range is used');
  });
});

/**
 * Pacing, not the cap, keeps a number alive (issue 13). The simulator bans more than 5 messages in any 5 s; the
 * dispatcher's cap (30 per window) is far above that, so the cap alone would not protect the number. The same 12
 * messages straight into the outbox → banned; through the dispatcher with 2 s ± 30% gaps → all 12 sent, alive.
 */
describe('anti-ban: pacing keeps a number alive with a cap above the ban threshold', () => {
  let stack: Stack;
  const RAW = { id: 'raw2', phone: '15550008011' };
  const PACED = { id: 'paced2', phone: '15550008012' };
  const PACE_GAP_MS = 2000;
  const bans: Array<{ phone: string; reason: string }> = [];

  before(async () => {
    stack = await new Stack({
      proxies: 2,
      simOptions: { antiSpam: { maxPerMinute: 5, rateWindowMs: 5000, maxNewContactsPerHourYoung: 1000 } },
      extraEnv: {
        ANTIBAN_WINDOW_MS: '3600000',
        ANTIBAN_COLD_DAILY: '30',
        ANTIBAN_COLD_GAP_MS: String(PACE_GAP_MS),
        ANTIBAN_IDLE_POLL_MS: '500',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
      },
    }).start();
    stack.sim.events.on('banned', (e: { phone: string; reason: string }) => bans.push(e));
    await connectedSession(stack, RAW.id, RAW.phone);
    await connectedSession(stack, PACED.id, PACED.phone);
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [RAW.id, PACED.id]);
    await stack?.stop();
  });

  it('12 messages: unpaced → banned; paced (cap 30 > threshold 5 per 5 s) → all sent, alive', async () => {
    const load = Array.from({ length: 12 }, (_, i) => ({ to: `1555661${String(i).padStart(4, '0')}`, n: i }));
    // Unpaced: the worker keeps a session's shortest gap even for items put straight into its outbox, so the
    // unpaced session gets the smallest gap there is.
    const unpaced = await stack.call('PUT', `/api/anti-ban/sessions/${RAW.id}/limits`, { gapMs: 10 });
    assert.equal(unpaced.status, 200, JSON.stringify(unpaced.body));
    const outbox = new OutboxStore(stack.redis, stack.prefix);
    for (const m of load) await outbox.enqueue(RAW.id, { messageId: `raw2-${m.n}`, to: m.to, text: `raw #${m.n}` });
    await waitFor('the unpaced number to be banned', () => bans.some((b) => b.phone === RAW.phone), 30_000);
    console.log(`unpaced: banned after ${stack.sim.messages(RAW.phone).length} messages`);

    const ids: string[] = [];
    for (const m of load) {
      const r = await stack.call('POST', '/api/send', { sessionId: PACED.id, to: m.to, text: `paced #${m.n}` });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      ids.push(r.body.messageId);
    }
    await waitFor('12 paced messages', () => stack.sim.messages(PACED.phone).length >= 12, 60_000);
    const paced = stack.sim.messages(PACED.phone);
    assert.equal(paced.length, 12, 'every message sent: the cap did not stop any');
    assert.equal(bans.filter((b) => b.phone === PACED.phone).length, 0, 'the paced number is not banned');
    assert.equal((await stack.status(PACED.id)).status, 'connected');
    // the hand-off gaps the dispatcher planned (arrival gaps add the worker's poll and the network)
    const records = await Promise.all(ids.map(async (id) => (await stack.call('GET', `/api/messages/${id}`)).body));
    const g = gaps(records.map((m) => m.dispatchedAt as number));
    console.log(describeGaps('paced hand-off gaps', g, PACE_GAP_MS));
    for (const x of g) assert.ok(x >= PACE_GAP_MS * 0.7 - 60, `gap ${x} ms`);
  });
});
