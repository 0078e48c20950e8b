import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/stack.js';

describe('docker-compose.yml (production on one host)', () => {
  it('validates with docker-compose config, with every service, health checks and the whatsapp-network', () => {
    const envFile = path.join(ROOT, '.env');
    const created = !existsSync(envFile);
    if (created) {
      writeFileSync(
        envFile,
        readFileSync(path.join(ROOT, '.env.example'), 'utf8')
          .replace(/^POSTGRES_PASSWORD=$/m, 'POSTGRES_PASSWORD=compose-test')
          .replace(/^REDIS_PASSWORD=$/m, 'REDIS_PASSWORD=compose-redis-pw'),
      );
    }
    try {
      const out = execFileSync('docker-compose', ['--profile', 'build', 'config'], { cwd: ROOT, encoding: 'utf8' });
      for (const service of ['redis', 'postgres', 'temporal', 'temporal-ui', 'api', 'orchestrator', 'worker-image']) {
        assert.match(out, new RegExp(`^  ${service}:$`, 'm'), `service ${service}`);
      }
      assert.match(out, /name: whatsapp-network/);
      assert.match(out, /appendonly/);
      // Redis with a password; workers on their own network, which only the API joins.
      assert.match(out, /requirepass/);
      assert.match(out, /REDIS_URL: redis:\/\/:[^@\s]+@redis:6379/);
      assert.match(out, /name: wa-workers/);
      assert.match(out, /DOCKER_NETWORK: wa-workers/);
      assert.match(out, /\/var\/run\/docker\.sock:\/var\/run\/docker\.sock/);
      assert.equal((out.match(/healthcheck:/g) ?? []).length >= 5, true, 'health checks');
    } finally {
      if (created) rmSync(envFile);
    }
  });
});
