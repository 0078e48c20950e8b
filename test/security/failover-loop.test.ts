/**
 * Attack: a tenant loops on `POST /api/sessions/:id/failover` to burn the shared proxy pool (each manual failover
 * marked the session's proxy BAD and moved it). Manual failovers are now rate-limited per tenant, so a loop stops
 * at TENANT_FAILOVER_MAX and cannot take the pool down; the admin key is not limited.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Stack, TENANT_KEY } from '../helpers/stack.js';

describe('manual failover loop', () => {
  let stack: Stack;
  before(async () => {
    stack = await new Stack({
      proxies: 4,
      extraEnv: { TENANT_FAILOVER_MAX: '2', TENANT_FAILOVER_WINDOW_MS: '600000' },
    }).start();
  });
  after(async () => stack?.stop());

  it('a tenant looping on failover is stopped at its limit; the pool survives', async () => {
    const p = await stack.call('POST', '/api/sessions/provision', { sessionId: 'fo_loop' }, TENANT_KEY);
    assert.equal(p.status, 201, JSON.stringify(p.body));
    await stack.waitForStatus('fo_loop', 'qr_ready');
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await stack.call('POST', '/api/sessions/fo_loop/failover', { reason: `loop ${i}` }, TENANT_KEY);
      statuses.push(r.status);
      if (r.status === 429) {
        assert.equal(r.body.error.code, 'FAILOVER_RATE_LIMITED');
      }
      if (r.status !== 429) await stack.waitForStatus('fo_loop', ['qr_ready', 'connected', 'failed'], 60_000);
    }
    assert.deepEqual(
      statuses.map((s) => (s === 429 ? 'limited' : 'ran')),
      ['ran', 'ran', 'limited', 'limited', 'limited', 'limited'],
      JSON.stringify(statuses),
    );
    const proxies = await stack.call('GET', '/api/v1/proxies');
    const healthy = (proxies.body.proxies as Array<{ status: string }>).filter((x) => x.status === 'OK').length;
    assert.ok(healthy >= 2, `${healthy} of 4 proxies still healthy`);
    const s = await stack.status('fo_loop');
    assert.notEqual(s.status, 'failed', 'the session still has a proxy');
  });
});
