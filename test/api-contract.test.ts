/**
 * The API contract (issue 19): schemathesis (PyPI, pinned; installed into data/tools like the Temporal CLI) runs
 * every check, the stateful phase included, with a fixed seed, against a real stack (API, orchestrator, Temporal,
 * Redis, real workers and the simulator) — once with the admin key, once with a tenant key. Any failure or
 * warning fails the test. The stack is seeded first (sessions, a message, a backup) and the seeded ids are put in
 * the document's examples, so the operations that need an existing resource reach one.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { apiClient } from '../api/client/index.js';
import { INBOUND_MEDIA_HEADER } from '../common/media.js';
import { sessionWebhookSecret } from '../common/session.js';
import { SignedClient } from '../wa-worker/signed-post.js';
import { terminateDispatchers } from './helpers/messaging.js';
import { API_KEY, METRICS_TOKEN, ROOT, Stack, TENANT_KEY, WEBHOOK_SECRET, waitFor } from './helpers/stack.js';

export const SCHEMATHESIS_VERSION = '4.32.5';
const DATA = process.env.WA_DATA_DIR ?? path.join(ROOT, 'data');
const ST = path.join(DATA, 'tools', 'schemathesis', 'bin', 'st');
const SEED = 19;
const HOST_CAPACITY = 14;
const PAIRING_CODE_TTL_MS = 900_000;

type Doc = {
  paths: Record<
    string,
    Record<string, { operationId?: string; 'x-admin-only'?: boolean; parameters?: Array<Record<string, unknown>> }>
  >;
};

/** The operations the document marks admin-only, as a schemathesis operation-id pattern. */
function adminOnly(doc: Doc): string {
  const ids = Object.values(doc.paths).flatMap((ops) =>
    Object.values(ops).flatMap((op) => (op['x-admin-only'] && op.operationId ? [op.operationId] : [])),
  );
  assert.ok(ids.includes('createBackup'), 'the document marks admin-only operations');
  return `^(${ids.join('|')})$`;
}

/** Puts `value` as the example of path parameter `id` of one operation. */
function exampleId(doc: Doc, p: string, method: string, value: string) {
  const op = doc.paths[p]?.[method];
  assert.ok(op, `${method} ${p} is in the document`);
  for (const param of op.parameters ?? []) if (param.name === 'id' && param.in === 'path') param.example = value;
}

/** Runs schemathesis; resolves with its exit code and output. */
function schemathesis(args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(ST, args, { cwd, env: { ...process.env, NO_COLOR: '1', SCHEMATHESIS_HOOKS: '' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('API contract: schemathesis against the OpenAPI document (real stack)', () => {
  let stack: Stack;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wa-contract-'));
  const seeded = {
    admin: 'seed_admin',
    adminSpare: 'seed_spare',
    adminGone: 'seed_gone',
    tenant: 'seed_tenant',
    tenantSpare: 'seed_tspare',
    tenantGone: 'seed_tgone',
    // A logout ends its session's run for good: it gets a session of its own, so restarts still find theirs.
    adminOut: 'seed_out',
    tenantOut: 'seed_tout',
    adminPair: 'seed_pair',
    tenantPair: 'seed_tpair',
    // GET …/pairing-code reads a code that no fuzzed POST …/pairing-code (another phone) can end.
    adminPairGet: 'seed_pget',
    tenantPairGet: 'seed_tpget',
  };
  const messageIds = { admin: '', tenant: '' };
  const mediaIds = { admin: '', tenant: '' };
  let proxyId = '';
  let backupId = '';

  before(async () => {
    assert.ok(existsSync(ST), `schemathesis is missing at ${ST}: run bash scripts/services.sh`);
    stack = await new Stack({
      proxies: 2,
      maxSessionsPerProxy: 40,
      // A seeded pairing code must outlive a whole run (~2–4 min here): an expired one ends its session, and every
      // later POST …/pairing-code would be a 404 ("missing test data"). While a code waits, Baileys keeps cycling
      // the QR refs of its socket and ends it when they run out (6 refs: ~160 s): enough refs for the code's TTL.
      simOptions: { pairingCodeTtlMs: PAIRING_CODE_TTL_MS, qrRefs: 60 },
      extraEnv: {
        WORKER_ENV_PAIRING_CODE_TTL_MS: String(PAIRING_CODE_TTL_MS),
        // The fuzzer provisions dozens of sessions nobody scans: storing each one's 812 pre-keys ahead of a scan
        // (only while the host is idle here) would double the run's time and test nothing of the contract.
        WORKER_ENV_PREKEYS_AHEAD_MAX_CPU_PRESSURE: '0',
        BACKUPS_DIR: path.join(dir, 'backups'),
        HOST_CAPACITY: String(HOST_CAPACITY),
        ONE_SESSION_PER_TENANT: 'false',
        TENANT_MAX_SESSIONS: '20',
        TENANT_PROVISION_MAX: '1000',
        TENANT_FAILOVER_MAX: '1000',
        RATE_LIMIT_MAX_REQUESTS: '100000',
        RATE_LIMIT_GLOBAL_MAX_REQUESTS: '100000',
      },
    }).start();
    const admin = apiClient(stack.apiUrl, API_KEY);
    await seedSessions();
    // A QR to read, a message to look up, a proxy id and a backup to restore.
    await waitFor(
      'the seeded QR',
      async () => (await admin.GET('/api/sessions/{id}/qr', { params: { path: { id: seeded.admin } } })).data,
      40_000,
    );
    for (const who of ['admin', 'tenant'] as const) {
      const client = apiClient(stack.apiUrl, who === 'admin' ? API_KEY : TENANT_KEY);
      const sessionId = who === 'admin' ? seeded.admin : seeded.tenant;
      const sent = await client.POST('/api/send', { body: { sessionId, to: '15559990001', text: 'seed' } });
      assert.equal(sent.response.status, 202, JSON.stringify(sent.error));
      messageIds[who] = sent.data!.messageId;
    }
    // An inbound media file per tenant, handed over as the session's worker does (signed with the session's key).
    for (const who of ['admin', 'tenant'] as const) {
      const sessionId = who === 'admin' ? seeded.admin : seeded.tenant;
      const worker = new SignedClient(
        `${stack.apiUrl}/api/worker/sessions/${sessionId}`,
        sessionWebhookSecret(WEBHOOK_SECRET, sessionId),
        10_000,
        'seed',
      );
      const bytes = randomBytes(2048);
      const file = path.join(dir, `inbound-${who}`);
      writeFileSync(file, bytes);
      const meta = {
        waMessageId: `SEED${who.toUpperCase()}`,
        type: 'document',
        mimetype: 'application/octet-stream',
        size: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        fileName: 'seed.bin',
      };
      const stored = await worker.postFile('inbound-media', INBOUND_MEDIA_HEADER, meta, file);
      mediaIds[who] = ((await stored.json()) as { mediaId: string }).mediaId;
    }
    proxyId = (await admin.GET('/api/v1/proxies')).data!.proxies[0]!.id;
    const backup = await admin.POST('/api/v1/backups/create', {});
    assert.equal(backup.response.status, 201, JSON.stringify(backup.error));
    backupId = String((backup.data!.backup as { id?: string }).id);
  });
  /** (Re)creates the seeded sessions a previous run deleted, and a customer webhook per tenant. */
  async function seedSessions() {
    const admin = apiClient(stack.apiUrl, API_KEY);
    const tenant = apiClient(stack.apiUrl, TENANT_KEY);
    // Sessions a previous run provisioned hold host capacity (HOST_CAPACITY is small on purpose): remove them.
    const keep = new Set<string>(Object.values(seeded));
    const phones: Record<string, string> = {
      [seeded.adminPair]: '15550049001',
      [seeded.tenantPair]: '15550049002',
      [seeded.adminPairGet]: '15550049003',
      [seeded.tenantPairGet]: '15550049004',
    };
    const listed = await stack.call('GET', '/api/v1/dashboard/sessions');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    for (const s of listed.body.sessions as Array<{ sessionId: string; phone: string | null }>) {
      // The stateful phase may have switched another seeded session to a pairing code with a seeded pairing phone
      // (a link from a pairing-code answer): that session goes too, or the pairing session could not have it back.
      const holdsPairPhone = Object.entries(phones).some(([id, p]) => p === s.phone && id !== s.sessionId);
      if (keep.has(s.sessionId) && !holdsPairPhone) continue;
      const d = await stack.call('DELETE', `/api/sessions/${encodeURIComponent(s.sessionId)}`);
      assert.ok(d.status === 200 || d.status === 404, `cleanup of ${s.sessionId}: ${JSON.stringify(d.body)}`);
    }
    for (const [client, id] of [
      [admin, seeded.admin],
      [admin, seeded.adminSpare],
      [admin, seeded.adminGone],
      [admin, seeded.adminOut],
      [admin, seeded.adminPair],
      [admin, seeded.adminPairGet],
      [tenant, seeded.tenant],
      [tenant, seeded.tenantSpare],
      [tenant, seeded.tenantGone],
      [tenant, seeded.tenantOut],
      [tenant, seeded.tenantPair],
      [tenant, seeded.tenantPairGet],
    ] as const) {
      const pair = id in phones;
      const status = await client.GET('/api/sessions/{id}/status', { params: { path: { id } } });
      if (status.response.status === 200 && status.data!.status !== 'deleted' && !pair) continue;
      // The pairing session starts fresh with a code each run (a code lives PAIRING_CODE_TTL_MS), so
      // GET …/pairing-code finds one whatever order the run takes.
      if (pair && status.response.status === 200)
        await client.DELETE('/api/sessions/{id}', { params: { path: { id } } });
      const body = pair ? { sessionId: id, phone: phones[id]!, pairing: 'code' as const } : { sessionId: id };
      // A deleted session's run may still be finishing its last step: its id is free once the run has closed.
      const r = await waitFor(
        `provision of ${id}`,
        async () => {
          const res = await client.POST('/api/sessions/provision', { body });
          return res.response.status === 409 ? null : res;
        },
        30_000,
      );
      assert.equal(r.response.status, 201, JSON.stringify(r.error));
      if (pair)
        await waitFor(
          `the pairing code of ${id}`,
          async () =>
            (await client.GET('/api/sessions/{id}/pairing-code', { params: { path: { id } } })).response.status === 200,
          30_000,
        );
    }
    for (const client of [admin, tenant]) {
      const hook = await client.PUT('/api/v1/webhooks', {
        body: { url: 'http://127.0.0.1:9/hook', secret: 'contract-test-secret-0123456789' },
      });
      assert.equal(hook.response.status, 200, JSON.stringify(hook.error));
    }
  }

  after(async () => {
    if (stack) await terminateDispatchers(stack, [seeded.admin, seeded.tenant]);
    await stack?.stop();
  });

  async function run(who: 'admin' | 'tenant') {
    await seedSessions();
    const doc = (await (await fetch(`${stack.apiUrl}/api/openapi.json`)).json()) as Doc;
    const live = who === 'admin' ? seeded.admin : seeded.tenant;
    const spare = who === 'admin' ? seeded.adminSpare : seeded.tenantSpare;
    const gone = who === 'admin' ? seeded.adminGone : seeded.tenantGone;
    const loggedOut = who === 'admin' ? seeded.adminOut : seeded.tenantOut;
    const pair = who === 'admin' ? seeded.adminPair : seeded.tenantPair;
    const pairGet = who === 'admin' ? seeded.adminPairGet : seeded.tenantPairGet;
    for (const [p, methods] of Object.entries(doc.paths)) {
      if (!p.includes('{id}')) continue;
      for (const method of Object.keys(methods)) {
        // Disruptive operations get a spare session and delete its own, so every operation still finds a session
        // (a restart of a deleted one would be a 404: "missing test data").
        // Switching to a pairing code ends a session's QRs: it gets a session of its own, so /qr still finds one.
        const disruptive = /failover|restart/.test(p);
        // (read receipts too: a session nothing else deletes, so the run does not end on repeated 404s)
        const own = p.includes('pairing-code') || p.endsWith('/read');
        const id =
          p.includes('pairing-code') && method === 'get'
            ? pairGet
            : own
              ? pair
              : method === 'delete'
                ? gone
                : p.endsWith('/logout')
                  ? loggedOut
                  : disruptive
                    ? spare
                    : live;
        exampleId(doc, p, method, id);
      }
    }
    exampleId(doc, '/api/messages/{id}', 'get', messageIds[who]);
    // the seeded message is not sent (its session is not linked): edit and revoke answer 409 MESSAGE_NOT_SENT
    exampleId(doc, '/api/messages/{id}/edit', 'post', messageIds[who]);
    exampleId(doc, '/api/messages/{id}/revoke', 'post', messageIds[who]);
    exampleId(doc, '/api/media/{id}', 'get', mediaIds[who]);
    // The number check names its session in the body.
    const checkOp = doc.paths['/api/contacts/check']!.post! as {
      requestBody?: { content: Record<string, { example?: { sessionId?: string } }> };
    };
    checkOp.requestBody!.content['application/json']!.example!.sessionId = live;
    exampleId(doc, '/api/v1/proxies/{id}', 'delete', proxyId);
    exampleId(doc, '/api/v1/proxies/{id}/ok', 'post', proxyId);
    exampleId(doc, '/api/v1/backups/restore/{id}', 'post', backupId);
    // The restore example answers at once (202) instead of waiting for the whole restore.
    for (const param of doc.paths['/api/v1/backups/restore/{id}']!.post!.parameters ?? [])
      if (param.name === 'wait') param.example = 'false';
    const docFile = path.join(dir, `openapi-${who}.json`);
    writeFileSync(docFile, JSON.stringify(doc));
    const key = who === 'admin' ? API_KEY : TENANT_KEY;
    writeFileSync(
      path.join(dir, 'schemathesis.toml'),
      [
        `seed = ${SEED}`,
        'max-stream-events = 1',
        // A real stack on a shared 2-core CI machine: Temporal updates (restart, failover, logout) can take seconds.
        'request-timeout = 60',
        'checks.max_response_time = 60',
        'warnings = { fail-on = true }',
        'generation = { max-examples = 5 }',
        'phases.stateful.max-steps = 4',
        // The tenant run sends its tenant key to admin-only routes too: they must answer 403.
        `auth.openapi.apiKey = { api_key = "${key}" }`,
        `auth.openapi.adminApiKey = { api_key = "${key}" }`,
        `auth.openapi.metricsToken = { bearer = "${METRICS_TOKEN}" }`,
        // Operations that start or stop workers: fewer cases (each one is a real worker process or workflow).
        // Documented 503 answers are the contract, not a crash: no capacity (the stack runs with HOST_CAPACITY
        // so generated provisions cannot flood the machine with workers), an unhealthy session, not ready.
        '[[operations]]',
        'include-operation-id = "provisionSession"',
        'generation = { max-examples = 2 }',
        'checks.not_a_server_error = { expected-statuses = ["2xx", "3xx", "4xx", "503"] }',
        // The disruptive ones on their seeded sessions in every phase (a generated id is an unknown session, and
        // with two cases a few of those make "missing test data").
        '[[operations]]',
        'include-operation-id-regex = "^(restartSession|failoverSession)$"',
        'generation = { max-examples = 2 }',
        `parameters = { "path.id" = "${spare}" }`,
        '[[operations]]',
        'include-operation-id = "logoutSession"',
        'generation = { max-examples = 2 }',
        `parameters = { "path.id" = "${loggedOut}" }`,
        '[[operations]]',
        'include-operation-id-regex = "^(deleteSession|restoreBackup)$"',
        'generation = { max-examples = 2 }',
        // A backup answers when the verified archive is written: with the stateful phase restarting and deleting
        // workers on the same orchestrator it can take longer than a minute on this machine.
        '[[operations]]',
        'include-operation-id = "createBackup"',
        'generation = { max-examples = 2 }',
        'request-timeout = 300',
        'checks.max_response_time = 300',
        // Read receipts name their session in the path: the stateful phase would fill it from other answers
        // (message ids), which can only be 404s; the session the examples use is given instead.
        '[[operations]]',
        'include-operation-id = "markRead"',
        `parameters = { "path.id" = "${who === 'admin' ? seeded.adminPair : seeded.tenantPair}" }`,
        // Group routes likewise (the stateful phase would take ids of deleted sessions): the live one.
        '[[operations]]',
        'include-operation-id-regex = "^(listGroups|createGroup|getGroup|updateGroupParticipants|leaveGroup)$"',
        `parameters = { "path.id" = "${live}" }`,
        // Media: a schema-valid file or URL can still be too large (413), not of the type it claims (415) or, for a
        // URL, unreachable (422).
        '[[operations]]',
        'include-operation-id-regex = "^(uploadMedia|sendMessage)$"',
        'generation = { max-examples = 3 }',
        'checks.positive_data_acceptance = { expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "415", "422", "429", "5xx"] }',
        // Inbound media: the stateful phase would fill the id from other answers (session ids): the seeded file.
        // Edit and revoke: the seeded message (other answers' ids are 404s); not sent (or past its window), it is a
        // conflict with its state (409).
        '[[operations]]',
        'include-operation-id-regex = "^(editMessage|revokeMessage)$"',
        `parameters = { "path.id" = "${messageIds[who]}" }`,
        'checks.positive_data_acceptance = { expected-statuses = ["2xx", "401", "403", "404", "409", "429"] }',
        '[[operations]]',
        'include-operation-id = "getMedia"',
        `parameters = { "path.id" = "${mediaIds[who]}" }`,
        // Hosts are named by the deployment, not by other answers: the stack's own host.
        '[[operations]]',
        'include-operation-id-regex = "^(drainHost|getHostDrain|endHostDrain)$"',
        'parameters = { "path.id" = "local" }',
        '[[operations]]',
        'include-operation-id-regex = "^(getSessionHealth|readyz)$"',
        'checks.not_a_server_error = { expected-statuses = ["2xx", "3xx", "4xx", "503"] }',
      ].join('\n') + '\n',
    );
    const started = Date.now();
    const { code, out } = await schemathesis(
      [
        'run',
        docFile,
        '--url',
        stack.apiUrl,
        '--checks',
        'all',
        '--phases',
        'examples,coverage,fuzzing,stateful',
        // The worker webhook needs a fresh HMAC per request with a session's own key (test/api.test.ts covers it).
        '--exclude-tag',
        'internal',
        // Admin-only operations are exercised with the admin key; a tenant key only ever gets their 403
        // (test/security covers that), which schemathesis would rightly report as "authentication failed".
        ...(who === 'tenant' ? ['--exclude-operation-id-regex', adminOnly(doc)] : []),
        '--workers',
        '1',
        '--no-color',
      ],
      dir,
    );
    writeFileSync(path.join(dir, `schemathesis-${who}.log`), out);
    console.log(
      `schemathesis (${who} key, full output in ${dir}): exit ${code} in ${Math.round((Date.now() - started) / 1000)} s\n${out.slice(-6000)}`,
    );
    assert.equal(code, 0, `schemathesis found problems with the ${who} key (output above)`);
    assert.doesNotMatch(out, /\bwarnings?\b.*:\s*\d|WARNINGS/i, 'no warnings');
  }

  it('tenant key: 0 failures, 0 warnings', async () => run('tenant'));
  it('admin key: 0 failures, 0 warnings', async () => run('admin'));
});
