/**
 * The README's first command, as a newcomer runs it: `bash scripts/start.sh --demo` starts the whole product on
 * the embedded defaults (services, orchestrator, API + dashboard, simulator, 4 SOCKS5 proxies) and prints the
 * dashboard URL and API key. With Docker available (it is here) every session runs in its own container
 * `wa_session_<id>`. Then: provision, "scan" with the demo button's route, send a message, see it delivered;
 * Ctrl-C (SIGTERM) stops everything it started, containers included. `--runner process` keeps the lighter mode.
 * Each run gets a fresh data folder (a fresh clone's first run) and its own host label, so it never touches
 * another deployment's containers on the shared Docker daemon.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, ROOT, waitFor } from './helpers/stack.js';

/** Lines a newcomer would read as something having gone wrong. */
const STRAY = /error|warn|no such file|not found|deprecated|cannot|unbound variable|line \d+:/i;

/** Names of this demo's containers (its host label), running or not. */
function demoContainers(hostId: string): string[] {
  const out = execFileSync(
    'docker',
    [
      'ps',
      '-a',
      '--filter',
      'label=wa.managed-by=wa-orchestrator',
      '--filter',
      `label=wa.host=${hostId}`,
      '--format',
      '{{.Names}}',
    ],
    { encoding: 'utf8' },
  );
  return out.split('\n').filter(Boolean).sort();
}

/** Names of the running containers `docker ps` shows for these sessions. */
function runningContainers(sessionIds: string[]): string[] {
  const out = execFileSync('docker', ['ps', '--filter', 'name=^wa_session_', '--format', '{{.Names}}'], {
    encoding: 'utf8',
  });
  const wanted = new Set(sessionIds.map((s) => `wa_session_${s}`));
  return out
    .split('\n')
    .filter((n) => wanted.has(n))
    .sort();
}

class Demo {
  child!: ChildProcess;
  output = '';
  api = '';
  key = '';
  readonly id = randomBytes(3).toString('hex');
  readonly hostId = `demotest${this.id}`;
  readonly dataDir = mkdtempSync(path.join(os.tmpdir(), 'wa-demo-'));

  async start(args: string[]): Promise<void> {
    const port = await freePort();
    this.child = spawn('bash', [path.join(ROOT, 'scripts', 'start.sh'), '--demo', ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        WA_DATA_DIR: this.dataDir,
        API_PORT: String(port),
        REDIS_KEY_PREFIX: `demotest:${this.id}:`,
        WORKFLOW_ID_PREFIX: `demotest-${this.id}`,
        TEMPORAL_TASK_QUEUE: `demotest-${this.id}`,
        HOST_ID: this.hostId,
        ANTIBAN_COLD_GAP_MS: '1000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    await waitFor(
      'the demo banner',
      () => /is running[\s\S]*Ctrl-C stops it/.test(this.output) || this.child.exitCode !== null,
      240_000,
      200,
    );
    assert.equal(this.child.exitCode, null, `start.sh exited early:\n${this.output}`);
    this.api = /Dashboard:\s+(http:\/\/\S+)\//.exec(this.output)![1]!;
    this.key = /API key:\s+(\S+)/.exec(this.output)![1]!;
  }

  async call(method: string, url: string, body?: unknown) {
    const res = await fetch(`${this.api}${url}`, {
      method,
      headers: { 'x-api-key': this.key, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json().catch(() => null)) as any };
  }

  logTail(file: string, lines = 30): string {
    try {
      return readFileSync(path.join(this.dataDir, 'logs', file), 'utf8')
        .split('\n')
        .slice(-lines)
        .join('\n');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      await exited;
    }
  }

  /** Whatever a failed run left behind: only this run's containers (its own host label) and data folder. */
  async cleanup(): Promise<void> {
    await this.stop();
    const left = demoContainers(this.hostId);
    if (left.length) execFileSync('docker', ['rm', '-f', ...left], { stdio: 'ignore' });
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

describe('demo: bash scripts/start.sh --demo (Docker available: one container per session)', () => {
  const demo = new Demo();
  before(() => demo.start([]));
  after(() => demo.cleanup());

  it('first run on a fresh data folder: no stray errors; the banner names the runner and the image was built', () => {
    const stray = demo.output.split('\n').filter((l) => STRAY.test(l));
    assert.deepEqual(stray, [], `stray lines in the first run's output:\n${demo.output}`);
    assert.match(demo.output, /\[start\] preparing the worker image/);
    assert.match(demo.output, /\[start\] image: whatsapp-worker-image:[\w.-]+ (ready|is up to date)/);
    assert.match(demo.output, /Runner:\s+docker — one container per session/);
  });

  it('prints the dashboard URL and API key, and serves the dashboard', async () => {
    assert.match(demo.output, /Dashboard:\s+http:\/\/127\.0\.0\.1:\d+\//);
    assert.match(demo.key, /^demo-[0-9a-f]{32}$/);
    const page = await fetch(`${demo.api}/dashboard/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    assert.equal((await demo.call('GET', '/api/demo')).status, 200);
  });

  it('provision → simulated scan → connected → send → delivered, in container wa_session_demo1', async (t) => {
    const t0 = Date.now();
    const p = await demo.call('POST', '/api/sessions/provision', { sessionId: 'demo1', phone: '15550001111' });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    await waitFor('the QR', async () => (await demo.call('GET', '/api/sessions/demo1/qr')).status === 200, 60_000);
    const scan = await demo.call('POST', '/api/demo/sessions/demo1/scan', {});
    assert.equal(scan.status, 200, JSON.stringify(scan.body));
    await waitFor(
      'connected',
      async () => (await demo.call('GET', '/api/sessions/demo1/status')).body?.status === 'connected',
      60_000,
    );
    const tConnected = Date.now();
    assert.deepEqual(runningContainers(['demo1']), ['wa_session_demo1']);

    const sent = await demo.call('POST', '/api/send', {
      sessionId: 'demo1',
      to: '15559990001',
      text: 'hello from the demo',
    });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    let lastMessage: unknown = null;
    const delivered = await waitFor(
      'the message to be delivered',
      async () => {
        const m = await demo.call('GET', `/api/messages/${sent.body.messageId}`);
        lastMessage = m.body;
        return ['delivered', 'read'].includes(m.body?.status) ? m.body : null;
      },
      90_000,
      250,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last: ${JSON.stringify(lastMessage)}\n${demo.logTail('orchestrator.log')}`);
    });
    t.diagnostic(`provision→connected ${tConnected - t0} ms, send→delivered ${Date.now() - tConnected} ms`);
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

  it('docker ps: one wa_session_<id> container per session', async () => {
    const p = await demo.call('POST', '/api/sessions/provision', { sessionId: 'demo2', phone: '15550002222' });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    await waitFor(
      'the QR of demo2',
      async () => (await demo.call('GET', '/api/sessions/demo2/qr')).status === 200,
      60_000,
    );
    assert.deepEqual(runningContainers(['demo1', 'demo2']), ['wa_session_demo1', 'wa_session_demo2']);
    // Exactly these two belong to this demo: no second container for a session, none left from elsewhere.
    assert.deepEqual(demoContainers(demo.hostId), ['wa_session_demo1', 'wa_session_demo2']);
  });

  it('Ctrl-C stops what it started, its containers included', async () => {
    await demo.stop();
    await waitFor(
      'the API to stop',
      async () => (await fetch(`${demo.api}/healthz`).catch(() => null)) === null,
      20_000,
    );
    await waitFor(
      'the simulator to stop',
      async () => (await fetch('http://127.0.0.1:9401/healthz').catch(() => null)) === null,
      20_000,
    );
    assert.deepEqual(demoContainers(demo.hostId), []);
    // Stopping on purpose is not reported as a failure, and nothing else looked wrong during the whole run.
    assert.doesNotMatch(demo.output, /a process exited/);
    assert.deepEqual(
      demo.output.split('\n').filter((l) => STRAY.test(l)),
      [],
    );
  });
});

describe('demo: bash scripts/start.sh --demo --runner process', () => {
  const demo = new Demo();
  before(() => demo.start(['--runner', 'process']));
  after(() => demo.cleanup());

  it('the banner names the process runner; a session runs as a child process, not a container', async () => {
    assert.match(demo.output, /Runner:\s+process — one child process per session/);
    assert.doesNotMatch(demo.output, /preparing the worker image/);
    const p = await demo.call('POST', '/api/sessions/provision', { sessionId: 'demo3', phone: '15550003333' });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    await waitFor(
      'the QR of demo3',
      async () => (await demo.call('GET', '/api/sessions/demo3/qr')).status === 200,
      60_000,
    );
    assert.deepEqual(demoContainers(demo.hostId), []);
    assert.deepEqual(runningContainers(['demo3']), []);
    await demo.stop();
  });
});
