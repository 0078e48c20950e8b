import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { proto } from '@whiskeysockets/baileys';
import { SocksProxyAgent } from 'socks-proxy-agent';
import { isProxyError, isTransportDrop } from '../common/baileys-errors.js';
import { Socks5Proxy, startControlApi, WhatsAppSimulator, type ControlApi } from '../simulator/index.js';
import { makeAuthDir, sleep, TestClient, type ClientOptions } from './helpers/baileys-client.js';

const PHONE = '15550000001';
const CONTACT = '15559998888';
const CONTACT_JID = `${CONTACT}@s.whatsapp.net`;
const Status = proto.WebMessageInfo.Status;

type AuthDir = Awaited<ReturnType<typeof makeAuthDir>>;

const authDirs: AuthDir[] = [];
const clients: TestClient[] = [];

async function newAuthDir(): Promise<AuthDir> {
  const dir = await makeAuthDir();
  authDirs.push(dir);
  return dir;
}

async function connect(opts: ClientOptions): Promise<TestClient> {
  const client = await TestClient.connect(opts);
  clients.push(client);
  return client;
}

/** QR → scan → 515 → login → open; returns the open client. */
async function pair(
  sim: WhatsAppSimulator,
  phone: string,
  base: Omit<ClientOptions, 'authDir'>,
  authDir: string,
): Promise<TestClient> {
  const registering = await connect({ ...base, authDir });
  const qr = await registering.waitForQr();
  const paired = await sim.scan(qr, phone);
  assert.equal(paired.phone, phone);
  const closed = await registering.waitForClose();
  assert.equal(closed.statusCode, 515, 'pairing ends with the 515 restart');
  registering.end();
  const client = await connect({ ...base, authDir });
  await client.waitForOpen();
  return client;
}

after(async () => {
  for (const client of clients) client.end();
  await Promise.all(authDirs.map((dir) => dir.remove()));
});

describe('real Baileys through a SOCKS5 proxy to the simulator', () => {
  let sim: WhatsAppSimulator;
  let proxy: Socks5Proxy;
  let authDir: AuthDir;
  let base: Omit<ClientOptions, 'authDir'>;

  before(async () => {
    sim = await WhatsAppSimulator.start();
    proxy = await Socks5Proxy.start({ username: 'tester', password: 's3cret', bindAddress: '127.0.0.2' });
    authDir = await newAuthDir();
    // a fresh agent per socket: the agent is the only thing Baileys needs to go through the proxy
    base = {
      url: sim.url,
      get agent() {
        return new SocksProxyAgent(proxy.url);
      },
    };
  });

  after(async () => {
    for (const client of clients) client.end();
    await proxy.close();
    await sim.close();
  });

  let client: TestClient;

  test('QR → scan → 515 → open, recorded with the proxy source address', async () => {
    const qrShown = new Promise((resolve) => sim.events.once('qr-shown', resolve));
    client = await pair(sim, PHONE, base, authDir.dir);
    await qrShown;
    assert.deepEqual(
      sim.connections(PHONE).map((c) => [c.kind, c.address]),
      [
        ['registration', '127.0.0.2'],
        ['login', '127.0.0.2'],
      ],
    );
    assert.deepEqual(sim.sourceAddresses(PHONE), ['127.0.0.2']);
    assert.deepEqual(sim.phones(), [
      {
        phone: PHONE,
        linked: true,
        banned: false,
        online: true,
        messagesSent: 0,
        rejected463: 0,
        rejected479: 0,
        privacyTokensIssued: 0,
        acceptedWithToken: 0,
        rejectedInvalidToken: 0,
        decryptFailures: 0,
        retryReceiptsSent: 0,
        resentDecrypted: 0,
        undecryptable: 0,
      },
    ]);
    assert.equal(client.sock.user?.id.split(':')[0], PHONE);
  });

  test('send a text: the simulator decrypts exactly it, the client sees delivery then read', async () => {
    const text = `hello from baileys ${Date.now()} ✓`;
    const sent = await client.sock.sendMessage(CONTACT_JID, { text });
    const id = sent?.key.id;
    assert.ok(id);
    // normally a messages.update; under heavy load Baileys may fold it into its own buffered upsert
    await client.waitForStatus(id, Status.DELIVERY_ACK);
    const [recorded] = sim.messages(PHONE);
    assert.ok(recorded);
    assert.equal(recorded.id, id);
    assert.equal(recorded.text, text);
    assert.equal(recorded.to, CONTACT_JID);
    assert.equal(recorded.sourceAddress, '127.0.0.2');
    assert.ok(Date.now() - recorded.at < 5000);

    sim.markRead(PHONE, id);
    const read = await client.waitFor(
      client.messageUpdates,
      (u) => u.key.id === id && u.update.status === Status.READ,
      5000,
      'read receipt',
    );
    assert.equal(read.key.remoteJid, CONTACT_JID);
  });

  test('a message to the own number is decrypted and recorded too', async () => {
    const sent = await client.sock.sendMessage(`${PHONE}@s.whatsapp.net`, { text: 'note to self' });
    await sleep(100);
    const recorded = sim.messages(PHONE).find((m) => m.id === sent?.key.id);
    assert.equal(recorded?.text, 'note to self');
    assert.equal(recorded?.to, `${PHONE}@s.whatsapp.net`);
  });

  test('inbound message from a contact reaches the client as messages.upsert', async () => {
    const id = await sim.sendInbound(PHONE, CONTACT, 'hi from the contact');
    const message = await client.waitFor(client.upserts, (m) => m.key.id === id, 5000, 'inbound message');
    assert.equal(message.key.remoteJid, CONTACT_JID);
    assert.equal(message.key.fromMe, false);
    assert.equal(message.message?.conversation, 'hi from the contact');
  });

  test('restart with saved credentials: open without any QR', async () => {
    client.end();
    client = await connect({ ...base, authDir: authDir.dir });
    await client.waitForOpen();
    assert.equal(client.qrCount, 0);
    assert.equal(sim.connections(PHONE).at(-1)?.kind, 'login');
  });

  const injected: Array<[kind: 'replaced' | 'restart' | 'close', code: number]> = [
    ['replaced', 440],
    ['restart', 515],
    ['close', 428],
  ];
  for (const [kind, code] of injected) {
    test(`fault "${kind}" closes the session with ${code}`, async () => {
      if (client.updates.some((u) => u.connection === 'close')) {
        client.end();
        client = await connect({ ...base, authDir: authDir.dir });
      }
      await client.waitForOpen();
      sim.fault(PHONE, kind);
      const closed = await client.waitForClose();
      assert.equal(closed.statusCode, code);
      assert.equal(isProxyError(closed.error), false, 'a server-side close is not a proxy error');
      if (kind === 'close') assert.equal(isTransportDrop(closed.error), false, 'the server ended the stream');
    });
  }

  test('fault "stop-pings": Baileys declares the connection lost with 408', { timeout: 20_000 }, async () => {
    client.end();
    client = await connect({ ...base, authDir: authDir.dir, keepAliveIntervalMs: 1000 });
    await client.waitForOpen();
    sim.fault(PHONE, 'stop-pings');
    const closed = await client.waitForClose(15_000);
    assert.equal(closed.statusCode, 408);
    assert.equal(isProxyError(closed.error), false);
    sim.fault(PHONE, 'resume-pings');
  });

  test('any w:p get is a keep-alive ping, whatever its shape; stop-pings silences every shape', async () => {
    client.end();
    client = await connect({ ...base, authDir: authDir.dir });
    await client.waitForOpen();
    // no <ping/> child (another client's shape): answered like Baileys' ping
    const bare = await client.sock.query({ tag: 'iq', attrs: { to: '@s.whatsapp.net', xmlns: 'w:p', type: 'get' } });
    assert.equal(bare.attrs.type, 'result');
    sim.fault(PHONE, 'stop-pings');
    await assert.rejects(
      client.sock.query(
        {
          tag: 'iq',
          attrs: { to: '@s.whatsapp.net', xmlns: 'w:p', type: 'get' },
          content: [{ tag: 'keepalive', attrs: {} }],
        },
        1500,
      ),
      /Timed Out/i,
    );
    sim.fault(PHONE, 'resume-pings');
  });

  test('fault "unlink" closes with 401, and the removed credentials get 401 at login', async () => {
    client.end();
    client = await connect({ ...base, authDir: authDir.dir });
    await client.waitForOpen();
    sim.fault(PHONE, 'unlink');
    const closed = await client.waitForClose();
    assert.equal(closed.statusCode, 401);
    assert.equal(sim.phones().find((p) => p.phone === PHONE)?.linked, false);
    client.end();
    client = await connect({ ...base, authDir: authDir.dir });
    const refused = await client.waitForClose();
    assert.equal(refused.statusCode, 401);
    assert.equal(sim.connections(PHONE).at(-1)?.kind, 'rejected');
  });

  test('bans and locks use WhatsApp codes: 406 banned, 402 banned until `expire`, 403 locked', async () => {
    const phone = '15550000002';
    const dir = await newAuthDir();
    const banned = new Promise<unknown>((resolve) => sim.events.once('banned', resolve));
    let session = await pair(sim, phone, base, dir.dir);
    sim.fault(phone, 'ban');
    assert.deepEqual(await banned, { phone, reason: 'manual' });
    const closed = await session.waitForClose();
    assert.equal(closed.statusCode, 406);
    session.end();
    session = await connect({ ...base, authDir: dir.dir });
    const refused = await session.waitForClose();
    assert.equal(refused.statusCode, 406);
    assert.equal(sim.phones().find((p) => p.phone === phone)?.banned, true);
    // unban: the same credentials log in again
    sim.fault(phone, 'unban');
    session.end();
    session = await connect({ ...base, authDir: dir.dir });
    await session.waitForOpen();
    // a temporary ban: 402 with its end, at once and at the next login
    sim.fault(phone, 'temp-ban');
    assert.equal((await session.waitForClose()).statusCode, 402);
    session.end();
    session = await connect({ ...base, authDir: dir.dir });
    const temp = await session.waitForClose();
    assert.equal(temp.statusCode, 402);
    const expire = Number((temp.error as { data?: { expire?: string } } | undefined)?.data?.expire);
    assert.ok(expire * 1000 > Date.now() + 3_600_000, `expire ${expire} is in the future (24 h by default)`);
    sim.fault(phone, 'unban');
    session.end();
    // a locked account: 403
    session = await connect({ ...base, authDir: dir.dir });
    await session.waitForOpen();
    sim.fault(phone, 'lock');
    assert.equal((await session.waitForClose()).statusCode, 403);
    session.end();
    session = await connect({ ...base, authDir: dir.dir });
    assert.equal((await session.waitForClose()).statusCode, 403);
    sim.fault(phone, 'unban');
    session.end();
  });
});

describe('QR rotation', () => {
  test('Baileys shows one QR per ref and closes with 408 when the refs run out', async () => {
    const sim = await WhatsAppSimulator.start({ qrRefs: 3 });
    try {
      const dir = await newAuthDir();
      const client = await connect({ url: sim.url, authDir: dir.dir, qrTimeout: 200 });
      const closed = await client.waitForClose(5000);
      assert.equal(closed.statusCode, 408);
      assert.match(closed.error?.message ?? '', /QR refs attempts ended/);
      assert.equal(client.qrCount, 3);
      assert.equal(isProxyError(closed.error), false);
      client.end();
    } finally {
      await sim.close();
    }
  });
});

describe('anti-spam model', () => {
  let sim: WhatsAppSimulator;
  before(async () => {
    sim = await WhatsAppSimulator.start({
      antiSpam: { maxPerMinute: 5, maxNewContactsPerHourYoung: 3, youngForMs: 3_600_000 },
    });
  });
  after(() => sim.close());

  test('unpaced sending to one contact gets the number banned (406)', async () => {
    const phone = '15550000010';
    const dir = await newAuthDir();
    const client = await pair(sim, phone, { url: sim.url }, dir.dir);
    const banned = new Promise<{ phone: string; reason: string }>((resolve) => sim.events.once('banned', resolve));
    for (let i = 0; i < 6; i++) await client.sock.sendMessage(CONTACT_JID, { text: `burst ${i}` });
    const ban = await banned;
    assert.equal(ban.phone, phone);
    assert.match(ban.reason, /messages in 60 s/);
    assert.equal((await client.waitForClose()).statusCode, 406);
    assert.equal(sim.messages(phone).length, 6);
    client.end();
  });

  test('a young number writing to too many new contacts gets banned', async () => {
    const phone = '15550000011';
    const dir = await newAuthDir();
    const client = await pair(sim, phone, { url: sim.url }, dir.dir);
    const banned = new Promise<{ phone: string; reason: string }>((resolve) => sim.events.once('banned', resolve));
    for (let i = 0; i < 4; i++) await client.sock.sendMessage(`1555777000${i}@s.whatsapp.net`, { text: 'hi' });
    const ban = await banned;
    assert.equal(ban.phone, phone);
    assert.match(ban.reason, /new contacts/);
    assert.equal((await client.waitForClose()).statusCode, 406);
    client.end();
  });

  test('paced sending within the limits is not banned', async () => {
    const phone = '15550000012';
    const dir = await newAuthDir();
    const client = await pair(sim, phone, { url: sim.url }, dir.dir);
    for (let i = 0; i < 5; i++) await client.sock.sendMessage(CONTACT_JID, { text: `paced ${i}` });
    await sleep(200);
    assert.equal(sim.phones().find((p) => p.phone === phone)?.banned, false);
    assert.deepEqual(
      sim.messages(phone).map((m) => m.text),
      ['paced 0', 'paced 1', 'paced 2', 'paced 3', 'paced 4'],
    );
    client.end();
  });
});

describe('control API', () => {
  let sim: WhatsAppSimulator;
  let proxy: Socks5Proxy;
  let api: ControlApi;
  before(async () => {
    sim = await WhatsAppSimulator.start();
    proxy = await Socks5Proxy.start({ username: 'api', password: 'do-not-leak', bindAddress: '127.0.0.5' });
    api = await startControlApi(sim, { proxies: [proxy] });
  });
  after(async () => {
    await api.close();
    await proxy.close();
    await sim.close();
  });

  const call = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const res = await fetch(`${api.url}${path}`, {
      method,
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  test('scan, inspect, inbound, read and faults over HTTP', async () => {
    assert.deepEqual((await call('GET', '/healthz')).body, {
      ok: true,
      url: sim.url,
      // published so a client can verify the Noise certificate chain without patches
      certificateRootPublicKey: Buffer.from(sim.certificateRootPublicKey).toString('hex'),
    });
    const phone = '15550000020';
    const dir = await newAuthDir();
    const registering = await connect({ url: sim.url, authDir: dir.dir, agent: new SocksProxyAgent(proxy.url) });
    const qr = await registering.waitForQr();
    const scanned = await call('POST', '/scan', { qr, phone });
    assert.equal(scanned.status, 200);
    assert.deepEqual(scanned.body, { phone, jid: `${phone}:7@s.whatsapp.net` });
    await registering.waitForClose();
    registering.end();
    const client = await connect({ url: sim.url, authDir: dir.dir, agent: new SocksProxyAgent(proxy.url) });
    await client.waitForOpen();

    const phones = await call('GET', '/phones');
    assert.deepEqual(phones.body.phones, [
      {
        phone,
        linked: true,
        banned: false,
        online: true,
        messagesSent: 0,
        rejected463: 0,
        rejected479: 0,
        privacyTokensIssued: 0,
        acceptedWithToken: 0,
        rejectedInvalidToken: 0,
        decryptFailures: 0,
        retryReceiptsSent: 0,
        resentDecrypted: 0,
        undecryptable: 0,
      },
    ]);
    const connections = await call('GET', `/phones/${phone}/connections`);
    assert.deepEqual(connections.body.sourceAddresses, ['127.0.0.5']);

    const sent = await client.sock.sendMessage(CONTACT_JID, { text: 'via api' });
    await client.waitForStatus(sent?.key.id ?? '', Status.DELIVERY_ACK);
    const messages = await call('GET', `/messages?phone=${phone}`);
    assert.deepEqual(
      (messages.body.messages as Array<{ text: string }>).map((m) => m.text),
      ['via api'],
    );
    assert.equal((await call('POST', `/phones/${phone}/read`, { messageId: sent?.key.id })).status, 200);
    const inbound = await call('POST', `/phones/${phone}/inbound`, { from: CONTACT, text: 'inbound via api' });
    assert.equal(inbound.status, 200);
    await client.waitFor(client.upserts, (m) => m.key.id === inbound.body.id, 5000, 'inbound via api');
    // the contact's message came with its privacy token; another contact grants one without writing
    const granted = await call('POST', `/phones/${phone}/privacy-tokens`, { from: '15559997777' });
    assert.deepEqual(granted.body, { ok: true, phone, from: '15559997777' });
    const badGrant = await call('POST', `/phones/${phone}/privacy-tokens`, { from: 'group@g.us' });
    assert.equal(badGrant.status, 400);
    assert.equal((badGrant.body.error as { field?: string }).field, 'from');
    assert.equal(sim.phones().find((p) => p.phone === phone)?.privacyTokensIssued, 2);

    const proxies = await call('GET', '/proxies');
    assert.ok(!JSON.stringify(proxies.body).includes('do-not-leak'), 'proxy passwords never leave the API');
    assert.equal((proxies.body.proxies as Array<{ fault: string }>)[0]?.fault, 'none');

    const restart = await call('POST', `/phones/${phone}/faults`, { kind: 'restart' });
    assert.equal(restart.status, 200);
    assert.equal((await client.waitForClose()).statusCode, 515);
    client.end();

    const badFault = await call('POST', `/phones/${phone}/faults`, { kind: 'explode' });
    assert.equal(badFault.status, 400);
    assert.equal((badFault.body.error as { field?: string }).field, 'kind');
    const badPhone = await call('GET', '/phones/abc/connections');
    assert.deepEqual(badPhone.body.error, {
      code: 'invalid_request',
      message: 'phone must be 6-15 digits',
      field: 'phone',
    });
    assert.equal((await call('POST', '/scan', { qr: 'a,b,c,d', phone })).status, 409);
    assert.equal((await call('POST', '/proxies/7/faults', { kind: 'refuse' })).status, 404);
    const refuse = await call('POST', '/proxies/0/faults', { kind: 'refuse' });
    assert.equal(refuse.body.fault, 'refuse');
    assert.equal(proxy.fault, 'refuse');
    assert.equal((await call('GET', '/nowhere')).status, 404);
  });
});

describe('many phones at once', () => {
  test('three sessions pair concurrently, each to its own phone, and message independently', async () => {
    const sim = await WhatsAppSimulator.start();
    try {
      const phones = ['15550000031', '15550000032', '15550000033'];
      const sessions = await Promise.all(
        phones.map(async (phone) => pair(sim, phone, { url: sim.url }, (await newAuthDir()).dir)),
      );
      await Promise.all(
        sessions.map((session, i) => session.sock.sendMessage(CONTACT_JID, { text: `from ${phones[i]}` })),
      );
      await sleep(100);
      for (const [i, phone] of phones.entries()) {
        assert.deepEqual(
          sim.messages(phone).map((m) => m.text),
          [`from ${phone}`],
        );
        assert.equal(sessions[i]?.sock.user?.id, `${phone}:7@s.whatsapp.net`);
      }
      assert.deepEqual(
        sim
          .phones()
          .map((p) => [p.phone, p.linked, p.online])
          .sort(),
        phones.map((phone) => [phone, true, true]),
      );
      // a fault hits only its own phone
      sim.fault(phones[0] ?? '', 'replaced');
      assert.equal((await sessions[0]?.waitForClose())?.statusCode, 440);
      await sleep(100);
      assert.equal(
        sessions[1]?.updates.some((u) => u.connection === 'close'),
        false,
      );
      for (const session of sessions) session.end();
    } finally {
      await sim.close();
    }
  });
});
