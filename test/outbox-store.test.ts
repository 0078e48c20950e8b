/**
 * The Redis outbox store (state/outbox.ts) and its worker-facing HTTP routes (api/routes/worker-outbox.ts), against
 * the real Redis (REDIS_URL, default redis://127.0.0.1:6379) with a unique key prefix per run.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { Redis } from 'ioredis';
import { signedRequestHeaders } from '../common/events.js';
import { installErrorHandler } from '../api/errors.js';
import { memoryNonces, signedScope } from '../api/signed.js';
import { AckResponseSchema, ClaimResponseSchema, NackResponseSchema, OutboxErrorSchema } from '../common/outbox.js';
import { workerOutboxRoutes } from '../api/routes/worker-outbox.js';
import { OutboxStore } from '../state/outbox.js';
import { WorkerWake } from '../state/worker-wake.js';

const prefix = `test:${randomBytes(6).toString('hex')}:`;
const SECRET = 'outbox-secret-0123456789';
let redis: Redis;
let store: OutboxStore;

before(async () => {
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  store = new OutboxStore(redis, prefix, { leaseMs: 60_000, maxAttempts: 3 });
});

after(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

const msg = (i: number) => ({ messageId: `m${i}`, to: '15559990000', text: `hello ${i}` });

describe('OutboxStore', () => {
  test('keys follow SPEC §9 with the prefix', () => {
    assert.equal(store.keys('s1').queue, `${prefix}session:outbox:s1`);
    assert.equal(store.keys('s1').inflight, `${prefix}session:outbox:s1:inflight`);
  });

  test('FIFO claim, idempotent enqueue, ack records the WhatsApp id idempotently', async () => {
    const s = 'fifo';
    for (let i = 1; i <= 3; i++) assert.equal(await store.enqueue(s, msg(i)), true);
    assert.equal(await store.enqueue(s, msg(1)), false, 'same id twice is a no-op');
    const c1 = await store.claim(s);
    assert.equal(c1?.messageId, 'm1');
    assert.equal(c1?.attempt, 1);
    assert.equal(c1?.text, 'hello 1');
    assert.deepEqual(await store.counts(s), { queued: 2, inflight: 1, acked: 0, failed: 0 });
    assert.equal(await store.ack(s, 'm1', 'WA1'), 'acked');
    assert.equal(await store.ack(s, 'm1', 'WA1'), 'duplicate');
    assert.equal(await store.ack(s, 'm1', 'WA-other'), 'conflict');
    assert.equal(await store.ackedId(s, 'm1'), 'WA1');
    assert.equal(await store.enqueue(s, msg(1)), false, 'an acked id is never re-queued');
    assert.equal(await store.ack(s, 'nope', 'x'), 'not_found');
    assert.equal((await store.claim(s))?.messageId, 'm2');
    assert.equal((await store.claim(s))?.messageId, 'm3');
    assert.equal(await store.claim(s), null);
  });

  test('an expired lease is re-delivered with attempt+1 and keeps its place at the head', async () => {
    const s = 'lease';
    await store.enqueue(s, msg(1));
    await store.enqueue(s, msg(2));
    const c = await store.claim(s, 100);
    assert.equal(c?.messageId, 'm1');
    await new Promise((r) => setTimeout(r, 150));
    const again = await store.claim(s, 60_000);
    assert.equal(again?.messageId, 'm1');
    assert.equal(again?.attempt, 2);
    // a late ACK from the crashed claim is still accepted exactly once
    assert.equal(await store.ack(s, 'm1', 'WA1'), 'acked');
    assert.equal((await store.claim(s))?.messageId, 'm2');
  });

  test('reclaimExpired moves expired leases back', async () => {
    const s = 'reclaim';
    await store.enqueue(s, msg(1));
    await store.claim(s, 50);
    assert.equal(await store.reclaimExpired(s), 0, 'lease still valid');
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(await store.reclaimExpired(s), 1);
    assert.equal(await store.reclaimExpired(s), 0);
    const counts = await store.counts(s);
    assert.equal(counts.queued, 1);
    assert.equal(counts.inflight, 0);
  });

  test('nack: retryable re-queues at the head until maxAttempts, permanent fails at once', async () => {
    const s = 'nack';
    await store.enqueue(s, msg(1));
    await store.enqueue(s, msg(2));
    for (let attempt = 1; attempt <= 2; attempt++) {
      const c = await store.claim(s);
      assert.equal(c?.messageId, 'm1');
      assert.equal(c?.attempt, attempt);
      assert.equal(await store.nack(s, 'm1', 'not connected', false), 'requeued');
    }
    await store.claim(s);
    assert.equal(await store.nack(s, 'm1', 'not connected', false), 'failed', 'third attempt = maxAttempts');
    const failure = await store.failure(s, 'm1');
    assert.deepEqual(failure, { reason: 'not connected', attempts: 3, at: failure?.at, permanent: false });
    const c2 = await store.claim(s);
    assert.equal(c2?.messageId, 'm2');
    assert.equal(await store.nack(s, 'm2', 'invalid number', true), 'failed');
    assert.equal(await store.nack(s, 'm2', 'invalid number', true), 'failed', 'idempotent');
    assert.equal(await store.ack(s, 'm2', 'WA'), 'conflict');
    assert.deepEqual(await store.counts(s), { queued: 0, inflight: 0, acked: 0, failed: 2 });
  });

  test('concurrent claims never hand out one message twice', async () => {
    const s = 'race';
    for (let i = 0; i < 50; i++) await store.enqueue(s, msg(i));
    const clients = Array.from({ length: 5 }, () => new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'));
    try {
      const stores = clients.map((c) => new OutboxStore(c, prefix));
      const got: string[] = [];
      await Promise.all(
        stores.map(async (st) => {
          for (;;) {
            const c = await st.claim(s);
            if (!c) return;
            got.push(c.messageId);
          }
        }),
      );
      assert.equal(got.length, 50);
      assert.equal(new Set(got).size, 50);
    } finally {
      await Promise.all(clients.map((c) => c.quit()));
    }
  });
});

describe('worker outbox routes', () => {
  let app: FastifyInstance;
  const sid = 'route_s1';
  before(async () => {
    app = Fastify();
    installErrorHandler(app);
    await app.register(
      signedScope(
        { secretFor: (id) => (id.startsWith('route_') ? SECRET : undefined), claimNonce: memoryNonces() },
        async (scope) => {
          await scope.register(workerOutboxRoutes, { store });
        },
      ),
    );
    await app.ready();
  });
  after(async () => {
    await app.close();
  });

  const call = (
    op: string,
    payload: unknown,
    opts: { secret?: string; id?: string; headers?: Record<string, string> } = {},
  ) => {
    const body = JSON.stringify(payload);
    const url = `/api/worker/sessions/${opts.id ?? sid}/outbox/${op}`;
    return app.inject({
      method: 'POST',
      url,
      headers: { ...signedRequestHeaders(opts.secret ?? SECRET, 'POST', url, body), ...opts.headers },
      payload: body,
    });
  };

  test('claim → 200 item / 204 empty; ack; nack', async () => {
    assert.equal((await call('claim', {})).statusCode, 204);
    await store.enqueue(sid, { messageId: 'r1', to: '15559990000', text: 'hi' });
    await store.enqueue(sid, { messageId: 'r2', to: '15559990000', text: 'there' });
    const res = await call('claim', {});
    assert.equal(res.statusCode, 200);
    const { item } = ClaimResponseSchema.parse(res.json());
    assert.deepEqual(item, { messageId: 'r1', to: '15559990000', text: 'hi', attempt: 1 });
    const ack = await call('ack', { messageId: 'r1', waMessageId: '3EB0ABC' });
    assert.equal(ack.statusCode, 200);
    assert.deepEqual(AckResponseSchema.parse(ack.json()), { ok: true, duplicate: false });
    assert.deepEqual((await call('ack', { messageId: 'r1', waMessageId: '3EB0ABC' })).json(), {
      ok: true,
      duplicate: true,
    });
    const c2 = ClaimResponseSchema.parse((await call('claim', {})).json());
    const nack = await call('nack', { messageId: c2.item.messageId, reason: 'socket closed', permanent: false });
    assert.deepEqual(NackResponseSchema.parse(nack.json()), { ok: true, requeued: true });
    const c3 = ClaimResponseSchema.parse((await call('claim', {})).json());
    assert.equal(c3.item.attempt, 2);
    assert.deepEqual((await call('nack', { messageId: 'r2', reason: 'bad number', permanent: true })).json(), {
      ok: true,
      requeued: false,
    });
  });

  test('signature, validation and unknown ids are JSON errors', async () => {
    const bad = await call('claim', {}, { secret: 'wrong-secret-0123456789' });
    assert.equal(bad.statusCode, 401);
    assert.equal(OutboxErrorSchema.parse(bad.json()).error.code, 'BAD_SIGNATURE');
    const stale = await call('claim', {}, { headers: { 'x-wa-timestamp': String(Date.now() - 3_600_000) } });
    assert.equal(stale.statusCode, 401);
    const missing = await app.inject({
      method: 'POST',
      url: `/api/worker/sessions/${sid}/outbox/claim`,
      headers: { 'content-type': 'application/json' },
      payload: '{}',
    });
    assert.equal(missing.statusCode, 401);
    assert.equal(missing.json<{ error: { code: string } }>().error.code, 'BAD_SIGNATURE');
    const invalid = await call('ack', { messageId: 'r1' });
    assert.equal(invalid.statusCode, 400);
    assert.deepEqual(OutboxErrorSchema.parse(invalid.json()).error.field, 'waMessageId');
    const perm = await call('nack', { messageId: 'r1', reason: 'x', permanent: 'yes' });
    assert.equal(perm.json<{ error: { field: string } }>().error.field, 'permanent');
    const unknown = await call('ack', { messageId: 'zzz', waMessageId: 'x' });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json<{ error: { code: string } }>().error.code, 'MESSAGE_NOT_FOUND');
    // A session nobody can sign for answers like a bad signature: existence is not revealed.
    assert.equal((await call('claim', {}, { id: 'other' })).statusCode, 401);
    assert.equal((await call('claim', {}, { id: 'bad.id' })).statusCode, 401);
  });
});

/** The store of the long-poll routes, with a claim that can be held after it ran (a hang-up right then). */
class HeldClaimStore extends OutboxStore {
  hold: Promise<void> | undefined;
  held = 0;
  override async claim(sessionId: string, leaseMs?: number) {
    const claimed = await super.claim(sessionId, leaseMs);
    if (claimed && this.hold) {
      this.held++;
      await this.hold;
    }
    return claimed;
  }
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('worker outbox long-poll (claims with waitMs)', () => {
  let app: FastifyInstance;
  let wake: WorkerWake;
  let base: string;
  // The enqueueing side is another process in production (the orchestrator): its own connection and store.
  let publisherRedis: Redis;
  let publisher: HeldClaimStore;
  /** Requests wait here before their handler (as behind a slow signature check) while set. */
  let beforeHandler: Promise<void> | undefined;
  const replies: FastifyReply[] = [];
  before(async () => {
    wake = new WorkerWake(redis, prefix);
    await wake.start();
    publisherRedis = redis.duplicate();
    publisher = new HeldClaimStore(publisherRedis, prefix, { leaseMs: 400, maxAttempts: 3 });
    app = Fastify();
    installErrorHandler(app);
    app.addHook('preHandler', async (_req, reply) => {
      replies.push(reply);
      if (beforeHandler) await beforeHandler;
    });
    await app.register(
      signedScope({ secretFor: () => SECRET, claimNonce: memoryNonces() }, async (scope) => {
        await scope.register(workerOutboxRoutes, { store: publisher, wake });
      }),
    );
    base = await app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await wake.close();
    await app.close();
    publisherRedis.disconnect();
  });

  const claim = (sid: string, body: object, signal?: AbortSignal) => {
    const payload = JSON.stringify(body);
    const path = `/api/worker/sessions/${sid}/outbox/claim`;
    return fetch(`${base}${path}`, {
      method: 'POST',
      headers: signedRequestHeaders(SECRET, 'POST', path, payload),
      body: payload,
      ...(signal ? { signal } : {}),
    });
  };

  test('a waiting claim gets a message the moment it is queued, in one request', async () => {
    const pending = claim('lp1', { waitMs: 10_000 });
    await waitUntil(() => wake.waiting === 1);
    const queuedAt = Date.now();
    await publisher.enqueue('lp1', msg(1));
    const res = await pending;
    const latency = Date.now() - queuedAt;
    assert.equal(res.status, 200);
    assert.equal(ClaimResponseSchema.parse(await res.json()).item.messageId, 'm1');
    assert.ok(latency < 1000, `claimed ${latency} ms after it was queued`);
    assert.equal(wake.waiting, 0);
  });

  test('nothing to claim: 204 once the wait is up; another session is not woken', async () => {
    const started = Date.now();
    const pending = claim('lp2', { waitMs: 600 });
    await waitUntil(() => wake.waiting === 1);
    await publisher.enqueue('lp2-other', msg(2));
    const res = await pending;
    assert.equal(res.status, 204);
    assert.ok(Date.now() - started >= 550, `answered after ${Date.now() - started} ms`);
  });

  test('a lease running out wakes the wait: the message is claimed again (attempt 2) in the same request', async () => {
    await publisher.enqueue('lp3', msg(3));
    assert.equal((await publisher.claim('lp3'))?.attempt, 1); // leased for 400 ms to a worker that vanished
    const res = await claim('lp3', { waitMs: 10_000 });
    assert.equal(res.status, 200);
    assert.equal(ClaimResponseSchema.parse(await res.json()).item.attempt, 2);
  });

  test('a worker that hung up claims nothing: the message stays for its next claim', async () => {
    const gone = new AbortController();
    const pending = claim('lp4', { waitMs: 10_000 }, gone.signal).catch(() => null);
    await waitUntil(() => wake.waiting === 1);
    gone.abort();
    await pending;
    await waitUntil(() => wake.waiting === 0);
    await publisher.enqueue('lp4', msg(4));
    const res = await claim('lp4', {});
    assert.equal(res.status, 200);
    assert.equal(ClaimResponseSchema.parse(await res.json()).item.attempt, 1, 'never leased to the hung-up claim');
  });

  test('a worker that hung up before its claim began to wait claims nothing', async () => {
    const gate = deferred();
    beforeHandler = gate.promise;
    const gone = new AbortController();
    const seen = replies.length;
    const pending = claim('lp6', { waitMs: 10_000 }, gone.signal).catch(() => null);
    await waitUntil(() => replies.length > seen);
    gone.abort();
    await pending;
    await waitUntil(() => replies[seen]!.raw.destroyed);
    beforeHandler = undefined;
    gate.resolve();
    // The handler ran after the hang-up: it answers at once, no wait left behind to take the next message.
    await waitUntil(() => replies[seen]!.raw.listenerCount('close') === 0 && wake.waiting === 0);
    await publisher.enqueue('lp6', msg(6));
    const res = await claim('lp6', {});
    assert.equal(res.status, 200);
    assert.equal(ClaimResponseSchema.parse(await res.json()).item.attempt, 1, 'never leased to the hung-up claim');
  });

  test('a worker that hangs up while its claim runs gets nothing leased: the message goes back, unclaimed', async () => {
    await publisher.enqueue('lp7', msg(7));
    const gate = deferred();
    publisher.hold = gate.promise;
    const gone = new AbortController();
    const seen = replies.length;
    const pending = claim('lp7', {}, gone.signal).catch(() => null);
    await waitUntil(() => publisher.held === 1);
    gone.abort();
    await pending;
    await waitUntil(() => replies[seen]!.raw.destroyed);
    publisher.hold = undefined;
    gate.resolve();
    // Back in the queue at once (not after its lease): the claim that could not be answered was undone.
    let counts = await publisher.counts('lp7');
    for (const deadline = Date.now() + 300; counts.queued === 0 && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 10));
      counts = await publisher.counts('lp7');
    }
    assert.deepEqual(counts, { queued: 1, inflight: 0, acked: 0, failed: 0 });
    const res = await claim('lp7', {});
    assert.equal(res.status, 200);
    const { item } = ClaimResponseSchema.parse(await res.json());
    assert.equal(item.messageId, 'm7');
    assert.equal(item.attempt, 1, 'the lost claim is not counted');
  });

  test('waitMs is validated', async () => {
    const res = await claim('lp5', { waitMs: 120_000 });
    assert.equal(res.status, 400);
    assert.equal(OutboxErrorSchema.parse(await res.json()).error.field, 'waitMs');
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
