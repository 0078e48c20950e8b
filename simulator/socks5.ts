import net from 'node:net';
import { isLoopbackHost } from './wa-server.js';

export type ProxyFault = 'none' | 'refuse' | 'hang' | 'wrong-credentials';

export interface Socks5ProxyOptions {
  host?: string;
  port?: number;
  username: string;
  password: string;
  /** local address for the outgoing side (e.g. 127.0.0.3), so the target sees a distinct source IP */
  bindAddress?: string;
}

export interface Socks5ProxyStats {
  connectionsAccepted: number;
  tunnelsOpened: number;
  tunnelsOpen: number;
  authFailures: number;
  requestsDenied: number;
}

const SOCKS_VERSION = 0x05;
const AUTH_USERNAME_PASSWORD = 0x02;
const AUTH_NO_ACCEPTABLE = 0xff;
const CMD_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

/** RFC 1928 reply codes */
const REP = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/**
 * A real SOCKS5 server (RFC 1928 CONNECT + RFC 1929 username/password) that only tunnels to loopback
 * destinations. Hostnames are resolved here (what `socks5h` expects); only `localhost` is resolvable, so no
 * DNS query ever leaves the machine. The outgoing socket is bound to `bindAddress`.
 */
export class Socks5Proxy {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly username: string;
  readonly bindAddress: string | undefined;
  private currentFault: ProxyFault = 'none';
  private readonly sockets = new Set<net.Socket>();
  private readonly counters: Omit<Socks5ProxyStats, 'tunnelsOpen'> = {
    connectionsAccepted: 0,
    tunnelsOpened: 0,
    authFailures: 0,
    requestsDenied: 0,
  };
  private readonly tunnels = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    private readonly password: string,
    opts: Socks5ProxyOptions,
  ) {
    const address = server.address() as net.AddressInfo;
    this.host = opts.host ?? '127.0.0.1';
    this.port = address.port;
    this.username = opts.username;
    this.bindAddress = opts.bindAddress;
    this.url = `socks5h://${encodeURIComponent(opts.username)}:${encodeURIComponent(opts.password)}@${this.host}:${this.port}`;
    server.on('connection', (socket) => this.onClient(socket));
  }

  static async start(opts: Socks5ProxyOptions): Promise<Socks5Proxy> {
    const host = opts.host ?? '127.0.0.1';
    if (!isLoopbackHost(host)) throw new Error(`proxy must listen on loopback, not ${host}`);
    if (opts.bindAddress !== undefined && !isLoopbackHost(opts.bindAddress)) {
      throw new Error(`proxy must bind its outgoing side to loopback, not ${opts.bindAddress}`);
    }
    if (opts.username.length === 0 || opts.username.length > 255 || opts.password.length > 255) {
      throw new Error('SOCKS5 username/password must be 1-255 bytes');
    }
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new Socks5Proxy(server, opts.password, opts);
  }

  /** URL without the password, for logs and the control API */
  get redactedUrl(): string {
    return `socks5h://${encodeURIComponent(this.username)}:***@${this.host}:${this.port}`;
  }

  get fault(): ProxyFault {
    return this.currentFault;
  }

  get stats(): Socks5ProxyStats {
    return { ...this.counters, tunnelsOpen: this.tunnels.size };
  }

  setFault(kind: ProxyFault): void {
    this.currentFault = kind;
  }

  /** Destroys every open tunnel (both sides), as if the proxy dropped its connections. */
  killConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.killConnections();
    await closed;
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    // errors end the tunnel via 'close'; without a listener they would crash the process
    socket.on('error', () => socket.destroy());
  }

  private onClient(client: net.Socket): void {
    this.track(client);
    // small request/response frames: Nagle + delayed ACK would add ~40 ms per round trip
    client.setNoDelay(true);
    this.counters.connectionsAccepted++;
    if (this.currentFault === 'refuse') {
      client.destroy();
      return;
    }
    if (this.currentFault === 'hang') return; // keep the TCP connection, never answer the greeting
    const session = new ClientSession(client);
    void this.negotiate(client, session).catch(() => client.destroy());
  }

  private async negotiate(client: net.Socket, session: ClientSession): Promise<void> {
    // greeting: VER NMETHODS METHODS...
    const [version, methodCount] = await session.read(2);
    if (version !== SOCKS_VERSION || methodCount === undefined) throw new Error('not SOCKS5');
    const methods = await session.read(methodCount);
    if (!methods.includes(AUTH_USERNAME_PASSWORD)) {
      client.end(Buffer.from([SOCKS_VERSION, AUTH_NO_ACCEPTABLE]));
      this.counters.authFailures++;
      return;
    }
    client.write(Buffer.from([SOCKS_VERSION, AUTH_USERNAME_PASSWORD]));

    // RFC 1929: VER(1) ULEN UNAME PLEN PASSWD
    const [authVersion, usernameLength] = await session.read(2);
    if (authVersion !== 0x01 || usernameLength === undefined) throw new Error('bad auth version');
    const username = (await session.read(usernameLength)).toString('utf8');
    const [passwordLength] = await session.read(1);
    const password = (await session.read(passwordLength ?? 0)).toString('utf8');
    if (this.currentFault === 'wrong-credentials' || username !== this.username || password !== this.password) {
      this.counters.authFailures++;
      client.end(Buffer.from([0x01, 0x01]));
      return;
    }
    client.write(Buffer.from([0x01, 0x00]));

    // request: VER CMD RSV ATYP DST.ADDR DST.PORT
    const [requestVersion, command, , addressType] = await session.read(4);
    if (requestVersion !== SOCKS_VERSION) throw new Error('bad request version');
    let host: string;
    if (addressType === ATYP_IPV4) {
      host = [...(await session.read(4))].join('.');
    } else if (addressType === ATYP_DOMAIN) {
      const [length] = await session.read(1);
      host = (await session.read(length ?? 0)).toString('utf8');
    } else if (addressType === ATYP_IPV6) {
      host = formatIpv6(await session.read(16));
    } else {
      this.deny(client, REP.addressTypeNotSupported);
      return;
    }
    const port = (await session.read(2)).readUInt16BE(0);
    if (command !== CMD_CONNECT) {
      this.deny(client, REP.commandNotSupported);
      return;
    }
    const target = resolveLoopback(host);
    if (!target) {
      this.deny(client, REP.notAllowed);
      return;
    }
    this.connectUpstream(client, session, target, port);
  }

  private deny(client: net.Socket, code: number): void {
    this.counters.requestsDenied++;
    client.end(reply(code));
  }

  private connectUpstream(client: net.Socket, session: ClientSession, host: string, port: number): void {
    const localAddress = net.isIPv4(host) ? this.bindAddress : undefined;
    const upstream = net.connect({ host, port, localAddress, noDelay: true });
    this.track(upstream);
    upstream.once('connect', () => {
      this.counters.tunnelsOpened++;
      this.tunnels.add(upstream);
      upstream.once('close', () => this.tunnels.delete(upstream));
      client.write(reply(REP.succeeded, upstream.localAddress, upstream.localPort));
      const early = session.detach();
      if (early.length > 0) upstream.write(early);
      client.pipe(upstream);
      upstream.pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
    });
    upstream.once('error', (error: NodeJS.ErrnoException) => {
      if (upstream.connecting || !this.tunnels.has(upstream)) {
        const code =
          error.code === 'ECONNREFUSED'
            ? REP.connectionRefused
            : error.code === 'EHOSTUNREACH'
              ? REP.hostUnreachable
              : error.code === 'ENETUNREACH'
                ? REP.networkUnreachable
                : REP.generalFailure;
        client.end(reply(code));
      }
    });
  }
}

/** Exact-length reads from a socket during negotiation; bytes beyond the request stay buffered. */
class ClientSession {
  private buffered = Buffer.alloc(0);
  private waiter: { length: number; resolve: (data: Buffer) => void; reject: (error: Error) => void } | null = null;
  private ended = false;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    this.flush();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.waiter?.reject(new Error('client went away'));
    this.waiter = null;
  };

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onEnd);
  }

  read(length: number): Promise<Buffer> {
    if (this.ended) return Promise.reject(new Error('client went away'));
    return new Promise((resolve, reject) => {
      this.waiter = { length, resolve, reject };
      this.flush();
    });
  }

  /** Stops listening; returns what the client sent beyond the SOCKS request (pipelined payload). */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onEnd);
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return rest;
  }

  private flush(): void {
    if (!this.waiter || this.buffered.length < this.waiter.length) return;
    const data = this.buffered.subarray(0, this.waiter.length);
    this.buffered = this.buffered.subarray(this.waiter.length);
    const { resolve } = this.waiter;
    this.waiter = null;
    resolve(data);
  }
}

function formatIpv6(raw: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(raw.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** The loopback address to connect to, or null when the destination is not allowed. */
function resolveLoopback(host: string): string | null {
  const lower = host.toLowerCase();
  if (lower === 'localhost') return '127.0.0.1';
  if (net.isIPv4(lower)) return lower.startsWith('127.') ? lower : null;
  if (net.isIPv6(lower)) {
    const blocks = new net.BlockList();
    blocks.addAddress('::1', 'ipv6');
    return blocks.check(lower, 'ipv6') ? '::1' : null;
  }
  return isLoopbackHost(lower) ? lower : null;
}

/** VER REP RSV ATYP BND.ADDR BND.PORT */
function reply(code: number, boundAddress?: string, boundPort?: number): Buffer {
  if (boundAddress && net.isIPv4(boundAddress)) {
    const out = Buffer.alloc(10);
    out.set([SOCKS_VERSION, code, 0x00, ATYP_IPV4], 0);
    out.set(
      boundAddress.split('.').map((part) => Number(part)),
      4,
    );
    out.writeUInt16BE(boundPort ?? 0, 8);
    return out;
  }
  return Buffer.from([SOCKS_VERSION, code, 0x00, ATYP_IPV4, 0, 0, 0, 0, 0, 0]);
}
