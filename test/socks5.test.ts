import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SocksClientError } from 'socks';
import { SocksProxyAgent } from 'socks-proxy-agent';
import { disconnectStatusCode, isProxyError, isTransportDrop } from '../common/baileys-errors.js';
import { Socks5Proxy, WhatsAppSimulator } from '../simulator/index.js';
import { makeAuthDir, sleep, TestClient } from './helpers/baileys-client.js';

const USER = 'alice';
const PASSWORD = 'pa55word';

/** A loopback TCP server that echoes and records the source address of every connection. */
async function startEchoServer(host = '127.0.0.1'): Promise<{ port: number; peers: string[]; close(): Promise<void> }> {
  const peers: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    peers.push(socket.remoteAddress ?? '?');
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    peers,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A raw SOCKS5 client conversation: reads exactly what the proxy answers, or null on close/timeout. */
class RawClient {
  private buffered = Buffer.alloc(0);
  private closed = false;
  private notify: (() => void) | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.notify?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.notify?.();
    });
    socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new RawClient(socket);
  }

  async read(length: number, timeoutMs = 1000): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered.length < length) {
      if (this.closed || Date.now() >= deadline) return null;
      await new Promise<void>((resolve) => {
        this.notify = resolve;
        setTimeout(resolve, Math.max(1, deadline - Date.now()));
      });
      this.notify = null;
    }
    const out = this.buffered.subarray(0, length);
    this.buffered = this.buffered.subarray(length);
    return out;
  }

  async waitClosed(timeoutMs = 1000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await sleep(10);
    return this.closed;
  }

  write(bytes: number[] | Buffer): void {
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }

  /** greeting offering username/password, then RFC 1929 auth; returns the auth status byte */
  async authenticate(user = USER, password = PASSWORD): Promise<number | undefined> {
    this.write([5, 1, 2]);
    assert.deepEqual([...((await this.read(2)) ?? [])], [5, 2]);
    this.write(
      Buffer.concat([
        Buffer.from([1, user.length]),
        Buffer.from(user),
        Buffer.from([password.length]),
        Buffer.from(password),
      ]),
    );
    const status = await this.read(2);
    return status?.[1];
  }

  /** CONNECT request; returns REP and the bound address, or null if the proxy closed */
  async connect(
    target: { ipv4: string } | { domain: string } | { ipv6: Buffer },
    port: number,
    command = 1,
  ): Promise<{ rep: number; boundAddress: string } | null> {
    let address: Buffer;
    if ('ipv4' in target) address = Buffer.from([1, ...target.ipv4.split('.').map(Number)]);
    else if ('domain' in target)
      address = Buffer.concat([Buffer.from([3, target.domain.length]), Buffer.from(target.domain)]);
    else address = Buffer.concat([Buffer.from([4]), target.ipv6]);
    const portBytes = Buffer.alloc(2);
    portBytes.writeUInt16BE(port);
    this.write(Buffer.concat([Buffer.from([5, command, 0]), address, portBytes]));
    const head = await this.read(10);
    if (!head) return null;
    return { rep: head[1] ?? -1, boundAddress: [...head.subarray(4, 8)].join('.') };
  }

  destroy(): void {
    this.socket.destroy();
  }
}

describe('SOCKS5 proxy protocol (RFC 1928/1929)', () => {
  let proxy: Socks5Proxy;
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  const raws: RawClient[] = [];
  const open = async (): Promise<RawClient> => {
    const raw = await RawClient.open(proxy.port);
    raws.push(raw);
    return raw;
  };

  before(async () => {
    proxy = await Socks5Proxy.start({ username: USER, password: PASSWORD, bindAddress: '127.0.0.3' });
    echo = await startEchoServer();
  });
  after(async () => {
    for (const raw of raws) raw.destroy();
    await proxy.close();
    await echo.close();
  });

  test('CONNECT to an IPv4 loopback target through the bound address, data flows both ways', async () => {
    const raw = await open();
    assert.equal(await raw.authenticate(), 0);
    assert.deepEqual(await raw.connect({ ipv4: '127.0.0.1' }, echo.port), { rep: 0, boundAddress: '127.0.0.3' });
    raw.write(Buffer.from('ping through the tunnel'));
    assert.equal((await raw.read(23))?.toString(), 'ping through the tunnel');
    assert.equal(echo.peers.at(-1), '127.0.0.3');
    assert.equal(proxy.url, `socks5h://${USER}:${PASSWORD}@127.0.0.1:${proxy.port}`);
    assert.ok(!proxy.redactedUrl.includes(PASSWORD));
  });

  test('hostnames are resolved at the proxy: localhost only', async () => {
    const local = await open();
    assert.equal(await local.authenticate(), 0);
    assert.equal((await local.connect({ domain: 'localhost' }, echo.port))?.rep, 0);
    const remote = await open();
    assert.equal(await remote.authenticate(), 0);
    assert.equal((await remote.connect({ domain: 'example.com' }, 443))?.rep, 2, 'not allowed');
  });

  test('non-loopback destinations are refused with REP=2 before any connection is tried', async () => {
    const ipv4 = await open();
    assert.equal(await ipv4.authenticate(), 0);
    assert.equal((await ipv4.connect({ ipv4: '10.1.2.3' }, 80))?.rep, 2);
    const ipv6 = await open();
    assert.equal(await ipv6.authenticate(), 0);
    const documentation = Buffer.alloc(16);
    documentation.writeUInt16BE(0x2001, 0);
    documentation.writeUInt16BE(0x0db8, 2);
    documentation.writeUInt16BE(1, 14);
    assert.equal((await ipv6.connect({ ipv6: documentation }, 80))?.rep, 2);
  });

  test('IPv6 loopback (::1) is allowed', async () => {
    const echo6 = await startEchoServer('::1');
    try {
      const raw = await open();
      assert.equal(await raw.authenticate(), 0);
      const loopback = Buffer.alloc(16);
      loopback[15] = 1;
      assert.equal((await raw.connect({ ipv6: loopback }, echo6.port))?.rep, 0);
      raw.write(Buffer.from('v6'));
      assert.equal((await raw.read(2))?.toString(), 'v6');
    } finally {
      await echo6.close();
    }
  });

  test('reply codes: refused target (5), unsupported command (7), unsupported address type (8)', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const refused = await open();
    assert.equal(await refused.authenticate(), 0);
    assert.equal((await refused.connect({ ipv4: '127.0.0.1' }, closedPort))?.rep, 5);
    const bind = await open();
    assert.equal(await bind.authenticate(), 0);
    assert.equal((await bind.connect({ ipv4: '127.0.0.1' }, echo.port, 2))?.rep, 7);
    const badType = await open();
    assert.equal(await badType.authenticate(), 0);
    badType.write([5, 1, 0, 9, 0, 0]);
    assert.equal((await badType.read(2))?.[1], 8);
  });

  test('authentication: wrong password and no acceptable method', async () => {
    const wrong = await open();
    assert.equal(await wrong.authenticate(USER, 'nope'), 1);
    assert.ok(await wrong.waitClosed());
    const noAuth = await open();
    noAuth.write([5, 1, 0]);
    assert.deepEqual([...((await noAuth.read(2)) ?? [])], [5, 0xff]);
    assert.ok(proxy.stats.authFailures >= 2);
  });

  test('faults: wrong-credentials, refuse, hang, kill', async () => {
    proxy.setFault('wrong-credentials');
    const badCreds = await open();
    assert.equal(await badCreds.authenticate(), 1, 'right credentials rejected while the fault is on');

    proxy.setFault('refuse');
    const refused = await open();
    assert.ok(await refused.waitClosed(), 'connection closed at once');

    proxy.setFault('hang');
    const hanging = await open();
    hanging.write([5, 1, 2]);
    assert.equal(await hanging.read(1, 300), null, 'no answer to the greeting');
    assert.equal(await hanging.waitClosed(50), false, 'but the TCP connection stays open');

    proxy.setFault('none');
    const tunnel = await open();
    assert.equal(await tunnel.authenticate(), 0);
    assert.equal((await tunnel.connect({ ipv4: '127.0.0.1' }, echo.port))?.rep, 0);
    assert.ok(proxy.stats.tunnelsOpen >= 1);
    proxy.killConnections();
    assert.ok(await tunnel.waitClosed(), 'open tunnels are destroyed');
    assert.ok(await hanging.waitClosed(), 'hanging connections too');
    assert.equal(proxy.stats.tunnelsOpen, 0);
  });

  test('refuses to listen or bind outside loopback', async () => {
    await assert.rejects(Socks5Proxy.start({ host: '0.0.0.0', username: 'u', password: 'p' }), /loopback/);
    await assert.rejects(Socks5Proxy.start({ username: 'u', password: 'p', bindAddress: '10.0.0.1' }), /loopback/);
  });
});

/** Shaped like the Boom errors Baileys puts in `lastDisconnect.error` (without depending on @hapi/boom). */
function boomLike(message: string, statusCode: number, data?: unknown): Error {
  return Object.assign(new Error(message), { isBoom: true, output: { statusCode }, data });
}

describe('isProxyError / disconnectStatusCode', () => {
  test('classifies by the wrapped error, not by the status code', () => {
    const socksError = new SocksClientError('Socks5 Authentication failed', {
      proxy: { host: '127.0.0.1', port: 1080, type: 5 },
      destination: { host: '127.0.0.1', port: 9400 },
      command: 'connect',
    });
    const proxyDown = boomLike('WebSocket Error (connect ECONNREFUSED 127.0.0.1:1080)', 500, socksError);
    assert.equal(isProxyError(proxyDown), true);
    assert.equal(disconnectStatusCode(proxyDown), 500);
    const lookalike = boomLike('x', 500, { options: { proxy: { host: 'h' } } });
    assert.equal(isProxyError(lookalike), true, 'a SocksClientError from another copy of socks still counts');
    const directDown = boomLike(
      'WebSocket Error (connect ECONNREFUSED 127.0.0.1:9400)',
      408,
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
    );
    assert.equal(isProxyError(directDown), false);
    assert.equal(isProxyError(boomLike('Stream Errored (conflict)', 440)), false);
    assert.equal(isProxyError(undefined), false);
    assert.equal(isProxyError('boom'), false);
    assert.equal(disconnectStatusCode(new Error('plain')), undefined);
    assert.equal(disconnectStatusCode(null), undefined);
    assert.equal(isTransportDrop(boomLike('Connection Terminated', 428)), true);
    assert.equal(isTransportDrop(boomLike('Connection Terminated by Server', 428)), false);
  });
});

describe('Baileys through faulty proxies', () => {
  let sim: WhatsAppSimulator;
  let proxy: Socks5Proxy;
  let other: Socks5Proxy;
  const clients: TestClient[] = [];
  const dirs: Array<Awaited<ReturnType<typeof makeAuthDir>>> = [];
  const PHONE = '15550000100';
  let authDir: string;

  // `timeout` bounds the SOCKS handshake (default 30 s) but also becomes an idle timeout on the tunnel,
  // so only the hanging-proxy case uses it
  const agentFor = (p: Socks5Proxy, url = p.url, timeout?: number): SocksProxyAgent =>
    new SocksProxyAgent(url, timeout === undefined ? {} : { timeout });
  const connect = async (agent: SocksProxyAgent, dir = authDir): Promise<TestClient> => {
    const client = await TestClient.connect({ url: sim.url, authDir: dir, agent });
    clients.push(client);
    return client;
  };

  before(async () => {
    sim = await WhatsAppSimulator.start();
    proxy = await Socks5Proxy.start({ username: USER, password: PASSWORD, bindAddress: '127.0.0.2' });
    other = await Socks5Proxy.start({ username: USER, password: PASSWORD, bindAddress: '127.0.0.3' });
    const dir = await makeAuthDir();
    dirs.push(dir);
    authDir = dir.dir;
    // pair through the first proxy
    const registering = await connect(agentFor(proxy));
    await sim.scan(await registering.waitForQr(), PHONE);
    assert.equal((await registering.waitForClose()).statusCode, 515);
    registering.end();
  });

  after(async () => {
    for (const client of clients) client.end();
    await proxy.close();
    await other.close();
    await sim.close();
    await Promise.all(dirs.map((dir) => dir.remove()));
  });

  test('two proxies bound to two loopback addresses: the simulator sees two source addresses', async () => {
    const first = await connect(agentFor(proxy));
    await first.waitForOpen();
    first.end();
    const second = await connect(agentFor(other));
    await second.waitForOpen();
    await second.sock.sendMessage('15559998888@s.whatsapp.net', { text: 'from the second proxy' });
    second.end();
    assert.deepEqual(sim.sourceAddresses(PHONE), ['127.0.0.2', '127.0.0.3']);
    assert.equal(sim.messages(PHONE).at(-1)?.sourceAddress, '127.0.0.3');
  });

  const cases: Array<{ name: string; setup: () => SocksProxyAgent; expectStatus: number }> = [
    {
      name: 'refuse',
      setup: () => {
        proxy.setFault('refuse');
        return agentFor(proxy);
      },
      expectStatus: 500,
    },
    {
      name: 'wrong-credentials',
      setup: () => {
        proxy.setFault('wrong-credentials');
        return agentFor(proxy);
      },
      expectStatus: 500,
    },
    {
      name: 'hang (SOCKS handshake timeout)',
      setup: () => {
        proxy.setFault('hang');
        return agentFor(proxy, proxy.url, 1500);
      },
      expectStatus: 408,
    },
    {
      name: 'client configured with a wrong password',
      setup: () => {
        proxy.setFault('none');
        return agentFor(proxy, proxy.url.replace(`:${PASSWORD}@`, ':wrong@'));
      },
      expectStatus: 500,
    },
  ];
  for (const { name, setup, expectStatus } of cases) {
    test(`proxy fault "${name}" is reported as a proxy error`, async () => {
      const client = await connect(setup());
      const closed = await client.waitForClose(6000);
      client.end();
      proxy.setFault('none');
      assert.equal(closed.statusCode, expectStatus, closed.error?.message);
      assert.equal(isProxyError(closed.error), true, closed.error?.message);
    });
  }

  test('proxy down (port closed) is a proxy error (500), a direct server-down is not (408)', async () => {
    const doomed = await Socks5Proxy.start({ username: USER, password: PASSWORD });
    await doomed.close();
    const viaDeadProxy = await connect(agentFor(doomed));
    const closed = await viaDeadProxy.waitForClose();
    viaDeadProxy.end();
    assert.equal(closed.statusCode, 500);
    assert.equal(isProxyError(closed.error), true);

    const deadServer = await TestClient.connect({
      url: `ws://127.0.0.1:${doomed.port}/ws/chat`,
      authDir,
    });
    clients.push(deadServer);
    const direct = await deadServer.waitForClose();
    deadServer.end();
    assert.equal(direct.statusCode, 408);
    assert.equal(isProxyError(direct.error), false);
  });

  test('kill: the live session drops (428, transport drop); a reconnect through the dead proxy is a proxy error', async () => {
    const client = await connect(agentFor(proxy));
    await client.waitForOpen();
    proxy.setFault('refuse');
    proxy.killConnections();
    const dropped = await client.waitForClose();
    client.end();
    assert.equal(dropped.statusCode, 428);
    assert.equal(isTransportDrop(dropped.error), true, 'not the server ending the stream');
    const retry = await connect(agentFor(proxy));
    const refused = await retry.waitForClose();
    retry.end();
    proxy.setFault('none');
    assert.equal(isProxyError(refused.error), true);
  });
});
