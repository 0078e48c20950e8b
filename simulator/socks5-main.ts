/**
 * One SOCKS5 proxy per process, with a small loopback control port.
 *
 *   node --import tsx simulator/socks5-main.ts --port 1080 --bind 127.0.0.10 --user demo --password demo-secret
 *        [--host 127.0.0.1] [--control-port 0]
 *
 * Env twins: SOCKS_PORT, SOCKS_HOST, SOCKS_BIND, SOCKS_USER, SOCKS_PASSWORD, SOCKS_CONTROL_PORT.
 * Control: GET /healthz, GET /state, POST /faults {"kind": "none"|"refuse"|"hang"|"wrong-credentials"|"kill"}.
 * Prints one JSON line with the proxy URL (password redacted) and the control URL.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { Socks5Proxy } from './socks5.js';

const { values: flags } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    bind: { type: 'string' },
    user: { type: 'string' },
    password: { type: 'string' },
    'control-port': { type: 'string' },
  },
});
const env = process.env;
const port = Number(flags.port ?? env.SOCKS_PORT ?? 1080);
const controlPort = Number(flags['control-port'] ?? env.SOCKS_CONTROL_PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be 0-65535');
if (!Number.isInteger(controlPort) || controlPort < 0 || controlPort > 65535) {
  throw new Error('--control-port must be 0-65535');
}
const host = flags.host ?? env.SOCKS_HOST ?? '127.0.0.1';

const proxy = await Socks5Proxy.start({
  host,
  port,
  bindAddress: flags.bind ?? env.SOCKS_BIND,
  username: flags.user ?? env.SOCKS_USER ?? 'demo',
  password: flags.password ?? env.SOCKS_PASSWORD ?? 'demo-secret',
});

const faultBody = z.object({ kind: z.enum(['none', 'refuse', 'hang', 'wrong-credentials', 'kill']) });
const state = (): object => ({
  url: proxy.redactedUrl,
  bindAddress: proxy.bindAddress ?? null,
  fault: proxy.fault,
  ...proxy.stats,
});

function reply(res: http.ServerResponse, status: number, payload: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(payload));
}

const control = http.createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://control.local').pathname;
  if (req.method === 'GET' && path === '/healthz') return reply(res, 200, { ok: true });
  if (req.method === 'GET' && path === '/state') return reply(res, 200, state());
  if (req.method === 'POST' && path === '/faults') {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      } catch {
        return reply(res, 400, { error: { code: 'invalid_json', message: 'body is not valid JSON' } });
      }
      const parsed = faultBody.safeParse(body);
      if (!parsed.success) {
        return reply(res, 400, { error: { code: 'invalid_request', message: 'kind is invalid', field: 'kind' } });
      }
      if (parsed.data.kind === 'kill') proxy.killConnections();
      else proxy.setFault(parsed.data.kind);
      reply(res, 200, state());
    });
    return;
  }
  reply(res, 404, { error: { code: 'not_found', message: `no route for ${req.method ?? '?'} ${path}` } });
});
await new Promise<void>((resolve) => control.listen(controlPort, '127.0.0.1', resolve));

process.stdout.write(
  `${JSON.stringify({ proxy: proxy.redactedUrl, bindAddress: proxy.bindAddress ?? null, control: `http://127.0.0.1:${(control.address() as AddressInfo).port}` })}\n`,
);

async function shutdown(): Promise<void> {
  control.closeAllConnections();
  await Promise.all([new Promise<void>((resolve) => control.close(() => resolve())), proxy.close()]);
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown());
process.on('SIGINT', () => void shutdown());
