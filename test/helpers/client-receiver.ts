/** A customer's webhook endpoint for API-level tests: verifies the signature, records, can go down and come back. */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { verifyWebhook } from '../../common/events.js';

export const SECRET = 'client-webhook-secret-0123456789';

export interface Delivery {
  headers: http.IncomingHttpHeaders;
  body: string;
  json: { id: string; event: string; tenant: string; timestamp: number; data: Record<string, unknown> };
  at: number;
}

/** A customer endpoint: verifies the signature (the x-webhook-* headers), records, can go down and come back. */
export class ClientReceiver {
  deliveries: Delivery[] = [];
  badSignatures = 0;
  status = 200;
  private server: http.Server | undefined;
  private sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly secret = SECRET) {}

  async up() {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const v = verifyWebhook(
          this.secret,
          {
            'x-wa-timestamp': req.headers['x-webhook-timestamp'],
            'x-wa-signature': req.headers['x-webhook-signature'],
          },
          body,
        );
        if (!v.ok) {
          this.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        this.deliveries.push({
          headers: req.headers,
          body,
          json: JSON.parse(body) as Delivery['json'],
          at: Date.now(),
        });
        res.writeHead(this.status).end();
      });
    });
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async down() {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  get url() {
    return `http://127.0.0.1:${this.port}/hooks`;
  }

  of(event: string) {
    return this.deliveries.filter((d) => d.json.event === event);
  }
}
