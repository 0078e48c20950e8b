/**
 * The dashboard's issue-15 views in a real browser (Chromium via playwright-core) against the real stack (API,
 * orchestrator, Temporal, Redis, SOCKS5 proxy, Baileys 7 worker, simulator): typing / pacing limits per session,
 * "mark read" of inbound messages, and the number check — each checked where it lands (the API's limits, the
 * simulator's read receipts and contact registry).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { connectedSession, terminateDispatchers } from './helpers/messaging.js';
import { API_KEY, ROOT, Stack, TENANT_KEY, waitFor } from './helpers/stack.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'test-results');
const PER_MINUTE = 3;

describe('dashboard: typing limits, mark read, number check (real browser, real stack)', () => {
  let stack: Stack;
  let browser: BrowserContext;
  let page: Page;
  let userDataDir: string;
  const pageErrors: string[] = [];
  const S = { id: 'dashhl1', phone: '15550017001' };
  const PRESENT = '15557017101';
  const ABSENT = '15557017102';

  before(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} missing: apt-get install -y chromium (scripts/services.sh)`);
    stack = await new Stack({
      proxies: 1,
      extraEnv: {
        CONTACT_CHECK_PER_MINUTE: String(PER_MINUTE),
        CONTACT_CHECK_TIMEOUT_MS: '10000',
        WORKER_ENV_OUTBOX_POLL_MS: '50',
        ANTIBAN_TYPING: 'true',
        ANTIBAN_COLD_TYPING_MIN_MS: '300',
        ANTIBAN_COLD_TYPING_MAX_MS: '900',
      },
    }).start();
    await connectedSession(stack, S.id, S.phone);
    stack.sim.setOnWhatsApp(ABSENT, false);
    userDataDir = mkdtempSync(path.join(os.tmpdir(), 'wa-chromium-'));
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1440, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    await signIn(API_KEY);
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    if (stack) await terminateDispatchers(stack, [S.id]);
    await stack?.stop();
  });

  async function signIn(key: string, expectSession = S.id) {
    // A fresh page without a saved key (sessionStorage survives a reload of the same tab).
    if (page.url().startsWith(stack.apiUrl)) await page.evaluate(() => sessionStorage.clear());
    await page.goto(`${stack.apiUrl}/dashboard/`);
    await page.locator('#signin').waitFor({ state: 'visible' });
    await page.fill('#api-key', key);
    await page.click('#signin-submit');
    await page.locator('#app').waitFor({ state: 'visible' });
    await page.locator('#live.live-on').waitFor(); // the live stream is subscribed
    await page.locator(`tr[data-session="${expectSession}"]`).waitFor({ timeout: 20_000 });
  }

  const limits = async () => {
    const r = await stack.call('GET', `/api/anti-ban/sessions/${S.id}/limits`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as { limits: Record<string, unknown> & { overrides: Record<string, unknown> } };
  };

  it('typing bounds: shown per session, changed in the form (read back through the API); a bad one is named next to its field', async () => {
    const start = await limits();
    assert.deepEqual([start.limits.typingMinMs, start.limits.typingMaxMs], [300, 900], "the cold level's bounds");
    // From the session's row to its limits.
    await page.click(`tr[data-session="${S.id}"] button[data-action="limits"]`);
    await page.locator('#view-antiban').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#ab-session').inputValue(), S.id);
    const typing = page.locator('#ab-current dd[data-limit="typing"]');
    await typing.waitFor();
    assert.equal(await typing.innerText(), '300–900 ms before each send', 'the effective bounds from GET …/limits');
    assert.match(await page.locator('#ab-current dd[data-limit="usage"]').innerText(), /^0 \/ \d+/);
    assert.match(await page.locator('#ab-current dd[data-limit="level"]').innerText(), /^cold/);

    // Out of range: the API's 400 appears next to the field it names; nothing changes.
    await page.fill('#ab-typingMaxMs', '31000');
    await page.click('#ab-save');
    await page.click('#confirm-ok');
    const fieldError = page.locator('[data-field-error="typingMaxMs"]');
    await fieldError.waitFor({ state: 'visible' });
    assert.match(await fieldError.innerText(), /typingMaxMs/);
    assert.match(await page.locator('#ab-form-error').innerText(), /HTTP 400 VALIDATION_ERROR, field typingMaxMs/);
    assert.ok(await page.locator('#ab-typingMaxMs.field-invalid').isVisible(), 'the field is marked');
    assert.equal(await page.locator('[data-field-error="typingMinMs"]').isVisible(), false, 'only that field');
    assert.equal((await limits()).limits.typingMaxMs, start.limits.typingMaxMs, 'nothing written');

    await page.fill('#ab-typingMinMs', '1200');
    await page.fill('#ab-typingMaxMs', '1400');
    await page.selectOption('#ab-level', 'warm');
    await page.selectOption('#ab-autoPromote', 'false');
    await page.click('#ab-save');
    assert.match(await page.locator('#confirm-text').innerText(), /"typingMinMs":1200,"typingMaxMs":1400/);
    await page.click('#confirm-ok');
    await page.locator('.toast', { hasText: `Limits of ${S.id} saved` }).waitFor();
    assert.equal(await fieldError.isVisible(), false, 'the field error is cleared');
    const now = await limits();
    assert.equal(now.limits.typingMinMs, 1200);
    assert.equal(now.limits.typingMaxMs, 1400);
    assert.equal(now.limits.level, 'warm');
    assert.equal(now.limits.autoPromote, false);
    assert.deepEqual(now.limits.overrides, { typingMinMs: 1200, typingMaxMs: 1400, level: 'warm', autoPromote: false });
    await waitFor('the page to show the new bounds', async () =>
      /^1200–1400 ms before each send \(override\)$/.test(await typing.innerText()),
    );
    assert.match(await page.locator('#ab-current dd[data-limit="autoPromote"]').innerText(), /off \(pinned\)/);
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-typing.png') });
  });

  it('an inbound message appears live in the inbox; "Mark read" makes the worker send the read receipt', async () => {
    await page.click('.tab[data-view="inbox"]');
    await page.locator('#view-inbox').waitFor({ state: 'visible' });
    const contact = '15557017201';
    const id = await stack.sim.sendInbound(S.phone, contact, `hello dashboard ${stack.id}`);
    const row = page.locator(`#inbox-body tr[data-message="${id}"]`);
    await row.waitFor({ timeout: 20_000 });
    assert.equal(await row.getAttribute('data-session'), S.id);
    assert.equal(await row.getAttribute('data-read'), 'unread');
    assert.match(await row.innerText(), new RegExp(contact));
    assert.match(await page.locator('.tab[data-view="inbox"]').innerText(), /Inbox \(1\)/);
    assert.equal(
      stack.sim.readReceipts(S.phone).filter((r) => r.messageIds.includes(id)).length,
      0,
      'no receipt before the click (auto-read is off)',
    );

    await row.locator('button[data-mark-read]').click();
    await page.locator(`#inbox-body tr[data-message="${id}"][data-read="queued"]`).waitFor();
    assert.match(await page.locator(`#inbox-body tr[data-message="${id}"] .read-cell`).innerText(), /queued/);
    const receipt = await waitFor(
      'the read receipt at the simulator',
      () => stack.sim.readReceipts(S.phone).find((r) => r.messageIds.includes(id)),
      20_000,
    );
    assert.equal(receipt.contact, contact);
    assert.equal(receipt.type, 'read');

    // By id, for a message the page did not see: an unknown id is refused with the API's words.
    await page.selectOption('#read-session', S.id);
    await page.fill('#read-ids', 'NOTANINBOUNDID');
    await page.click('#read-submit');
    const err = page.locator('#read-error');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.innerText(), /HTTP 400 UNKNOWN_MESSAGE, field messageIds/);
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-inbox.png') });
  });

  it('check numbers: a registered and an unregistered number answered in the table, then from the cache; 429 shows Retry-After', async () => {
    await page.click('.tab[data-view="numbers"]');
    await page.locator('#view-numbers').waitFor({ state: 'visible' });
    await page.selectOption('#check-session', S.id);
    await page.fill('#check-phones', `+${PRESENT}\n\n${ABSENT.slice(0, 4)} ${ABSENT.slice(4)}\n`);
    await page.click('#check-submit');
    const present = page.locator(`#check-body tr[data-phone="${PRESENT}"]`);
    const absent = page.locator(`#check-body tr[data-phone="${ABSENT}"]`);
    await present.waitFor({ timeout: 20_000 });
    assert.equal(await page.locator('#check-body tr').count(), 2);
    assert.equal(await present.getAttribute('data-on-whatsapp'), 'true');
    assert.equal(await absent.getAttribute('data-on-whatsapp'), 'false');
    const cells = async (row: typeof present) => (await row.locator('td').allInnerTexts()).map((t) => t.trim());
    const [, onWa, jid, lid, cached] = await cells(present);
    assert.equal(onWa, 'yes');
    assert.equal(jid, `${PRESENT}@s.whatsapp.net`);
    assert.match(lid!, /^\d+@lid$/);
    assert.equal(cached, 'asked WhatsApp');
    assert.deepEqual((await cells(absent)).slice(1), ['no', '—', '—', 'asked WhatsApp']);
    assert.equal(stack.sim.lookups(S.phone).length, 1, 'one lookup at WhatsApp');

    // Again: from the cache, nothing sent.
    await page.click('#check-submit');
    await page.locator(`#check-body tr[data-phone="${PRESENT}"][data-cached="true"]`).waitFor();
    assert.equal(await absent.getAttribute('data-cached'), 'true');
    assert.equal(stack.sim.lookups(S.phone).length, 1, 'the second check did not reach WhatsApp');

    // Over the session's lookups per minute (2 of 3 used): 429, shown with its Retry-After.
    await page.fill('#check-phones', '15557017301\n15557017302');
    await page.click('#check-submit');
    const err = page.locator('#check-error');
    await err.waitFor({ state: 'visible' });
    const text = await err.innerText();
    assert.match(text, /^Rate limited: retry after \d+ s\./);
    assert.match(text, /HTTP 429 RATE_LIMITED, field phones; retry after \d+ s/);
    assert.equal(stack.sim.lookups(S.phone).length, 1, 'nothing sent');

    // A malformed number: the API names it, the page says which one.
    await page.fill('#check-phones', `${PRESENT}\n12ab`);
    await page.click('#check-submit');
    await waitFor('the bad number named', async () => /Number 2 \(12ab\)/.test(await err.innerText()));
    assert.match(await err.innerText(), /field phones\.1/);
    // Markup in the input stays text on the page (nothing rendered through innerHTML).
    await page.fill('#check-phones', '<b>x</b>');
    await page.click('#check-submit');
    await waitFor('the markup echoed as text', async () => (await err.innerText()).includes('(<b>x</b>)'));
    assert.equal(await page.locator('#check-error b').count(), 0);
    await page.screenshot({ path: path.join(SHOTS, 'dashboard-numbers.png') });
    assert.deepEqual(pageErrors, [], 'no JavaScript errors in the page');
  });

  it("a tenant key sees only its sessions in these views and cannot save overrides (another tenant's session is absent)", async () => {
    const own = await stack.call('POST', '/api/sessions/provision', { sessionId: 'dashhl-tenant' }, TENANT_KEY);
    assert.equal(own.status, 201, JSON.stringify(own.body));
    await signIn(TENANT_KEY, 'dashhl-tenant');
    assert.equal(await page.locator('#whoami').innerText(), 'tenant key');
    await page.click('.tab[data-view="numbers"]');
    await page.locator('#check-session option[value="dashhl-tenant"]').waitFor({ state: 'attached' });
    assert.equal(await page.locator(`#check-session option[value="${S.id}"]`).count(), 0);
    await page.click('.tab[data-view="antiban"]');
    await page.locator('#ab-session option[value="dashhl-tenant"]').waitFor({ state: 'attached' });
    assert.equal(await page.locator(`#ab-session option[value="${S.id}"]`).count(), 0);
    assert.equal(await page.locator(`#sessions-body tr[data-session="${S.id}"]`).count(), 0);
    assert.equal(await page.locator('#ab-save').isDisabled(), true);
    assert.equal(await page.locator('#ab-admin-only').isVisible(), true);
  });
});
