import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { AUTH_SECRET, authDatabaseUrl } from './helpers/auth-db.js';
import { terminateDispatchers } from './helpers/messaging.js';
import { Stack, TENANT_KEY, waitFor } from './helpers/stack.js';
import { processAlive } from './helpers/processes.js';

const HEARTBEAT_MS = 1000;
const DEAD_AFTER_MS = 5000;

/**
 * Losing a whole host: two orchestrators act as two Docker hosts on this machine, each with its own sessions
 * folder, the auth state in PostgreSQL. A dead host's sessions move to the live host without a QR, on their
 * sticky proxies, with the messages queued meanwhile sent once; a drain moves them back one by one. The simulator
 * records when each connection logged in and closed: two logins of one phone must never overlap.
 */
describe('host failover and drain (AUTH_STORE=postgres, two hosts)', () => {
  let stack: Stack;
  let hostB: ChildProcess;
  const hostBSessions = mkdtempSync(path.join(os.tmpdir(), 'wa-hf-b-'));
  const phones = ['15550007101', '15550007102', '15550007103', '15550007104', '15550007105', '15550007106'];
  const contact = (i: number) => `1555000720${i}`;
  let ids: string[] = [];
  const hostBEnv = () => ({ SESSIONS_DIR: hostBSessions });

  before(async () => {
    const url = authDatabaseUrl();
    stack = await new Stack({
      proxies: 2,
      // As in production (180 s against 60 s): a dead host is noticed before its sessions' missing pings are.
      pingTimeoutMs: 4 * DEAD_AFTER_MS,
      extraEnv: {
        AUTH_STORE: 'postgres',
        AUTH_DATABASE_URL: url,
        AUTH_STORE_SECRET: AUTH_SECRET,
        HOST_HEARTBEAT_MS: String(HEARTBEAT_MS),
        HOST_DEAD_AFTER_MS: String(DEAD_AFTER_MS),
        ANTIBAN_COLD_GAP_MS: '50',
        ANTIBAN_WARM_GAP_MS: '50',
        ANTIBAN_HOT_GAP_MS: '50',
        ANTIBAN_IDLE_POLL_MS: '200',
        ANTIBAN_COLD_DAILY: '500',
        RATE_LIMIT_MAX_REQUESTS: '1000',
      },
    }).start();
    hostB = await stack.startHost('host-b', hostBEnv());
    ids = phones.map((_, i) => `hf${i}-${stack.id}`);
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, ids);
    await stack?.stop();
    rmSync(hostBSessions, { recursive: true, force: true });
    rmSync(`${hostBSessions}.lost`, { recursive: true, force: true });
  });

  const hostOf = async (id: string) => (await stack.status(id)).host as string;
  const registrations = (phone: string) => stack.sim.connections(phone).filter((c) => c.kind === 'registration').length;
  /** Logins of a phone whose connection was still open when the next one logged in (a second copy running). */
  const overlaps = (since: number) =>
    phones.flatMap((phone) => {
      const logins = stack.sim
        .connections(phone)
        .filter((c) => c.kind === 'login' && (c.closedAt ?? Infinity) >= since)
        .sort((a, b) => a.at - b.at);
      return logins.slice(1).flatMap((c, i) => ((logins[i]!.closedAt ?? Infinity) > c.at ? [`${phone}@${c.at}`] : []));
    });
  const received = (i: number, text: string) =>
    stack.sim.messages(phones[i]!).filter((m) => m.to.startsWith(contact(i)) && m.text === text).length;
  const send = async (i: number, text: string) => {
    const r = await stack.call('POST', '/api/send', { sessionId: ids[i], to: contact(i), text });
    assert.equal(r.status, 202, JSON.stringify(r.body));
  };
  const runningWorkers = (host: string) => {
    const dir = stack.runDir(host);
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((n) => n.endsWith('.json'))
      .map((n) => ({ id: n.slice(0, -5), ...(JSON.parse(readFileSync(path.join(dir, n), 'utf8')) as { pid: number }) }))
      .filter((w) => w.pid > 0 && processAlive(w.pid))
      .map((w) => w.id);
  };

  it("a dead host's sessions connect on the live host: no QR, same proxy, queued messages sent once", async () => {
    for (const [i, phone] of phones.entries()) {
      const r = await stack.call('POST', '/api/sessions/provision', { sessionId: ids[i], phone });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await stack.scan(ids[i]!, phone, 60_000);
      await stack.waitForStatus(ids[i]!, 'connected', 60_000);
      await stack.sim.sendInbound(phone, contact(i), 'hello'); // a chat: replies are not cold sends
    }
    const placed = await Promise.all(ids.map(hostOf));
    const onB = ids.filter((_, i) => placed[i] === 'host-b');
    assert.equal(onB.length, 3, `placements: ${placed.join(', ')}`);
    const sources = Object.fromEntries(phones.map((p) => [p, stack.sim.sourceAddresses(p)]));
    const regs = Object.fromEntries(phones.map((p) => [p, registrations(p)]));

    // Host B dies: its orchestrator and every worker killed, its disk gone.
    const killedAt = Date.now();
    const exited = new Promise((r) => hostB.once('exit', r));
    hostB.kill('SIGKILL');
    await exited;
    const dir = stack.runDir('host-b');
    for (const n of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
      const { pid } = JSON.parse(readFileSync(path.join(dir, n), 'utf8')) as { pid: number };
      if (pid > 0 && processAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    renameSync(hostBSessions, `${hostBSessions}.lost`);
    // Messages queued while the host is dead.
    for (const [i, id] of ids.entries()) if (onB.includes(id)) await send(i, `queued ${i}`);

    await waitFor(
      "every session of host-b connected on 'local'",
      async () => {
        for (const id of onB) {
          const s = await stack.status(id);
          if (s.host !== 'local' || s.status !== 'connected') return false;
        }
        return true;
      },
      DEAD_AFTER_MS + 30_000,
      150,
    );
    const tookMs = Date.now() - killedAt;
    process.stdout.write(`# host failover: ${onB.length} sessions moved in ${tookMs} ms\n`);
    assert.ok(tookMs <= DEAD_AFTER_MS + 30_000);
    for (const [i, id] of ids.entries()) {
      if (!onB.includes(id)) continue;
      await waitFor(`queued ${i} at the simulator`, () => received(i, `queued ${i}`) >= 1, 30_000);
    }
    for (const [i, phone] of phones.entries()) {
      assert.equal(registrations(phone), regs[phone], `${ids[i]}: no new registration (no QR)`);
      assert.deepEqual(stack.sim.sourceAddresses(phone), sources[phone], `${ids[i]}: same proxy address`);
    }
    assert.deepEqual(runningWorkers('local').sort(), [...ids].sort(), "every worker runs on 'local'");
    const hosts = await stack.call('GET', '/api/v1/hosts');
    assert.equal(hosts.status, 200);
    const b = (hosts.body.hosts as Array<{ hostId: string; alive: boolean; load: number }>).find(
      (h) => h.hostId === 'host-b',
    );
    assert.deepEqual({ alive: b?.alive, load: b?.load }, { alive: false, load: 0 });

    // Host B comes back (its disk too): it runs none of the moved sessions.
    renameSync(`${hostBSessions}.lost`, hostBSessions);
    hostB = await stack.startHost('host-b', hostBEnv());
    await waitFor('host-b alive again', async () => {
      const r = await stack.call('GET', '/api/v1/hosts');
      return (r.body.hosts as Array<{ hostId: string; alive: boolean }>).some((h) => h.hostId === 'host-b' && h.alive);
    });
    assert.deepEqual(runningWorkers('host-b'), [], 'no worker on the returned host');
    for (const [i, id] of ids.entries()) {
      if (!onB.includes(id)) continue;
      const s = await stack.status(id);
      assert.deepEqual({ host: s.host, status: s.status }, { host: 'local', status: 'connected' });
      assert.equal(received(i, `queued ${i}`), 1, `queued ${i} sent exactly once`);
    }
    assert.deepEqual(overlaps(0), [], 'never two connections of one phone');
  });

  it('a drain moves every session off a host one by one, with messages flowing: none lost or doubled', async () => {
    const noB = await stack.call('POST', '/api/v1/hosts/nope/drain');
    assert.equal(noB.status, 404, JSON.stringify(noB.body));
    const never = await stack.call('GET', '/api/v1/hosts/local/drain');
    assert.deepEqual(never.body, { hostId: 'local', draining: false, drain: null });
    const bad = await stack.call('POST', '/api/v1/hosts/no%20pe/drain');
    assert.equal(bad.status, 400, JSON.stringify(bad.body));

    let sending = true;
    const texts: Array<[number, string]> = [];
    const flow = (async () => {
      for (let n = 0; sending; n++) {
        const i = n % ids.length;
        const text = `flow ${n}`;
        await send(i, text);
        texts.push([i, text]);
        await new Promise((r) => setTimeout(r, 150)); // a steady trickle of sends, not a condition being waited on
      }
    })();
    let flowError: unknown = null;
    flow.catch((err: unknown) => {
      flowError = err;
      sending = false;
    });

    const drainStarted = Date.now();
    const r = await stack.call('POST', '/api/v1/hosts/local/drain');
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal(r.body.drain.sessions, ids.length);
    const done = await waitFor(
      'the drain of local',
      async () => {
        if (flowError) throw flowError;
        const p = await stack.call('GET', '/api/v1/hosts/local/drain');
        return p.status === 200 && p.body.drain?.done ? p.body : null;
      },
      180_000,
      250,
    );
    sending = false;
    await flow;
    assert.equal(flowError, null);
    assert.equal(done.drain.moved.length, ids.length, JSON.stringify(done));
    assert.deepEqual(done.drain.stayed, []);
    assert.equal(done.draining, true);
    for (const id of ids) assert.equal((await stack.waitForStatus(id, 'connected', 60_000)).host, 'host-b');
    assert.deepEqual(runningWorkers('local'), [], 'no worker left on the drained host');
    assert.deepEqual(runningWorkers('host-b').sort(), [...ids].sort());

    // A drained host takes no new session until its drain ends.
    const hosts = (await stack.call('GET', '/api/v1/hosts')).body.hosts as Array<{ hostId: string; draining: boolean }>;
    assert.equal(hosts.find((h) => h.hostId === 'local')?.draining, true);
    const ended = await stack.call('DELETE', '/api/v1/hosts/local/drain');
    assert.deepEqual(ended.body, { hostId: 'local', draining: false });

    process.stdout.write(`# drain: ${ids.length} sessions moved one by one, ${texts.length} messages sent meanwhile\n`);
    assert.ok(texts.length >= 10, `${texts.length} messages sent during the drain`);
    for (const [i, text] of texts) await waitFor(`${text} at the simulator`, () => received(i, text) >= 1, 60_000);
    for (const [i, text] of texts) assert.equal(received(i, text), 1, `${text} sent exactly once`);
    assert.deepEqual(overlaps(drainStarted), [], 'each old connection closed before its new login');
  });

  it('tenants never see hosts', async () => {
    for (const [method, url] of [
      ['GET', '/api/v1/hosts'],
      ['POST', '/api/v1/hosts/local/drain'],
      ['GET', '/api/v1/hosts/local/drain'],
      ['DELETE', '/api/v1/hosts/local/drain'],
    ] as const) {
      const r = await stack.call(method, url, undefined, TENANT_KEY);
      assert.equal(r.status, 403, `${method} ${url}: ${JSON.stringify(r.body)}`);
    }
  });
});
