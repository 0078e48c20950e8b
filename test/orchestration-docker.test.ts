import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Stack, waitFor } from './helpers/stack.js';

function container(
  name: string,
): { running: boolean; labels: Record<string, string>; env: string[]; restart: string; readOnly: boolean } | null {
  try {
    const raw = execFileSync('docker', ['inspect', name], { encoding: 'utf8' });
    const [c] = JSON.parse(raw) as Array<any>;
    return {
      running: c.State.Running,
      labels: c.Config.Labels,
      env: c.Config.Env,
      restart: c.HostConfig.RestartPolicy.Name,
      readOnly: c.HostConfig.ReadonlyRootfs,
    };
  } catch {
    return null;
  }
}

describe('session lifecycle with the Docker runner (one container per session)', () => {
  let stack: Stack;
  let sessionId: string;
  const phone = '15550003001';
  before(async () => {
    stack = await new Stack({ proxies: 2, runner: 'docker', extraEnv: { DOCKER_NETWORK: 'host' } }).start();
    sessionId = `dk${stack.id}`;
  });
  after(async () => stack?.stop());

  it('provision → QR → scan → connected in container wa_session_<id>', async () => {
    const t0 = Date.now();
    const res = await stack.call('POST', '/api/sessions/provision', { sessionId, phone });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await stack.scan(sessionId, phone, 60_000);
    const tQr = Date.now();
    await stack.waitForStatus(sessionId, 'connected', 60_000);
    console.log(`docker: provision→QR ${tQr - t0} ms, →connected ${Date.now() - t0} ms`);
    const c = container(`wa_session_${sessionId}`);
    assert.ok(c?.running, 'container running');
    assert.equal(c.labels['wa.session'], sessionId);
    assert.equal(c.restart, 'unless-stopped');
    assert.equal(c.readOnly, true);
    assert.ok(!JSON.stringify(c.labels).includes('pw-'), 'labels carry no proxy password');
    assert.equal(statSync(path.join(stack.sessionsDir, sessionId)).mode & 0o777, 0o700);
  });

  it('restart → connected again without a QR, same source address', async () => {
    const qrBefore = await stack.redis.hget(`${stack.prefix}session:${sessionId}`, 'qrCount');
    const logins = stack.sim.connections(phone).length;
    assert.equal((await stack.call('POST', `/api/sessions/${sessionId}/restart`)).status, 200);
    await waitFor('a new login', () => stack.sim.connections(phone).length > logins, 60_000);
    await stack.waitForStatus(sessionId, 'connected', 60_000);
    assert.equal(await stack.redis.hget(`${stack.prefix}session:${sessionId}`, 'qrCount'), qrBefore);
    assert.equal(stack.sim.sourceAddresses(phone).length, 1);
  });

  it('proxy dies → failover: a new container on the new proxy, auth kept, one IP change', async () => {
    const s = await stack.status(sessionId);
    const old = stack.proxies.find((p) => `${p.host}:${p.port}` === s.proxy)!;
    const t0 = Date.now();
    await old.close();
    const moved = await waitFor(
      'failover',
      async () => {
        const st = await stack.status(sessionId);
        return st.status === 'connected' && st.proxy !== s.proxy ? st : null;
      },
      60_000,
      200,
    );
    console.log(`docker: failover in ${Date.now() - t0} ms`);
    assert.equal(stack.sim.sourceAddresses(phone).length, 2);
    const c = container(`wa_session_${sessionId}`);
    assert.ok(c?.running);
    assert.equal(c.labels['wa.proxy-endpoint'], moved.proxy);
  });

  it('delete removes the container and frees the slot', async () => {
    assert.equal((await stack.call('DELETE', `/api/sessions/${sessionId}`)).status, 200);
    assert.equal(container(`wa_session_${sessionId}`), null);
    assert.ok(Object.values(await stack.proxyLoads()).every((n) => n === 0));
  });
});
