import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

/** Counts running processes whose command line matches a regular expression (pgrep -f). */
function count(pattern: string): number {
  const r = spawnSync('pgrep', ['-c', '-f', pattern], { encoding: 'utf8' });
  return Number(r.stdout.trim() || 0);
}

describe('scripts/services.sh', () => {
  it('run twice in a row leaves one Redis, one Temporal dev server and one dockerd, all answering', () => {
    for (let i = 0; i < 2; i++) {
      const out = execFileSync('bash', ['scripts/services.sh'], { encoding: 'utf8', timeout: 300_000 });
      assert.match(out, /ready/);
      if (i === 1) {
        assert.match(out, /redis already running/);
        assert.match(out, /temporal already running/);
        assert.match(out, /dockerd already running/);
      }
    }
    assert.equal(count('^redis-server 127\\.0\\.0\\.1:6379'), 1, 'one redis-server');
    assert.equal(count('temporal server start-dev'), 1, 'one temporal dev server');
    assert.equal(count('^dockerd'), 1, 'one dockerd');
    // Redis answers only with the password from data/services.env (issue 14), never without it.
    const redisUrl = process.env.REDIS_URL ?? '';
    assert.match(redisUrl, /^redis:\/\/:[0-9a-f]{48}@127\.0\.0\.1:6379$/, 'REDIS_URL carries the password');
    const cli = (args: string[], auth: string) => {
      const { REDISCLI_AUTH: _unused, ...env } = process.env;
      return execFileSync('redis-cli', ['--no-auth-warning', ...args], {
        encoding: 'utf8',
        env: auth ? { ...env, REDISCLI_AUTH: auth } : env,
      });
    };
    const password = decodeURIComponent(new URL(redisUrl).password);
    assert.match(cli(['ping'], ''), /NOAUTH/);
    assert.match(cli(['ping'], password), /PONG/);
    assert.match(cli(['config', 'get', 'appendonly'], password), /yes/);
    assert.match(execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8' }), /\d+\.\d+/);
  });
});
