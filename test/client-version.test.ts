/**
 * 405 client_too_old: the simulator refuses clients below its minimum version; the real worker reports
 * CLIENT_OUTDATED once and stops (no reconnect loop: one connection attempt, the process stays up idle). WA_VERSION
 * overrides the announced version, and a new enough one gets through (a QR is shown).
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
const MIN = [2, 3000, 2_000_000_000] as [number, number, number];
let sim: WhatsAppSimulator;
let proxy: Socks5Proxy;
let rx: WebhookReceiver;
let sessionsDir = '';
const workers: WorkerProcess[] = [];

function startWorker(session: string, extra: Record<string, string> = {}): WorkerProcess {
  const w = WorkerProcess.start({
    SESSION_ID: session,
    PROXY_URL: proxy.url,
    WEBHOOK_URL: rx.url,
    WEBHOOK_SECRET: SECRET,
    SESSIONS_DIR: sessionsDir,
    WA_WEBSOCKET_URL: sim.url,
    WA_CERT_ROOT_PUBLIC_KEY: Buffer.from(sim.certificateRootPublicKey).toString('hex'),
    RECONNECT_BASE_MS: '100',
    RECONNECT_MAX_MS: '300',
    HEALTH_INTERVAL_MS: '200',
    WEBHOOK_RETRY_BASE_MS: '100',
    WEBHOOK_RETRY_MAX_MS: '500',
    LOG_LEVEL: 'debug',
    ...extra,
  });
  workers.push(w);
  return w;
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timeout: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const healthState = (session: string): string | undefined => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(sessionsDir, session, '.health.json'), 'utf8')) as { state: string })
      .state;
  } catch {
    return undefined;
  }
};

before(async () => {
  sessionsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-version-'));
  sim = await WhatsAppSimulator.start({ qrRefs: 2, minClientVersion: MIN });
  proxy = await Socks5Proxy.start({ username: 'u', password: `pw-${randomBytes(4).toString('hex')}` });
  rx = await WebhookReceiver.start(SECRET);
});

after(async () => {
  for (const w of workers) await w.kill();
  await rx?.close();
  await proxy?.close();
  await sim?.close();
  fs.rmSync(sessionsDir, { recursive: true, force: true });
});

describe('client version (405 client_too_old)', { concurrency: 1 }, () => {
  test('below the minimum: one CLIENT_OUTDATED, one connection attempt, no reconnect loop, worker stays up', async () => {
    const w = startWorker('old', { WA_VERSION_URL: 'http://127.0.0.1:9/sw.js', WA_VERSION_FETCH_TIMEOUT_MS: '500' });
    const ev = await rx.waitFor('CLIENT_OUTDATED', (e) => e.sessionId === 'old', 20_000);
    assert.equal(ev.data.version, '2.3000.1043857760', 'the engine default was announced');
    await until(() => healthState('old') === 'client_outdated', 10_000, 'terminal state in the health file');
    // 'client_outdated' is terminal (reconnects are only scheduled from 'reconnecting'): no further attempt follows.
    assert.equal(sim.connections().filter((c) => c.kind === 'rejected').length, 1, 'exactly one attempt');
    assert.equal(rx.ofType('CLIENT_OUTDATED').filter((e) => e.sessionId === 'old').length, 1, 'one event');
    assert.equal(rx.ofType('QR_CODE').filter((e) => e.sessionId === 'old').length, 0);
    assert.ok(w.running, 'no crash');
    // The version URL did not answer: the pinned default, with the reason logged.
    assert.ok(
      w.logs().some((l) => l.msg === 'WhatsApp Web version' && l.source === 'engine default' && l.fetchError),
      'fallback logged with the fetch error',
    );
    assert.equal((await w.terminate()).code, 0);
  });

  test('the current version is read through the proxy: a worker without WA_VERSION gets in (QR shown)', async () => {
    const tunnels = proxy.stats;
    const w = startWorker('fetched', { WA_VERSION_URL: sim.webVersionUrl });
    await rx.waitFor('QR_CODE', (e) => e.sessionId === 'fetched', 20_000);
    assert.equal(rx.ofType('CLIENT_OUTDATED').filter((e) => e.sessionId === 'fetched').length, 0);
    const line = w.logs().find((l) => l.msg === 'WhatsApp Web version');
    assert.equal(line?.source, 'fetched', JSON.stringify(line));
    assert.equal(line?.version, MIN.join('.'));
    assert.ok(
      proxy.stats.tunnelsOpened >= tunnels.tunnelsOpened + 2,
      'the fetch and the chat both went through the proxy',
    );
    assert.equal((await w.terminate()).code, 0);
  });

  test('WA_VERSION at the minimum is accepted (QR shown)', async () => {
    const w = startWorker('new', { WA_VERSION: MIN.join('.') });
    await rx.waitFor('QR_CODE', (e) => e.sessionId === 'new', 20_000);
    assert.equal(rx.ofType('CLIENT_OUTDATED').filter((e) => e.sessionId === 'new').length, 0);
    assert.ok(w.logs().some((l) => l.msg === 'WhatsApp Web version' && l.source === 'WA_VERSION'));
    assert.equal((await w.terminate()).code, 0);
  });
});
