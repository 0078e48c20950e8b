/**
 * The WhatsApp Web version WhatsApp currently serves: `client_revision` in its service worker script (where
 * Baileys' fetchLatestWaWebVersion reads it). Fetched through the session's proxy — 7.x's own helper uses global
 * fetch, which would leave the machine's address — with a short timeout; the caller falls back to the pinned one.
 */
import http from 'node:http';
import https from 'node:https';
import type { Agent } from 'node:http';

const MAX_BYTES = 4 * 1024 * 1024;
const REVISION = /\\?"client_revision\\?":\s*(\d+)/;

export async function fetchWebVersion(url: string, agent: Agent, timeoutMs: number): Promise<[number, number, number]> {
  const body = await new Promise<string>((resolve, reject) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(
      url,
      {
        agent,
        timeout: timeoutMs,
        headers: {
          'sec-fetch-site': 'none',
          'user-agent':
            'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
        },
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`HTTP ${res.statusCode ?? '?'}`));
          return;
        }
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          if (text.length > MAX_BYTES) req.destroy(new Error('response too large'));
        });
        res.on('end', () => resolve(text));
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
  const revision = REVISION.exec(body)?.[1];
  if (!revision) throw new Error('no client_revision in the response');
  return [2, 3000, Number(revision)];
}
