/**
 * Attack: the long-lived API key travels in the live-events URL (`/api/events?apiKey=...`, kept in proxy logs and
 * browser history), and one key can open streams without limit. Now the URL carries a short-lived single-use
 * ticket (`POST /api/events/ticket`), the key in the URL is refused, and each key has a cap on concurrent streams.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { API_KEY, sleep, TENANT_KEY, waitFor } from '../helpers/stack.js';
import { ApiOnly } from './api-only.js';

/** Opens an SSE stream; resolves with its status and a way to close it. */
async function open(url: string) {
  const controller = new AbortController();
  const res = await fetch(url, { signal: controller.signal });
  let raw = '';
  const reading = (async () => {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) raw += Buffer.from(chunk).toString();
    } catch {
      /* aborted */
    }
  })();
  return {
    status: res.status,
    raw: () => raw,
    close: async () => {
      controller.abort();
      await reading;
    },
  };
}

describe('live events: no key in the URL, tickets, stream cap', () => {
  let api: ApiOnly;
  before(async () => {
    api = await new ApiOnly({ EVENTS_TICKET_TTL_MS: '1500', EVENTS_MAX_STREAMS_PER_KEY: '2' }).start();
  });
  after(async () => api?.stop());

  const ticket = async (key: string | null) => api.call('POST', '/api/events/ticket', undefined, key);

  it('refuses the API key in the URL (SSE and WebSocket)', async () => {
    const sse = await open(`${api.url}/api/events?apiKey=${API_KEY}`);
    await sse.close();
    assert.equal(sse.status, 401);
    const ws = await new Promise<number>((resolve) => {
      const s = new WebSocket(`${api.url.replace('http', 'ws')}/api/events?apiKey=${API_KEY}`);
      s.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      s.on('open', () => {
        s.close();
        resolve(101);
      });
      s.on('error', () => undefined);
    });
    assert.equal(ws, 401);
  });

  it('a ticket needs a key, works once, and expires', async () => {
    assert.equal((await ticket(null)).status, 401);
    const t = await ticket(TENANT_KEY);
    assert.equal(t.status, 201);
    assert.match(t.body.ticket, /^[A-Za-z0-9_-]{16,64}$/);
    const first = await open(`${api.url}/api/events?ticket=${t.body.ticket}`);
    assert.equal(first.status, 200);
    await waitFor('the ready event', () => first.raw().includes('event: ready'), 5000);
    await first.close();
    const again = await open(`${api.url}/api/events?ticket=${t.body.ticket}`);
    await again.close();
    assert.equal(again.status, 401, 'a ticket is single-use');
    const late = await ticket(TENANT_KEY);
    await sleep(2000);
    const expired = await open(`${api.url}/api/events?ticket=${late.body.ticket}`);
    await expired.close();
    assert.equal(expired.status, 401, 'an expired ticket is refused');
    // WebSocket with a ticket.
    const wt = await ticket(TENANT_KEY);
    const opened = await new Promise<boolean>((resolve) => {
      const s = new WebSocket(`${api.url.replace('http', 'ws')}/api/events?ticket=${wt.body.ticket}`);
      s.on('message', () => {
        s.close();
        resolve(true);
      });
      s.on('unexpected-response', () => resolve(false));
      s.on('error', () => undefined);
    });
    assert.ok(opened);
  });

  it('caps concurrent streams per key', async () => {
    const url = async (key: string) => `${api.url}/api/events?ticket=${(await ticket(key)).body.ticket}`;
    await waitFor('earlier streams to be released', async () => {
      const s = await open(await url(TENANT_KEY));
      await s.close();
      return s.status === 200;
    });
    const a = await open(await url(TENANT_KEY));
    const b = await open(await url(TENANT_KEY));
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    const c = await open(await url(TENANT_KEY));
    await c.close();
    assert.equal(c.status, 429, 'a third stream of the same key is refused');
    const adminStream = await open(await url(API_KEY));
    assert.equal(adminStream.status, 200, 'another key is not affected');
    await a.close();
    const d = await waitFor('a slot to free up', async () => {
      const s = await open(await url(TENANT_KEY));
      if (s.status === 200) return s;
      await s.close();
      return null;
    });
    await Promise.all([b.close(), d.close(), adminStream.close()]);
  });
});
