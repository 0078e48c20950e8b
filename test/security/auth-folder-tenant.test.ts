/**
 * Attack: take over another tenant's WhatsApp account through its auth folder. Tenant acme deletes its session
 * with `keepAuth=true` (the linked credentials stay on disk); tenant beta provisions the same session id and would
 * get a worker logged in as acme's phone without any scan. Auth folders now carry their owning tenant
 * (`wa-owner.json`, copied into backups): beta's provision is a 409 naming no one, with no file touched; acme
 * gets its folder back without a scan; a full restore leaves out a session id now owned by another tenant, and a
 * single-session restore of it is refused.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { workflowIdFor } from '../../common/session.js';
import { Stack, TENANT_KEY, waitFor } from '../helpers/stack.js';

const BETA_KEY = 'test-beta-key-0123456789abcdef';
const ID = 'takeover1';
const P_ACME = '15550014001';
const P_BETA = '15550014002';

describe('auth folders belong to a tenant', () => {
  let stack: Stack;
  const dir = () => path.join(stack.sessionsDir, ID);
  const snapshot = () =>
    Object.fromEntries(
      readdirSync(dir())
        .sort()
        .map((f) => [
          f,
          createHash('sha256')
            .update(readFileSync(path.join(dir(), f)))
            .digest('hex'),
        ]),
    );
  const credsPhone = () =>
    String((JSON.parse(readFileSync(path.join(dir(), 'creds.json'), 'utf8')) as { me?: { id?: string } }).me?.id);
  const owner = () =>
    (JSON.parse(readFileSync(path.join(dir(), 'wa-owner.json'), 'utf8')) as { tenant: string }).tenant;

  before(async () => {
    stack = await new Stack({
      proxies: 2,
      extraEnv: { TENANT_API_KEYS: `acme:${TENANT_KEY},beta:${BETA_KEY}` },
    }).start();
  });
  after(async () => stack?.stop());

  it('keepAuth folder: another tenant is refused (409, nothing touched); the owner gets it back without a scan', async () => {
    let r = await stack.call('POST', '/api/sessions/provision', { sessionId: ID, phone: P_ACME }, TENANT_KEY);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await stack.scan(ID, P_ACME);
    await stack.waitForStatus(ID, 'connected');
    r = await stack.call('DELETE', `/api/sessions/${ID}?keepAuth=true`, undefined, TENANT_KEY);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitFor('acme session gone', async () => (await stack.status(ID))?.status !== 'connected' || null, 20_000);
    const before = snapshot();
    assert.ok(before['creds.json'], 'linked credentials kept on disk');
    const logins = stack.sim.connections(P_ACME).length;

    r = await stack.call('POST', '/api/sessions/provision', { sessionId: ID, phone: P_BETA }, BETA_KEY);
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'SESSION_EXISTS');
    assert.ok(!/acme/.test(JSON.stringify(r.body)), 'the owner is not named');
    assert.deepEqual(snapshot(), before, 'no file touched');
    assert.equal(stack.sim.connections(P_ACME).length, logins, 'nobody logged in with acme credentials');
    assert.equal((await stack.call('GET', `/api/sessions/${ID}/status`, undefined, BETA_KEY)).status, 404);
    assert.equal(owner(), 'acme');

    // The same tenant reuses its folder: connected again, no QR scanned (once beta's refused run has closed).
    await stack.temporal.workflow
      .getHandle(workflowIdFor(stack.env.WORKFLOW_ID_PREFIX!, ID))
      .result()
      .catch(() => undefined);
    r = await stack.call('POST', '/api/sessions/provision', { sessionId: ID, phone: P_ACME }, TENANT_KEY);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await stack.waitForStatus(ID, 'connected'); // nobody scanned: the kept credentials logged in
    assert.ok(stack.sim.connections(P_ACME).length > logins);
  });

  it('a restore never puts one tenant’s credentials into another tenant’s session', async () => {
    let r = await stack.call('POST', '/api/v1/backups/create', {});
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const backupId = r.body.backup.id as string;
    const entry = (r.body.backup.sessions as Array<{ sessionId: string }>).find((x) => x.sessionId === ID);
    assert.ok(entry, 'the backup holds acme’s session');

    // acme deletes for good; beta now provisions the same id with its own phone.
    r = await stack.call('DELETE', `/api/sessions/${ID}`, undefined, TENANT_KEY);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitFor('acme folder removed', () => !existsSync(dir()) || null, 20_000);
    r = await stack.call('POST', '/api/sessions/provision', { sessionId: ID, phone: P_BETA }, BETA_KEY);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await stack.scan(ID, P_BETA);
    await stack.waitForStatus(ID, 'connected');
    assert.match(credsPhone(), new RegExp(`^${P_BETA}`));

    // Full restore: acme's copy of the id is left out.
    r = await stack.restore(backupId, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(credsPhone(), new RegExp(`^${P_BETA}`), 'still beta’s credentials');
    assert.ok(!(r.body.restore.restored as string[]).includes(ID), JSON.stringify(r.body.restore));
    assert.equal(owner(), 'beta');
    // Single-session restore of that id: refused, nothing replaced.
    r = await stack.restore(backupId, { sessionId: ID });
    assert.ok(r.status >= 400, JSON.stringify(r.body));
    assert.equal(owner(), 'beta');
    assert.match(credsPhone(), new RegExp(`^${P_BETA}`), 'still beta’s credentials after the refused restore');
  });
});
