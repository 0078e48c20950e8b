/**
 * Fencing at the API's edge: a worker of an older generation (a replaced worker still running somewhere) signs its
 * calls correctly with its session's key, yet its events, outbox calls and command fetches are refused with 409
 * STALE_GENERATION and touch nothing; the current and newer generations pass; the generation is covered by the
 * signature (a forged header is a bad signature); refusals are counted in /metrics.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signedHeaders, signedRequestHeaders, WORKER_GENERATION_HEADER } from '../../common/events.js';
import { sessionWebhookSecret } from '../../common/session.js';
import { OutboxStore } from '../../state/outbox.js';
import { WorkerCommandStore } from '../../state/worker-commands.js';
import { parsePrometheusText } from '../helpers/prom-text.js';
import { metricsAuth, WEBHOOK_SECRET } from '../helpers/stack.js';
import { ApiOnly } from './api-only.js';

const SESSION = 'sec_fence_a';
const CURRENT = 3;

describe('calls of a replaced worker generation', () => {
  let api: ApiOnly;
  let outbox: OutboxStore;
  let commands: WorkerCommandStore;
  const secret = sessionWebhookSecret(WEBHOOK_SECRET, SESSION);
  before(async () => {
    api = await new ApiOnly().start();
    outbox = new OutboxStore(api.redis, api.prefix);
    commands = new WorkerCommandStore(api.redis, api.prefix);
    await api.sessions.create(SESSION, 'admin');
    // What the orchestrator records when it starts generation 3 of this session's worker.
    await api.sessions.setWorkerGeneration(SESSION, CURRENT);
  });
  after(async () => api?.stop());

  const ping = (generation: number | undefined, at: number) => {
    const body = JSON.stringify({
      sessionId: SESSION,
      type: 'PING',
      timestamp: Date.now(),
      eventId: `ev-${randomBytes(6).toString('hex')}`,
      ...(generation !== undefined ? { generation } : {}),
      data: { timestamp: at },
    });
    return api.call('POST', '/api/webhook', body, null, signedHeaders(secret, body, Date.now(), generation));
  };
  const signedPost = (op: string, generation: number | undefined, body = '{}') => {
    const p = `/api/worker/sessions/${SESSION}/${op}`;
    return api.call(
      'POST',
      p,
      body,
      null,
      signedRequestHeaders(secret, 'POST', p, body, Date.now(), undefined, generation),
    );
  };
  const refusals = async () => {
    const res = await api.call('GET', '/metrics', undefined, null, metricsAuth);
    assert.equal(res.status, 200);
    const m = parsePrometheusText(res.text);
    return (route: string) => m.value('wa_stale_generation_refusals_total', { route });
  };

  it('events: an older generation is refused (409 STALE_GENERATION) and records nothing', async () => {
    const stale = await ping(CURRENT - 1, 1111);
    assert.equal(stale.status, 409, stale.text);
    assert.equal(stale.body.error.code, 'STALE_GENERATION');
    assert.equal(stale.body.error.field, WORKER_GENERATION_HEADER);
    assert.equal((await api.sessions.get(SESSION))?.lastPing ?? null, null, 'the stale PING was not recorded');

    assert.equal((await ping(CURRENT, 2222)).status, 202, 'the current generation passes');
    assert.equal((await api.sessions.get(SESSION))?.lastPing, 2222);
    assert.equal((await ping(CURRENT + 1, 3333)).status, 202, 'a newer one too (its start is being recorded)');
    assert.equal((await ping(undefined, 4444)).status, 202, 'a worker from before fencing names none: accepted');
  });

  it('the generation is covered by the signature: a stale worker cannot claim a newer one', async () => {
    const body = JSON.stringify({
      sessionId: SESSION,
      type: 'PING',
      timestamp: Date.now(),
      eventId: `ev-${randomBytes(6).toString('hex')}`,
      data: { timestamp: 5555 },
    });
    const headers = signedHeaders(secret, body, Date.now(), CURRENT - 1);
    const forged = await api.call('POST', '/api/webhook', body, null, { ...headers, [WORKER_GENERATION_HEADER]: '9' });
    assert.equal(forged.status, 401, forged.text);
    assert.equal(forged.body.error.code, 'BAD_SIGNATURE');
    const { [WORKER_GENERATION_HEADER]: _dropped, ...withoutHeader } = headers;
    const stripped = await api.call('POST', '/api/webhook', body, null, withoutHeader);
    assert.equal(stripped.status, 401, 'dropping the header breaks the signature as well');

    const p = `/api/worker/sessions/${SESSION}/outbox/claim`;
    const req = signedRequestHeaders(secret, 'POST', p, '{}', Date.now(), undefined, CURRENT - 1);
    const forgedClaim = await api.call('POST', p, '{}', null, { ...req, [WORKER_GENERATION_HEADER]: String(CURRENT) });
    assert.equal(forgedClaim.status, 401, forgedClaim.text);
  });

  it('outbox: claim, ACK and NACK of an older generation are refused; the message stays queued', async () => {
    await outbox.enqueue(SESSION, { messageId: 'msg_fence1', to: '15550003', text: 'one' });
    for (const op of ['outbox/claim', 'outbox/ack', 'outbox/nack']) {
      const body = op === 'outbox/claim' ? '{}' : JSON.stringify({ messageId: 'msg_fence1', waMessageId: 'W1' });
      const res = await signedPost(
        op,
        CURRENT - 1,
        op === 'outbox/nack' ? '{"messageId":"msg_fence1","reason":"x"}' : body,
      );
      assert.equal(res.status, 409, `${op}: ${res.text}`);
      assert.equal(res.body.error.code, 'STALE_GENERATION');
    }
    assert.equal((await outbox.counts(SESSION)).queued, 1, 'the stale claim took nothing');
    const claim = await signedPost('outbox/claim', CURRENT);
    assert.equal(claim.status, 200, claim.text);
    assert.equal(claim.body.item.messageId, 'msg_fence1');
  });

  it('commands: an older generation fetches nothing', async () => {
    const queued = await commands.enqueue(
      SESSION,
      { kind: 'check', phones: ['15550001234'] },
      Date.now(),
      Date.now() + 60_000,
    );
    const stale = await signedPost('commands/claim', CURRENT - 1);
    assert.equal(stale.status, 409, stale.text);
    assert.equal(stale.body.error.code, 'STALE_GENERATION');
    const current = await signedPost('commands/claim', CURRENT);
    assert.equal(current.status, 200, `the command is still there for the current worker: ${current.text}`);
    assert.equal(current.body.command.id, queued.id);
  });

  it('every refusal is counted, by route', async () => {
    const count = await refusals();
    assert.equal(count('webhook'), 1);
    assert.equal(count('outbox'), 3);
    assert.equal(count('commands'), 1);
  });
});
