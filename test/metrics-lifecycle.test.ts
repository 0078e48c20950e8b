/**
 * /metrics from a real lifecycle (issue 13: the observability test alone publishes synthetic events). One session
 * goes through provision → QR → scan → connected → a sent and delivered message → an inbound message → an operator
 * restart → a proxy failover → delete, on the real stack (API, orchestrator, Temporal, Redis, wa-worker, simulator,
 * SOCKS5); the counters and gauges it moved are read back from the API's /metrics.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { parsePrometheusText } from './helpers/prom-text.js';
import { metricsAuth, Stack, waitFor } from './helpers/stack.js';

describe('metrics moved by a real session lifecycle', () => {
  let stack: Stack;
  const S = { id: 'metr1', phone: '15550009701' };

  before(async () => {
    stack = await new Stack({
      proxies: 2,
      extraEnv: { ANTIBAN_COLD_GAP_MS: '300', ANTIBAN_IDLE_POLL_MS: '500', WORKER_ENV_OUTBOX_POLL_MS: '50' },
    }).start();
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [S.id]);
    await stack?.stop();
  });

  const scrape = async () => {
    const r = await fetch(`${stack.apiUrl}/metrics`, { headers: metricsAuth });
    assert.equal(r.status, 200);
    return parsePrometheusText(await r.text());
  };

  it('provision, connect, send, receive, restart, failover, delete: each shows in /metrics', async () => {
    const m0 = await scrape();
    assert.equal(m0.value('wa_sessions', { status: 'connected' }), 0);
    await connectedSession(stack, S.id, S.phone);
    const connected = await scrape();
    assert.equal(connected.value('wa_sessions', { status: 'connected' }), 1);
    assert.ok(connected.value('wa_qr_codes_generated_total') >= 1, 'a QR was generated');
    assert.equal(connected.value('wa_proxy_slots', { state: 'used' }), 1);

    const sent = await stack.call('POST', '/api/send', { sessionId: S.id, to: '15557773001', text: 'metered' });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    await waitFor(
      'delivered',
      async () =>
        (await stack.call('GET', `/api/messages/${sent.body.messageId as string}`)).body.status === 'delivered',
      30_000,
    );
    await stack.sim.sendInbound(S.phone, '15557773002', 'hello metrics');
    // received before the restart below stops the worker that holds it
    await waitFor('the inbound message counted', async () => {
      const m = await scrape();
      return (
        m.value('wa_messages_total', { kind: 'received' }) - m0.value('wa_messages_total', { kind: 'received' }) >= 1
      );
    });

    const r = await stack.call('POST', `/api/sessions/${S.id}/restart`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await stack.waitForStatus(S.id, 'connected');

    const before = await stack.status(S.id);
    await stack.proxies.find((p) => `${p.host}:${p.port}` === before.proxy)!.close();
    await waitFor(
      'failover',
      async () => {
        const st = await stack.status(S.id);
        return st.status === 'connected' && st.proxy !== before.proxy;
      },
      40_000,
      150,
    );

    const m1 = await waitFor('the counters to show the lifecycle', async () => {
      const m = await scrape();
      return m.value('wa_messages_total', { kind: 'received' }) >= 1 &&
        m.value('wa_failovers_total', { result: 'completed' }) >= 1
        ? m
        : null;
    });
    const delta = (name: string, labels?: Record<string, string>) => m1.value(name, labels) - m0.value(name, labels);
    assert.ok(delta('wa_connects_total') >= 3, `connects: first, after the restart, after the failover`);
    assert.equal(delta('wa_session_restarts_total', { cause: 'operator' }), 1);
    assert.equal(delta('wa_failovers_total', { result: 'completed' }), 1);
    assert.equal(delta('wa_messages_total', { kind: 'received' }), 1);
    assert.equal(delta('wa_messages_total', { kind: 'delivered' }), 1);
    assert.equal(m1.value('wa_proxies', { status: 'BAD' }), 1, 'the dead proxy is BAD');
    assert.equal(m1.value('wa_sessions', { status: 'connected' }), 1);

    const d = await stack.call('DELETE', `/api/sessions/${S.id}`);
    assert.equal(d.status, 200, JSON.stringify(d.body));
    const m2 = await waitFor('the session gone from the gauges', async () => {
      const m = await scrape();
      return m.value('wa_sessions', { status: 'connected' }) === 0 ? m : null;
    });
    assert.equal(m2.value('wa_proxy_slots', { state: 'used' }), 0, 'its slot released');
  });
});
