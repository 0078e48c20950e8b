/**
 * wa-worker as a Docker container (the image scripts/build-images.sh builds offline), host networking, read-only
 * root filesystem with only the session volume writable: real Baileys, the simulator and a real SOCKS5 proxy.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BufferJSON } from '@whiskeysockets/baileys';
import { Socks5Proxy, WhatsAppSimulator } from '../simulator/index.js';
import { buildWorkerImage, containerLogs, containerState, docker } from './helpers/worker-docker.js';
import { WORKER_NODE_ENV, WORKER_NODE_FLAGS } from '../wa-worker/runtime-options.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';

const SECRET = `whsec-${randomBytes(12).toString('hex')}`;
const PROXY_USER = 'wa-docker';
const PROXY_PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const PROXY_SOURCE = '127.0.0.3';
const SESSION = `dock_${randomBytes(3).toString('hex')}`;
const CONTAINER = `wa_session_${SESSION}`;
const PHONE = '15550002222';
const WORKER_UID = 1000;

let image = '';
let sim: WhatsAppSimulator;
let proxy: Socks5Proxy;
let proxyPort = 0;
let rx: WebhookReceiver;
let sessionsDir = '';
const authDir = () => path.join(sessionsDir, SESSION);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) {
      const logs = await containerLogs(CONTAINER).catch(() => '');
      throw new Error(`timeout: ${what}\n${logs.split('\n').slice(-15).join('\n')}`);
    }
    await sleep(100);
  }
}

before(async () => {
  const built = buildWorkerImage();
  image = built.image;
  sessionsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-docker-'));
  fs.chownSync(sessionsDir, WORKER_UID, WORKER_UID);
  fs.chmodSync(sessionsDir, 0o700);
  sim = await WhatsAppSimulator.start({ qrRefs: 6 });
  proxy = await Socks5Proxy.start({ username: PROXY_USER, password: PROXY_PASSWORD, bindAddress: PROXY_SOURCE });
  proxyPort = proxy.port;
  rx = await WebhookReceiver.start(SECRET);
  await docker('rm', '-f', CONTAINER).catch(() => undefined);
});

after(async () => {
  await docker('rm', '-f', CONTAINER).catch(() => undefined);
  await rx?.close();
  await proxy?.close().catch(() => undefined);
  await sim?.close();
  fs.rmSync(sessionsDir, { recursive: true, force: true });
});

describe('wa-worker (docker container)', { concurrency: 1 }, () => {
  test('image: Node 24, non-root, health check, entrypoint on compiled JS', async (t) => {
    const cfg = JSON.parse(await docker('image', 'inspect', '--format', '{{json .Config}}', image)) as {
      User: string;
      Healthcheck?: { Test: string[] };
      Entrypoint: string[];
      Env: string[];
      Volumes: Record<string, unknown>;
    };
    assert.equal(cfg.User, '1000:1000');
    // the same Node flags and environment as the process runner's workers
    assert.deepEqual(cfg.Entrypoint, ['node', ...WORKER_NODE_FLAGS, '/app/main.mjs']);
    for (const [name, value] of Object.entries(WORKER_NODE_ENV)) assert.ok(cfg.Env.includes(`${name}=${value}`), name);
    assert.deepEqual(cfg.Healthcheck?.Test, ['CMD', 'node', '/app/healthcheck.mjs']);
    assert.ok('/app/sessions' in cfg.Volumes);
    // The image runs the supported runtime, Node 24 LTS (the local base is a docker import of data/tools/node).
    assert.match(
      await docker('run', '--rm', '--network', 'none', '--entrypoint', 'node', image, '--version'),
      /^v24\./,
    );
    const size = Number(await docker('image', 'inspect', '--format', '{{.Size}}', image));
    t.diagnostic(`image ${image}: ${(size / 1e6).toFixed(1)} MB (${(size / 1024 / 1024).toFixed(1)} MiB)`);
    // Invalid configuration: exit 2 with the message, even in the container.
    const r = await docker('run', '--rm', '--read-only', '--network', 'host', image).catch(
      (e: { code?: number; stderr?: string }) => `${e.code}|${e.stderr}`,
    );
    assert.match(r, /^2\|wa-worker: Invalid configuration/);
  });

  test('start → signed QR_CODE → scan → CONNECTED; creds 0600/0700 on the volume; healthy; RSS', async (t) => {
    await docker(
      'run',
      '-d',
      '--name',
      CONTAINER,
      '--network',
      'host',
      '--read-only',
      '--restart',
      'unless-stopped',
      '--health-interval',
      '1s',
      '--health-start-period',
      '10s',
      '-v',
      `${sessionsDir}:/app/sessions`,
      '-e',
      `SESSION_ID=${SESSION}`,
      '-e',
      `PROXY_URL=${proxy.url}`,
      '-e',
      `WEBHOOK_URL=${rx.url}`,
      '-e',
      `WEBHOOK_SECRET=${SECRET}`,
      '-e',
      `WA_WEBSOCKET_URL=${sim.url}`,
      '-e',
      `WA_CERT_ROOT_PUBLIC_KEY=${Buffer.from(sim.certificateRootPublicKey).toString('hex')}`,
      '-e',
      'HEALTH_INTERVAL_MS=500',
      '-e',
      'PRESENCE_INTERVAL_MS=1000',
      '-e',
      'RECONNECT_BASE_MS=200',
      '-e',
      'DISCONNECT_GRACE_MS=0',
      '-e',
      'PROXY_RECONNECT_MAX_MS=1000',
      '-e',
      'WA_OPEN_TIMEOUT_MS=8000',
      '-e',
      'WEBHOOK_RETRY_MAX_MS=1000',
      image,
    );
    const qr = await rx.waitFor('QR_CODE', () => true, 30_000);
    assert.equal(rx.rejected.length, 0);
    await sim.scan(qr.data.qr, PHONE);
    const c = await rx.waitFor('CONNECTED', () => true, 20_000);
    assert.equal(c.data.phoneNumber, PHONE);
    const st = fs.statSync(authDir());
    assert.equal(st.mode & 0o777, 0o700);
    assert.equal(st.uid, WORKER_UID);
    for (const f of fs.readdirSync(authDir())) {
      // The worker writes each file to a temporary name and renames it over the old one: a name listed here may be
      // gone by the time it is examined; the file it became is checked under its own name.
      const fst = fs.statSync(path.join(authDir(), f), { throwIfNoEntry: false });
      if (!fst) continue;
      assert.equal(fst.mode & 0o777, 0o600, f);
      assert.equal(fst.uid, WORKER_UID, f);
    }
    const creds = JSON.parse(fs.readFileSync(path.join(authDir(), 'creds.json'), 'utf8'), BufferJSON.reviver) as {
      me?: { id: string };
    };
    assert.equal(creds.me?.id, c.data.jid);
    await until(async () => (await containerState(CONTAINER)).Health?.Status === 'healthy', 20_000, 'healthy');
    await sleep(3000);
    const pid = (await containerState(CONTAINER)).Pid;
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    t.diagnostic(`container worker RSS connected+idle: ${(rssKb / 1024).toFixed(1)} MB`);
    assert.ok(rssKb > 0 && rssKb < 300 * 1024);
    const logs = await containerLogs(CONTAINER);
    assert.ok(!logs.includes(PROXY_PASSWORD) && !logs.includes(SECRET), 'no secret in the container log');
  });

  test('docker stop (SIGTERM): exit 0 within 10 s; start again: CONNECTED without a QR', async () => {
    const t0 = Date.now();
    await docker('stop', '-t', '15', CONTAINER);
    const ms = Date.now() - t0;
    const st = await containerState(CONTAINER);
    assert.equal(st.ExitCode, 0);
    assert.ok(ms < 10_000, `stop took ${ms} ms`);
    assert.ok((await containerLogs(CONTAINER)).includes('"msg":"stopped"'));
    assert.ok(sim.phones().find((p) => p.phone === PHONE)?.linked, 'still linked: no logout');
    const since = rx.events.length;
    await docker('start', CONTAINER);
    const c = await rx.waitFor('CONNECTED', () => true, 30_000, since);
    assert.equal(c.data.phoneNumber, PHONE);
    assert.equal(rx.ofType('QR_CODE', since).length, 0);
  });

  test('proxy killed: PROXY_ERROR + DISCONNECTED{isProxyError}; never any other route; recovers on the same proxy', async () => {
    let since = rx.events.length;
    await proxy.close();
    await rx.waitFor('PROXY_ERROR', () => true, 20_000, since);
    await rx.waitFor('DISCONNECTED', (d) => d.data.isProxyError, 10_000, since);
    await until(() => rx.ofType('PROXY_ERROR', since).length >= 2, 15_000, 'retries the same proxy');
    assert.deepEqual([...new Set(sim.connections().map((x) => x.address))], [PROXY_SOURCE]);
    since = rx.events.length;
    proxy = await Socks5Proxy.start({
      username: PROXY_USER,
      password: PROXY_PASSWORD,
      bindAddress: PROXY_SOURCE,
      port: proxyPort,
    });
    await rx.waitFor('CONNECTED', () => true, 20_000, since);
    assert.deepEqual([...new Set(sim.connections().map((x) => x.address))], [PROXY_SOURCE]);
  });

  test('the phone unlinks: AUTH_FAILURE and no reconnect (container stays up, idle)', async () => {
    const since = rx.events.length;
    sim.fault(PHONE, 'unlink');
    await rx.waitFor('AUTH_FAILURE', () => true, 10_000, since);
    const n = sim.connections().length;
    await sleep(2500);
    assert.equal(sim.connections().length, n);
    const st = await containerState(CONTAINER);
    assert.equal(st.Running, true);
  });
});
