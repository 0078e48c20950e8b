/**
 * Linking by pairing code (issue 15 item 1) against the real Baileys 7 worker and the simulator's 7.x link-code
 * flow (`link_code_companion_reg`: companion_hello → the phone types the code → primary_hello notification →
 * companion_finish → pair-success → 515 → login).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Socks5Proxy, WhatsAppSimulator } from '../simulator/index.js';
import { terminateDispatchers } from './helpers/messaging.js';
import { Stack, TENANT_KEY, waitFor } from './helpers/stack.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';
import { WorkerProcess } from './helpers/worker-process.js';

const SECRET = `whsec-${randomBytes(12).toString('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('wa-worker: pairing code against the simulator', { concurrency: 1 }, () => {
  let sim: WhatsAppSimulator;
  let proxy: Socks5Proxy;
  let rx: WebhookReceiver;
  let sessionsDir = '';
  const workers: WorkerProcess[] = [];

  before(async () => {
    sessionsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-pairing-'));
    sim = await WhatsAppSimulator.start({ qrRefs: 6 });
    proxy = await Socks5Proxy.start({ username: 'u', password: `pw-${randomBytes(6).toString('hex')}` });
    rx = await WebhookReceiver.start(SECRET);
  });
  after(async () => {
    for (const w of workers) await w.kill();
    if (process.env.KEEP_TEST_DATA)
      fs.writeFileSync(
        path.join(os.tmpdir(), 'pairing-workers.log'),
        workers.map((w) => w.output.join('\n')).join('\n###\n'),
      );
    await rx?.close();
    await proxy?.close().catch(() => undefined);
    await sim?.close();
    fs.rmSync(sessionsDir, { recursive: true, force: true });
  });

  const start = (session: string, phone: string, extra: Record<string, string> = {}) => {
    const w = WorkerProcess.start({
      SESSION_ID: session,
      PROXY_URL: proxy.url,
      WEBHOOK_URL: rx.url,
      WEBHOOK_SECRET: SECRET,
      SESSIONS_DIR: sessionsDir,
      WA_WEBSOCKET_URL: sim.url,
      WA_CERT_ROOT_PUBLIC_KEY: Buffer.from(sim.certificateRootPublicKey).toString('hex'),
      PAIRING_PHONE: phone,
      WEBHOOK_RETRY_BASE_MS: '100',
      WEBHOOK_RETRY_MAX_MS: '1000',
      LOG_LEVEL: 'debug',
      ...extra,
    });
    workers.push(w);
    return w;
  };
  /** The session's events of one kind, or null while there are none. */
  const ofSession = <T extends { sessionId: string }>(list: T[], session: string) => {
    const mine = list.filter((e) => e.sessionId === session);
    return mine.length > 0 ? mine : null;
  };

  test('the code typed on the phone links the device: PAIRING_CODE (no QR) → CONNECTED', async () => {
    const session = `pc_${randomBytes(3).toString('hex')}`;
    const phone = '4915112345001';
    const w = start(session, phone);
    const [ev] = await until('PAIRING_CODE', () => ofSession(rx.ofType('PAIRING_CODE'), session));
    assert.match(ev!.data.code, /^[0-9A-Z]{8}$/);
    assert.equal(ev!.data.phone, phone);
    assert.ok(ev!.data.expiresAt > Date.now());
    assert.equal(ofSession(rx.ofType('QR_CODE'), session), null, 'no QR is reported in pairing-code mode');
    assert.ok(!w.output.some((l) => l.includes(ev!.data.code)), 'the code is never logged');
    const linked = await sim.enterPairingCode(phone, ev!.data.code);
    assert.equal(linked.phone, phone);
    const [connected] = await until('CONNECTED', () => ofSession(rx.ofType('CONNECTED'), session));
    assert.equal(connected!.data.phoneNumber, phone);
  });

  test('a wrong code: the phone is refused and the worker reports PAIRING_FAILED refused, no reconnect', async () => {
    const session = `pw_${randomBytes(3).toString('hex')}`;
    const phone = '4915112345002';
    const w = start(session, phone);
    const [ev] = await until('PAIRING_CODE', () => ofSession(rx.ofType('PAIRING_CODE'), session));
    const wrong = ev!.data.code === 'ABCDEFGH' ? 'HGFEDCBA' : 'ABCDEFGH';
    await assert.rejects(
      sim.enterPairingCode(phone, wrong),
      (e: Error & { reason?: string }) => e.reason === 'wrong_code',
    );
    const [failed] = await until('PAIRING_FAILED', () => ofSession(rx.ofType('PAIRING_FAILED'), session));
    assert.equal(failed!.data.reason, 'refused');
    assert.equal(ofSession(rx.ofType('CONNECTED'), session), null);
    await until('the worker to stay down', () => w.output.some((l) => l.includes('pairing by code failed')));
  });

  test('an expired code: the phone is refused, the worker reports PAIRING_FAILED expired', async () => {
    const session = `px_${randomBytes(3).toString('hex')}`;
    const phone = '4915112345003';
    sim.pairingCodeTtlMs = 1500;
    try {
      start(session, phone, { PAIRING_CODE_TTL_MS: '1500' });
      const [ev] = await until('PAIRING_CODE', () => ofSession(rx.ofType('PAIRING_CODE'), session));
      const [failed] = await until('PAIRING_FAILED', () => ofSession(rx.ofType('PAIRING_FAILED'), session), 10_000);
      assert.equal(failed!.data.reason, 'expired');
      await assert.rejects(sim.enterPairingCode(phone, ev!.data.code), (e: Error & { reason?: string }) =>
        ['expired', 'not_found'].includes(e.reason ?? ''),
      );
    } finally {
      sim.pairingCodeTtlMs = 180_000;
    }
  });
});

describe('the real stack: link by pairing code (API → workflow → worker → simulator)', { concurrency: 1 }, () => {
  let stack: Stack;
  const CODE_TTL_MS = 4000;
  /** The admin tenant's customer webhook endpoint: `session.status` deliveries, as JSON. */
  const customer: Array<{ event: string; data: Record<string, unknown> }> = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      customer.push(JSON.parse(body) as { event: string; data: Record<string, unknown> });
      res.writeHead(200).end();
    });
  });

  before(async () => {
    stack = await new Stack({
      proxies: 2,
      maxSessionsPerProxy: 4,
      extraEnv: { RATE_LIMIT_MAX_REQUESTS: '1000', WORKER_ENV_PAIRING_CODE_TTL_MS: String(CODE_TTL_MS) },
    }).start();
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    const put = await stack.call('PUT', '/api/v1/webhooks', { url, secret: 'customer-secret-0123456789abcdef' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, ['pc_ok', 'pc_switch', 'pc_again']);
    await stack?.stop();
    receiver.close();
  });
  const customerStatus = (sessionId: string, event: string) =>
    customer.find((d) => d.event === 'session.status' && d.data.sessionId === sessionId && d.data.event === event);

  const totalLoad = async () => Object.values(await stack.proxyLoads()).reduce((a, b) => a + b, 0);

  test('provision {phone, pairing: "code"} → code → phone types it → connected → send → delivered', async () => {
    const phone = '4917612340001';
    const bad = await stack.call('POST', '/api/sessions/provision', { sessionId: 'pc_bad', pairing: 'code' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'phone');
    const r = await stack.call('POST', '/api/sessions/provision', { sessionId: 'pc_ok', phone, pairing: 'code' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.match(r.body.pairingCode.code, /^[0-9A-Z]{8}$/);
    assert.equal(r.body.pairingCode.phone, phone);
    assert.ok(r.body.pairingCode.expiresAt > Date.now() - 1000);
    const shown = await stack.call('GET', '/api/sessions/pc_ok/pairing-code');
    assert.equal(shown.status, 200);
    assert.equal(shown.body.code, r.body.pairingCode.code);
    assert.equal((await stack.call('GET', '/api/sessions/pc_ok/qr')).status, 404, 'no QR in pairing-code mode');
    await stack.waitForStatus('pc_ok', 'qr_ready');
    await stack.sim.enterPairingCode(phone, r.body.pairingCode.code);
    const connected = await stack.waitForStatus('pc_ok', 'connected', 40_000);
    assert.equal(connected.phone, phone);
    // The phone's connections went through the session's proxy (sticky, as after a QR scan).
    const proxy = stack.proxies.find((p) => connected.proxy === `127.0.0.1:${p.port}`);
    assert.ok(proxy, `proxy ${connected.proxy} is one of the pool`);
    assert.deepEqual(stack.sim.sourceAddresses(phone), [proxy.bindAddress]);
    assert.equal((await stack.call('GET', '/api/sessions/pc_ok/pairing-code')).status, 404, 'the code is gone');
    const sent = await stack.call('POST', '/api/send', {
      sessionId: 'pc_ok',
      to: '4917699990001',
      text: 'linked by code',
    });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    await waitFor(
      'the message delivered',
      async () => (await stack.call('GET', `/api/messages/${sent.body.messageId}`)).body.status === 'delivered',
      30_000,
    );
    assert.deepEqual(
      stack.sim.messages(phone).map((m) => m.text),
      ['linked by code'],
    );
  });

  test('a wrong code: clear error, slot and phone released', async () => {
    const phone = '4917612340002';
    const before = await totalLoad();
    const r = await stack.call('POST', '/api/sessions/provision', { sessionId: 'pc_wrong', phone, pairing: 'code' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(await totalLoad(), before + 1);
    const wrong = r.body.pairingCode.code === 'ABCDEFGH' ? 'HGFEDCBA' : 'ABCDEFGH';
    await assert.rejects(stack.sim.enterPairingCode(phone, wrong), /wrong pairing code/);
    const failed = await stack.waitForStatus('pc_wrong', 'failed', 20_000);
    assert.match(failed.lastError, /pairing code refused/);
    const hook = await waitFor('the customer webhook', () => customerStatus('pc_wrong', 'PAIRING_FAILED'));
    assert.equal(hook.data.status, 'failed');
    const shownHook = customerStatus('pc_wrong', 'PAIRING_CODE');
    assert.equal(shownHook?.data.status, 'qr_ready');
    assert.ok(!JSON.stringify(customer).includes(r.body.pairingCode.code), 'the code never goes to a webhook');
    const code = await stack.call('GET', '/api/sessions/pc_wrong/pairing-code');
    assert.equal(code.status, 410);
    assert.equal(code.body.error.code, 'PAIRING_CODE_REFUSED');
    await waitFor('the slot back', async () => (await totalLoad()) === before, 10_000);
    assert.equal(await stack.redis.get(`${stack.prefix}phone:session:${phone}`), null, 'phone binding released');
    // The phone can be provisioned again at once.
    const again = await stack.call('POST', '/api/sessions/provision', {
      sessionId: 'pc_wrong2',
      phone,
      pairing: 'code',
    });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.equal((await stack.call('DELETE', '/api/sessions/pc_wrong2')).status, 200);
  });

  test('an expired code: clear error, slot and phone released; the phone typing it late is refused', async () => {
    const phone = '4917612340003';
    const before = await totalLoad();
    stack.sim.pairingCodeTtlMs = CODE_TTL_MS;
    try {
      const r = await stack.call('POST', '/api/sessions/provision', { sessionId: 'pc_late', phone, pairing: 'code' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const expired = await stack.waitForStatus('pc_late', 'qr_expired', CODE_TTL_MS + 15_000);
      assert.match(expired.lastError, /pairing code expired/);
      const code = await stack.call('GET', '/api/sessions/pc_late/pairing-code');
      assert.equal(code.status, 410);
      assert.equal(code.body.error.code, 'PAIRING_CODE_EXPIRED');
      await assert.rejects(stack.sim.enterPairingCode(phone, r.body.pairingCode.code));
      await waitFor('the slot back', async () => (await totalLoad()) === before, 10_000);
      assert.equal(await stack.redis.get(`${stack.prefix}phone:session:${phone}`), null, 'phone binding released');
    } finally {
      stack.sim.pairingCodeTtlMs = 180_000;
    }
  });

  test('POST /api/sessions/:id/pairing-code switches a QR session to a code; bad input is refused', async () => {
    const phone = '4917612340004';
    const r = await stack.call('POST', '/api/sessions/provision', { sessionId: 'pc_switch' });
    assert.equal(r.status, 201);
    await waitFor('a QR', async () => (await stack.call('GET', '/api/sessions/pc_switch/qr')).status === 200);
    const badPhone = await stack.call('POST', '/api/sessions/pc_switch/pairing-code', { phone: '12ab' });
    assert.equal(badPhone.status, 400);
    assert.equal(badPhone.body.error.field, 'phone');
    const unknown = await stack.call('POST', '/api/sessions/nope/pairing-code', { phone });
    assert.equal(unknown.status, 404);
    const taken = await stack.call('POST', '/api/sessions/pc_switch/pairing-code', { phone: '4917612340001' });
    assert.equal(taken.status, 409, 'a phone bound to another session');
    const other = await stack.call('POST', '/api/sessions/pc_switch/pairing-code', { phone }, TENANT_KEY);
    assert.equal(other.status, 404, "another tenant's session answers like a missing one");
    const c = await stack.call('POST', '/api/sessions/pc_switch/pairing-code', { phone });
    assert.equal(c.status, 200, JSON.stringify(c.body));
    assert.match(c.body.code, /^[0-9A-Z]{8}$/);
    await stack.sim.enterPairingCode(phone, c.body.code);
    const connected = await stack.waitForStatus('pc_switch', 'connected', 40_000);
    assert.equal(connected.phone, phone);
    const late = await stack.call('POST', '/api/sessions/pc_switch/pairing-code', { phone });
    assert.equal(late.status, 409, 'a linked session takes no code');
  });

  test('a phone linked before gets its sticky proxy again when it links by code', async () => {
    const phone = '4917612340001';
    const first = await stack.status('pc_ok');
    assert.equal(first.status, 'connected');
    assert.equal((await stack.call('DELETE', '/api/sessions/pc_ok')).status, 200);
    const r = await stack.call('POST', '/api/sessions/provision', { sessionId: 'pc_again', phone, pairing: 'code' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.proxy, first.proxy, "the phone's sticky proxy");
    await stack.sim.enterPairingCode(phone, r.body.pairingCode.code);
    await stack.waitForStatus('pc_again', 'connected', 40_000);
    assert.equal(stack.sim.sourceAddresses(phone).length, 1, 'one source address for the phone, ever');
  });
});
