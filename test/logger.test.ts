import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/stack.js';

describe('structured logs (pino) redact secrets', () => {
  it('proxy passwords, API keys, webhook secrets and bot tokens never reach a log line', () => {
    const password = 'Pr0xyPassw0rd-7f3a';
    const proxyUrl = `socks5h://alice:${password}@10.0.0.7:1080`;
    const apiKey = 'api-key-e3b0c44298fc1c149afbf4c8';
    const webhookSecret = 'whsec-9a8b7c6d5e4f3a2b1c0d';
    const botToken = 'bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'test/helpers/logger-child.ts'), proxyUrl, apiKey, webhookSecret, botToken],
      { cwd: ROOT, encoding: 'utf8' },
    );
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 11, out);
    for (const line of lines) {
      const entry = JSON.parse(line) as Record<string, unknown>; // structured: one JSON object per line
      assert.equal(entry.name, 'redaction-test');
      assert.equal(typeof entry.level, 'number');
      assert.equal(typeof entry.time, 'number');
      assert.equal(typeof entry.msg, 'string');
      for (const secret of [password, apiKey, webhookSecret, botToken, 'pw-plain-secret-1', 'pw-plain-secret-2'])
        assert.ok(!line.includes(secret), `secret ${secret.slice(0, 6)}… leaked in: ${line}`);
    }
    // Redacted, not dropped: the operator still sees which proxy and that a value was there.
    assert.match(lines[0]!, /socks5h:\/\/alice:\*\*\*@10\.0\.0\.7:1080/);
    assert.match(lines[4]!, /"apiKey":"\*\*\*"/);
    assert.match(lines[10]!, /"endpoint":"127\.0\.0\.1:1080"/);
    assert.match(lines[10]!, /"sessionId":"alpha"/);
  });
});
