import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../common/config.js';

const base = { API_KEY: 'a'.repeat(32), WEBHOOK_SECRET: 'w'.repeat(32), TEMPORAL_CODEC_KEYS: `k1:${'A'.repeat(43)}=` };

describe('configuration schema', () => {
  it('applies the seed defaults', () => {
    const c = loadConfig({ ...base });
    assert.equal(c.MAX_SESSIONS_PER_PROXY, 4);
    assert.equal(c.WATCHDOG_INTERVAL_MS, 60_000);
    assert.equal(c.PING_TIMEOUT_MS, 180_000);
    assert.equal(c.SESSIONS_DIR, './sessions');
    assert.equal(c.BACKUPS_DIR, './backups');
    assert.equal(c.MAX_BACKUPS, 7);
    assert.equal(c.BACKUP_CRON, '0 3 * * *');
    assert.equal(c.ENABLE_KEEP_ALIVE, true);
    assert.equal(c.REDIS_URL, 'redis://127.0.0.1:6379');
    assert.deepEqual(c.proxyPool, []);
  });

  it('collects the pool from PROXY_URL_n (numeric order) and PROXY_URLS, canonical and de-duplicated', () => {
    const c = loadConfig({
      ...base,
      PROXY_URL_10: 'socks5h://u:p@h10:1',
      PROXY_URL_2: 'socks5h://u:p@H2:1',
      PROXY_URLS: 'socks5h://u:p@h3:1, socks5h://u:p@h2:1\nsocks5h://u:p@h4:1',
    });
    assert.deepEqual(c.proxyPool, [
      'socks5h://u:p@h2:1',
      'socks5h://u:p@h10:1',
      'socks5h://u:p@h3:1',
      'socks5h://u:p@h4:1',
    ]);
  });

  it('REDIS_KEY_PREFIX may start with a Redis Cluster hash tag, and has braces nowhere else', () => {
    assert.equal(loadConfig({ ...base, REDIS_KEY_PREFIX: '{wa}:' }).REDIS_KEY_PREFIX, '{wa}:');
    assert.equal(loadConfig({ ...base, REDIS_KEY_PREFIX: '{wa-2}:prod:' }).REDIS_KEY_PREFIX, '{wa-2}:prod:');
    for (const bad of ['wa:{x}:', '{}:', '{wa:', '{a}{b}:', 'wa prefix']) {
      assert.throws(
        () => loadConfig({ ...base, REDIS_KEY_PREFIX: bad }),
        (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.variable === 'REDIS_KEY_PREFIX'),
        bad,
      );
    }
  });

  it('names every bad variable and why in one error, without leaking secrets', () => {
    try {
      loadConfig({
        API_KEY: 'short',
        MAX_SESSIONS_PER_PROXY: 'four',
        WATCHDOG_INTERVAL_MS: '-5',
        REDIS_URL: 'http://nope',
        ENABLE_KEEP_ALIVE: 'maybe',
        PROXY_URL_1: 'socks5://u:TopSecret1@h:1080',
        PROXY_URLS: 'socks5h://u:TopSecret2@h',
        TEMPORAL_CODEC_KEYS: 'k1:TopSecret3',
      });
      assert.fail('should throw');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const vars = err.problems.map((p) => p.variable);
      for (const v of [
        'API_KEY',
        'WEBHOOK_SECRET',
        'MAX_SESSIONS_PER_PROXY',
        'WATCHDOG_INTERVAL_MS',
        'REDIS_URL',
        'ENABLE_KEEP_ALIVE',
        'PROXY_URL_1',
        'PROXY_URLS[0]',
        'TEMPORAL_CODEC_KEYS',
      ]) {
        assert.ok(vars.includes(v), `${v} reported (got ${vars.join(', ')})`);
      }
      assert.match(err.message, /API_KEY: must be at least 16 characters/);
      assert.match(err.message, /WEBHOOK_SECRET: is required/);
      assert.match(err.message, /MAX_SESSIONS_PER_PROXY: must be a number/);
      assert.match(err.message, /PROXY_URL_1: unsupported proxy scheme "socks5:\/\/"/);
      assert.match(err.message, /PROXY_URLS\[0\]: proxy URL is missing the port/);
      assert.match(err.message, /TEMPORAL_CODEC_KEYS: key k1: must be 32 bytes in base64/);
      assert.ok(!/TopSecret/.test(err.message));
    }
  });

  it('MEDIA_STORE=s3 needs a bucket (its own or S3_BUCKET) and credentials set together; disk stays the default', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ ...base, ...env });
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.problems.map((p) => `${p.variable}: ${p.message}`);
      }
    };
    const d = loadConfig({ ...base });
    assert.equal(d.MEDIA_STORE, 'disk');
    assert.equal(d.MEDIA_S3_PREFIX, 'media/');
    assert.deepEqual(problems({ MEDIA_STORE: 's3' }), [
      'MEDIA_S3_BUCKET: is required with MEDIA_STORE=s3 (or S3_BUCKET)',
    ]);
    assert.deepEqual(problems({ MEDIA_STORE: 's3', S3_BUCKET: 'shared-b', S3_ACCESS_KEY_ID: 'AKIA1' }), [
      'S3_SECRET_ACCESS_KEY: S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY are set together',
    ]);
    assert.deepEqual(
      problems({ MEDIA_STORE: 'nfs', MEDIA_S3_BUCKET: 'Bad_Bucket', MEDIA_S3_PREFIX: 'x' }).map((p) => p.split(':')[0]),
      ['MEDIA_STORE', 'MEDIA_S3_BUCKET', 'MEDIA_S3_PREFIX'],
    );
    // with BACKUP_STORE=s3 too, the credentials problem is named once
    assert.equal(
      problems({ MEDIA_STORE: 's3', BACKUP_STORE: 's3', S3_BUCKET: 'shared-b', S3_ACCESS_KEY_ID: 'AKIA1' }).length,
      1,
    );
    assert.equal(loadConfig({ ...base, MEDIA_STORE: 's3', MEDIA_S3_BUCKET: 'wa-media' }).MEDIA_S3_BUCKET, 'wa-media');
  });

  it('BACKUP_STORE=s3 needs a bucket, credentials set together and a valid endpoint; local stays the default', () => {
    assert.equal(loadConfig({ ...base }).BACKUP_STORE, 'local');
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ ...base, ...env });
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.problems.map((p) => `${p.variable}: ${p.message}`);
      }
    };
    assert.deepEqual(problems({ BACKUP_STORE: 's3' }), ['S3_BUCKET: is required with BACKUP_STORE=s3']);
    assert.deepEqual(problems({ BACKUP_STORE: 's3', S3_BUCKET: 'b1-ok', S3_ACCESS_KEY_ID: 'AKIA1' }), [
      'S3_SECRET_ACCESS_KEY: S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY are set together',
    ]);
    const bad = problems({
      BACKUP_STORE: 'nfs',
      S3_BUCKET: 'Bad_Bucket',
      S3_ENDPOINT: 'ftp://x',
      S3_PREFIX: 'no-slash',
      S3_SECRET_ACCESS_KEY: 'secret-value-1234',
    });
    assert.deepEqual(
      bad.map((p) => p.split(':')[0]),
      ['BACKUP_STORE', 'S3_BUCKET', 'S3_PREFIX', 'S3_ENDPOINT'],
    );
    assert.ok(!bad.join('\n').includes('secret-value-1234'));
    const c = loadConfig({
      ...base,
      BACKUP_STORE: 's3',
      S3_BUCKET: 'wa-backups',
      S3_ENDPOINT: 'http://127.0.0.1:8333',
      S3_ACCESS_KEY_ID: 'AKIA1',
      S3_SECRET_ACCESS_KEY: 'secret-value-1234',
    });
    assert.equal(c.S3_PREFIX, 'backups/');
    assert.equal(c.S3_REGION, 'us-east-1');
  });

  it('AUTH_STORE=postgres needs the database URL and a secret of 32+ chars; file stays the default', () => {
    assert.equal(loadConfig({ ...base }).AUTH_STORE, 'file');
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ ...base, ...env });
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.problems.map((p) => `${p.variable}: ${p.message}`);
      }
    };
    assert.deepEqual(problems({ AUTH_STORE: 'postgres' }), [
      'AUTH_DATABASE_URL: is required with AUTH_STORE=postgres',
      'AUTH_STORE_SECRET: is required with AUTH_STORE=postgres (at least 32 characters, e.g. `openssl rand -hex 32`)',
    ]);
    const bad = problems({
      AUTH_STORE: 'mysql',
      AUTH_DATABASE_URL: 'mysql://u:pw-9876@h/db',
      AUTH_STORE_SECRET: 'short-secret-value',
    });
    assert.deepEqual(
      bad.map((p) => p.split(':')[0]),
      ['AUTH_STORE', 'AUTH_DATABASE_URL', 'AUTH_STORE_SECRET'],
    );
    assert.ok(!bad.join('\n').includes('short-secret-value') && !bad.join('\n').includes('pw-9876'));
    const c = loadConfig({
      ...base,
      AUTH_STORE: 'postgres',
      AUTH_DATABASE_URL: 'postgres://wa_auth:pw@127.0.0.1:55432/wa_auth',
      AUTH_STORE_SECRET: 's'.repeat(32),
    });
    assert.equal(c.AUTH_STORE, 'postgres');
    assert.equal(c.AUTH_WRITE_BATCH_MS, 5);
  });

  it('a process entry point stops with exit code 2 and the message on stderr', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '-e', "import('./common/config.ts').then((m) => m.loadConfigOrExit({ API_KEY: 'x' }))"],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 2);
    assert.match(r.stderr, /Invalid configuration:\n {2}- API_KEY: must be at least 16 characters/);
  });
});
