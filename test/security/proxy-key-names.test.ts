/**
 * Attack surface: Redis key names are listed by anyone with `SCAN`/`KEYS` (monitoring, a shared Redis, a leaked
 * RDB listing) — before issue 14 they carried the proxy URL with its password (`proxy:status:socks5h://u:pw@...`).
 * Key names now carry the proxy id; the URL lives in the `proxies:urls` hash. Old-style keys are migrated at start,
 * idempotently, keeping status, BAD time, session sets and counters.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { proxyIdOf } from '../../common/proxy-id.js';
import { ProxyPool } from '../../state/proxy-pool.js';
import { connectTestRedis } from '../helpers/redis.js';

const url1 = 'socks5h://alice:KeyNamePw1@10.1.0.1:1080';
const url2 = 'socks5h://bob:KeyNamePw2@10.1.0.2:1080';

async function keyNames(redis: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out.sort();
}

describe('Redis key names carry a proxy id, never the proxy URL', () => {
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  before(async () => {
    ({ redis, prefix, cleanup } = await connectTestRedis());
  });
  after(async () => cleanup());

  it('register, reserve, mark BAD, release: no key name holds a URL or password', async () => {
    const p = `${prefix}fresh:`;
    const pool = new ProxyPool(redis, p, { maxSessionsPerProxy: 4 });
    await pool.register(url1, url2);
    await pool.reserve({ sessionId: 's1' });
    await pool.reserve({ sessionId: 's2', override: 'socks5h://carol:KeyNamePw3@10.1.0.3:1080' });
    await pool.markBad(url2);
    await pool.release('s1');
    const names = await keyNames(redis, p);
    assert.ok(names.includes(`${p}proxy:status:${proxyIdOf(url1)}`), names.join('\n'));
    assert.deepEqual(
      names.filter((k) => /KeyNamePw|:\/\/|10\.1\.0/.test(k)),
      [],
    );
    assert.equal(await redis.hget(`${p}proxies:urls`, proxyIdOf(url1)), url1);
    assert.equal((await pool.list()).find((x) => x.url === url2)?.status, 'BAD');
  });

  it('migrates URL-named keys at start: same state, idempotent', async () => {
    const p = `${prefix}legacy:`;
    const k = (s: string) => `${p}${s}`;
    // The layout before issue 14, as a running deployment left it.
    await redis.sadd(k('sessions:all'), 's1', 's2', 's3');
    await redis.sadd(k('proxies:all'), url1, url2);
    await redis.sadd(k('proxies:available'), url1);
    await redis.set(k(`proxy:status:${url1}`), 'OK');
    await redis.set(k(`proxy:status:${url2}`), 'BAD');
    await redis.set(k(`proxy:bad_at:${url2}`), '1700000000000');
    await redis.set(k(`counter:proxy:${url1}`), '2');
    await redis.set(k(`counter:proxy:${url2}`), '1');
    await redis.sadd(k(`proxy:sessions:${url1}`), 's1', 's2');
    await redis.sadd(k(`proxy:sessions:${url2}`), 's3');
    await redis.set(k('session:slot:s1'), url1);
    await redis.set(k('session:slot:s2'), url1);
    await redis.set(k('session:slot:s3'), url2);

    const pool = new ProxyPool(redis, p, { maxSessionsPerProxy: 4 });
    assert.equal(await pool.migrateLegacyKeys(), 7);
    const names = await keyNames(redis, p);
    assert.deepEqual(
      names.filter((n) => /KeyNamePw|:\/\//.test(n)),
      [],
      'no key name holds a URL after the migration',
    );
    const byUrl = Object.fromEntries((await pool.list()).map((x) => [x.url, x]));
    assert.deepEqual(
      { status: byUrl[url1]!.status, load: byUrl[url1]!.load, sessions: byUrl[url1]!.sessions },
      { status: 'OK', load: 2, sessions: ['s1', 's2'] },
    );
    assert.deepEqual(
      { status: byUrl[url2]!.status, badAt: byUrl[url2]!.badAt, load: byUrl[url2]!.load },
      { status: 'BAD', badAt: 1_700_000_000_000, load: 1 },
    );
    assert.deepEqual(await redis.hgetall(k('proxies:urls')), { [proxyIdOf(url1)]: url1, [proxyIdOf(url2)]: url2 });

    // Idempotent: a second start moves nothing and changes nothing.
    const snapshot = await Promise.all(names.map(async (n) => [n, await redis.dump(n)]));
    assert.equal(await pool.migrateLegacyKeys(), 0);
    assert.deepEqual(await keyNames(redis, p), names);
    assert.deepEqual(await Promise.all(names.map(async (n) => [n, await redis.dump(n)])), snapshot);

    // The migrated pool keeps working: url2 is BAD, so s4 lands on url1 (3 sessions now); releases count down.
    const r = await pool.reserve({ sessionId: 's4' });
    assert.deepEqual([r.proxyUrl, r.load], [url1, 3]);
    assert.equal(await pool.release('s1'), url1);
    assert.equal(await pool.load(url1), 2);
  });

  it('a key written in the old name after a partial migration is merged, BAD winning', async () => {
    const p = `${prefix}merge:`;
    const k = (s: string) => `${p}${s}`;
    const pool = new ProxyPool(redis, p, { maxSessionsPerProxy: 4 });
    await pool.register(url1);
    await redis.sadd(k('sessions:all'), 's1', 's2');
    await pool.reserve({ sessionId: 's1' });
    // An old process still running writes URL-named keys.
    await redis.set(k(`proxy:status:${url1}`), 'BAD');
    await redis.sadd(k(`proxy:sessions:${url1}`), 's2');
    await redis.set(k('session:slot:s2'), url1);
    assert.equal(await pool.migrateLegacyKeys(), 2);
    const info = (await pool.list())[0]!;
    assert.deepEqual([info.status, info.load, info.sessions], ['BAD', 2, ['s1', 's2']]);
  });
});
