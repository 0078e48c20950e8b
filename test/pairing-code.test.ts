/**
 * Linking by pairing code (issue 15 item 1) against the real Baileys 7 worker and the simulator's 7.x link-code
 * flow (`link_code_companion_reg`: companion_hello → the phone types the code → primary_hello notification →
 * companion_finish → pair-success → 515 → login).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Socks5Proxy, WhatsAppSimulator } from '../simulator/index.js';
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
