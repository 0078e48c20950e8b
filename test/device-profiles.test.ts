/**
 * Device profiles (issue 15 item 5) on the real stack: each session presents one device/browser identity from the
 * inventory, for life (restart, manual failover, worker moves), never shared with another session on its proxy;
 * the admin inventory API; the low-inventory alert.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import { redisKeys } from '../common/redis-keys.js';
import { DeviceProfileStore } from '../state/device-profiles.js';
import { FakeTelegram } from './helpers/fake-telegram.js';
import { connectTestRedis } from './helpers/redis.js';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { Stack, TENANT_KEY, waitFor } from './helpers/stack.js';

const SESSIONS = Array.from({ length: 9 }, (_, i) => ({
  id: `dp_${i}`,
  phone: `4915500070${String(i).padStart(2, '0')}`,
}));

describe('device profiles on the real stack', { concurrency: 1 }, () => {
  let stack: Stack;
  let tg: FakeTelegram;
  const backupsDir = mkdtempSync(path.join(os.tmpdir(), 'wa-dp-backups-'));

  before(async () => {
    tg = await FakeTelegram.start();
    stack = await new Stack({
      proxies: 3,
      maxSessionsPerProxy: 3,
      extraEnv: {
        TELEGRAM_BOT_TOKEN: '123456:test-bot-token-secret',
        TELEGRAM_CHAT_ID: '4242',
        TELEGRAM_API_BASE_URL: tg.url,
        // 34 seeded profiles: the alert fires once fewer than 30 are unused (after the 5th session).
        LOW_DEVICE_PROFILE_THRESHOLD: '30',
        LOW_PROXY_INVENTORY_THRESHOLD: '0',
        BACKUPS_DIR: backupsDir,
        RESTORE_CONNECT_TIMEOUT_MS: '60000',
      },
    }).start();
  });
  after(async () => {
    if (stack)
      await terminateDispatchers(
        stack,
        SESSIONS.map((s) => s.id),
      );
    await stack?.temporal.schedule
      .getHandle(`${stack.env.WORKFLOW_ID_PREFIX}-backups`)
      .delete()
      .catch(() => undefined);
    await stack?.stop();
    await tg?.close();
    rmSync(backupsDir, { recursive: true, force: true });
  });

  /** WA_BROWSER of the session's running worker (what Baileys presents), from the process runner's record. */
  const workerBrowser = (sessionId: string) =>
    (
      JSON.parse(readFileSync(path.join(stack.runDir(), `${sessionId}.json`), 'utf8')) as {
        env: Record<string, string>;
      }
    ).env.WA_BROWSER;

  test('9 sessions on 3 proxies present 9 distinct profiles; the simulator sees each at registration', async () => {
    for (const s of SESSIONS) await connectedSession(stack, s.id, s.phone);
    const views = await Promise.all(SESSIONS.map((s) => stack.status(s.id)));
    const ids = views.map((v) => v.deviceProfile as string);
    assert.ok(ids.every(Boolean), JSON.stringify(ids));
    assert.equal(new Set(ids).size, 9, `9 distinct profiles: ${ids.join(', ')}`);
    const byProxy = new Map<string, string[]>();
    for (const v of views) byProxy.set(v.proxy, [...(byProxy.get(v.proxy) ?? []), v.deviceProfile]);
    assert.equal(byProxy.size, 3, 'spread over the 3 proxies');
    for (const [proxy, list] of byProxy) assert.equal(new Set(list).size, list.length, `no profile twice on ${proxy}`);

    const list = (await stack.call('GET', '/api/v1/device-profiles')).body;
    assert.equal(list.profiles.length, 34, 'the default inventory was seeded');
    for (const [i, s] of SESSIONS.entries()) {
      const profile = list.profiles.find((p: { id: string }) => p.id === ids[i]);
      assert.deepEqual(profile.sessions, [s.id]);
      assert.equal(workerBrowser(s.id), `${profile.os}|${profile.browser}|${profile.osVersion}`);
      const registration = stack.sim.connections(s.phone).find((c) => c.kind === 'registration');
      assert.equal(registration?.presented?.os, profile.os, `${s.id}: the os the client registered with`);
      assert.equal(registration?.presented?.browser, profile.browser.toUpperCase(), `${s.id}: its browser`);
    }
    await waitFor('the low device-profile alert', () => tg.texts().some((t) => /device profiles left unused/.test(t)));
  });

  test('a session keeps its profile across restart and failover', async () => {
    const s = SESSIONS[0]!;
    const before = await stack.status(s.id);
    const browser = workerBrowser(s.id);
    const logins = () => stack.sim.connections(s.phone).filter((c) => c.kind === 'login').length;

    const n0 = logins();
    assert.equal((await stack.call('POST', `/api/sessions/${s.id}/restart`)).status, 200);
    await waitFor('a new login after the restart', () => logins() > n0, 40_000);
    await stack.waitForStatus(s.id, 'connected', 40_000);
    assert.equal((await stack.status(s.id)).deviceProfile, before.deviceProfile);
    assert.equal(workerBrowser(s.id), browser, 'the restarted worker presents the same profile');

    // Room on another proxy for the failover: delete one session there.
    const other = (await Promise.all(SESSIONS.slice(1).map((x) => stack.status(x.id)))).find(
      (v) => v.proxy !== before.proxy,
    );
    assert.equal((await stack.call('DELETE', `/api/sessions/${other.sessionId}`)).status, 200);
    const n1 = logins();
    const moved = await stack.call('POST', `/api/sessions/${s.id}/failover`, { reason: 'test' });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    await waitFor('a login after the failover', () => logins() > n1, 40_000);
    const after = await stack.waitForStatus(s.id, 'connected', 40_000);
    assert.notEqual(after.proxy, before.proxy, 'moved to another proxy');
    assert.equal(after.deviceProfile, before.deviceProfile, 'same profile after the failover');
    assert.equal(workerBrowser(s.id), browser, 'the moved worker presents the same profile');
    // Every login of this phone presented the same client identity.
    const presented = stack.sim
      .connections(s.phone)
      .filter((c) => c.kind === 'login')
      .map((c) => c.presented?.platform);
    assert.ok(presented.length >= 3 && presented.every((p) => p === 'WEB'), JSON.stringify(presented));
    // The deleted session's profile is free again.
    const list = (await stack.call('GET', '/api/v1/device-profiles')).body;
    assert.deepEqual(list.profiles.find((p: { id: string }) => p.id === other.deviceProfile).sessions, []);
  });

  test('every session keeps its profile across a backup restore (workers restarted from the restored folders)', async () => {
    const live = (await Promise.all(SESSIONS.map((s) => stack.status(s.id)))).filter((v) => v.status === 'connected');
    const before = Object.fromEntries(live.map((v) => [v.sessionId, [v.deviceProfile, workerBrowser(v.sessionId)]]));
    const logins = Object.fromEntries(
      live.map((v) => [v.sessionId, stack.sim.connections(v.phone).filter((c) => c.kind === 'login').length]),
    );
    const backup = await stack.call('POST', '/api/v1/backups/create', {});
    assert.equal(backup.status, 201, JSON.stringify(backup.body));
    const restored = await stack.restore(backup.body.backup.id, {});
    assert.equal(restored.status, 200, JSON.stringify(restored.body));
    assert.equal(restored.body.restore.ok, true);
    for (const v of live) {
      await stack.waitForStatus(v.sessionId, 'connected', 60_000);
      const n = stack.sim.connections(v.phone).filter((c) => c.kind === 'login').length;
      assert.ok(n > logins[v.sessionId]!, `${v.sessionId} logged in again after the restore`);
      const after = [(await stack.status(v.sessionId)).deviceProfile, workerBrowser(v.sessionId)];
      assert.deepEqual(after, before[v.sessionId], `${v.sessionId}: same profile after the restore`);
    }
  });

  test('delete with keepAuth keeps the profile: the re-provisioned session presents it again', async () => {
    const live = (await Promise.all(SESSIONS.map((x) => stack.status(x.id)))).filter((v) => v.status === 'connected');
    const v = live.at(-1)!;
    const browser = workerBrowser(v.sessionId);
    assert.equal((await stack.call('DELETE', `/api/sessions/${v.sessionId}?keepAuth=true`)).status, 200);
    const again = await stack.call('POST', '/api/sessions/provision', { sessionId: v.sessionId, phone: v.phone });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    const back = await stack.waitForStatus(v.sessionId, 'connected', 40_000);
    assert.equal(back.deviceProfile, v.deviceProfile);
    assert.equal(workerBrowser(v.sessionId), browser);
  });

  test('the admin inventory API: add, retire, refuse retiring a profile in use; bad input and tenants refused', async () => {
    const inUse = (await stack.status(SESSIONS[0]!.id)).deviceProfile;
    const refused = await stack.call('DELETE', `/api/v1/device-profiles/${inUse}`);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'PROFILE_IN_USE');
    const list = (await stack.call('GET', '/api/v1/device-profiles')).body;
    const free = list.profiles.find(
      (p: { sessions: string[]; retired: boolean }) => p.sessions.length === 0 && !p.retired,
    );
    const retired = await stack.call('DELETE', `/api/v1/device-profiles/${free.id}`);
    assert.equal(retired.status, 200, JSON.stringify(retired.body));
    const after = (await stack.call('GET', '/api/v1/device-profiles')).body;
    assert.equal(after.profiles.find((p: { id: string }) => p.id === free.id).retired, true);
    assert.equal(after.free, list.free - 1);
    assert.equal((await stack.call('DELETE', '/api/v1/device-profiles/no-such-profile')).status, 404);

    const added = await stack.call('POST', '/api/v1/device-profiles', {
      os: 'Windows',
      browser: 'Chrome',
      osVersion: '10.0.99999',
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal(added.body.id, 'windows-chrome-10-0-99999');
    const dup = await stack.call('POST', '/api/v1/device-profiles', {
      os: 'Windows',
      browser: 'Chrome',
      osVersion: '10.0.99999',
    });
    assert.equal(dup.status, 409);
    const bad = await stack.call('POST', '/api/v1/device-profiles', {
      os: 'Win<script>',
      browser: 'Chrome',
      osVersion: '1',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, 'os');
    const missing = await stack.call('POST', '/api/v1/device-profiles', { os: 'Windows', browser: 'Chrome' });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.field, 'osVersion');
    assert.equal((await stack.call('GET', '/api/v1/device-profiles', undefined, TENANT_KEY)).status, 403);
  });
});

describe('device-profile assignment (state/device-profile-assign.lua, real Redis)', () => {
  let redis: Redis;
  let prefix: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ redis, prefix, cleanup } = await connectTestRedis()));
  after(async () => cleanup?.());

  test('never twice on one proxy, least used first, idempotent, atomic under 20 parallel provisions', async () => {
    const keys = redisKeys(prefix);
    const store = new DeviceProfileStore(redis, prefix);
    const P1 = 'socks5h://u:p@127.0.0.1:1081';
    const P2 = 'socks5h://u:p@127.0.0.1:1082';
    const onProxy = (sid: string, proxy: string) => redis.sadd(keys.proxySessions(proxy), sid);
    const x = await store.add({ os: 'Windows', browser: 'Chrome', osVersion: '1' });
    const y = await store.add({ os: 'Mac OS', browser: 'Safari', osVersion: '2' });
    assert.ok(x && y);
    const free = await store.free();
    await onProxy('a', P1);
    assert.equal((await store.assign('a', P1))?.id, x.id);
    assert.equal(await store.free(), free - 1, 'x in use');
    await onProxy('b', P2);
    assert.equal((await store.assign('b', P2))?.id, y.id, 'the least used');
    assert.equal(await store.free(), free - 2, 'y in use');
    assert.equal((await store.assign('a', P1))?.id, x.id, 'a session keeps its profile');
    await onProxy('c', P1);
    assert.equal((await store.assign('c', P1))?.id, y.id, 'x is taken on P1: y, though used as often');
    await onProxy('d', P1);
    assert.equal(await store.assign('d', P1), null, 'every profile is taken on P1');
    assert.equal(await store.retire(x.id), 'in_use');
    await store.release('a');
    assert.equal((await store.assign('d', P1))?.id, x.id, 'released by a: free again');
    await store.release('d');
    assert.equal(await store.free(), free - 1, 'x unused again');
    assert.equal(await store.retire(x.id), 'retired');
    assert.equal(await store.free(), free - 2, 'a retired profile is not free');
    await onProxy('e', P2);
    assert.equal(await store.assign('e', P2), null, 'y is taken on P2 and x is retired');

    // 20 parallel provisions on one proxy with 20 profiles: 20 distinct, nothing double-booked.
    const P3 = 'socks5h://u:p@127.0.0.1:1083';
    for (let i = 0; i < 20; i++) await store.add({ os: 'Ubuntu', browser: 'Firefox', osVersion: `p${i}` });
    const ids = Array.from({ length: 20 }, (_, i) => `par${i}`);
    for (const id of ids) await onProxy(id, P3);
    const got = await Promise.all(ids.map((id) => store.assign(id, P3)));
    assert.ok(got.every(Boolean));
    assert.equal(new Set(got.map((p) => p!.id)).size, 20);
  });
});
