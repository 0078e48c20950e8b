import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { ClientWebhookStore } from '../state/client-webhooks.js';
import { SessionStore } from '../state/sessions.js';
import { connectTestRedis } from './helpers/redis.js';

/** A write Redis refuses inside a MULTI fails the call (ioredis would otherwise resolve it as if written). */
describe('Redis transactions in state/ report refused writes', () => {
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ redis, prefix, cleanup } = await connectTestRedis()));
  after(async () => {
    await cleanup();
    redis.disconnect();
  });

  it('a session record update onto a key of the wrong type throws WRONGTYPE; a good one writes', async () => {
    const sessions = new SessionStore(redis, prefix);
    await redis.set(sessions.keys.session('tx1'), 'not a hash');
    await assert.rejects(sessions.update('tx1', { status: 'connected' }), /WRONGTYPE/);
    await sessions.create('tx2', 'acme');
    await sessions.update('tx2', { status: 'connected', lastError: null });
    assert.equal((await sessions.get('tx2'))?.status, 'connected');
  });

  it('a customer webhook delivery onto a due set of the wrong type throws', async () => {
    const hooks = new ClientWebhookStore(redis, prefix);
    await hooks.setConfig('acme', {
      url: 'http://127.0.0.1:9/hook',
      secret: 's'.repeat(32),
      events: ['message.status'],
    });
    await redis.set(hooks.keys.clientWebhookDue(), 'not a zset');
    await assert.rejects(hooks.enqueue('acme', 'message.status', { x: 1 }), /WRONGTYPE/);
  });
});
