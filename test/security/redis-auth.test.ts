/**
 * Redis with a password (issue 14 item 5): a private, password-protected redis-server on its own port (never the
 * shared one). Without the password nothing is readable; the API and the orchestrator work with `REDIS_URL`
 * carrying the credentials (a session provisions and connects), and the password appears in no log line.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { freePort, Stack, waitFor } from '../helpers/stack.js';

describe('Redis with a password', () => {
  const password = `redis-pw-${randomBytes(8).toString('hex')}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wa-redis-auth-'));
  let server: ChildProcess;
  let port = 0;
  let stack: Stack | null = null;
  const savedUrl = process.env.REDIS_URL;

  before(async () => {
    port = await freePort();
    server = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--requirepass',
        password,
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    );
    await waitFor(
      'the private redis-server',
      async () => {
        const probe = new Redis({ port, host: '127.0.0.1', password, lazyConnect: true, maxRetriesPerRequest: 0 });
        try {
          await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          return null;
        } finally {
          probe.disconnect();
        }
      },
      10_000,
      100,
    );
  });

  after(async () => {
    if (stack) {
      const keep = process.env.KEEP_TEST_DATA;
      await stack.stop().catch(() => undefined);
      if (!keep) rmSync(stack.dataDir, { recursive: true, force: true });
    }
    if (savedUrl === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = savedUrl;
    if (server.exitCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses clients without the password', async () => {
    // Raw RESP over TCP: exactly what an intruder without the password gets.
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1', () => sock.write('KEYS *\r\n'));
      sock.once('data', (d) => {
        resolve(d.toString());
        sock.destroy();
      });
      sock.once('error', reject);
    });
    assert.match(reply, /^-NOAUTH/);
  });

  it('API and orchestrator run on REDIS_URL with credentials; the password is in no log', async () => {
    process.env.REDIS_URL = `redis://:${password}@127.0.0.1:${port}`;
    const KEEP = process.env.KEEP_TEST_DATA;
    process.env.KEEP_TEST_DATA = '1'; // read the logs after stop
    try {
      stack = await new Stack({ proxies: 1 }).start();
      const r = await stack.call('POST', '/api/sessions/provision', { sessionId: 'rauth1', phone: '15550015001' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await stack.scan('rauth1', '15550015001');
      await stack.waitForStatus('rauth1', 'connected');
      const direct = new Redis(process.env.REDIS_URL);
      assert.equal(await direct.hget(`${stack.prefix}session:rauth1`, 'status'), 'connected', 'state is in this Redis');
      direct.disconnect();
      await stack.stop();
    } finally {
      if (KEEP === undefined) delete process.env.KEEP_TEST_DATA;
      else process.env.KEEP_TEST_DATA = KEEP;
    }
    const s = stack!;
    const logs = [path.join(s.dataDir, 'api.log'), path.join(s.dataDir, 'orchestrator.log')];
    for (const f of readdirSync(path.join(s.dataDir, 'logs', 'workers')))
      logs.push(path.join(s.dataDir, 'logs', 'workers', f));
    for (const f of logs) assert.ok(!readFileSync(f, 'utf8').includes(password), `password in ${f}`);
    rmSync(s.dataDir, { recursive: true, force: true });
    stack = null;
  });
});
