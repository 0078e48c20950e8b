/**
 * Human-like sending (issue 15 item 2): before each dispatched message the real wa-worker shows `composing` to the
 * recipient for a time that grows with the text (jittered, clamped to the session's bounds), sends, then `paused`.
 * Real API, orchestrator, Temporal, Redis, SOCKS5 proxy, Baileys 7 worker; the simulator records every
 * `<chatstate>` per contact.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { Stack, waitFor } from './helpers/stack.js';
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
        ANTIBAN_COLD_GAP_MS: '600',
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

  it('per-session bounds: PUT limits changes the typing time; 0/0 turns typing off; bad bounds → 400', async () => {
    const bad = await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, {
      typingMinMs: 3000,
      typingMaxMs: 1000,
    });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.error.field, 'typingMinMs');
    const tooBig = await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, { typingMaxMs: 31_000 });
    assert.equal(tooBig.status, 400);
    assert.equal(tooBig.body.error.field, 'typingMaxMs');

    const put = await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, {
      typingMinMs: 2_000,
      typingMaxMs: 2_200,
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.limits.typingMinMs, 2_000);
    assert.equal(put.body.limits.typingMaxMs, 2_200);
    const slow = { to: '15557015101', text: `slow ${stack.id}` };
    await send(slow.to, slow.text);
    await waitFor('the slow message', () => stack.sim.messages(S.phone).some((m) => m.text === slow.text), 20_000);
    const t = typingOf(slow.to, slow.text);
    assert.ok(t.typedMs! >= 2_000 && t.typedMs! <= 2_200 + SEND_SLACK_MS, `typed ${t.typedMs} ms within 2000..2200`);

    const off = await stack.call('PUT', `/api/anti-ban/sessions/${S.id}/limits`, { typingMinMs: 0, typingMaxMs: 0 });
    assert.equal(off.status, 200);
    const quiet = { to: '15557015102', text: `no typing ${stack.id}` };
    await send(quiet.to, quiet.text);
    await waitFor('the untyped message', () => stack.sim.messages(S.phone).some((m) => m.text === quiet.text), 20_000);
    assert.deepEqual(stack.sim.presence(S.phone, quiet.to), [], 'no chat state with typing turned off');
  });
});
