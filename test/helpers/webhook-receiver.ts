/**
 * A real HTTP webhook receiver for wa-worker tests: verifies every request's signature (common/events.ts), validates
 * the envelope with the shared schema, records accepted events in arrival order, and can be taken down (connections
 * refused) and brought back on the same port.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { verifyWebhook, WebhookEnvelopeSchema, type EventType, type WebhookEnvelope } from '../../common/events.js';

export class WebhookReceiver {
  /** Every accepted delivery, in arrival order (duplicates included). */
  readonly deliveries: WebhookEnvelope[] = [];
  readonly rejected: { reason: string; body: string }[] = [];
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private listeners: (() => void)[] = [];
  port = 0;

  private constructor(private readonly secret: string) {}

  static async start(secret: string): Promise<WebhookReceiver> {
    const r = new WebhookReceiver(secret);
    await r.up();
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/webhook`;
  }

  /** Accepted events with duplicates (same eventId) removed, first arrival kept. */
  get events(): WebhookEnvelope[] {
    const seen = new Set<string>();
    return this.deliveries.filter((e) => (seen.has(e.eventId) ? false : (seen.add(e.eventId), true)));
  }

  ofType<T extends EventType>(type: T, since = 0): Extract<WebhookEnvelope, { type: T }>[] {
    return this.events.slice(since).filter((e): e is Extract<WebhookEnvelope, { type: T }> => e.type === type);
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const verdict = verifyWebhook(this.secret, req.headers, body, { toleranceMs: 60_000 });
        if (!verdict.ok) {
          this.rejected.push({ reason: verdict.reason, body });
          res.writeHead(401).end();
          return;
        }
        const parsed = WebhookEnvelopeSchema.safeParse(JSON.parse(body));
        if (!parsed.success) {
          this.rejected.push({ reason: `schema: ${parsed.error.message}`, body });
          res.writeHead(422).end();
          return;
        }
        this.deliveries.push(parsed.data);
        res.writeHead(204).end();
        const ls = this.listeners;
        this.listeners = [];
        for (const l of ls) l();
      });
    });
    server.keepAliveTimeout = 1000;
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening and drops open connections: deliveries fail with ECONNREFUSED until up(). */
  async down(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** Resolves with the first accepted event (deduplicated, from index `since`) matching `pred`. */
  async waitFor<T extends EventType>(
    type: T,
    pred: (e: Extract<WebhookEnvelope, { type: T }>) => boolean = () => true,
    timeoutMs = 20_000,
    since = 0,
  ): Promise<Extract<WebhookEnvelope, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.ofType(type, since).find(pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) {
        const seen = this.events.slice(since).map((e) => e.type);
        throw new Error(`timeout waiting for ${type}; events since ${since}: ${seen.join(',') || '(none)'}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.listeners.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    await this.down();
  }
}
