/**
 * Attack: a tenant limited to one session fires provisions in parallel so that every check runs before any
 * session is recorded (check-then-act), provisions in a loop, or learns who holds a phone number. Admission is
 * now one Lua script that counts live sessions and admitted provisions together; terminal sessions do not count;
 * provisions per tenant are rate-limited; a phone held by another tenant's session is a 409 naming no one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Stack, TENANT_KEY } from '../helpers/stack.js';

const BETA_KEY = 'test-beta-tenant-key-0123456789abcdef';

describe('tenant quotas', () => {
  let stack: Stack;
  before(async () => {
    stack = await new Stack({
      proxies: 3,
      extraEnv: {
        TENANT_API_KEYS: `acme:${TENANT_KEY},beta:${BETA_KEY}`,
        ONE_SESSION_PER_TENANT: 'true',
        TENANT_PROVISION_MAX: '3',
        TENANT_PROVISION_WINDOW_MS: '600000',
      },
    }).start();
  });
  after(async () => stack?.stop());

  it('parallel provisions cannot pass one-session-per-tenant together', async () => {
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        stack.call('POST', '/api/sessions/provision', { sessionId: `quota_p${i}` }, TENANT_KEY),
      ),
    );
    const created = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status === 409);
    assert.equal(created.length, 1, JSON.stringify(results.map((r) => [r.status, r.body?.error?.code])));
    assert.equal(refused.length, 5);
    for (const r of refused) assert.equal(r.body.error.code, 'TENANT_SESSION_LIMIT');
    const mine = await stack.call('GET', '/api/v1/dashboard/sessions', undefined, TENANT_KEY);
    assert.equal(mine.body.sessions.length, 1, 'one session recorded for the tenant');
  });

  it('a deleted (terminal) session does not count; provisions are rate-limited per tenant', async () => {
    const mine = await stack.call('GET', '/api/v1/dashboard/sessions', undefined, TENANT_KEY);
    const id = mine.body.sessions[0].sessionId as string;
    assert.equal((await stack.call('DELETE', `/api/sessions/${id}`, undefined, TENANT_KEY)).status, 200);
    const again = await stack.call('POST', '/api/sessions/provision', { sessionId: 'quota_again' }, TENANT_KEY);
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.equal((await stack.call('DELETE', '/api/sessions/quota_again', undefined, TENANT_KEY)).status, 200);
    const third = await stack.call('POST', '/api/sessions/provision', { sessionId: 'quota_third' }, TENANT_KEY);
    assert.equal(third.status, 201, JSON.stringify(third.body));
    assert.equal((await stack.call('DELETE', '/api/sessions/quota_third', undefined, TENANT_KEY)).status, 200);
    // The fourth provision within the window is over TENANT_PROVISION_MAX = 3.
    const fourth = await stack.call('POST', '/api/sessions/provision', { sessionId: 'quota_fourth' }, TENANT_KEY);
    assert.equal(fourth.status, 429, JSON.stringify(fourth.body));
    assert.equal(fourth.body.error.code, 'PROVISION_RATE_LIMITED');
    // Another tenant is not affected.
    const beta = await stack.call('POST', '/api/sessions/provision', { sessionId: 'quota_beta' }, BETA_KEY);
    assert.equal(beta.status, 201, JSON.stringify(beta.body));
  });

  it("a phone held by another tenant's session is a 409 naming no tenant or session", async () => {
    const owner = await stack.call('POST', '/api/sessions/provision', {
      sessionId: 'quota_phone_owner',
      phone: '15557770001',
    });
    assert.equal(owner.status, 201, JSON.stringify(owner.body));
    assert.equal((await stack.call('DELETE', '/api/sessions/quota_beta', undefined, BETA_KEY)).status, 200);
    const taken = await stack.call(
      'POST',
      '/api/sessions/provision',
      { sessionId: 'quota_phone_thief', phone: '15557770001' },
      BETA_KEY,
    );
    assert.equal(taken.status, 409, JSON.stringify(taken.body));
    assert.equal(taken.body.error.code, 'PHONE_ALREADY_REGISTERED');
    const text = JSON.stringify(taken.body);
    for (const leak of ['quota_phone_owner', 'admin', 'acme']) assert.ok(!text.includes(leak), `names ${leak}`);
  });
});
