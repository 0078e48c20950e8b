import net from 'node:net';

/**
 * A TCP link to Redis that a test can cut and heal. One process (e.g. the orchestrator, whose activities write the
 * session mirror) talks to Redis through it and sees an outage while everyone else, the test included, keeps
 * using the same Redis directly. Cut: every open connection is dropped and new ones are closed at once.
 */
export class RedisLink {
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private cut = false;
  private port = 0;

  private constructor(
    private readonly server: net.Server,
    private readonly target: URL,
  ) {}

  static async start(redisUrl: string): Promise<RedisLink> {
    const target = new URL(redisUrl);
    const server = net.createServer();
    const link = new RedisLink(server, target);
    server.on('connection', (client) => link.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    link.port = (server.address() as net.AddressInfo).port;
    return link;
  }

  /** The Redis URL through the link (credentials and database of the target kept). */
  get url(): string {
    const u = new URL(this.target.toString());
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  get isCut(): boolean {
    return this.cut;
  }

  setCut(cut: boolean): void {
    this.cut = cut;
    if (!cut) return;
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
  }

  private accept(client: net.Socket): void {
    if (this.cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(this.target.port || 6379), this.target.hostname || '127.0.0.1');
    const pair = { client, upstream };
    this.pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async close(): Promise<void> {
    this.setCut(true);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
