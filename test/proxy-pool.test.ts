import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { createRedis } from '../state/redis.js';
import { NoProxyCapacityError, ProxyInUseError, ProxyOverrideRefusedError, ProxyPool } from '../state/proxy-pool.js';
import { startCounterMonitor } from './helpers/counter-monitor.js';
import { connectTestRedis } from './helpers/redis.js';

const proxy = (i: number) => `socks5h://user${i}:secret${i}@10.0.0.${i}:1080`;

describe('proxy pool on real Redis', () => {
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
  });
  after(async () => cleanup());

  it('200 concurrent reservations over 10 proxies with limit 4: exactly 40 succeed, never above 4', async () => {
    const pool = new ProxyPool(redis, `${prefix}conc:`, { maxSessionsPerProxy: 4 });
    await pool.register(...Array.from({ length: 10 }, (_, i) => proxy(i + 1)));
    const urls = (await pool.list()).map((p) => p.url);

    // Another thread samples every counter while the reservations run (not only at the end).
    const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const monitor = startCounterMonitor(
      redisUrl,
      urls.map((u) => pool.keys.proxyCounter(u)),
    );
    await monitor.waitForSamples(3);
    const before = monitor.samples;

    // 20 client connections fire 200 reservations at once, as 20 API processes would.
    const clients = Array.from({ length: 20 }, () => createRedis(redisUrl));
    await Promise.all(clients.map((c) => c.ping()));
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) =>
        new ProxyPool(clients[i % clients.length]!, `${prefix}conc:`, { maxSessionsPerProxy: 4 }).reserve({
          sessionId: `s${i}`,
        }),
      ),
    );
    const during = monitor.samples - before;
    const { maxSeen } = await monitor.stop();

    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r) => r.status === 'rejected');
    assert.equal(ok.length, 40);
    assert.equal(failed.length, 160);
    for (const f of failed) {
      assert.ok(f.reason instanceof NoProxyCapacityError);
      assert.match(f.reason.message, /no proxy capacity/);
    }
    assert.ok(during >= 2, `monitor sampled during the run (${during} samples)`);
    assert.ok(maxSeen <= 4, `a counter reached ${maxSeen}`);
    const list = await pool.list();
    assert.deepEqual(
      list.map((p) => p.load),
      Array(10).fill(4),
    );
    for (const p of list) assert.equal(p.sessions.length, 4);

    await Promise.all(Array.from({ length: 200 }, (_, i) => pool.release(`s${i}`)));
    assert.deepEqual(
      (await pool.list()).map((p) => p.load),
      Array(10).fill(0),
    );
    // Releasing again never drives a counter below zero.
    await Promise.all(Array.from({ length: 40 }, (_, i) => pool.release(`s${i}`)));
    assert.deepEqual(
      (await pool.list()).map((p) => p.load),
      Array(10).fill(0),
    );
    for (const c of clients) c.disconnect();
  });

  it('picks the least-loaded healthy proxy, and a retry of the same session keeps its slot', async () => {
    const pool = new ProxyPool(redis, `${prefix}least:`, { maxSessionsPerProxy: 4 });
    const [a, b] = await pool.register(proxy(1), proxy(2));
    const r1 = await pool.reserve({ sessionId: 'x1' });
    const r2 = await pool.reserve({ sessionId: 'x2' });
    assert.notEqual(r1.proxyUrl, r2.proxyUrl, 'spread over both proxies');
    const again = await pool.reserve({ sessionId: 'x1' });
    assert.deepEqual([again.proxyUrl, again.source], [r1.proxyUrl, 'held']);
    assert.equal(await pool.load(a!), 1);
    assert.equal(await pool.load(b!), 1);
    assert.equal(await pool.getTemp('x1'), r1.proxyUrl, 'temporary binding written with the reservation');
    await pool.release('x1');
    assert.equal(await pool.getTemp('x1'), null, 'release clears the temporary binding');
  });

  it('sticky: a bound phone gets its proxy again even when others are emptier; after BAD it moves', async () => {
    const pool = new ProxyPool(redis, `${prefix}sticky:`, { maxSessionsPerProxy: 4 });
    const [p1, p2, p3] = await pool.register(proxy(1), proxy(2), proxy(3));
    // Load P1 with two other sessions so it is the fullest.
    await pool.reserve({ sessionId: 'other1', override: p1 });
    await pool.reserve({ sessionId: 'other2', override: p1 });
    await pool.setSticky('972501234567', p1!);

    const first = await pool.reserve({ sessionId: 'phone-session', phone: '972501234567' });
    assert.deepEqual([first.proxyUrl, first.source], [p1, 'sticky']);
    await pool.release('phone-session');
    const again = await pool.reserve({ sessionId: 'phone-session-2', phone: '972501234567' });
    assert.deepEqual([again.proxyUrl, again.source], [p1, 'sticky']);
    await pool.release('phone-session-2');

    assert.equal(await pool.markBad(p1!, 1_700_000_000_000), true);
    const info = (await pool.list()).find((p) => p.url === p1)!;
    assert.equal(info.status, 'BAD');
    assert.equal(info.badAt, 1_700_000_000_000);
    const moved = await pool.reserve({ sessionId: 'phone-session-3', phone: '972501234567' });
    assert.equal(moved.source, 'pool');
    assert.ok([p2, p3].includes(moved.proxyUrl));

    await pool.markOk(p1!);
    const healed = (await pool.list()).find((p) => p.url === p1)!;
    assert.deepEqual([healed.status, healed.badAt], ['OK', null]);
  });

  it('override first (when healthy and below capacity), then sticky, then pool', async () => {
    const pool = new ProxyPool(redis, `${prefix}override:`, { maxSessionsPerProxy: 2 });
    const [p1, p2] = await pool.register(proxy(1), proxy(2));
    const o = await pool.reserve({ sessionId: 'o1', override: p2 });
    assert.deepEqual([o.proxyUrl, o.source], [p2, 'override']);
    await pool.reserve({ sessionId: 'o2', override: p2 });
    // p2 is full now: the override cannot be honoured and is refused (SPEC §3.1), not replaced by another proxy.
    await pool.setSticky('15550001', p1!);
    await assert.rejects(pool.reserve({ sessionId: 'o3', override: p2, phone: '15550001' }), ProxyOverrideRefusedError);
    const s = await pool.reserve({ sessionId: 'o3', phone: '15550001' });
    assert.deepEqual([s.proxyUrl, s.source], [p1, 'sticky']);
    // An unregistered override is registered on the fly, private to its tenant (test/security/override-private).
    const own = await pool.reserve({ sessionId: 'o4', override: proxy(9), tenant: 'acme' });
    assert.deepEqual([own.proxyUrl, own.source], [proxy(9), 'override']);
    await assert.rejects(pool.reserve({ sessionId: 'o5', override: 'http://x:y@h:1' }), /only socks5h/);
  });

  it('failover can exclude the burned proxy; remove refuses a proxy that still has sessions', async () => {
    const pool = new ProxyPool(redis, `${prefix}excl:`, { maxSessionsPerProxy: 4 });
    const [p1, p2] = await pool.register(proxy(1), proxy(2));
    const r = await pool.reserve({ sessionId: 'e1', exclude: [p1!] });
    assert.equal(r.proxyUrl, p2);
    await assert.rejects(pool.remove(p2!), ProxyInUseError);
    await pool.release('e1');
    assert.equal(await pool.remove(p2!), true);
    assert.equal(await pool.remove(p2!), false);
    await assert.rejects(pool.reserve({ sessionId: 'e2', exclude: [p1!] }), NoProxyCapacityError);
  });

  it('free inventory: healthy shared proxies below the limit, in one Redis call whatever the pool size', async () => {
    const pool = new ProxyPool(redis, `${prefix}free:`, { maxSessionsPerProxy: 2 });
    const [p1, p2] = await pool.register(proxy(1), proxy(2), proxy(3), proxy(4));
    assert.equal(await pool.freeHealthyProxies(), 4);
    await pool.reserve({ sessionId: 'f1', override: p1! });
    assert.equal(await pool.freeHealthyProxies(), 4, 'one of two slots taken: still free');
    await pool.reserve({ sessionId: 'f2', override: p1! });
    assert.equal(await pool.freeHealthyProxies(), 3, 'full');
    await pool.markBad(p2!);
    assert.equal(await pool.freeHealthyProxies(), 2, 'BAD');
    await pool.reserve({ sessionId: 'f3', override: 'socks5h://t:pw@10.0.0.9:1080', tenant: 't1' });
    assert.equal(await pool.freeHealthyProxies(), 2, "a tenant's own proxy is not the shared inventory");
    await pool.release('f2');
    await pool.markOk(p2!);
    assert.equal(await pool.freeHealthyProxies(), 4);
    const listed = (await pool.list()).filter((p) => !p.privateTo && p.status === 'OK' && p.load < 2).length;
    assert.equal(listed, 4, 'the same count as the full listing');
    // 2,000 proxies: still one command (a round trip per proxy made each provision cost O(proxies) calls).
    const conn = redis.duplicate();
    let sent = 0;
    const send = conn.sendCommand.bind(conn);
    conn.sendCommand = (...args: Parameters<typeof send>) => {
      sent++;
      return send(...args);
    };
    const big = new ProxyPool(conn, `${prefix}free-big:`, { maxSessionsPerProxy: 4 });
    await big.register(...Array.from({ length: 2000 }, (_, i) => `socks5h://u:p@10.1.${i >> 8}.${i & 255}:1080`));
    sent = 0;
    assert.equal(await big.freeHealthyProxies(), 2000);
    conn.disconnect();
    assert.ok(sent <= 2, `${sent} commands for one count`); // EVALSHA, and EVAL the first time on a connection
  });

  it('registration is idempotent and keeps a BAD proxy BAD', async () => {
    const pool = new ProxyPool(redis, `${prefix}reg:`, { maxSessionsPerProxy: 4 });
    const [p1] = await pool.register(proxy(1));
    await pool.reserve({ sessionId: 'r1' });
    await pool.markBad(p1!);
    await pool.register(proxy(1));
    const info = await pool.list();
    assert.equal(info.length, 1);
    assert.equal(info[0]!.status, 'BAD');
    assert.equal(info[0]!.load, 1, 're-registering never resets a counter');
    assert.ok(!(await redis.sismember(pool.keys.proxiesAvailable(), p1!)));
  });
});
