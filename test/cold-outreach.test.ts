/**
 * Issue 12 item 5: WhatsApp's privacy-token gate. The simulator refuses a young number's first 1:1 message to a
 * contact that never wrote to it with `<ack class="message" error="463">`. Real stack: API + orchestrator
 * (dispatcher) processes, real Temporal and Redis, the real wa-worker (Baileys 7) through a SOCKS5 proxy.
 * Each refused message ends `failed` / `rejected_cold_outreach` (record and customer webhook), never `sent` or
 * `delivered`; three refusals in a row slow the session like a burst, with a `session.burst` event and an alert.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { Stack, TENANT_KEY, waitFor } from './helpers/stack.js';

interface Hook {
  event: string;
  data: Record<string, unknown>;
}

/** A customer endpoint that records what it receives (signatures are covered by client-webhooks.test.ts). */
async function receiver(): Promise<{ url: string; hooks: Hook[]; close: () => Promise<void> }> {
  const hooks: Hook[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hooks.push(JSON.parse(body) as Hook);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    hooks,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('463: cold 1:1 sends from a young number', () => {
  let stack: Stack;
  let hook: Awaited<ReturnType<typeof receiver>>;
  const S = { id: 'young1', phone: '15550009301' };
  const FRIEND = '15557770001';

  before(async () => {
    hook = await receiver();
    stack = await new Stack({
      proxies: 1,
      simOptions: { coldOutreach: { youngForMs: 3_600_000 } },
      extraEnv: {
        ANTIBAN_COLD_GAP_MS: '300',
        ANTIBAN_IDLE_POLL_MS: '500',
        ANTIBAN_BURST_SLOWDOWN: '7',
        CLIENT_WEBHOOK_POLL_MS: '100',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
      },
    }).start();
    const put = await stack.call(
      'PUT',
      '/api/v1/webhooks',
      { url: hook.url, secret: 'client-webhook-secret-0123456789', events: ['message.status', 'session.burst'] },
      TENANT_KEY,
    );
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await connectedSession(stack, S.id, S.phone, TENANT_KEY);
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [S.id]);
    await stack?.stop();
    await hook?.close();
  });

  it('refused sends end failed/rejected_cold_outreach, never sent or delivered; 3 in a row slow the session', async () => {
    // A contact who wrote first: the chat exists, no privacy token needed.
    await stack.sim.sendInbound(S.phone, FRIEND, 'hi, write me');
    const send = async (to: string, text: string) => {
      const r = await stack.call('POST', '/api/send', { sessionId: S.id, to, text }, TENANT_KEY);
      assert.equal(r.status, 202, JSON.stringify(r.body));
      return r.body.messageId as string;
    };
    const record = async (id: string) => (await stack.call('GET', `/api/messages/${id}`, undefined, TENANT_KEY)).body;

    const warm = await send(FRIEND, 'reply to a friend');
    await waitFor('the reply delivered', async () => (await record(warm)).status === 'delivered', 30_000);

    const cold: string[] = [];
    for (let i = 0; i < 3; i++) cold.push(await send(`1555880930${i}`, `cold #${i}`));
    for (const id of cold) {
      const m = await waitFor(
        `${id} failed`,
        async () => {
          const r = await record(id);
          return r.status === 'failed' ? r : undefined;
        },
        30_000,
      );
      assert.equal(m.reason, 'rejected_cold_outreach', JSON.stringify(m));
      assert.equal(m.sentAt, null, 'never sent');
      assert.equal(m.deliveredAt, null, 'never delivered');
    }
    const phone = stack.sim.phones().find((p) => p.phone === S.phone)!;
    assert.equal(phone.rejected463, 3, 'the simulator refused exactly the three cold sends');
    assert.deepEqual(
      stack.sim.messages(S.phone).map((m) => m.text),
      ['reply to a friend'],
      'only the reply reached a recipient',
    );

    // The customer webhook: each refusal as failed with the reason, no sent/delivered for them; one burst event.
    await waitFor('webhooks for the refusals and the slowdown', () => {
      const failed = hook.hooks.filter((h) => h.event === 'message.status' && h.data.status === 'failed');
      return (
        cold.every((id) => failed.some((h) => h.data.messageId === id)) &&
        hook.hooks.some((h) => h.event === 'session.burst')
      );
    });
    for (const id of cold) {
      const statuses = hook.hooks.filter((h) => h.event === 'message.status' && h.data.messageId === id);
      assert.deepEqual(
        statuses.map((h) => [h.data.status, h.data.reason]),
        [['failed', 'rejected_cold_outreach']],
        `${id}: ${JSON.stringify(statuses)}`,
      );
    }
    const bursts = hook.hooks.filter((h) => h.event === 'session.burst');
    assert.equal(bursts.length, 1, JSON.stringify(bursts));
    assert.equal(bursts[0]!.data.reason, 'rejected_cold_outreach');
    assert.equal(bursts[0]!.data.rejections, 3);
    assert.equal(bursts[0]!.data.slowdown, 7);

    // The dispatcher paces the session like after a burst, and the orchestrator raised the alert.
    const limits = await stack.call('GET', `/api/anti-ban/sessions/${S.id}/limits`, undefined, TENANT_KEY);
    assert.ok(limits.body.burstUntil > Date.now(), JSON.stringify(limits.body));
    const next = await send(FRIEND, 'after the refusals');
    await waitFor('the next message handed off', async () => (await record(next)).status !== 'queued', 30_000);
    await waitFor(
      'the alert',
      () => /"alert":"session_sends_rejected"/.test(readFileSync(stack.logPath('orchestrator'), 'utf8')),
      15_000,
    );
  });
});
