/**
 * Attack: read /metrics without credentials and learn the proxies' hosts and ports from its labels. /metrics
 * needs the metrics token now (an API key is not it), and proxies are labelled by id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parsePrometheusText } from '../helpers/prom-text.js';
import { API_KEY, METRICS_TOKEN, TENANT_KEY } from '../helpers/stack.js';
import { ApiOnly } from './api-only.js';

describe('metrics exposure', () => {
  let api: ApiOnly;
  before(async () => {
    api = await new ApiOnly({
      PROXY_URLS: 'socks5h://metricsuser:MetricsProxyPw1@127.0.0.77:41999,socks5h://u2:MetricsProxyPw2@10.9.8.7:1080',
    }).start();
  });
  after(async () => api?.stop());

  it('refuses /metrics without the metrics token', async () => {
    const variants: Array<Record<string, string>> = [
      {},
      { 'x-api-key': API_KEY },
      { 'x-api-key': TENANT_KEY },
      { authorization: `Bearer ${API_KEY}` },
      { authorization: 'Bearer wrong-token-0123456789abcdef' },
      { authorization: METRICS_TOKEN },
    ];
    for (const headers of variants) {
      const r = await fetch(`${api.url}/metrics`, { headers });
      const text = await r.text();
      assert.equal(r.status, 401, `${JSON.stringify(Object.keys(headers))} → ${r.status}`);
      assert.ok(!text.includes('wa_proxy'), 'no metrics leak with the refusal');
    }
    // Encoded spellings reach the same route, with the same rule.
    assert.equal((await fetch(`${api.url}/%6detrics`)).status, 401);
  });

  it('labels proxies by id, never host:port', async () => {
    const r = await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    assert.equal(r.status, 200);
    const text = await r.text();
    const m = parsePrometheusText(text);
    assert.ok(m.types.has('wa_proxy_load'));
    assert.match(text, /wa_proxy_load\{proxy="[0-9a-f]{16}"/);
    for (const leak of ['127.0.0.77', '41999', '10.9.8.7', 'metricsuser', 'MetricsProxyPw'])
      assert.ok(!text.includes(leak), `/metrics shows ${leak}`);
    // The ids are the ones the proxy API uses.
    const proxies = await api.call('GET', '/api/v1/proxies');
    for (const p of proxies.body.proxies as Array<{ id: string }>) assert.ok(text.includes(`proxy="${p.id}"`));
  });
});
