import net from 'node:net';
import { parseProxyUrl } from '../common/proxy-url.js';

export interface ProbeResult {
  ok: boolean;
  /** Why the proxy is considered dead (no credentials in it). */
  error?: string;
  latencyMs: number;
}

/**
 * Checks that a SOCKS5 proxy is alive and accepts our credentials: TCP connect, greeting, username/password
 * sub-negotiation (RFC 1928/1929), then close. It never asks the proxy to CONNECT anywhere, so probing sends no
 * traffic through the proxy. Dead, hung (timeout) and auth-refusing proxies all fail.
 */
export function probeSocks5(proxyUrl: string, timeoutMs = 3000): Promise<ProbeResult> {
  const { host, port, username, password } = parseProxyUrl(proxyUrl);
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host: host.replace(/^\[|\]$/g, ''), port });
    let stage: 'greeting' | 'auth' = 'greeting';
    let buffer = Buffer.alloc(0);
    const finish = (error?: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok: !error, error, latencyMs: Date.now() - started });
    };
    const timer = setTimeout(() => finish(`proxy did not answer within ${timeoutMs} ms`), timeoutMs);
    socket.on('connect', () => socket.write(Buffer.from([0x05, 0x01, 0x02])));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(`proxy unreachable (${err.code ?? err.message})`));
    socket.on('close', () => finish('proxy closed the connection'));
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.length < 2) return;
      if (stage === 'greeting') {
        if (buffer[0] !== 0x05) return finish('not a SOCKS5 proxy');
        if (buffer[1] !== 0x02) return finish('proxy does not accept username/password authentication');
        buffer = buffer.subarray(2);
        stage = 'auth';
        const u = Buffer.from(username);
        const p = Buffer.from(password);
        socket.write(Buffer.concat([Buffer.from([0x01, u.length]), u, Buffer.from([p.length]), p]));
        return;
      }
      return finish(buffer[1] === 0x00 ? undefined : 'proxy refused the credentials');
    });
  });
}
