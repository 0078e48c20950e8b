import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TelegramRequest {
  token: string;
  method: string;
  body: { chat_id?: string; text?: string; [k: string]: unknown };
  at: number;
}

/**
 * A local stand-in for Telegram's Bot API (the real one cannot be reached from tests): records every request and
 * answers like Telegram (`{ok:true,result:{message_id,...}}`). `failNext(n, status)` makes the next n calls fail.
 */
export class FakeTelegram {
  readonly requests: TelegramRequest[] = [];
  private server!: http.Server;
  private failures: number[] = [];
  private nextId = 1;
  private down = 0;
  url = '';

  static async start(): Promise<FakeTelegram> {
    const t = new FakeTelegram();
    t.server = http.createServer((req, res) => t.handle(req, res));
    await new Promise<void>((r) => t.server.listen(0, '127.0.0.1', () => r()));
    t.url = `http://127.0.0.1:${(t.server.address() as AddressInfo).port}`;
    return t;
  }

  failNext(n: number, status = 500) {
    for (let i = 0; i < n; i++) this.failures.push(status);
  }

  /** While down, every call answers `status` (Telegram unreachable or failing); `setDown(false)` heals it. */
  setDown(down: boolean, status = 502) {
    this.down = down ? status : 0;
  }

  texts(): string[] {
    return this.requests.map((r) => String(r.body.text ?? ''));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const m = /^\/bot([^/]+)\/(\w+)$/.exec(req.url ?? '');
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (!m || req.method !== 'POST') return send(404, { ok: false, error_code: 404, description: 'Not Found' });
      let body: TelegramRequest['body'];
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as TelegramRequest['body'];
      } catch {
        return send(400, { ok: false, error_code: 400, description: 'Bad Request: invalid JSON' });
      }
      const fail = this.down || this.failures.shift();
      if (fail) return send(fail, { ok: false, error_code: fail, description: 'Internal Server Error' });
      if (m[2] !== 'sendMessage') return send(404, { ok: false, error_code: 404, description: 'Not Found' });
      if (!body.chat_id || !body.text)
        return send(400, { ok: false, error_code: 400, description: 'Bad Request: message text is empty' });
      this.requests.push({ token: m[1]!, method: m[2]!, body, at: Date.now() });
      send(200, {
        ok: true,
        result: {
          message_id: this.nextId++,
          date: Math.floor(Date.now() / 1000),
          chat: { id: Number(body.chat_id) || body.chat_id, type: 'private' },
          text: body.text,
        },
      });
    });
  }

  async close() {
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
