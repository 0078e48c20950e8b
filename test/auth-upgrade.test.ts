/**
 * Upgrade path of the auth folder: the committed fixture test/fixtures/baileys-6.7.24 (written by the real worker on
 * Baileys 6.7.24, paired against the simulator) reconnects with the current worker WITHOUT a QR. The simulator learns
 * the fixture's phone and linked device from `simulator.json` (the real server would still know them).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Socks5Proxy, WhatsAppSimulator, type ExportedPhone } from '../simulator/index.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';
import { REPO_ROOT, WorkerProcess } from './helpers/worker-process.js';

const FIXTURE = path.join(REPO_ROOT, 'test/fixtures/baileys-6.7.24');
const SECRET = `whsec-${randomBytes(12).toString('hex')}`;
const fixture = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'simulator.json'), 'utf8')) as {
  session: string;
  simulator: ExportedPhone;
};
const PHONE = fixture.simulator.phone;

let sim: WhatsAppSimulator;
let proxy: Socks5Proxy;
let rx: WebhookReceiver;
let sessionsDir = '';
const workers: WorkerProcess[] = [];

function copyFixture(session: string): string {
  const dir = path.join(sessionsDir, session);
  fs.cpSync(path.join(FIXTURE, 'auth'), dir, { recursive: true });
  return dir;
}

function startWorker(session: string): WorkerProcess {
  const w = WorkerProcess.start({
    SESSION_ID: session,
    PROXY_URL: proxy.url,
    WEBHOOK_URL: rx.url,
    WEBHOOK_SECRET: SECRET,
    SESSIONS_DIR: sessionsDir,
    WA_WEBSOCKET_URL: sim.url,
    WA_CERT_ROOT_PUBLIC_KEY: Buffer.from(sim.certificateRootPublicKey).toString('hex'),
    RECONNECT_BASE_MS: '200',
    RECONNECT_MAX_MS: '1000',
    WEBHOOK_RETRY_BASE_MS: '100',
    WEBHOOK_RETRY_MAX_MS: '1000',
    LOG_LEVEL: 'debug',
  });
  workers.push(w);
  return w;
}

before(async () => {
  sessionsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-upgrade-'));
  sim = await WhatsAppSimulator.start({ qrRefs: 2 });
  sim.importPhone(fixture.simulator);
  proxy = await Socks5Proxy.start({ username: 'u', password: `pw-${randomBytes(4).toString('hex')}` });
  rx = await WebhookReceiver.start(SECRET);
});

after(async () => {
  for (const w of workers) await w.kill();
  fs.writeFileSync(
    path.join(os.tmpdir(), 'wa-auth-upgrade.log'),
    workers.map((w, i) => `### worker ${i}\n${w.output.join('\n')}`).join('\n'),
  );
  await rx?.close();
  await proxy?.close();
  await sim?.close();
  fs.rmSync(sessionsDir, { recursive: true, force: true });
});

describe('auth folder written by Baileys 6.7.24', { concurrency: 1 }, () => {
  test('reconnects without a QR', async () => {
    copyFixture('upgrade_a');
    const w = startWorker('upgrade_a');
    const connected = await rx.waitFor('CONNECTED', (e) => e.sessionId === 'upgrade_a', 30_000);
    assert.equal(connected.data.phoneNumber, PHONE);
    assert.equal(rx.ofType('QR_CODE').filter((e) => e.sessionId === 'upgrade_a').length, 0, 'no QR');
    assert.ok(sim.connections(PHONE).some((c) => c.kind === 'login'), 'the simulator accepted a login');
    const schemaPath = path.join(sessionsDir, 'upgrade_a', 'schema.json');
    assert.deepEqual(JSON.parse(fs.readFileSync(schemaPath, 'utf8')), {
      format: 'baileys-multi-file',
      version: 2,
      migratedFrom: 1,
    });
    const { code } = await w.terminate();
    assert.equal(code, 0);
  });

  test('the migration is idempotent: a second start reconnects and leaves schema.json as it is', async () => {
    const schemaPath = path.join(sessionsDir, 'upgrade_a', 'schema.json');
    const before = fs.statSync(schemaPath);
    const since = rx.events.length;
    const w = startWorker('upgrade_a');
    await rx.waitFor('CONNECTED', (e) => e.sessionId === 'upgrade_a', 30_000, since);
    assert.equal(rx.ofType('QR_CODE', since).length, 0, 'no QR');
    assert.equal(w.logs().filter((l) => l.msg === 'auth folder migrated').length, 0, 'nothing migrated twice');
    const afterStat = fs.statSync(schemaPath);
    assert.equal(afterStat.ino, before.ino, 'schema.json not rewritten');
    assert.equal((await w.terminate()).code, 0);
  });

  for (const [name, schema] of [
    ['foreign', '{"format":"someone-else","version":1}'],
    ['newer', '{"format":"baileys-multi-file","version":99}'],
    ['corrupt', '{not json'],
  ] as const) {
    test(`${name} schema: AUTH_STATE_INVALID, no QR, no connection, files untouched, the worker stays up`, async () => {
      const session = `invalid_${name}`;
      const dir = copyFixture(session);
      fs.writeFileSync(path.join(dir, 'schema.json'), schema);
      const snapshot = () =>
        fs
          .readdirSync(dir)
          .filter((f) => !f.startsWith('.'))
          .sort()
          .map((f) => `${f}:${fs.readFileSync(path.join(dir, f), 'utf8')}`);
      const filesBefore = snapshot();
      const loginsBefore = sim.connections(PHONE).length;
      const w = startWorker(session);
      const ev = await rx.waitFor('AUTH_STATE_INVALID', (e) => e.sessionId === session, 20_000);
      assert.match(ev.data.reason, name === 'newer' ? /newer/ : name === 'foreign' ? /foreign/ : /not JSON/);
      // The health file shows the idle state: the container stays up instead of restarting in a loop.
      await waitUntil(() => {
        try {
          return JSON.parse(fs.readFileSync(path.join(dir, '.health.json'), 'utf8')).state === 'auth_invalid';
        } catch {
          return false;
        }
      }, 10_000);
      assert.ok(w.running, 'the worker did not exit');
      assert.equal(rx.ofType('QR_CODE').filter((e) => e.sessionId === session).length, 0, 'no QR');
      assert.equal(sim.connections(PHONE).length, loginsBefore, 'no connection attempt');
      assert.deepEqual(snapshot(), filesBefore, 'no auth file changed or deleted');
      assert.equal((await w.terminate()).code, 0);
    });
  }
});

async function waitUntil(pred: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 50));
  }
}
