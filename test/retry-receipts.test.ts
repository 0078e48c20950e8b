/**
 * Issue 12 item 4: retry receipts. The recipient's device loses its Signal session (simulator control call), so
 * the next message cannot be decrypted. Like WhatsApp, the recipient device answers with a retry receipt carrying a
 * fresh key bundle; the worker re-sends the message from its sent-message store (Baileys' getMessage) and the
 * recipient decrypts it. The status reaches `delivered` only after that. Real stack: API + orchestrator processes,
 * Temporal, Redis, the real wa-worker (Baileys 7) through a SOCKS5 proxy.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { Stack, waitFor } from './helpers/stack.js';

describe('retry receipts: a recipient device that cannot decrypt', () => {
  let stack: Stack;
  const backupsDir = mkdtempSync(path.join(os.tmpdir(), 'wa-retry-backups-'));
  const S = { id: 'retry1', phone: '15550009401' };
  const CONTACT = '15557771001';

  before(async () => {
    stack = await new Stack({
      proxies: 1,
      extraEnv: {
        ANTIBAN_COLD_GAP_MS: '300',
        ANTIBAN_IDLE_POLL_MS: '500',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
        BACKUPS_DIR: backupsDir,
        BACKUP_CRON: '15 4 * * *',
        RESTORE_CONNECT_TIMEOUT_MS: '30000',
      },
    }).start();
    await connectedSession(stack, S.id, S.phone);
  });
  after(async () => {
    if (stack) await terminateDispatchers(stack, [S.id]);
    await stack?.temporal.schedule
      .getHandle(`${stack.env.WORKFLOW_ID_PREFIX}-backups`)
      .delete()
      .catch(() => undefined);
    await stack?.stop();
    rmSync(backupsDir, { recursive: true, force: true });
  });

  const send = async (text: string) => {
    const r = await stack.call('POST', '/api/send', { sessionId: S.id, to: CONTACT, text });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.messageId as string;
  };
  const record = async (id: string) => (await stack.call('GET', `/api/messages/${id}`)).body;
  const delivered = (id: string) =>
    waitFor(
      `${id} delivered`,
      async () => ((await record(id)).status === 'delivered' ? record(id) : undefined),
      30_000,
    );
  const counters = () => stack.sim.phones().find((p) => p.phone === S.phone)!;

  it('the recipient lost its Signal session: decrypted through the retry path, delivered only after', async () => {
    await delivered(await send('first, the session is set up'));
    await delivered(await send('second'));
    assert.equal(counters().decryptFailures, 0, 'no decrypt failure so far');
    // The contact's device lost its sessions (like a reinstall, or the sender restored an older Signal state).
    await stack.sim.resetContactSessions(CONTACT);

    const text = 'after the reset';
    const id = await send(text);
    const m = await delivered(id);
    const c = counters();
    assert.ok(c.decryptFailures >= 1, `the recipient could not decrypt the first copy: ${JSON.stringify(c)}`);
    assert.ok(c.retryReceiptsSent >= 1, JSON.stringify(c));
    assert.ok(c.resentDecrypted >= 1, `a re-sent copy was decrypted: ${JSON.stringify(c)}`);
    assert.equal(c.undecryptable, 0, 'nothing left undecryptable');
    const got = stack.sim.messages(S.phone).filter((x) => x.text === text);
    assert.equal(got.length, 1, 'the recipient has the message exactly once, with its text');
    assert.ok(m.deliveredAt >= got[0]!.at, `delivered (${m.deliveredAt}) only after the decrypt (${got[0]!.at})`);
  });
  it('restore a backup taken before the last 5 sends, then send: the recipient decrypts it, delivered only after', async () => {
    await delivered(await send('before the backup'));
    const b = await stack.call('POST', '/api/v1/backups/create', {});
    assert.equal(b.status, 201, JSON.stringify(b.body));
    for (let i = 1; i <= 5; i++) await delivered(await send(`after the backup ${i}`));
    const before = counters();

    // The session's Signal state goes back 5 messages. Baileys 7 then opens a new Signal session (a pre-key message
    // with a new base key, which the recipient accepts) or, if it reused the old chain, the recipient would ask for
    // a re-encrypted copy through a retry receipt; either way the recipient must end up with the text, once.
    const r = await stack.restore(b.body.backup.id as string, { sessionId: S.id });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await stack.waitForStatus(S.id, 'connected');

    const text = 'after the restore';
    const id = await send(text);
    const m = await delivered(id);
    const c = counters();
    assert.equal(c.undecryptable, 0, `nothing left undecryptable: ${JSON.stringify(c)}`);
    assert.equal(
      c.decryptFailures - before.decryptFailures,
      c.resentDecrypted - before.resentDecrypted,
      `every undecryptable copy was re-sent and decrypted: ${JSON.stringify(c)}`,
    );
    const got = stack.sim.messages(S.phone).filter((x) => x.text === text);
    assert.equal(got.length, 1, 'the recipient has the message exactly once, with its text');
    assert.ok(m.deliveredAt >= got[0]!.at, `delivered (${m.deliveredAt}) only after the decrypt (${got[0]!.at})`);
  });
});
