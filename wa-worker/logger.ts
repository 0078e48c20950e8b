/**
 * pino logger whose output stream scrubs secrets from every serialized line: proxy URL userinfo (any
 * socks/http URL, via redactProxyUrl) and the literal proxy password / webhook secret in every encoding they could
 * take after JSON serialization. This catches secrets inside error objects that libraries attach (e.g. a
 * SocksClientError carries `options.proxy.password`), which path-based redaction cannot know about.
 */
import { pino, type Logger } from 'pino';
import { redactProxyUrl } from '../common/proxy-url.js';

export type { Logger };

export function makeScrubber(secrets: readonly string[]): (line: string) => string {
  const needles = new Set<string>();
  for (const s of secrets) {
    if (!s || s.length < 3) continue;
    needles.add(s);
    needles.add(encodeURIComponent(s));
    needles.add(JSON.stringify(s).slice(1, -1));
    needles.add(JSON.stringify(encodeURIComponent(s)).slice(1, -1));
  }
  const list = [...needles].sort((a, b) => b.length - a.length);
  return (line: string) => {
    let out = redactProxyUrl(line);
    for (const n of list) if (out.includes(n)) out = out.split(n).join('***');
    return out;
  };
}

export function createLogger(opts: {
  level: string;
  sessionId: string;
  secrets: readonly string[];
  write?: (line: string) => void;
}): Logger {
  const scrub = makeScrubber(opts.secrets);
  const write = opts.write ?? ((line: string) => process.stdout.write(line));
  return pino(
    { level: opts.level, base: { sessionId: opts.sessionId, pid: process.pid } },
    { write: (line: string) => write(scrub(line)) },
  );
}
