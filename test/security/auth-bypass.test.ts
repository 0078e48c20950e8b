/**
 * Attack: reach an authenticated route without a key by encoding its path (`/%61pi/v1/proxies` decodes to a
 * route the old URL allow-list did not recognise), and probe other tenants' ids. Authentication is by Fastify
 * encapsulation now: whatever the encoding, a route reached without its scope's proof is a 401; a route left
 * outside every scope never runs; another tenant's session or message answers exactly like a missing one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { installAuthGuard } from '../../api/auth.js';
import { installErrorHandler } from '../../api/errors.js';
import { API_KEY, TENANT_KEY } from '../helpers/stack.js';
import { ApiOnly } from './api-only.js';

describe('auth bypass by path encoding, and cross-tenant probing', () => {
  let api: ApiOnly;
  before(async () => {
    api = await new ApiOnly().start();
    await api.sessions.create('sec_admin_s', 'admin');
    await api.sessions.create('sec_acme_s', 'acme');
  });
  after(async () => api?.stop());

  it('encoded paths without a key are 401, never the handler', async () => {
    for (const [method, path] of [
      ['GET', '/%61pi/v1/proxies'],
      ['GET', '/api/v1/%70roxies'],
      ['GET', '/api/%76%31/proxies'],
      ['GET', '/%61%70%69/v1/backups'],
      ['GET', '/%61pi/v1/dashboard/sessions'],
      ['GET', '/%61pi/sessions/sec_admin_s/status'],
      ['POST', '/%61pi/sessions/provision'],
      ['GET', '/%61pi/events'],
      ['POST', '/%61pi/webhook'],
      ['POST', '/%61pi/worker/sessions/sec_admin_s/outbox/claim'],
    ] as const) {
      const r = await api.call(method, path, method === 'POST' ? {} : undefined, null);
      assert.equal(r.status, 401, `${method} ${path} → ${r.status} ${r.text}`);
      assert.match(r.body.error.code, /^(UNAUTHORIZED|BAD_SIGNATURE)$/, `${method} ${path}`);
    }
    // With a tenant key, the admin routes stay admin-only however they are spelled.
    for (const path of ['/%61pi/v1/proxies', '/api/v1/%70roxies', '/%61pi/v1/backups']) {
      const r = await api.call('GET', path, undefined, TENANT_KEY);
      assert.equal(r.status, 403, `${path} with a tenant key → ${r.status}`);
    }
    // The admin key still works through the same encodings (they are the same routes).
    assert.equal((await api.call('GET', '/%61pi/v1/proxies', undefined, API_KEY)).status, 200);
  });

  it('a route registered outside every scope fails closed', async () => {
    const app = Fastify();
    installErrorHandler(app);
    installAuthGuard(app);
    app.get('/api/forgotten', async () => ({ secret: 'reached' }));
    const r = await app.inject({ method: 'GET', url: '/api/forgotten' });
    assert.equal(r.statusCode, 401);
    assert.ok(!r.body.includes('reached'));
    await app.close();
  });

  it("another tenant's session and message answer exactly like missing ones", async () => {
    const mine = await api.call('GET', '/api/sessions/sec_acme_s/status', undefined, TENANT_KEY);
    assert.equal(mine.status, 200);
    for (const suffix of ['status', 'qr', 'health']) {
      const theirs = await api.call('GET', `/api/sessions/sec_admin_s/${suffix}`, undefined, TENANT_KEY);
      const none = await api.call('GET', `/api/sessions/sec_nobody_s/${suffix}`, undefined, TENANT_KEY);
      assert.equal(theirs.status, 404, `${suffix}: ${theirs.text}`);
      assert.equal(theirs.status, none.status);
      assert.equal(theirs.body.error.code, none.body.error.code);
      assert.equal(
        theirs.body.error.message.replace('sec_admin_s', 'X'),
        none.body.error.message.replace('sec_nobody_s', 'X'),
      );
    }
    const theirsSend = await api.call(
      'POST',
      '/api/send',
      { sessionId: 'sec_admin_s', to: '15550001', text: 'x' },
      TENANT_KEY,
    );
    const noneSend = await api.call(
      'POST',
      '/api/send',
      { sessionId: 'sec_nobody_s', to: '15550001', text: 'x' },
      TENANT_KEY,
    );
    assert.equal(theirsSend.status, 404);
    assert.equal(theirsSend.body.error.code, noneSend.body.error.code);
    // A message of the admin's session, asked for with the tenant key.
    const sent = await api.call('POST', '/api/send', { sessionId: 'sec_admin_s', to: '15550001', text: 'x' });
    assert.equal(sent.status, 202, sent.text);
    const theirMsg = await api.call('GET', `/api/messages/${sent.body.messageId}`, undefined, TENANT_KEY);
    const noMsg = await api.call('GET', '/api/messages/msg_000000000000000000000000', undefined, TENANT_KEY);
    assert.equal(theirMsg.status, 404);
    assert.equal(theirMsg.body.error.code, noMsg.body.error.code);
  });
});
