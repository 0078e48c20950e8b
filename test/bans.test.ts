/**
 * Bans and locks as WhatsApp signals them (issue 12 item 8): a permanent ban (406), a temporary one (402 with its
 * end) and a locked account (403) each park the session `failed` with a reason that says which, release its proxy
 * slot, and raise one alert. Real stack: API, orchestrator, Temporal, Redis, the real wa-worker (Baileys 7) through
 * SOCKS5 proxies, the simulator, a local fake of Telegram's Bot API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeTelegram } from './helpers/fake-telegram.js';
import { connectedSession } from './helpers/messaging.js';
import { Stack, waitFor } from './helpers/stack.js';

describe('bans and locks park the session with the right reason and one alert', () => {
  let stack: Stack;
  let tg: FakeTelegram;
  const cases = [
    { id: 'ban406', phone: '15550009801', fault: 'ban', reason: /banned by WhatsApp \(406\)/ },
    {
      id: 'ban402',
      phone: '15550009802',
      fault: 'temp-ban',
      reason: /banned by WhatsApp for a while \(402\).*until 20/,
    },
    { id: 'lock403', phone: '15550009803', fault: 'lock', reason: /account locked by WhatsApp \(403\)/ },
  ] as const;

  before(async () => {
    tg = await FakeTelegram.start();
    stack = await new Stack({
      proxies: 1,
      extraEnv: { TELEGRAM_BOT_TOKEN: '123456:bans-token', TELEGRAM_CHAT_ID: '42', TELEGRAM_API_BASE_URL: tg.url },
    }).start();
    for (const c of cases) await connectedSession(stack, c.id, c.phone);
  });
  after(async () => {
    await stack?.stop();
    await tg?.close();
  });

  for (const c of cases) {
    it(`${c.fault}: failed with its reason, slot released, one alert`, async () => {
      const loadBefore = Object.values(await stack.proxyLoads())[0]!;
      stack.sim.fault(c.phone, c.fault);
      const st = await waitFor(`${c.id} failed`, async () => {
        const s = await stack.status(c.id);
        return s.status === 'failed' ? s : null;
      });
      assert.match(String(st.lastError), c.reason);
      await waitFor('the slot released', async () => Object.values(await stack.proxyLoads())[0] === loadBefore - 1);
      await waitFor('the alert', () => tg.texts().some((t) => t.includes(c.id) && c.reason.test(t)));
      assert.equal(tg.texts().filter((t) => t.includes(c.id) && c.reason.test(t)).length, 1, 'one failure alert');
    });
  }
});
