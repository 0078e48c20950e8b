/**
 * Issue 12 item 8: the simulator behaves like WhatsApp, not like what Baileys happens to accept, so other clients
 * can use it. A real, unmodified Baileys 7 client against the simulator, observing the decoded stanzas it receives
 * and what it does with them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  getBinaryNodeChild,
  getBinaryNodeChildren,
  proto,
  S_WHATSAPP_NET,
  type BinaryNode,
  type WAMessage,
} from '@whiskeysockets/baileys';
import { WhatsAppSimulator } from '../simulator/index.js';
import { makeAuthDir, TestClient } from './helpers/baileys-client.js';

const PHONE = '15550000411';
const CONTACT = '15559990411';

/** Polls `fn` until it returns true or `ms` pass; resolves to whether it did. */
async function eventually(fn: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return fn();
}

const historyNotification = (m: WAMessage) => m.message?.protocolMessage?.historySyncNotification;

describe('the simulator speaks like WhatsApp', () => {
  let sim: WhatsAppSimulator;
  let authDir: Awaited<ReturnType<typeof makeAuthDir>>;
  const extraDirs: Array<Awaited<ReturnType<typeof makeAuthDir>>> = [];
  const clients: TestClient[] = [];
  let frames: BinaryNode[] = [];
  let client: TestClient;

  /** A client whose every decoded incoming stanza lands in `frames`. */
  const connect = async (): Promise<TestClient> => {
    const c = await TestClient.connect({ url: sim.url, authDir: authDir.dir });
    clients.push(c);
    // Baileys emits the handshake's raw frames too; keep the stanzas
    c.sock.ws.on('frame', (node: BinaryNode | Uint8Array) => {
      if (!(node instanceof Uint8Array)) frames.push(node);
    });
    return c;
  };

  before(async () => {
    sim = await WhatsAppSimulator.start();
    authDir = await makeAuthDir();
    const registering = await connect();
    await sim.scan(await registering.waitForQr(), PHONE);
    await registering.waitForClose();
    registering.end();
    frames = [];
    client = await connect();
    await client.waitForOpen();
  });
  after(async () => {
    for (const c of clients) c.end();
    await sim.close();
    await authDir.remove();
    for (const dir of extraDirs) await dir.remove();
  });

  test('server addresses travel as JIDs (JID_PAIR, empty user), never as the plain string token', async () => {
    // the login's iq results, the offline marker and the app-state key share have all arrived by now
    const fromServer = frames.filter((f) => f.attrs?.from === S_WHATSAPP_NET);
    assert.ok(
      fromServer.some((f) => f.tag === 'iq' && f.attrs.type === 'result'),
      `iq results from ${S_WHATSAPP_NET}: ${JSON.stringify(frames.map((f) => [f.tag, f.attrs?.from]))}`,
    );
    const plain = frames.filter((f) => Object.values(f.attrs ?? {}).includes('s.whatsapp.net'));
    assert.deepEqual(
      plain.map((f) => [f.tag, f.attrs]),
      [],
      'no attribute carries the bare server token',
    );
  });

  test('app-state sync answers each requested collection with a well-formed (empty) collection', async () => {
    const names = ['critical_block', 'regular_high'];
    const result = await client.sock.query({
      tag: 'iq',
      attrs: { to: S_WHATSAPP_NET, xmlns: 'w:sync:app:state', type: 'set' },
      content: [
        {
          tag: 'sync',
          attrs: {},
          content: names.map((name) => ({
            tag: 'collection',
            attrs: { name, version: '0', return_snapshot: 'false' },
          })),
        },
      ],
    });
    const sync = getBinaryNodeChild(result, 'sync');
    assert.ok(sync, `a <sync> child: ${JSON.stringify(result)}`);
    const collections = getBinaryNodeChildren(sync, 'collection');
    assert.deepEqual(
      collections.map((c) => [c.tag, c.attrs.name, c.attrs.version]),
      names.map((name) => ['collection', name, '0']),
    );
    // Baileys' own sync of every collection finishes (on an answer without <sync> it re-asks forever)
    let queries = 0;
    const count = (f: BinaryNode) => {
      // app-state answers only: other queries of the client (pings, pre-keys) may be answered meanwhile
      if (f.tag === 'iq' && f.attrs.type === 'result' && getBinaryNodeChild(f, 'sync')) queries++;
    };
    client.sock.ws.on('frame', count);
    const all = ['critical_block', 'critical_unblock_low', 'regular', 'regular_low', 'regular_high'] as const;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      client.sock.resyncAppState(all, false).then(() => 'synced'),
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still syncing after 5 s'), 5000))),
    ]);
    clearTimeout(timer);
    client.sock.ws.off('frame', count);
    assert.equal(outcome, 'synced', `${queries} answers`);
    assert.equal(queries, 1, 'one round trip for all collections');
  });

  test('the history-sync notification comes on the first login only, and a reconnect is not held back', async () => {
    const first = await client.waitFor(client.upserts, (m) => !!historyNotification(m), 5000, 'a history sync');
    assert.equal(historyNotification(first)?.syncType, proto.Message.HistorySyncType.INITIAL_BOOTSTRAP);
    // Baileys completes its initial sync (history, then app state) and counts it in its credentials; from then on
    // it does not wait for a history sync at login (otherwise it buffers every event up to 20 s)
    const credsFile = path.join(authDir.dir, 'creds.json');
    const accountSyncCounter = (): number => {
      try {
        return Number(
          (JSON.parse(readFileSync(credsFile, 'utf8')) as { accountSyncCounter?: number }).accountSyncCounter,
        );
      } catch {
        return 0; // Baileys is rewriting the file (not atomically)
      }
    };
    const synced = await eventually(() => accountSyncCounter() > 0, 10_000);

    client.end();
    const started = Date.now();
    const again = (client = await connect());
    await again.waitForOpen();
    const opened = Date.now() - started;
    const id = await sim.sendInbound(PHONE, CONTACT, 'right after the reconnect');
    await again.waitFor(again.upserts, (m) => m.key.id === id, 25_000, 'the inbound message');
    const delivered = Date.now() - started;
    console.log(`reconnect: open after ${opened} ms, first inbound message surfaced after ${delivered} ms`);

    assert.ok(synced, 'the initial sync completed (accountSyncCounter > 0 in creds.json)');
    assert.deepEqual(again.upserts.filter((m) => !!historyNotification(m)).length, 0, 'no history sync at a reconnect');
    assert.ok(delivered < 5000, `the reconnect's events flow at once (${delivered} ms)`);
  });

  test("key bundles: the primary phone's identity is the account key from pairing; a companion's is what it uploaded", async () => {
    // a second companion of the same phone
    const otherDir = await makeAuthDir();
    extraDirs.push(otherDir);
    {
      const registering = await TestClient.connect({ url: sim.url, authDir: otherDir.dir });
      clients.push(registering);
      await sim.scan(await registering.waitForQr(), PHONE);
      await registering.waitForClose();
      registering.end();
      const other = await TestClient.connect({ url: sim.url, authDir: otherDir.dir });
      clients.push(other);
      await other.waitForOpen();
      const otherJid = other.sock.user!.id;

      const bundles = async (jids: string[]) => {
        const result = (await client.sock.query({
          tag: 'iq',
          attrs: { to: S_WHATSAPP_NET, xmlns: 'encrypt', type: 'get' },
          content: [{ tag: 'key', attrs: {}, content: jids.map((jid) => ({ tag: 'user', attrs: { jid } })) }],
        })) as BinaryNode;
        return getBinaryNodeChildren(getBinaryNodeChild(result, 'list'), 'user');
      };
      const [primary, companion] = await bundles([`${PHONE}@s.whatsapp.net`, otherJid]);
      const bytes = (user: BinaryNode | undefined, tag: string) =>
        Buffer.from(getBinaryNodeChild(user, tag)?.content as Uint8Array);
      // creds read back from disk hold the proto's bytes as base64 text
      const raw = client.sock.authState.creds.account?.accountSignatureKey as Uint8Array | string | null | undefined;
      const account = typeof raw === 'string' ? Buffer.from(raw, 'base64') : raw;
      assert.ok(account?.length, 'the ADV account key from pairing');
      assert.equal(bytes(primary, 'identity').toString('hex'), Buffer.from(account).toString('hex'));
      const uploaded = other.sock.authState.creds;
      assert.equal(companion?.attrs.jid, otherJid);
      assert.equal(
        bytes(companion, 'identity').toString('hex'),
        Buffer.from(uploaded.signedIdentityKey.public).toString('hex'),
      );
      assert.equal(bytes(companion, 'registration').readUInt32BE(0), uploaded.registrationId);
      const skey = getBinaryNodeChild(companion, 'skey');
      assert.equal(
        Buffer.from(getBinaryNodeChild(skey, 'value')?.content as Uint8Array).toString('hex'),
        Buffer.from(uploaded.signedPreKey.keyPair.public).toString('hex'),
      );
    }
  });
});
