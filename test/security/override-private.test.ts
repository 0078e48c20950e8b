/**
 * Attack: a tenant's `proxyOverride` joined the shared pool, so other tenants' sessions were placed on a proxy the
 * tenant controls (it sees their traffic metadata and can kill them); and a full or BAD override was silently
 * replaced by a shared proxy. A tenant's own proxy is now private: never in the shared pool, counted against the
 * same per-proxy limit, shown to the admin with its tenant, refused to other tenants, removed with its last
 * session; a full or BAD override is refused (SPEC §3.1).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { proxyIdOf } from '../../common/proxy-id.js';
import { NoProxyCapacityError, ProxyPool } from '../../state/proxy-pool.js';
import { connectTestRedis } from '../helpers/redis.js';

// By name, not class: the test must also run (and fail) against code from before the class existed.
const refused = (err: Error) => err.name === 'ProxyOverrideRefusedError';
const shared = 'socks5h://pool:PoolPw1@10.2.0.1:1080';
const own = 'socks5h://acme:AcmeOwnPw@10.2.0.9:1080';

describe('tenant proxy overrides stay private', () => {
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
  });
  after(async () => cleanup());

  it('never joins the pool; same 4-per-proxy limit; refused when full, BAD or another tenant’s; gone with its last session', async () => {
    const p = `${prefix}private:`;
    const pool = new ProxyPool(redis, p, { maxSessionsPerProxy: 4 });
    await pool.register(shared);
    const a1 = await pool.reserve({ sessionId: 'a1', override: own, tenant: 'acme' });
    assert.deepEqual([a1.proxyUrl, a1.source], [own, 'override']);

    // beta fills the shared proxy; its 5th session finds no capacity instead of landing on acme's proxy.
    for (let i = 1; i <= 4; i++)
      assert.equal((await pool.reserve({ sessionId: `b${i}`, tenant: 'beta' })).proxyUrl, shared);
    await assert.rejects(pool.reserve({ sessionId: 'b5', tenant: 'beta' }), NoProxyCapacityError);
    // ... nor by naming it.
    await assert.rejects(
      pool.reserve({ sessionId: 'b5', override: own, tenant: 'beta' }),
      (err: Error) => refused(err) && /not available/.test(err.message),
    );

    // Admin view: private to acme, not part of the free inventory.
    const listed = (await pool.list()).find((x) => x.url === own)!;
    assert.equal(listed.privateTo, 'acme');
    assert.equal(await pool.freeHealthyProxies(), 0);

    // The same limit of 4; a full override is refused, not replaced.
    for (const id of ['a2', 'a3', 'a4']) await pool.reserve({ sessionId: id, override: own, tenant: 'acme' });
    assert.equal(await pool.load(own), 4);
    await assert.rejects(
      pool.reserve({ sessionId: 'a5', override: own, tenant: 'acme' }),
      (err: Error) => refused(err) && /already has 4 sessions/.test(err.message),
    );
    assert.equal(await pool.heldBy('a5'), null, 'no slot taken anywhere');

    // BAD: refused; back to OK it still does not join the pool.
    await pool.release('a4');
    await pool.markBad(own);
    await assert.rejects(
      pool.reserve({ sessionId: 'a5', override: own, tenant: 'acme' }),
      (err: Error) => refused(err) && /BAD/.test(err.message),
    );
    await pool.markOk(own);
    assert.equal(await redis.sismember(`${p}proxies:available`, own), 0, 'never in the shared pool');

    // Removed with its last session: no key, no URL left.
    for (const id of ['a1', 'a2', 'a3']) await pool.release(id);
    assert.ok(!(await pool.list()).some((x) => x.url === own));
    assert.equal(await redis.hget(`${p}proxies:urls`, proxyIdOf(own)), null);
    assert.equal(await redis.hget(`${p}proxies:private`, proxyIdOf(own)), null);
    assert.equal(await redis.exists(`${p}counter:proxy:${proxyIdOf(own)}`, `${p}proxy:status:${proxyIdOf(own)}`), 0);
    // The shared proxy is untouched by all of it.
    assert.equal(await pool.load(shared), 4);
  });
});
