import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProxyUrl, ProxyUrlError, redactProxyUrl } from '../common/proxy-url.js';

const SECRET = 'S3cr3tPa55';

describe('proxy URL validator', () => {
  it('accepts socks5h://user:pass@host:port and canonicalises it', () => {
    const p = parseProxyUrl(`socks5h://alice:${SECRET}@Proxy.Example.net:10001`);
    assert.equal(p.url, `socks5h://alice:${SECRET}@proxy.example.net:10001`);
    assert.equal(p.host, 'proxy.example.net');
    assert.equal(p.port, 10001);
    assert.equal(p.username, 'alice');
    assert.equal(p.password, SECRET);
    assert.equal(p.endpoint, 'proxy.example.net:10001');
    assert.equal(p.redacted, 'socks5h://alice:***@proxy.example.net:10001');
  });

  it('accepts percent-encoded credentials, IPv4 hosts and the seed example', () => {
    const p = parseProxyUrl('socks5h://user-xxxxx-ip-1.2.3.4:pa%40ss%3Aword@isp.decodo.com:10001');
    assert.equal(p.username, 'user-xxxxx-ip-1.2.3.4');
    assert.equal(p.password, 'pa@ss:word');
    assert.equal(parseProxyUrl('socks5h://u:p@127.0.0.1:1080').host, '127.0.0.1');
    assert.equal(parseProxyUrl('socks5h://u:p@[::1]:1080').host, '[::1]');
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['socks5 (local DNS leak)', `socks5://u:${SECRET}@host.example:1080`, /only socks5h:\/\/ is allowed.*leaks/],
    ['http', `http://u:${SECRET}@host.example:8080`, /unsupported proxy scheme "http:\/\/"/],
    ['https', `https://u:${SECRET}@host.example:8080`, /unsupported proxy scheme "https:\/\/"/],
    ['socks4', `socks4://u:${SECRET}@host.example:1080`, /unsupported proxy scheme "socks4:\/\/"/],
    ['no scheme', `u:${SECRET}@host.example:1080`, /must look like socks5h:\/\/user:pass@host:port/],
    ['missing port', `socks5h://u:${SECRET}@host.example`, /missing the port/],
    ['empty port', `socks5h://u:${SECRET}@host.example:`, /missing the port/],
    ['port 0', `socks5h://u:${SECRET}@host.example:0`, /port 0 is out of range/],
    ['port 65536', `socks5h://u:${SECRET}@host.example:65536`, /port 65536 is out of range/],
    ['port 99999', `socks5h://u:${SECRET}@host.example:99999`, /port 99999 is out of range/],
    ['non-numeric port', `socks5h://u:${SECRET}@host.example:http`, /port "http" is not a number/],
    ['space inside', `socks5h://u:${SECRET} @host.example:1080`, /must not contain spaces/],
    ['leading space', ` socks5h://u:${SECRET}@host.example:1080`, /must not contain spaces/],
    ['no credentials', 'socks5h://host.example:1080', /needs credentials/],
    ['empty username', `socks5h://:${SECRET}@host.example:1080`, /username is empty/],
    ['empty password', 'socks5h://user:@host.example:1080', /password is empty/],
    ['username only', 'socks5h://user@host.example:1080', /both a username and a password/],
    ['unicode homoglyph host', `socks5h://u:${SECRET}@һost.example:1080`, /plain ASCII/],
    ['unicode in password', 'socks5h://u:pässwörd@host.example:1080', /plain ASCII/],
    ['fullwidth digits in port', `socks5h://u:${SECRET}@host.example:１０８０`, /plain ASCII/],
    ['right-to-left override', `socks5h://u:${SECRET}@host\u202e.example:1080`, /plain ASCII/],
    ['control character', `socks5h://u:${SECRET}@host.example:1080\u0000`, /control characters/],
    ['very long string', `socks5h://u:${SECRET}@${'a'.repeat(5000)}.example:1080`, /too long/],
    ['very long password', `socks5h://u:${'x'.repeat(300)}@host.example:1080`, /password is too long/],
    ['path after port', `socks5h://u:${SECRET}@host.example:1080/path`, /path, query or fragment/],
    ['underscore host', `socks5h://u:${SECRET}@bad_host.example:1080`, /not a valid hostname/],
    ['bad percent-encoding', 'socks5h://u:%zz@host.example:1080', /invalid percent-encoding/],
    ['empty string', '', /empty/],
    ['not a string', 42, /must be a string/],
    ['garbage', '!!!@@@:::', /must look like socks5h/],
  ];

  for (const [label, input, message] of bad) {
    it(`rejects ${label} with a specific message that never contains the password`, () => {
      assert.throws(
        () => parseProxyUrl(input),
        (err: unknown) => {
          assert.ok(err instanceof ProxyUrlError, 'a ProxyUrlError');
          assert.match(err.message, message);
          assert.ok(!err.message.includes(SECRET), `message leaks the password: ${err.message}`);
          assert.ok(!err.message.includes('x'.repeat(50)), 'message echoes the long password');
          return true;
        },
      );
    });
  }

  it('redacts passwords in free text, valid URL or not', () => {
    assert.equal(
      redactProxyUrl(`failed via socks5h://bob:${SECRET}@h:1 and socks5://x:${SECRET}@bad host`),
      'failed via socks5h://bob:***@h:1 and socks5://x:***@bad host',
    );
  });
});
