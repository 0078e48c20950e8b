import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signedHeaders } from '../common/events.js';
import { sessionWebhookSecret } from '../common/session.js';
import { API_KEY, Stack, TENANT_KEY, WEBHOOK_SECRET, waitFor } from './helpers/stack.js';

describe('REST API and webhook bridge (real stack)', () => {
  let stack: Stack;
  before(async () => {
    stack = await new Stack({ proxies: 2 }).start();
  });
  after(async () => stack?.stop());

  const post = (url: string, body: string, headers: Record<string, string>) =>
    fetch(`${stack.apiUrl}${url}`, { method: 'POST', body, headers }).then(async (r) => ({
      status: r.status,
      body: (await r.json().catch(() => null)) as any,
    }));

  it('rejects malformed provision input with 400 naming the field, never echoing a password', async () => {
    const cases: Array<[unknown, string, RegExp]> = [
      [{ phone: '12ab' }, 'phone', /international number/],
      [{ phone: '+0123' }, 'phone', /international number/],
      [{ sessionId: '../etc/passwd' }, 'sessionId', /letters, digits|must match/],
      [{ sessionId: 'x'.repeat(65) }, 'sessionId', /must match|letters/],
      [{ proxyOverride: 'socks5://u:Hunter2pass@h:1080' }, 'proxyOverride', /only socks5h/],
      [{ proxy: 'socks5h://u:Hunter2pass@h' }, 'proxy', /missing the port/],
      [{ unexpected: true }, 'unexpected', /unknown field/],
    ];
    for (const [body, field, message] of cases) {
      const r = await stack.call('POST', '/api/sessions/provision', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'VALIDATION_ERROR');
      assert.equal(r.body.error.field, field);
      assert.match(r.body.error.message, message);
      assert.ok(!JSON.stringify(r.body).includes('Hunter2pass'), 'password not echoed');
    }
    const bad = await stack.call('POST', '/api/sessions/provision', '{not json');
    assert.equal(bad.status, 400);
    assert.ok(bad.body.error.message);
  });

  it('requires an API key; tenant keys reach only their own sessions', async () => {
    assert.equal((await stack.call('GET', '/api/v1/dashboard/sessions', undefined, null)).status, 401);
    const wrong = await stack.call('GET', '/api/v1/dashboard/sessions', undefined, 'not-the-key-0123456789');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error.code, 'UNAUTHORIZED');

    const mine = await stack.call('POST', '/api/sessions/provision', { sessionId: 'tenant1' }, TENANT_KEY);
    assert.equal(mine.status, 201, JSON.stringify(mine.body));
    const second = await stack.call('POST', '/api/sessions/provision', { sessionId: 'tenant2' }, TENANT_KEY);
    assert.equal(second.status, 409);
    assert.equal(second.body.error.code, 'TENANT_SESSION_LIMIT');

    const admins = await stack.call('POST', '/api/sessions/provision', { sessionId: 'admin1' });
    assert.equal(admins.status, 201);
    // Another tenant's session answers exactly like a missing one.
    const notMine = await stack.call('GET', '/api/sessions/admin1/status', undefined, TENANT_KEY);
    const missing = await stack.call('GET', '/api/sessions/admin9/status', undefined, TENANT_KEY);
    assert.equal(notMine.status, 404);
    assert.deepEqual(notMine.body.error.code, missing.body.error.code);
    const list = await stack.call('GET', '/api/v1/dashboard/sessions', undefined, TENANT_KEY);
    assert.deepEqual(
      list.body.sessions.map((s: { sessionId: string }) => s.sessionId),
      ['tenant1'],
    );
    assert.equal((await stack.call('GET', '/api/sessions/tenant1/status', undefined, TENANT_KEY)).status, 200);
    assert.equal((await stack.call('GET', '/api/v1/proxies', undefined, TENANT_KEY)).status, 403);
    const dup = await stack.call('POST', '/api/sessions/provision', { sessionId: 'admin1' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'SESSION_EXISTS');
  });

  it('serves the QR as raw string, PNG data URL and terminal rendering', async () => {
    const qr = await waitFor('QR', async () => {
      const r = await stack.call('GET', '/api/sessions/admin1/qr');
      return r.status === 200 ? r.body : null;
    });
    // Baileys 7 renders the pairing ref as a link the phone's camera opens.
    assert.match(qr.qr, /^https:\/\/wa\.me\/settings\/linked_devices#2@/);
    assert.match(qr.dataUrl, /^data:image\/png;base64,/);
    assert.ok(qr.terminal.length > 100);
    assert.equal((await stack.call('GET', '/api/sessions/nope/qr')).status, 404);
  });

  it('webhook bridge: forged, stale, replayed and malformed events are rejected and change nothing', async () => {
    await stack.waitForStatus('admin1', 'qr_ready');
    const key = `${stack.prefix}session:admin1`;
    const before = await stack.redis.hgetall(key);
    const envelope = (eventId: string) =>
      JSON.stringify({
        sessionId: 'admin1',
        type: 'CONNECTED',
        timestamp: Date.now(),
        eventId,
        data: { phoneNumber: '15559990000', jid: '15559990000:1@s.whatsapp.net', fingerprint: 'x' },
      });
    const sessionSecret = sessionWebhookSecret(WEBHOOK_SECRET, 'admin1');

    // Forged: signed with a guessed secret, or with the master secret instead of the session's own.
    for (const secret of ['guessed-secret-guessed-secret', WEBHOOK_SECRET]) {
      const body = envelope(`forged-${secret.length}`);
      const r = await post('/api/webhook', body, signedHeaders(secret, body));
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'BAD_SIGNATURE');
    }
    // No signature at all.
    const unsigned = envelope('unsigned');
    assert.equal((await post('/api/webhook', unsigned, { 'content-type': 'application/json' })).status, 401);
    // Stale: a valid signature over a timestamp 10 minutes old.
    const staleBody = envelope('stale');
    assert.equal(
      (await post('/api/webhook', staleBody, signedHeaders(sessionSecret, staleBody, Date.now() - 600_000))).status,
      401,
    );
    // Malformed: signed correctly but invalid envelope → 400 naming the field.
    const malformed = JSON.stringify({
      sessionId: 'admin1',
      type: 'CONNECTED',
      timestamp: Date.now(),
      eventId: 'm1',
      data: {},
    });
    const m = await post('/api/webhook', malformed, signedHeaders(sessionSecret, malformed));
    assert.equal(m.status, 400);
    assert.match(m.body.error.field, /^data\./);
    const unknownType = JSON.stringify({
      sessionId: 'admin1',
      type: 'HACK',
      timestamp: Date.now(),
      eventId: 'm2',
      data: {},
    });
    assert.equal((await post('/api/webhook', unknownType, signedHeaders(sessionSecret, unknownType))).status, 400);
    const notJson = '{"sessionId":"admin1",';
    assert.equal((await post('/api/webhook', notJson, signedHeaders(sessionSecret, notJson))).status, 400);
    // Unknown session → 404 (the bridge never starts a workflow).
    const ghost = JSON.stringify({
      sessionId: 'ghost',
      type: 'PING',
      timestamp: Date.now(),
      eventId: 'g1',
      data: { timestamp: Date.now() },
    });
    assert.equal(
      (await post('/api/webhook', ghost, signedHeaders(sessionWebhookSecret(WEBHOOK_SECRET, 'ghost'), ghost))).status,
      404,
    );

    const after = await stack.redis.hgetall(key);
    assert.equal(after.status, before.status, 'status unchanged');
    assert.equal(after.phone, before.phone, 'phone unchanged');
    assert.equal(await stack.redis.get(`${stack.prefix}phone:session:15559990000`), null);

    // Replay of a genuine PING: accepted once, the replay changes nothing.
    const pingBody = JSON.stringify({
      sessionId: 'admin1',
      type: 'PING',
      timestamp: Date.now(),
      eventId: 'ping-1',
      data: { timestamp: 1234 },
    });
    const headers = signedHeaders(sessionSecret, pingBody);
    assert.equal((await post('/api/webhook', pingBody, headers)).status, 202);
    assert.equal(await stack.redis.hget(key, 'lastPing'), '1234');
    await stack.redis.hset(key, 'lastPing', '5678');
    const replay = await post('/api/webhook', pingBody, headers);
    assert.equal(replay.status, 200);
    assert.equal(replay.body.duplicate, true);
    assert.equal(await stack.redis.hget(key, 'lastPing'), '5678', 'replay did not apply');
  });

  it('administers proxies without ever showing credentials', async () => {
    const list = await stack.call('GET', '/api/v1/proxies');
    assert.equal(list.status, 200);
    assert.ok(!JSON.stringify(list.body).includes('pw-'), 'no passwords in the list');
    const bad = await stack.call('POST', '/api/v1/proxies', { url: 'http://u:SuperSecret9@h:1' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'url');
    assert.ok(!JSON.stringify(bad.body).includes('SuperSecret9'));
    const added = await stack.call('POST', '/api/v1/proxies', { url: 'socks5h://extra:SuperSecret9@127.0.0.9:1099' });
    assert.equal(added.status, 201);
    assert.equal(added.body.endpoint, '127.0.0.9:1099');
    assert.ok(!JSON.stringify(added.body).includes('SuperSecret9'));
    const busy = list.body.proxies.find((p: { load: number }) => p.load > 0);
    assert.ok(busy, 'a proxy with a session');
    assert.equal((await stack.call('DELETE', `/api/v1/proxies/${busy.id}`)).status, 409);
    assert.equal((await stack.call('DELETE', `/api/v1/proxies/${added.body.id}`)).status, 200);
    assert.equal((await stack.call('DELETE', `/api/v1/proxies/${added.body.id}`)).status, 404);
  });

  it('serves stats, health, readiness and the OpenAPI document', async () => {
    const stats = await stack.call('GET', '/api/v1/dashboard/stats');
    assert.equal(stats.status, 200);
    assert.equal(stats.body.sessions.total, 2);
    assert.equal(stats.body.proxies.limitPerProxy, 4);
    const health = await stack.call('GET', '/api/sessions/admin1/health');
    assert.equal(health.status, 503);
    assert.match(health.body.reason, /status is/);
    assert.equal((await stack.call('GET', '/readyz', undefined, null)).status, 200);
    const doc = await stack.call('GET', '/api/openapi.json', undefined, null);
    assert.equal(doc.status, 200);
    assert.equal(doc.body.openapi, '3.1.0');
    assert.ok(doc.body.paths['/api/sessions/provision'].post.requestBody);
    assert.equal((await stack.call('DELETE', '/api/sessions/does-not-exist')).status, 404);
    void API_KEY;
  });
});
