import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { Alerts } from '../activities/alerts.js';
import { FakeTelegram } from './helpers/fake-telegram.js';

const TOKEN = '987654:alerts-test-token-secret';

describe('Telegram alerts against real Redis and a local fake Bot API', () => {
  let redis: Redis;
  let tg: FakeTelegram;
  const prefix = `alerts-test:${randomBytes(4).toString('hex')}:`;
  const logLines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void logLines.push(l) });
  const make = (opts: Partial<ConstructorParameters<typeof Alerts>[2]> = {}) =>
    new Alerts(redis, logger, {
      botToken: TOKEN,
      chatId: '777',
      apiBaseUrl: tg.url,
      keyPrefix: `${prefix}${randomBytes(3).toString('hex')}:`,
      ...opts,
    });

  before(async () => {
    redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    await redis.ping(); // fails loudly without Redis
    tg = await FakeTelegram.start();
  });
  after(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await tg.close();
  });

  it('sends sendMessage with chat id and text; the token is only in the URL path, never in logs', async () => {
    const n = tg.requests.length;
    assert.equal(await make().send('session_connected', 'session s1 connected as +1555'), 'sent');
    const req = tg.requests[n]!;
    assert.equal(req.token, TOKEN);
    assert.equal(req.body.chat_id, '777');
    assert.equal(req.body.text, 'session connected: session s1 connected as +1555');
    assert.ok(!logLines.join('\n').includes(TOKEN));
  });

  it('100 flaps of one session in a minute produce one alert (de-dupe window)', async () => {
    const alerts = make();
    const n = tg.requests.length;
    const results = [];
    for (let i = 0; i < 100; i++)
      results.push(
        await alerts.send('session_unhealthy', `session flappy: no ping (${i})`, 'session_unhealthy:flappy'),
      );
    assert.equal(tg.requests.length - n, 1);
    assert.equal(results.filter((r) => r === 'deduped').length, 99);
  });

  it('100 distinct alerts in a minute are capped by the per-minute limit', async () => {
    const alerts = make({ maxPerMinute: 10 });
    const n = tg.requests.length;
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => alerts.send('session_failed', `session s${i} failed`)),
    );
    assert.equal(tg.requests.length - n, 10);
    assert.equal(results.filter((r) => r === 'rate_limited').length, 90);
  });

  it('retries with backoff on 5xx and 429, then delivers', async () => {
    const n = tg.requests.length;
    tg.failNext(1, 500);
    tg.failNext(1, 429);
    const t0 = Date.now();
    assert.equal(await make().send('backup_done', 'backup x done'), 'sent');
    assert.equal(tg.requests.length - n, 1);
    assert.ok(Date.now() - t0 >= 250 + 500, 'backoff between attempts');
  });

  it('a failed delivery forgets its de-dupe marker, so a retried activity can send it', async () => {
    const alerts = make();
    tg.failNext(4, 500);
    await assert.rejects(alerts.send('restore_failed', 'restore y failed', 'restore_failed:y'));
    assert.equal(await alerts.send('restore_failed', 'restore y failed', 'restore_failed:y'), 'sent');
  });

  it('without a token alerts are only logged', async () => {
    const n = tg.requests.length;
    const r = await make({ botToken: undefined }).send('proxy_burned', 'proxy 1.2.3.4:1080 burned');
    assert.equal(r, 'logged');
    assert.equal(tg.requests.length, n);
    assert.ok(logLines.some((l) => l.includes('proxy 1.2.3.4:1080 burned')));
  });
});
