/**
 * Attack: make the API send requests into the private network through a customer webhook (Redis on loopback,
 * 10/8, the cloud metadata address, a DNS name that resolves to loopback, a redirect to an internal address) and
 * read internal addresses back from stored errors. Refused at registration, and again at delivery on the resolved
 * address (a URL stored earlier, or a name that now resolves elsewhere, still cannot reach loopback); redirects
 * are not followed; errors name the kind of failure, never the address. The admin allow-list lets a named host
 * through (the test receivers listen on 127.0.0.5, which the allow-list names).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CLIENT_WEBHOOK_URL_PATTERN, ClientWebhookStore } from '../../state/client-webhooks.js';
import { freePort, TENANT_KEY, waitFor } from '../helpers/stack.js';
import { ApiOnly } from './api-only.js';

const SECRET = 'ssrf-test-secret-0123456789';
const ALLOWED = '127.0.0.5';

/** A local HTTP endpoint that counts what reaches it and answers with `respond`. */
async function endpoint(host: string, respond: (res: http.ServerResponse) => void) {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => respond(res));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    hits,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('SSRF through customer webhooks', () => {
  let api: ApiOnly;
  let store: ClientWebhookStore;
  before(async () => {
    api = await new ApiOnly({
      CLIENT_WEBHOOK_ALLOW_HOSTS: ALLOWED,
      CLIENT_WEBHOOK_MAX_ATTEMPTS: '1',
      CLIENT_WEBHOOK_POLL_MS: '50',
      CLIENT_WEBHOOK_TIMEOUT_MS: '3000',
    }).start();
    store = new ClientWebhookStore(api.redis, api.prefix);
  });
  after(async () => api?.stop());

  const register = (url: string) => api.call('PUT', '/api/v1/webhooks', { url, secret: SECRET }, TENANT_KEY);

  it('refuses private, loopback, link-local, CGNAT, multicast and metadata URLs at registration', async () => {
    const local = await endpoint('127.0.0.1', (res) => res.writeHead(200).end());
    try {
      for (const url of [
        'http://127.0.0.1:6379/',
        `http://localhost:${local.port}/hook`, // a DNS name resolving to 127.0.0.1
        'http://10.1.2.3/hook',
        'http://169.254.169.254/latest/meta-data/',
        'http://[::1]:6379/',
        'http://[::ffff:127.0.0.1]/',
        'http://100.64.0.1/',
        'http://192.168.1.1/',
        'http://172.16.0.1/',
        'http://224.0.0.1/',
        'http://0.0.0.0:6379/',
        'http://2130706433/', // 127.0.0.1 as one number
      ]) {
        const r = await register(url);
        assert.equal(
          r.status,
          new RegExp(CLIENT_WEBHOOK_URL_PATTERN).test(url) ? 403 : 400,
          `${url} → ${r.status} ${r.text}`,
        );
        assert.equal(r.body.error.field, 'url');
        assert.ok(!r.text.includes('127.0.0.1') || url.includes('127.0.0.1'), 'the resolved address is not echoed');
      }
      assert.equal(local.hits.length, 0, 'nothing reached the loopback receiver');
      assert.equal((await api.call('GET', '/api/v1/webhooks', undefined, TENANT_KEY)).status, 404, 'none stored');
    } finally {
      await local.close();
    }
  });

  it('refuses at delivery too, on the resolved address (a URL stored earlier, a rebound name)', async () => {
    const local = await endpoint('127.0.0.1', (res) => res.writeHead(200).end());
    try {
      // Stored directly, as a registration before the check (or a name that resolved elsewhere then) would be.
      await store.setConfig('acme', {
        url: `http://localhost:${local.port}/hook`,
        secret: SECRET,
        events: ['message.received'],
      });
      await store.enqueue('acme', 'message.received', { sessionId: 's', messageId: 'm1', from: '1', text: 'hi' });
      const dead = await waitFor(
        'the delivery to be dead-lettered',
        async () => {
          const r = await api.call('GET', '/api/v1/webhooks/dead-letters', undefined, TENANT_KEY);
          return r.body?.deadLetters?.length ? r.body.deadLetters : null;
        },
        20_000,
      );
      assert.equal(local.hits.length, 0, 'the loopback receiver was never called');
      assert.match(dead[0].lastError, /not allowed/);
      assert.doesNotMatch(dead[0].lastError, /127\.0\.0\.1|::1|localhost/);
    } finally {
      await local.close();
      await store.deleteConfig('acme');
    }
  });

  it('does not follow redirects, and stored errors do not reveal internal addresses', async () => {
    const internal = await endpoint('127.0.0.1', (res) => res.writeHead(200).end('internal data'));
    const redirector = await endpoint(ALLOWED, (res) =>
      res.writeHead(302, { location: `http://127.0.0.1:${internal.port}/admin` }).end(),
    );
    try {
      const ok = await register(`http://${ALLOWED}:${redirector.port}/hook`);
      assert.equal(ok.status, 200, `the allow-listed host is accepted: ${ok.text}`);
      await store.enqueue('acme', 'message.received', { sessionId: 's', messageId: 'm2', from: '1', text: 'hi' });
      const dead = await waitFor(
        'the redirected delivery to be dead-lettered',
        async () => {
          const r = await api.call('GET', '/api/v1/webhooks/dead-letters', undefined, TENANT_KEY);
          return r.body?.deadLetters?.find((d: any) => d.payload?.data?.messageId === 'm2') ?? null;
        },
        20_000,
      );
      assert.equal(redirector.hits.length, 1);
      assert.equal(internal.hits.length, 0, 'the redirect was not followed');
      assert.match(dead.lastError, /HTTP 302/);

      // An allow-listed receiver that is down: the error says what happened, not where.
      const closedPort = await freePort();
      assert.equal((await register(`http://${ALLOWED}:${closedPort}/hook`)).status, 200);
      await store.enqueue('acme', 'message.received', { sessionId: 's', messageId: 'm3', from: '1', text: 'hi' });
      const refused = await waitFor(
        'the refused delivery to be dead-lettered',
        async () => {
          const r = await api.call('GET', '/api/v1/webhooks/dead-letters', undefined, TENANT_KEY);
          return r.body?.deadLetters?.find((d: any) => d.payload?.data?.messageId === 'm3') ?? null;
        },
        20_000,
      );
      assert.match(refused.lastError, /connection refused/);
      assert.ok(!refused.lastError.includes(ALLOWED) && !refused.lastError.includes(String(closedPort)));
    } finally {
      await internal.close();
      await redirector.close();
    }
  });
});
