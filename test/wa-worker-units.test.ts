/**
 * wa-worker units: configuration, auth-store crash safety (kill -9 during heavy writes), the event spool (order,
 * outage, restart replay, torn lines, cap, duplicates), the disconnect classifier, log scrubbing and signatures.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BufferJSON, generateOrGetPreKeys, INITIAL_PREKEY_COUNT, useMultiFileAuthState } from '@whiskeysockets/baileys';
import { SocksClientError } from 'socks';
import { signWebhook, verifyWebhook, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER } from '../common/events.js';
import { useCrashSafeAuthState, writeFileAtomic } from '../wa-worker/auth-store.js';
import { backoffDelay, ConfigError, loadConfig } from '../wa-worker/config.js';
import { classifyDisconnect } from '../wa-worker/connection.js';
import { storeInitialPreKeys } from '../wa-worker/engine.js';
import { HIDDEN_MESSAGE_EXPIRATION_S, KeepAlive, Liveness } from '../wa-worker/keep-alive.js';
import { createLogger } from '../wa-worker/logger.js';
import { hostCpuPressure, parseCpuPressure, PreKeysAhead } from '../wa-worker/pre-keys-ahead.js';
import { SPOOL_FILE, WebhookReporter } from '../wa-worker/webhooks.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';
import { REPO_ROOT } from './helpers/worker-process.js';

const SECRET = 'unit-secret-0123456789abcdef';
const PROXY = 'socks5h://user:Pr0xyPa55w0rd@127.0.0.1:1080';
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-units-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const tmpDir = (name: string) => fs.mkdtempSync(path.join(tmpRoot, `${name}-`));
const silent = createLogger({ level: 'silent', sessionId: 'units', secrets: [] });

const baseEnv = {
  SESSION_ID: 'sess_1',
  PROXY_URL: PROXY,
  WEBHOOK_URL: 'http://127.0.0.1:9/webhook',
  WEBHOOK_SECRET: SECRET,
};

describe('config', () => {
  test('defaults', () => {
    const c = loadConfig(baseEnv);
    assert.equal(c.sessionId, 'sess_1');
    assert.equal(c.proxy.host, '127.0.0.1');
    assert.equal(c.enableKeepAlive, true);
    assert.equal(c.authDir, '/app/sessions/sess_1');
    assert.equal(c.presenceIntervalMs, 15_000);
    assert.equal(c.hiddenMessageIntervalMs, 600_000);
    assert.equal(c.waWebSocketUrl, undefined);
    assert.equal(c.outboxUrl, undefined);
  });

  test('overrides', () => {
    const c = loadConfig({
      ...baseEnv,
      ENABLE_KEEP_ALIVE: 'false',
      SESSIONS_DIR: '/tmp/s',
      WA_WEBSOCKET_URL: 'ws://127.0.0.1:1234/ws/chat',
      OUTBOX_URL: 'http://127.0.0.1:3000/api/worker/sessions/sess_1/outbox/',
      PRESENCE_INTERVAL_MS: '500',
    });
    assert.equal(c.enableKeepAlive, false);
    assert.equal(c.authDir, '/tmp/s/sess_1');
    assert.equal(c.outboxUrl, 'http://127.0.0.1:3000/api/worker/sessions/sess_1/outbox');
    assert.equal(c.presenceIntervalMs, 500);
  });

  test('AUTH_STORE: file by default; postgres talks to the auth-state endpoint beside the outbox', () => {
    assert.equal(loadConfig(baseEnv).authStore, 'file');
    assert.equal(loadConfig(baseEnv).authStateUrl, undefined);
    const outbox = 'http://127.0.0.1:3000/api/worker/sessions/sess_1/outbox';
    const c = loadConfig({ ...baseEnv, AUTH_STORE: 'postgres', OUTBOX_URL: outbox });
    assert.equal(c.authStore, 'postgres');
    assert.equal(c.authStateUrl, 'http://127.0.0.1:3000/api/worker/sessions/sess_1/auth');
    assert.equal(c.authWriteBatchMs, 5);
    assert.equal(
      loadConfig({ ...baseEnv, AUTH_STORE: 'postgres', AUTH_STATE_URL: 'http://api:3000/x/auth/' }).authStateUrl,
      'http://api:3000/x/auth',
    );
    assert.throws(
      () => loadConfig({ ...baseEnv, AUTH_STORE: 'postgres' }),
      (err: Error) => /AUTH_STATE_URL: is required with AUTH_STORE=postgres/.test(err.message),
    );
  });

  test('every bad variable is named, secrets are never echoed', () => {
    let err: unknown;
    try {
      loadConfig({
        SESSION_ID: '../etc',
        PROXY_URL: 'socks5://user:Pr0xyPa55w0rd@127.0.0.1:1080',
        WEBHOOK_URL: 'ftp://x',
        WEBHOOK_SECRET: 'short',
        ENABLE_KEEP_ALIVE: 'maybe',
        PRESENCE_INTERVAL_MS: 'fast',
      });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    const vars = err.problems.map((p) => p.variable).sort();
    assert.deepEqual(vars, [
      'ENABLE_KEEP_ALIVE',
      'PRESENCE_INTERVAL_MS',
      'PROXY_URL',
      'SESSION_ID',
      'WEBHOOK_SECRET',
      'WEBHOOK_URL',
    ]);
    assert.doesNotMatch(err.message, /Pr0xyPa55w0rd/);
    assert.match(err.message, /only socks5h/);
  });

  test('missing required variables', () => {
    assert.throws(
      () => loadConfig({}),
      (e: unknown) =>
        e instanceof ConfigError &&
        ['SESSION_ID', 'PROXY_URL', 'WEBHOOK_URL', 'WEBHOOK_SECRET'].every((v) =>
          e.problems.some((p) => p.variable === v),
        ),
    );
  });

  test('the process exits 2 with one clear message', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'wa-worker/main.ts')], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', PROXY_URL: 'http://a:Pr0xyPa55w0rd@h:1', SESSION_ID: 'ok' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    assert.equal(code, 2);
    assert.match(stderr, /Invalid configuration/);
    for (const v of ['PROXY_URL', 'WEBHOOK_URL', 'WEBHOOK_SECRET']) assert.match(stderr, new RegExp(`- ${v}:`));
    assert.doesNotMatch(stderr, /SESSION_ID/);
    assert.doesNotMatch(stderr, /Pr0xyPa55w0rd/);
  });

  test('backoff is capped and jittered', () => {
    for (let a = 0; a < 40; a++) {
      const d = backoffDelay(a, 1000, 60_000);
      assert.ok(d >= 500 && d <= 60_000, `attempt ${a}: ${d}`);
    }
    assert.equal(
      backoffDelay(3, 1000, 60_000, () => 1),
      8000,
    );
    assert.equal(
      backoffDelay(30, 1000, 60_000, () => 1),
      60_000,
    );
    assert.equal(
      backoffDelay(0, 1000, 60_000, () => 0),
      500,
    );
  });
});

describe('auth store', () => {
  test('owner-only modes, atomic files, compatible with useMultiFileAuthState', async () => {
    const dir = path.join(tmpDir('auth'), 'sess');
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'stray.json'), '{}', { mode: 0o644 });
    fs.writeFileSync(path.join(dir, 'creds.json.tmp-1-abcd'), '{"half');
    const a = await useCrashSafeAuthState(dir);
    assert.equal(a.hadCreds, false);
    await a.saveCreds();
    await a.state.keys.set({ 'pre-key': { '1': { public: Buffer.alloc(32, 1), private: Buffer.alloc(32, 2) } } });
    await a.state.keys.set({ 'app-state-sync-key': { 'AAAAAbc/d:e': { keyData: Buffer.alloc(8, 3) } as never } });
    await a.flush();
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    const files = fs.readdirSync(dir).sort();
    assert.deepEqual(files, ['app-state-sync-key-AAAAAbc__d-e.json', 'creds.json', 'pre-key-1.json', 'stray.json']);
    for (const f of files) assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);

    // Baileys' own loader reads the same folder.
    const b = await useMultiFileAuthState(dir);
    assert.deepEqual(b.state.creds.noiseKey.public, a.state.creds.noiseKey.public);
    const pk = await b.state.keys.get('pre-key', ['1']);
    assert.deepEqual(pk['1']?.private, Buffer.alloc(32, 2));
    // ... and ours reads what Baileys wrote.
    const again = await useCrashSafeAuthState(dir);
    assert.equal(again.hadCreds, true);
    assert.equal(again.state.creds.registrationId, a.state.creds.registrationId);
    const sk = await again.state.keys.get('app-state-sync-key', ['AAAAAbc/d:e']);
    assert.deepEqual(Buffer.from(sk['AAAAAbc/d:e']!.keyData!), Buffer.alloc(8, 3));
    await again.state.keys.set({ 'pre-key': { '1': null } });
    assert.equal(fs.existsSync(path.join(dir, 'pre-key-1.json')), false);
  });

  test('concurrent writes to one file are serialized (last write wins)', async () => {
    const dir = tmpDir('serial');
    const a = await useCrashSafeAuthState(dir);
    const creds = a.state.creds as unknown as { nextPreKeyId: number };
    const writes: Promise<void>[] = [];
    for (let i = 1; i <= 50; i++) {
      creds.nextPreKeyId = i;
      writes.push(a.saveCreds());
    }
    await Promise.all(writes);
    const onDisk = JSON.parse(fs.readFileSync(path.join(dir, 'creds.json'), 'utf8'), BufferJSON.reviver) as {
      nextPreKeyId: number;
    };
    assert.equal(onDisk.nextPreKeyId, 50);
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.includes('.tmp-')),
      [],
    );
  });

  test('kill -9 during heavy auth writes, 20 times: creds.json always parses', async () => {
    const dir = tmpDir('crash');
    const writer = path.join(REPO_ROOT, 'test/helpers/worker-auth-writer.ts');
    let lastRound = 0;
    for (let i = 0; i < 20; i++) {
      const child = spawn(process.execPath, ['--import', 'tsx', writer, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => c.toString().includes('ready') && resolve());
        child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
      });
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 150));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      const text = fs.readFileSync(path.join(dir, 'creds.json'), 'utf8');
      const creds = JSON.parse(text, BufferJSON.reviver) as { nextPreKeyId: number; noiseKey: { public: Buffer } };
      assert.ok(Buffer.isBuffer(creds.noiseKey.public), `round ${i}: creds.noiseKey restored`);
      assert.ok(creds.nextPreKeyId >= 1);
      lastRound = creds.nextPreKeyId;
      for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.json'))) {
        JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
      }
    }
    assert.ok(lastRound >= 1);
    // Leftover temp files from the kills are swept on the next start.
    await useCrashSafeAuthState(dir);
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.includes('.tmp-')),
      [],
    );
  });

  test('an unreadable creds.json is moved aside, never silently overwritten', async () => {
    const dir = tmpDir('corrupt');
    fs.writeFileSync(path.join(dir, 'creds.json'), '{"noiseKey":');
    const a = await useCrashSafeAuthState(dir);
    assert.equal(a.hadCreds, false);
    assert.equal(fs.readdirSync(dir).filter((f) => f.startsWith('creds.json.corrupt-')).length, 1);
  });

  test('writeFileAtomic never exposes a partial file', async () => {
    const dir = tmpDir('atomic');
    const file = path.join(dir, 'x.json');
    await writeFileAtomic(file, 'old');
    const big = 'y'.repeat(2_000_000);
    const reads: string[] = [];
    const w = writeFileAtomic(file, big);
    for (let i = 0; i < 50; i++) {
      reads.push(fs.readFileSync(file, 'utf8'));
      await new Promise((r) => setImmediate(r));
    }
    await w;
    for (const r of reads) assert.ok(r === 'old' || r === big);
    assert.equal(fs.readFileSync(file, 'utf8'), big);
  });
});

describe('event spool', () => {
  let rx: WebhookReceiver;
  before(async () => {
    rx = await WebhookReceiver.start(SECRET);
  });
  after(async () => {
    await rx.close();
  });

  const reporter = (dir: string, extra: Partial<ConstructorParameters<typeof WebhookReporter>[0]> = {}) =>
    new WebhookReporter({
      sessionId: 'spool_1',
      url: rx.url,
      secret: SECRET,
      dir,
      maxBytes: 1024 * 1024,
      timeoutMs: 2000,
      retryBaseMs: 20,
      retryMaxMs: 200,
      logger: silent,
      ...extra,
    });

  test('outage, then restart: every event arrives once, in order, signed', async () => {
    const dir = tmpDir('spool');
    const start = rx.events.length;
    await rx.down();
    const r1 = reporter(dir);
    await r1.open();
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(r1.emit('PING', { timestamp: i })!.eventId);
    ids.push(r1.emit('DISCONNECTED', { reason: 'x', code: 428, isProxyError: false })!.eventId);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await r1.flush(100), false);
    await r1.close();
    assert.equal(fs.statSync(path.join(dir, SPOOL_FILE)).mode & 0o777, 0o600, 'spool is owner-only');

    // A new process replays the spool first, then new events.
    const r2 = reporter(dir);
    await r2.open();
    assert.equal(r2.stats.replayed, 31);
    ids.push(
      r2.emit('CONNECTED', { phoneNumber: '15550001111', jid: '15550001111:7@s.whatsapp.net', fingerprint: 'ab' })!
        .eventId,
    );
    await rx.up();
    assert.equal(await r2.flush(5000), true);
    const got = rx.events.slice(start).map((e) => e.eventId);
    assert.deepEqual(got, ids);
    await r2.close();

    // Nothing is replayed again.
    const r3 = reporter(dir);
    await r3.open();
    assert.equal(r3.stats.replayed, 0);
    await r3.close();
    assert.equal(rx.rejected.length, 0);
  });

  test('a torn last line (crash mid-append) is skipped, the rest is delivered', async () => {
    const dir = tmpDir('torn');
    await rx.down();
    const r1 = reporter(dir);
    await r1.open();
    const a = r1.emit('PING', { timestamp: 1 })!;
    const b = r1.emit('PING', { timestamp: 2 })!;
    await r1.close();
    fs.appendFileSync(path.join(dir, SPOOL_FILE), '{"sessionId":"spool_1","type":"PI');
    await rx.up();
    const start = rx.events.length;
    const r2 = reporter(dir);
    await r2.open();
    const c = r2.emit('PING', { timestamp: 3 })!;
    assert.equal(await r2.flush(5000), true);
    await r2.close();
    assert.deepEqual(
      rx.events.slice(start).map((e) => e.eventId),
      [a.eventId, b.eventId, c.eventId],
    );
  });

  test('duplicates keep the same eventId (receiver answered 503 after recording)', async () => {
    const dir = tmpDir('dup');
    let calls = 0;
    const flaky: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      return ++calls === 1 ? new Response(null, { status: 503 }) : res;
    };
    const start = rx.deliveries.length;
    const r = reporter(dir, { fetchImpl: flaky });
    await r.open();
    const e = r.emit('AUTH_FAILURE', { reason: 'test' })!;
    assert.equal(await r.flush(5000), true);
    await r.close();
    const got = rx.deliveries.slice(start);
    assert.equal(got.length, 2);
    assert.ok(got.every((d) => d.eventId === e.eventId));
    assert.equal(rx.events.slice(rx.events.length - 1)[0]?.eventId, e.eventId);
  });

  test('the spool is bounded: PINGs are dropped first', async () => {
    const dir = tmpDir('cap');
    await rx.down();
    const r = reporter(dir, { maxBytes: 8192 });
    await r.open();
    const important = r.emit('QR_CODE', { qr: 'q'.repeat(100) })!;
    for (let i = 0; i < 200; i++) r.emit('PING', { timestamp: i });
    const last = r.emit('CONNECTED', { phoneNumber: '15550001111', jid: 'j', fingerprint: 'f' })!;
    await r.flush(300);
    await r.close();
    assert.ok(fs.statSync(path.join(dir, SPOOL_FILE)).size <= 8192);
    assert.ok(r.stats.dropped > 0);
    await rx.up();
    const start = rx.events.length;
    const r2 = reporter(dir, { maxBytes: 8192 });
    await r2.open();
    assert.equal(await r2.flush(5000), true);
    await r2.close();
    const types = rx.events.slice(start);
    assert.equal(types[0]?.eventId, important.eventId);
    assert.equal(types.at(-1)?.eventId, last.eventId);
  });

  test('invalid event data is refused, not sent', async () => {
    const r = reporter(tmpDir('invalid'));
    await r.open();
    assert.equal(r.emit('CONNECTED', { phoneNumber: 'not a phone', jid: '', fingerprint: '' }), undefined);
    await r.close();
  });
});

describe('disconnect classifier', () => {
  const boom = (code: number, message = 'x', data?: unknown) =>
    Object.assign(new Error(message), { isBoom: true, output: { statusCode: code }, data });
  const ctx = { justPaired: false, registered: true };

  test('proxy errors are recognised from the error data, whatever the status code', () => {
    const socks = new SocksClientError('Socks5 Authentication failed', {
      proxy: { host: '127.0.0.1', port: 1, type: 5, userId: 'u', password: 'p' },
      destination: { host: 'web.whatsapp.com', port: 443 },
      command: 'connect',
    });
    assert.equal(
      classifyDisconnect(boom(500, 'WebSocket Error (Socks5 Authentication failed)', socks), ctx).kind,
      'proxy',
    );
    assert.equal(
      classifyDisconnect(boom(408, 'WebSocket Error (Proxy connection timed out)', socks), ctx).kind,
      'proxy',
    );
    // A direct ECONNREFUSED (no proxy involved) is not a proxy error.
    const direct = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    assert.equal(classifyDisconnect(boom(408, 'WebSocket Error', direct), ctx).kind, 'lost');
  });

  test('status codes', () => {
    assert.deepEqual(classifyDisconnect(boom(401), ctx), { kind: 'logged_out', reconnect: false });
    assert.deepEqual(classifyDisconnect(boom(440), ctx), { kind: 'replaced', reconnect: false });
    // WhatsApp's codes: 406 banned, 402 banned until `expire` (unix seconds), 403 account locked
    assert.deepEqual(classifyDisconnect(boom(406), ctx), { kind: 'banned', reconnect: false });
    assert.deepEqual(
      classifyDisconnect(boom(402, 'Connection Failure', { reason: '402', expire: '1800000000' }), ctx),
      {
        kind: 'banned',
        reconnect: false,
        until: 1_800_000_000_000,
      },
    );
    assert.deepEqual(classifyDisconnect(boom(403), ctx), { kind: 'locked', reconnect: false });
    assert.equal(classifyDisconnect(boom(515), { ...ctx, justPaired: true }).kind, 'restart_after_pairing');
    for (const c of [408, 428, 500, 515, 503]) assert.equal(classifyDisconnect(boom(c), ctx).kind, 'lost', String(c));
    assert.equal(
      classifyDisconnect(boom(408, 'QR refs attempts ended'), { ...ctx, registered: false }).kind,
      'qr_timeout',
    );
    assert.equal(classifyDisconnect(undefined, ctx).kind, 'lost');
  });
});

describe('logging and signatures', () => {
  test('no proxy password or webhook secret ever reaches the log', () => {
    const lines: string[] = [];
    const log = createLogger({
      level: 'info',
      sessionId: 's',
      secrets: ['Pr0xyPa55w0rd', SECRET],
      write: (l) => lines.push(l),
    });
    const err = new SocksClientError('failed', {
      proxy: { host: 'h', port: 1, type: 5, userId: 'user', password: 'Pr0xyPa55w0rd' },
      destination: { host: 'x', port: 1 },
      command: 'connect',
    });
    log.error({ err, url: PROXY, secret: SECRET }, `connecting via ${PROXY}`);
    log.info({ nested: { deep: { value: `a"${SECRET}"b` } } }, 'x');
    const out = lines.join('');
    assert.doesNotMatch(out, /Pr0xyPa55w0rd/);
    assert.ok(!out.includes(SECRET));
    assert.match(out, /socks5h:\/\/user:\*\*\*@127\.0\.0\.1:1080/);
  });

  test('sign and verify (constant-time, timestamp window)', () => {
    const body = '{"a":1}';
    const now = Date.now();
    const headers = {
      [WEBHOOK_TIMESTAMP_HEADER]: String(now),
      [WEBHOOK_SIGNATURE_HEADER]: signWebhook(SECRET, now, body),
    };
    assert.deepEqual(verifyWebhook(SECRET, headers, body), { ok: true });
    assert.deepEqual(verifyWebhook(SECRET, headers, '{"a":2}'), { ok: false, reason: 'bad-signature' });
    assert.deepEqual(verifyWebhook('another-secret-xxxxxxxx', headers, body), { ok: false, reason: 'bad-signature' });
    assert.deepEqual(verifyWebhook(SECRET, { ...headers, [WEBHOOK_SIGNATURE_HEADER]: 'sha256=00' }, body), {
      ok: false,
      reason: 'bad-signature',
    });
    assert.deepEqual(verifyWebhook(SECRET, headers, body, { now: now + 10 * 60_000 }), { ok: false, reason: 'stale' });
    assert.deepEqual(verifyWebhook(SECRET, {}, body), { ok: false, reason: 'missing' });
    assert.deepEqual(verifyWebhook(SECRET, new Headers(headers), body), { ok: true });
  });
});

describe('keep-alive', () => {
  test('presence every interval (no PING: liveness is separate), hidden message to the own number with ephemeralExpiration 86400', async () => {
    const calls: { kind: string; args: unknown[] }[] = [];
    // the engine socket (wa-worker/engine.ts) the keep-alive drives
    const sock = {
      hasPushName: true,
      sendPresenceAvailable: async () => void calls.push({ kind: 'presence', args: ['available'] }),
      sendText: async (...args: unknown[]) => {
        calls.push({ kind: 'message', args });
        return 'WAID';
      },
    };
    const pings: unknown[] = [];
    const reporter = { emit: (type: string, data: unknown) => void pings.push({ type, data }) };
    const ka = new KeepAlive({ presenceIntervalMs: 50, hiddenMessageIntervalMs: 120 }, reporter as never, silent);
    ka.start(sock as never, '15550001111:7@s.whatsapp.net');
    await new Promise((r) => setTimeout(r, 280));
    ka.stop();
    const n = calls.length;
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(calls.length, n, 'stop() stops every timer');
    const presences = calls.filter((c) => c.kind === 'presence');
    assert.ok(presences.length >= 4, `presences: ${presences.length}`);
    assert.ok(presences.every((c) => c.args[0] === 'available'));
    assert.equal(pings.length, 0, 'keep-alive reports no PING: the liveness heartbeat does');
    const hidden = calls.filter((c) => c.kind === 'message');
    assert.equal(hidden.length, 2);
    assert.equal(hidden[0]!.args[0], '15550001111@s.whatsapp.net');
    assert.deepEqual(hidden[0]!.args[2], { ephemeralExpiration: HIDDEN_MESSAGE_EXPIRATION_S });
    assert.equal(HIDDEN_MESSAGE_EXPIRATION_S, 86_400);
  });

  test('liveness: a PING every interval from start() to stop(), whatever the connection state', async () => {
    const events: string[] = [];
    const live = new Liveness(40, { emit: (type: string) => void events.push(type) } as never);
    live.start();
    await new Promise((r) => setTimeout(r, 150));
    live.stop();
    const n = events.length;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(events.length, n, 'stop() stops the heartbeat');
    assert.ok(n >= 3, `pings: ${n}`);
    assert.ok(events.every((t) => t === 'PING'));
  });
});

describe('pre-keys stored ahead of the first login', () => {
  test('storeInitialPreKeys: the 812 keys Baileys would make at login, stored, then the creds counter; once', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-prekeys-'));
    try {
      const auth = await useCrashSafeAuthState(path.join(dir, 's'));
      assert.equal(await storeInitialPreKeys(auth.state, auth.saveCreds), INITIAL_PREKEY_COUNT);
      const creds = JSON.parse(fs.readFileSync(path.join(dir, 's', 'creds.json'), 'utf8'), BufferJSON.reviver) as {
        nextPreKeyId: number;
        firstUnuploadedPreKeyId: number;
      };
      assert.deepEqual([creds.nextPreKeyId, creds.firstUnuploadedPreKeyId], [INITIAL_PREKEY_COUNT + 1, 1]);
      const stored = await auth.state.keys.get('pre-key', ['1', String(INITIAL_PREKEY_COUNT)]);
      assert.equal(Object.keys(stored).length, 2);
      // Baileys' login finds them: nothing left to generate for its first upload.
      assert.equal(Object.keys(generateOrGetPreKeys(auth.state.creds, INITIAL_PREKEY_COUNT).newPreKeys).length, 0);
      assert.equal(await storeInitialPreKeys(auth.state, auth.saveCreds), 0, 'not twice');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('storeInitialPreKeys: nothing for a linked device', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-prekeys-'));
    try {
      const auth = await useCrashSafeAuthState(path.join(dir, 's'));
      auth.state.creds.me = { id: '15550001111:3@s.whatsapp.net' };
      assert.equal(await storeInitialPreKeys(auth.state, auth.saveCreds), 0);
      assert.equal(fs.readdirSync(path.join(dir, 's')).filter((f) => f.startsWith('pre-key-')).length, 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('CPU pressure: PSI "some avg10"', () => {
    assert.equal(
      parseCpuPressure('some avg10=27.75 avg60=38.79 avg300=47.14 total=21762778350\nfull avg10=0.00 avg60=0.00'),
      27.75,
    );
    assert.equal(parseCpuPressure('garbage'), null);
    assert.ok(Number.isFinite(hostCpuPressure()));
  });

  const quietLogger = { info: () => {}, warn: () => {} };
  const until = async (what: string, ok: () => boolean) => {
    const deadline = Date.now() + 5_000;
    while (!ok()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  /** A PreKeysAhead at the given host pressure, counting its pressure checks and stores. */
  const aheadAt = (o: { pressure: () => number; waiting?: () => boolean; store?: () => Promise<number> }) => {
    const counts = { checks: 0, stores: 0 };
    const ahead = new PreKeysAhead({
      store: () => {
        counts.stores++;
        return o.store ? o.store() : Promise.resolve(812);
      },
      waiting: o.waiting ?? (() => true),
      reported: () => Promise.resolve(),
      maxCpuPressure: 20,
      retryMs: 10,
      pressure: () => {
        counts.checks++;
        return o.pressure();
      },
      logger: quietLogger,
    });
    return { ahead, counts };
  };

  test('PreKeysAhead: waits while the host is busy, stores once it is not; a login can wait for the job', async () => {
    let pressure = 80;
    let finish: (n: number) => void = () => {};
    const { ahead, counts } = aheadAt({
      pressure: () => pressure,
      store: () => new Promise<number>((r) => (finish = r)),
    });
    ahead.schedule();
    await until('three pressure checks', () => counts.checks >= 3);
    assert.equal(counts.stores, 0, 'nothing while the host is busy');
    assert.equal(ahead.running, undefined);
    pressure = 5;
    await until('the store', () => counts.stores === 1);
    const job = ahead.running;
    assert.ok(job, 'a login waits for this');
    ahead.schedule();
    finish(812);
    await job;
    assert.equal(counts.stores, 1, 'once per worker');
  });

  test('PreKeysAhead: a scan before the host is free drops the job (the login makes the keys)', async () => {
    let waiting = true;
    const { ahead, counts } = aheadAt({ pressure: () => 90, waiting: () => waiting });
    ahead.schedule();
    await until('a pressure check', () => counts.checks >= 1);
    waiting = false;
    const seen = counts.checks;
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(counts.checks <= seen + 1, 'no more checks once scanned');
    assert.equal(counts.stores, 0);
    assert.equal(ahead.running, undefined);
  });
});
