import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sessionWebhookSecret } from '../common/session.js';
import { AesGcmCodec } from '../common/codec.js';
import { historyJson } from './helpers/replay.js';
import { API_KEY, CODEC_KEYS, eventsUrl, Stack, TENANT_KEY, WEBHOOK_SECRET, waitFor } from './helpers/stack.js';

/**
 * Every payload of a raw history, decrypted as the codec endpoint would, as text; `where` says which event holds it.
 * What an operator with the codec key reads in the Web UI.
 */
async function decodedPayloads(history: string): Promise<Array<{ where: string; text: string }>> {
  const codec = AesGcmCodec.fromEnv(CODEC_KEYS);
  const out: Array<{ where: string; text: string }> = [];
  const walk = async (node: unknown, where: string): Promise<void> => {
    if (Array.isArray(node)) {
      for (const item of node) await walk(item, where);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const obj = node as Record<string, unknown>;
    if (Array.isArray(obj.payloads)) {
      const payloads = (obj.payloads as Array<{ metadata?: Record<string, string>; data?: string }>).map((p) => ({
        metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        data: Buffer.from(p.data ?? '', 'base64'),
      }));
      for (const d of await codec.decode(payloads)) out.push({ where, text: Buffer.from(d.data ?? []).toString() });
    }
    for (const [k, v] of Object.entries(obj)) await walk(v, /EventAttributes$/.test(k) ? k : where);
  };
  await walk(JSON.parse(history), '');
  return out;
}

/**
 * Runs a stack through provision / connect / restart / failover (operator and proxy death) / bad input, keeps
 * every API response body and the live event stream, then greps them and every log line of the API, the
 * orchestrator and the workers, the raw Temporal history of every workflow and the Redis key names, for the secrets: proxy passwords,
 * API keys, the master webhook secret and the per-session webhook secrets.
 */
/**
 * The history JSON carries payload bytes as base64: a plain-text payload would hide a password from a naive grep.
 * Every base64 string is appended decoded, so the grep sees exactly what a reader of the history would.
 */
function withDecodedBase64(json: string): string {
  const out: string[] = [json];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      if (v.length >= 8 && v.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(v))
        out.push(Buffer.from(v, 'base64').toString('latin1'));
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(JSON.parse(json));
  return out.join('\n');
}

describe('no secret in any log line or API response', () => {
  let stack: Stack;
  const bodies: string[] = [];
  let sse: { raw: () => string; close: () => Promise<void> } | null = null;

  async function call(method: string, url: string, body?: unknown, key: string | null = API_KEY) {
    const headers: Record<string, string> = {};
    if (key) headers['x-api-key'] = key;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${stack.apiUrl}${url}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    bodies.push(`${method} ${url} → ${res.status} ${JSON.stringify(Object.fromEntries(res.headers))} ${text}`);
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* metrics, html */
    }
    return { status: res.status, body: json, text };
  }

  async function waitStatus(id: string, ok: (s: any) => boolean, what: string, timeoutMs = 40_000) {
    return waitFor(
      what,
      async () => {
        const r = await call('GET', `/api/sessions/${id}/status`);
        return ok(r.body) ? r.body : null;
      },
      timeoutMs,
      250,
    );
  }

  async function scan(id: string, phone: string) {
    const qr = await waitFor(
      `QR of ${id}`,
      async () => {
        const r = await call('GET', `/api/sessions/${id}/qr`);
        return r.status === 200 ? (r.body.qr as string) : null;
      },
      30_000,
      150,
    );
    await stack.sim.scan(qr, phone);
  }

  before(async () => {
    stack = await new Stack({ proxies: 3 }).start();
    const controller = new AbortController();
    const res = await fetch(await eventsUrl(stack.apiUrl, API_KEY), { signal: controller.signal });
    let raw = '';
    const reading = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) raw += decoder.decode(chunk);
      } catch {
        /* aborted */
      }
    })();
    sse = {
      raw: () => raw,
      close: async () => {
        controller.abort();
        await reading;
      },
    };
  });

  let stopped = false;
  after(async () => {
    await sse?.close();
    // A failed assertion skips the in-test stop: stop here, or the API, orchestrator and workers outlive the run.
    if (stack && !stopped) await stack.stop().catch(() => undefined);
    if (stack) {
      const keep = process.env.KEEP_TEST_DATA;
      if (!keep) rmSync(stack.dataDir, { recursive: true, force: true });
      if (keep === undefined) delete process.env.KEEP_TEST_DATA;
    }
  });

  it('provision, connect, restart, failover, proxy death, bad input: secrets stay secret', async () => {
    // Every stack secret: proxy passwords, API keys, webhook secrets (master and per session).
    const proxyPasswords = stack.proxies.map((p) => decodeURIComponent(new URL(p.url).password));
    for (const pw of proxyPasswords) assert.ok(pw.length >= 6, 'proxies have passwords');
    const sessionIds = ['sec1', 'sec2'];
    const secrets: Record<string, string> = {
      API_KEY,
      TENANT_KEY,
      WEBHOOK_SECRET,
      ...Object.fromEntries(proxyPasswords.map((pw, i) => [`proxy password ${i}`, pw])),
      ...Object.fromEntries(
        sessionIds.map((id) => [`webhook secret of ${id}`, sessionWebhookSecret(WEBHOOK_SECRET, id)]),
      ),
      'bad-input password': 'Hunter2passX9',
      'added proxy password': 'AddedProxyPw77',
    };
    // The Redis password (scripts/services.sh sets one) is as secret as the rest.
    const redisPassword = decodeURIComponent(new URL(process.env.REDIS_URL ?? 'redis://x').password);
    assert.ok(redisPassword.length >= 16, 'Redis has a password (REDIS_URL from data/services.env)');
    secrets['Redis password'] = redisPassword;

    // Provision + connect through the pool, and one with a proxy override that carries credentials.
    let r = await call('POST', '/api/sessions/provision', { sessionId: 'sec1', phone: '15550009001' });
    assert.equal(r.status, 201, r.text);
    await scan('sec1', '15550009001');
    const s1 = await waitStatus('sec1', (s) => s?.status === 'connected', 'sec1 connected');
    r = await call('POST', '/api/sessions/provision', {
      sessionId: 'sec2',
      phone: '15550009002',
      proxyOverride: stack.proxies[2]!.url,
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.body.proxy, `${stack.proxies[2]!.host}:${stack.proxies[2]!.port}`);
    await scan('sec2', '15550009002');
    await waitStatus('sec2', (s) => s?.status === 'connected', 'sec2 connected');

    // Reads of every kind.
    for (const url of [
      '/api/sessions/sec1/status',
      '/api/sessions/sec1/health',
      '/api/sessions/sec2/status',
      '/api/v1/dashboard/sessions',
      '/api/v1/dashboard/stats',
      '/api/v1/proxies',
      '/api/openapi.json',
    ])
      assert.ok((await call('GET', url)).status < 500, url);
    await call('GET', '/api/v1/dashboard/sessions', undefined, TENANT_KEY);
    await call('GET', '/api/v1/proxies', undefined, TENANT_KEY);

    // Restart, operator failover, then a proxy that dies under a session.
    r = await call('POST', '/api/sessions/sec1/restart');
    assert.equal(r.status, 200, r.text);
    await waitStatus('sec1', (s) => s?.status === 'connected' && s.restarts === 1, 'sec1 restarted');
    r = await call('POST', '/api/sessions/sec1/failover', { reason: 'secrets test' });
    assert.equal(r.status, 200, r.text);
    await waitStatus('sec1', (s) => s?.status === 'connected' && s.proxy !== s1.proxy, 'sec1 on another proxy');
    await stack.proxies[2]!.close(); // sec2's override proxy dies: proxy errors, failover attempt
    await waitStatus(
      'sec2',
      (s) => s && s.failovers >= 1 && ['connected', 'failed'].includes(s.status),
      'sec2 to fail over (or fail)',
      60_000,
    );

    // Bad input carrying credentials, and proxy administration.
    r = await call('POST', '/api/sessions/provision', { proxyOverride: 'socks5://u:Hunter2passX9@h:1080' });
    assert.equal(r.status, 400);
    r = await call('POST', '/api/v1/proxies', { url: 'socks5h://ops:AddedProxyPw77@127.0.0.99:1' });
    assert.equal(r.status, 201, r.text);
    assert.equal((await call('DELETE', `/api/v1/proxies/${r.body.id}`)).status, 200);
    r = await call('POST', '/api/v1/proxies', { url: 'socks5h://ops:AddedProxyPw77@bad host:1' });
    assert.equal(r.status, 400);
    assert.equal((await call('GET', '/api/v1/dashboard/stats', undefined, `${API_KEY}x`)).status, 401);
    await call('GET', '/metrics');
    await call('GET', '/readyz');
    await call('GET', '/dashboard/');
    await call('GET', '/dashboard/app.js');

    // Temporal: the raw history (no codec, as `temporal workflow show` and the Web UI show it) of every workflow
    // this stack ran — sessions, failover children, watchdog, dispatchers.
    const histories: Array<[string, string]> = [];
    for await (const wf of stack.temporal.workflow.list({ query: `TaskQueue = '${stack.taskQueue}'` }))
      histories.push([`history of ${wf.workflowId}`, historyJson(wf.workflowId)]);
    const ids = histories.map(([w]) => w).join(', ');
    assert.ok(
      histories.some(([w]) => w.includes('session:sec2')),
      `sec2's session history read (${ids})`,
    );
    assert.ok(
      histories.some(([w]) => /failover/.test(w)),
      `a failover history read (${ids})`,
    );
    // The codec endpoint decodes them for the admin key only: sec2's start input carries its proxy override URL.
    const sec2History = JSON.parse(histories.find(([w]) => w.includes('session:sec2'))![1]);
    const startInput = sec2History.events[0].workflowExecutionStartedEventAttributes.input;
    assert.equal(Buffer.from(startInput.payloads[0].metadata.encoding, 'base64').toString(), 'binary/encrypted');
    assert.equal((await call('POST', '/codec/decode', startInput, null)).status, 401);
    assert.equal((await call('POST', '/codec/decode', startInput, TENANT_KEY)).status, 403);
    r = await call('POST', '/codec/decode', startInput);
    assert.equal(r.status, 200, r.text);
    bodies.pop(); // this answer shows the secret on purpose (admin decode); every other response is checked
    const decoded = Buffer.from(r.body.payloads[0].data, 'base64').toString();
    assert.ok(decoded.includes(proxyPasswords[2]!), 'the decoded start input holds the override proxy password');

    // Decoded (what the codec key holder reads): proxies go by id. The one URL left is sec2's own override, in
    // the input it was provisioned with and the reservation that registers it.
    for (const [w, raw] of histories) {
      for (const { where, text } of await decodedPayloads(raw)) {
        for (const [i, pw] of proxyPasswords.entries()) {
          if (i === 2 && w.includes('session:sec2') && text.includes('"override"')) continue;
          if (i === 2 && w.includes('session:sec2') && where === 'workflowExecutionStartedEventAttributes') continue;
          assert.ok(!text.includes(pw), `decoded ${w} (${where}) holds proxy password ${i}: ${text.slice(0, 200)}`);
        }
      }
    }

    // Redis key names (SCAN shows them to anyone with monitoring access): proxy keys carry an id, not the URL.
    const keyNames: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await stack.redis.scan(cursor, 'MATCH', `${stack.prefix}*`, 'COUNT', 1000);
      cursor = next;
      keyNames.push(...keys);
    } while (cursor !== '0');
    assert.ok(
      keyNames.some((n) => n.includes('proxy:status:')),
      `proxy keys present (${keyNames.length} keys)`,
    );
    assert.deepEqual(
      keyNames.filter((n) => n.includes('://')),
      [],
      'no Redis key name holds a proxy URL',
    );

    // Stop the stack (deletes, shutdown logs included), keeping its data to read every log.
    await sse!.close();
    const keep = process.env.KEEP_TEST_DATA;
    process.env.KEEP_TEST_DATA = '1';
    try {
      stopped = true;
      await stack.stop();
    } finally {
      if (keep === undefined) delete process.env.KEEP_TEST_DATA;
      else process.env.KEEP_TEST_DATA = keep;
    }

    const logs: Array<[string, string]> = [
      ['api.log', readFileSync(path.join(stack.dataDir, 'api.log'), 'utf8')],
      ['orchestrator.log', readFileSync(path.join(stack.dataDir, 'orchestrator.log'), 'utf8')],
    ];
    const workerDir = path.join(stack.dataDir, 'logs', 'workers');
    assert.ok(existsSync(workerDir), 'worker logs exist');
    for (const f of readdirSync(workerDir)) logs.push([`workers/${f}`, readFileSync(path.join(workerDir, f), 'utf8')]);
    assert.ok(logs.length >= 4, `logs of api, orchestrator and both workers: ${logs.map((l) => l[0]).join(', ')}`);
    const lineCount = logs.reduce((n, [, text]) => n + text.split('\n').length, 0);
    assert.ok(lineCount > 50, `enough log lines to mean something (${lineCount})`);
    assert.match(logs[1]![1], /proxy 127\.0\.0\.1:\d+ failed/, 'the orchestrator logged about the dead proxy');
    const sseText = sse!.raw();
    assert.match(sseText, /event: connected/, 'the live stream carried the lifecycle');

    const leaks: string[] = [];
    const haystacks: Array<[string, string]> = [
      ...logs,
      ['API responses', bodies.join('\n')],
      ['SSE', sseText],
      ['Redis key names', keyNames.join('\n')],
      ...histories.map(([where, json]): [string, string] => [where, withDecodedBase64(json)]),
    ];
    for (const [where, text] of haystacks) {
      for (const [name, secret] of Object.entries(secrets)) {
        const i = text.indexOf(secret);
        if (i >= 0) leaks.push(`${name} in ${where}: …${text.slice(Math.max(0, i - 120), i + 40)}…`);
      }
    }
    assert.deepEqual(leaks, [], leaks.join('\n\n'));
    console.log(
      `checked ${lineCount} log lines in ${logs.length} files, ${bodies.length} API responses, ${sseText.length} SSE bytes, ` +
        `${histories.length} Temporal histories, ${keyNames.length} Redis key names`,
    );
  });
});
