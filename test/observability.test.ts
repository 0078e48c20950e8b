import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { EventBus, type LiveEvent } from '../state/events-bus.js';
import { parsePrometheusText } from './helpers/prom-text.js';
import { API_KEY, eventsUrl, freePort, metricsAuth, ROOT, serviceEnv, TENANT_KEY, waitFor } from './helpers/stack.js';

/**
 * An API process on its OWN redis-server (never the shared one on 6379, which other tests use): readiness when
 * Redis goes away and comes back, live events over SSE and WebSocket with tenant filtering, and /metrics counters
 * moved by events published from another process.
 */

/** Reads an SSE stream; `events` fills as they arrive. */
async function openSse(url: string) {
  const controller = new AbortController();
  const res = await fetch(url, { signal: controller.signal });
  const events: Array<{ event: string; data: any }> = [];
  let raw = '';
  const done = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const text = decoder.decode(chunk, { stream: true });
        raw += text;
        buf += text;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) events.push({ event, data: JSON.parse(data) });
        }
      }
    } catch {
      /* aborted */
    }
  })();
  return {
    res,
    events,
    raw: () => raw,
    ready: () => waitFor('the SSE stream to be ready', () => events.some((e) => e.event === 'ready'), 10_000),
    close: async () => {
      controller.abort();
      await done;
    },
  };
}

describe('health, live events and metrics on an API with its own Redis', () => {
  let redisPort: number;
  let redisProc: ChildProcess | null = null;
  let api: ChildProcess;
  let apiUrl: string;
  let redis: Redis;
  let bus: EventBus;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wa-obs-'));
  const prefix = `obs:${randomBytes(4).toString('hex')}:`;

  async function startRedis() {
    redisProc = spawn(
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
      { stdio: 'ignore' },
    );
    const probe = new Redis({ port: redisPort, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
    probe.on('error', () => undefined);
    await waitFor(
      'our redis-server to answer',
      async () => {
        if (redisProc?.exitCode !== null) throw new Error('redis-server exited (is it installed?)');
        await probe.connect().catch(() => undefined);
        return (await probe.ping().catch(() => null)) === 'PONG';
      },
      10_000,
    );
    probe.disconnect();
  }

  async function stopRedis() {
    const p = redisProc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL'); // our own instance only (pid of the child we spawned)
    await exited;
  }

  before(async () => {
    redisPort = await freePort();
    await startRedis();
    const apiPort = await freePort();
    apiUrl = `http://127.0.0.1:${apiPort}`;
    api = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'api/main.ts')], {
      cwd: ROOT,
      env: {
        ...serviceEnv({
          apiPort,
          redisUrl: `redis://127.0.0.1:${redisPort}`,
          prefix,
          temporalAddress: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
          taskQueue: `obs-${prefix}`,
          workflowIdPrefix: 'obs',
        }),
        SESSIONS_DIR: dir,
        BACKUPS_DIR: dir,
        RUNNER: 'process',
      },
      stdio: ['ignore', openSync(path.join(dir, 'api.log'), 'a'), openSync(path.join(dir, 'api.log'), 'a')],
    });
    await waitFor(
      'the API to be ready',
      async () => {
        if (api.exitCode !== null) throw new Error(`api exited: ${readFileSync(path.join(dir, 'api.log'), 'utf8')}`);
        return (await fetch(`${apiUrl}/readyz`).catch(() => null))?.status === 200;
      },
      60_000,
      200,
    );
    redis = new Redis({ port: redisPort, host: '127.0.0.1', maxRetriesPerRequest: 3 });
    redis.on('error', () => undefined);
    bus = new EventBus(redis, prefix);
  });

  after(async () => {
    if (api && api.exitCode === null) {
      const exited = new Promise((r) => api.once('exit', r));
      api.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (api.exitCode === null) api.kill('SIGKILL');
    }
    redis?.disconnect();
    await stopRedis();
    rmSync(dir, { recursive: true, force: true });
  });

  it('/healthz and /readyz answer 200 with Redis and Temporal up', async () => {
    assert.equal((await fetch(`${apiUrl}/healthz`)).status, 200);
    const r = await fetch(`${apiUrl}/readyz`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { ok: true, checks: { redis: 'ok', temporal: 'ok' } });
  });

  it('SSE: authenticated, tenant-filtered, type-filtered', async () => {
    const noKey = await fetch(`${apiUrl}/api/events`);
    assert.equal(noKey.status, 401);
    assert.equal(((await noKey.json()) as any).error.code, 'UNAUTHORIZED');
    const wrong = await fetch(`${apiUrl}/api/events?ticket=wrong-ticket-0123456789abcdef`);
    assert.equal(wrong.status, 401);
    const badType = await fetch(await eventsUrl(apiUrl, API_KEY, 'types=qr,nope'));
    assert.equal(badType.status, 400);
    assert.equal(((await badType.json()) as any).error.field, 'types.1');

    const admin = await openSse(await eventsUrl(apiUrl, API_KEY));
    const tenant = await openSse(await eventsUrl(apiUrl, TENANT_KEY));
    const onlyQr = await openSse(await eventsUrl(apiUrl, API_KEY, 'types=qr'));
    assert.match(admin.res.headers.get('content-type') ?? '', /^text\/event-stream/);
    await Promise.all([admin.ready(), tenant.ready(), onlyQr.ready()]);

    await bus.publish({ type: 'connected', sessionId: 'a1', tenant: 'acme', data: { status: 'connected' } });
    await bus.publish({ type: 'qr', sessionId: 'b1', tenant: 'other', data: { count: 1 } });
    await bus.publish({ type: 'backup', sessionId: null, tenant: null, data: { phase: 'completed' } });
    const kinds = (s: typeof admin) => s.events.filter((e) => e.event !== 'ready').map((e) => e.data as LiveEvent);
    await waitFor('admin to get 3 events', () => kinds(admin).length === 3, 5000);
    await waitFor('tenant to get its event', () => kinds(tenant).length >= 1, 5000);
    await waitFor('qr-only to get its event', () => kinds(onlyQr).length >= 1, 5000);
    await new Promise((r) => setTimeout(r, 300)); // nothing else may arrive
    assert.deepEqual(
      kinds(admin).map((e) => `${e.type}:${e.sessionId}`),
      ['connected:a1', 'qr:b1', 'backup:null'],
    );
    assert.deepEqual(
      kinds(tenant).map((e) => `${e.type}:${e.sessionId}`),
      ['connected:a1'],
      'a tenant sees only its sessions',
    );
    assert.deepEqual(
      kinds(onlyQr).map((e) => e.type),
      ['qr'],
    );
    assert.equal(admin.events.find((e) => e.event === 'connected')?.data.tenant, 'acme');
    await Promise.all([admin.close(), tenant.close(), onlyQr.close()]);
  });

  it('WebSocket on /api/events: key required, tenant-filtered', async () => {
    const wsUrl = apiUrl.replace('http', 'ws');
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${wsUrl}/api/events`, { headers: { 'x-api-key': 'wrong-key-0123456789abcdef' } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    assert.equal(refused, 401);

    const got: any[] = [];
    const ws = new WebSocket(`${wsUrl}/api/events`, { headers: { 'x-api-key': TENANT_KEY } });
    ws.on('message', (m) => got.push(JSON.parse(String(m))));
    await waitFor('ws ready', () => got.some((e) => e.type === 'ready'), 10_000);
    await bus.publish({ type: 'qr', sessionId: 'b2', tenant: 'other', data: {} });
    await bus.publish({ type: 'disconnected', sessionId: 'a2', tenant: 'acme', data: { reason: 'x' } });
    await waitFor('the tenant event over ws', () => got.some((e) => e.sessionId === 'a2'), 5000);
    assert.deepEqual(
      got.filter((e) => e.type !== 'ready').map((e) => e.sessionId),
      ['a2'],
    );
    ws.close();
  });

  it('/metrics parses as Prometheus text; counters published by another process move', async () => {
    const scrape = async () => {
      const r = await fetch(`${apiUrl}/metrics`, { headers: metricsAuth });
      assert.equal(r.status, 200);
      return parsePrometheusText(await r.text());
    };
    // The SSE and WebSocket clients of the tests above are gone: no listener may leak.
    await waitFor(
      'listeners to be released',
      async () => (await scrape()).value('wa_live_event_listeners') === 0,
      5000,
    );
    const m0 = await scrape();
    for (const name of [
      'wa_sessions',
      'wa_proxies',
      'wa_qr_codes_generated_total',
      'wa_connects_total',
      'wa_disconnects_total',
      'wa_failovers_total',
      'wa_watchdog_restarts_total',
      'wa_messages_total',
      'wa_outbox_messages',
      'wa_dispatch_pending_messages',
      'wa_api_request_duration_seconds',
      'wa_webhook_duration_seconds',
      'wa_temporal_up',
      'wa_redis_up',
    ])
      assert.ok(m0.types.has(name), `${name} exposed`);
    // This test process is "another process": its events reach the API's metrics through Redis.
    await bus.publish({ type: 'disconnected', sessionId: 's', tenant: 't', data: { reason: 'Connection Lost' } });
    await bus.publish({ type: 'message', sessionId: 's', tenant: 't', data: { direction: 'in' } });
    await bus.publish({ type: 'message', sessionId: 's', tenant: 't', data: { direction: 'out', status: 'failed' } });
    await bus.publish({ type: 'health_check_failed', sessionId: 's', tenant: 't', data: {} });
    await bus.publish({ type: 'failover', sessionId: 's', tenant: 't', data: { phase: 'completed' } });
    const stats = await fetch(`${apiUrl}/api/v1/dashboard/stats`, { headers: { 'x-api-key': API_KEY } });
    assert.equal(stats.status, 200);
    const m1 = await scrape();
    const delta = (name: string, labels?: Record<string, string>) => m1.value(name, labels) - m0.value(name, labels);
    assert.equal(delta('wa_disconnects_total', { reason: 'connection_lost' }), 1);
    assert.equal(delta('wa_messages_total', { kind: 'received' }), 1);
    assert.equal(delta('wa_messages_total', { kind: 'failed' }), 1);
    assert.equal(delta('wa_watchdog_restarts_total'), 1);
    assert.equal(delta('wa_failovers_total', { result: 'completed' }), 1);
    assert.equal(m1.value('wa_redis_up'), 1);
    // Every metric the Grafana dashboard queries exists.
    const grafana = JSON.parse(readFileSync(path.join(ROOT, 'deploy/grafana/wa-orchestrator.json'), 'utf8')) as {
      panels: Array<{ targets?: Array<{ expr: string }> }>;
    };
    const queried = new Set(
      grafana.panels
        .flatMap((p) => p.targets ?? [])
        .flatMap((t) => t.expr.match(/\bwa_[a-z_]+/g) ?? [])
        .map((n) => n.replace(/_(bucket|count|sum)$/, '')),
    );
    assert.ok(queried.size >= 15, `${queried.size} metrics queried`);
    for (const name of queried) assert.ok(m1.types.has(name), `Grafana queries ${name}, which /metrics lacks`);
    assert.equal(m1.value('wa_temporal_up'), 1);
    assert.equal(
      delta('wa_api_request_duration_seconds_count', { route: '/api/v1/dashboard/stats', status: '200' }),
      1,
      'API latency observed',
    );
  });

  it('/readyz turns 503 when Redis stops and 200 when it is back; live events resume', async () => {
    const stream = await openSse(await eventsUrl(apiUrl, API_KEY));
    await stream.ready();
    await stopRedis();
    const down = await waitFor(
      '/readyz 503',
      async () => {
        const r = await fetch(`${apiUrl}/readyz`);
        return r.status === 503 ? ((await r.json()) as any) : null;
      },
      15_000,
      200,
    );
    assert.equal(down.ok, false);
    assert.match(down.checks.redis, /unreachable/);
    assert.equal(down.checks.temporal, 'ok');
    assert.equal((await fetch(`${apiUrl}/healthz`)).status, 200, 'alive though not ready');
    const m = await fetch(`${apiUrl}/metrics`, { headers: metricsAuth });
    assert.equal(m.status, 200, 'metrics still answer');
    assert.equal(parsePrometheusText(await m.text()).value('wa_redis_up'), 0);

    await startRedis();
    await waitFor('/readyz 200', async () => (await fetch(`${apiUrl}/readyz`)).status === 200, 20_000, 200);
    assert.equal(api.exitCode, null, 'the API survived the outage');
    // The subscriber re-subscribed by itself: an event published now reaches the old stream.
    await waitFor(
      'an event after the outage',
      async () => {
        await bus.publish({ type: 'status', sessionId: 'after', tenant: 'acme', data: { status: 'connected' } });
        return stream.events.some((e) => e.data?.sessionId === 'after');
      },
      15_000,
      500,
    );
    await stream.close();
  });
});
