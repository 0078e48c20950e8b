/**
 * The README's first command, as a newcomer runs it: `bash scripts/start.sh --demo` starts the whole product on
 * the embedded defaults (services, orchestrator, API + dashboard, simulator, 4 SOCKS5 proxies) and prints the
 * dashboard URL and API key. Then: provision, "scan" with the demo button's route, send a message, see it
 * delivered; Ctrl-C (SIGTERM) stops everything it started.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, ROOT, waitFor } from './helpers/stack.js';

describe('demo: bash scripts/start.sh --demo', () => {
  let child: ChildProcess;
  let output = '';
  let api = '';
  let key = '';
  const id = randomBytes(3).toString('hex');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'wa-demo-'));

  before(async () => {
    const port = await freePort();
    child = spawn('bash', [path.join(ROOT, 'scripts', 'start.sh'), '--demo'], {
      cwd: ROOT,
      env: {
        ...process.env,
        WA_DATA_DIR: dataDir,
        API_PORT: String(port),
        REDIS_KEY_PREFIX: `demotest:${id}:`,
        WORKFLOW_ID_PREFIX: `demotest-${id}`,
        TEMPORAL_TASK_QUEUE: `demotest-${id}`,
        ANTIBAN_COLD_GAP_MS: '1000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor('the demo banner', () => /is running/.test(output) || child.exitCode !== null, 180_000, 200);
    assert.equal(child.exitCode, null, `start.sh exited early:\n${output}`);
    api = /Dashboard:\s+(http:\/\/\S+)\//.exec(output)![1]!;
    key = /API key:\s+(\S+)/.exec(output)![1]!;
  });

  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  const call = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(`${api}${url}`, {
      method,
      headers: { 'x-api-key': key, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json().catch(() => null)) as any };
  };

  it('prints the dashboard URL and API key, and serves the dashboard', async () => {
    assert.match(output, /Dashboard:\s+http:\/\/127\.0\.0\.1:\d+\//);
    assert.match(key, /^demo-[0-9a-f]{32}$/);
    const page = await fetch(`${api}/dashboard/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    assert.equal((await call('GET', '/api/demo')).status, 200);
  });

  it('provision → simulated scan → connected → send → delivered', async () => {
    const p = await call('POST', '/api/sessions/provision', { sessionId: 'demo1', phone: '15550001111' });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    await waitFor('the QR', async () => (await call('GET', '/api/sessions/demo1/qr')).status === 200, 60_000);
    const scan = await call('POST', '/api/demo/sessions/demo1/scan', {});
    assert.equal(scan.status, 200, JSON.stringify(scan.body));
    await waitFor(
      'connected',
      async () => (await call('GET', '/api/sessions/demo1/status')).body?.status === 'connected',
      60_000,
    );

    const sent = await call('POST', '/api/send', {
      sessionId: 'demo1',
      to: '15559990001',
      text: 'hello from the demo',
    });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const delivered = await waitFor(
      'the message to be delivered',
      async () => {
        const m = await call('GET', `/api/messages/${sent.body.messageId}`);
        return ['delivered', 'read'].includes(m.body?.status) ? m.body : null;
      },
      60_000,
      250,
    );
    assert.equal(delivered.status === 'delivered' || delivered.status === 'read', true);
    // The simulated WhatsApp decrypted exactly that text, from the session's phone.
    const sim = (await (await fetch('http://127.0.0.1:9401/messages?phone=15550001111')).json()) as {
      messages: Array<{ text: string; to: string }>;
    };
    assert.deepEqual(
      sim.messages.map((m) => m.text),
      ['hello from the demo'],
    );
  });

  it('Ctrl-C stops what it started', async () => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    await waitFor('the API to stop', async () => (await fetch(`${api}/healthz`).catch(() => null)) === null, 20_000);
    await waitFor(
      'the simulator to stop',
      async () => (await fetch('http://127.0.0.1:9401/healthz').catch(() => null)) === null,
      20_000,
    );
  });
});
