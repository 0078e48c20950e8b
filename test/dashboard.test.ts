import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { SESSION_STATUSES } from '../common/session-status.js';
import { parsePrometheusText, type PromText } from './helpers/prom-text.js';
import { API_KEY, metricsAuth, ROOT, Stack, waitFor } from './helpers/stack.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = path.join(ROOT, 'test-results', 'dashboard.png');
const PHONE = '15550007001';

async function metrics(stack: Stack): Promise<PromText> {
  const res = await fetch(`${stack.apiUrl}/metrics`, { headers: metricsAuth });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

describe('dashboard in a real browser (Chromium via playwright-core) against the real stack', () => {
  let stack: Stack;
  let browser: BrowserContext;
  let page: Page;
  let userDataDir: string;
  let backupsDir: string;
  const pageErrors: string[] = [];

  before(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} missing: apt-get install -y chromium (scripts/services.sh)`);
    backupsDir = mkdtempSync(path.join(os.tmpdir(), 'wa-dash-backups-'));
    stack = await new Stack({ proxies: 2, extraEnv: { BACKUPS_DIR: backupsDir } }).start();
    userDataDir = mkdtempSync(path.join(os.tmpdir(), 'wa-chromium-'));
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1440, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('pageerror', (err) => pageErrors.push(String(err)));
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    if (backupsDir) rmSync(backupsDir, { recursive: true, force: true });
    await stack?.stop();
  });

  it('the page loads without a key, asks for one, and a wrong key shows a clear error', async () => {
    const res = await page.goto(`${stack.apiUrl}/`);
    assert.equal(res?.status(), 200);
    assert.match(page.url(), /\/dashboard\/$/);
    await page.locator('#signin').waitFor({ state: 'visible' });
    await page.fill('#api-key', 'not-the-right-key-0000000000');
    await page.click('#signin-submit');
    const error = page.locator('#signin-error');
    await error.waitFor({ state: 'visible' });
    assert.match(await error.innerText(), /Invalid API key.*invalid API key/);
    assert.equal(await page.locator('#app').isVisible(), false);
  });

  it('sign in → new session → live QR image → scan → row turns connected without reload → restart', async () => {
    const before = await metrics(stack);
    await page.fill('#api-key', API_KEY);
    await page.click('#signin-submit');
    await page.locator('#app').waitFor({ state: 'visible' });
    await page.locator('#live.live-on').waitFor({ timeout: 10_000 }); // SSE stream subscribed
    // The status filter lists the product's states as the API defines them (not a copy in the page).
    const filter = await page
      .locator('#f-status option')
      .evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    assert.deepEqual(
      filter.filter(Boolean),
      SESSION_STATUSES.filter((s) => s !== 'deleted'),
    );
    // A marker that a page reload would erase.
    await page.evaluate(() => ((globalThis as unknown as { __noReload: number }).__noReload = 42));

    await page.click('#new-session');
    await page.fill('#n-id', 'dash1');
    await page.fill('#n-phone', PHONE);
    await page.click('#new-submit');
    const img = page.locator('#qr-img');
    await img.waitFor({ state: 'visible', timeout: 30_000 });
    // The image is the QR the API holds right now (same data URL), i.e. the one the worker generated.
    const currentQr = () =>
      waitFor('the image to show the current QR', async () => {
        const api = await stack.call('GET', '/api/sessions/dash1/qr');
        const src = await img.getAttribute('src');
        return api.status === 200 && src === api.body.dataUrl ? (api.body.qr as string) : null;
      });
    const firstQr = await currentQr();
    assert.match((await img.getAttribute('src')) ?? '', /^data:image\/png;base64,/);
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-qr.png') });
    // The QR changes (a fresh worker shows a new one): the image follows through the live `qr` event.
    const r = await stack.call('POST', '/api/sessions/dash1/restart');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const qr = await waitFor('a new QR in the image', async () => {
      const q = await currentQr();
      return q !== firstQr ? q : null;
    });
    const rowStatus = () => page.locator('tr[data-session="dash1"]').getAttribute('data-status');
    const early = await rowStatus();
    assert.ok(['pending', 'qr_ready', 'reconnecting'].includes(early ?? ''), `row before the scan: ${early}`);

    await stack.sim.scan(qr, PHONE);
    await page.locator('#qr-done').waitFor({ state: 'visible', timeout: 30_000 });
    assert.equal(await page.locator('#qr-status').innerText(), 'connected');
    await page.locator('tr[data-session="dash1"][data-status="connected"]').waitFor({ timeout: 30_000 });
    const rowText = await page.locator('tr[data-session="dash1"]').innerText();
    assert.match(rowText, new RegExp(`\\+${PHONE}`));
    assert.match(rowText, /127\.0\.0\.\d+:\d+/, 'proxy as host:port');
    assert.doesNotMatch(rowText, /pw-/, 'no proxy password on the page');
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __noReload?: number }).__noReload), 42);
    const link = page.locator('tr[data-session="dash1"] a', { hasText: 'Temporal' });
    assert.match(
      (await link.getAttribute('href')) ?? '',
      /\/namespaces\/default\/workflows\/e2e-[0-9a-f]+%3Asession%3Adash1$/,
    );
    await page.click('#new-cancel');

    // Restart with its confirmation dialog: Cancel does nothing, Confirm restarts.
    const restartsBefore = (await stack.status('dash1')).restarts as number;
    await page.click('tr[data-session="dash1"] button[data-action="restart"]');
    await page.locator('#confirm-dialog[open]').waitFor();
    assert.match(await page.locator('#confirm-title').innerText(), /Restart session/);
    await page.click('#confirm-cancel');
    await page.click('tr[data-session="dash1"] button[data-action="restart"]');
    await page.click('#confirm-ok');
    await page.locator('.toast', { hasText: 'Restart of dash1 requested' }).waitFor({ timeout: 30_000 });
    const s = await stack.waitForStatus('dash1', 'connected');
    assert.equal(s.restarts, restartsBefore + 1, 'exactly one restart from the button');
    await waitFor(
      'the row to show the restart',
      async () =>
        (await page.locator('tr[data-session="dash1"][data-status="connected"] td.num').first().innerText()).startsWith(
          String(restartsBefore + 1),
        ),
      15_000,
    );
    assert.equal(await page.evaluate(() => (globalThis as unknown as { __noReload?: number }).__noReload), 42);

    // Metrics moved with these actions (read from Redis at scrape time).
    const m = await waitFor('metrics to reflect the actions', async () => {
      const now = await metrics(stack);
      return now.value('wa_session_restarts_total', { cause: 'operator' }) >= 1 ? now : null;
    });
    assert.ok(m.value('wa_qr_codes_generated_total') >= before.value('wa_qr_codes_generated_total') + 1);
    assert.ok(m.value('wa_connects_total') >= before.value('wa_connects_total') + 1);
    assert.equal(m.value('wa_sessions', { status: 'connected' }), 1);
    assert.equal(m.value('wa_proxy_slots', { state: 'used' }), 1);
    assert.equal(m.value('wa_proxies', { status: 'OK' }), 2);
    assert.ok(m.value('wa_webhook_duration_seconds_count') > before.value('wa_webhook_duration_seconds_count'));
    assert.ok(
      m.value('wa_api_request_duration_seconds_count', { route: '/api/sessions/provision', status: '201' }) >= 1,
    );
    assert.equal(m.value('wa_temporal_up'), 1);
    assert.ok(m.value('wa_temporal_task_queue_pollers', { type: 'workflow' }) >= 1, 'orchestrator polls');
    assert.equal(m.value('wa_redis_up'), 1);
    assert.equal(m.types.get('wa_connects_total'), 'counter');
    assert.equal(m.types.get('wa_api_request_duration_seconds'), 'histogram');

    // Proxies view: load bars.
    await page.click('.tab[data-view="proxies"]');
    await page.locator('#proxies-body tr').first().waitFor();
    assert.equal(await page.locator('#proxies-body tr').count(), 2);
    assert.equal(await page.locator('#proxies-body .bar.on').count(), 1, 'one slot in use, shown as one bar');
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-proxies.png') });
    await page.click('.tab[data-view="sessions"]');
    await page.locator('tr[data-session="dash1"][data-status="connected"]').waitFor();

    // Backups: create one, restore it; the restore's outcome (read from GET …/restore) is shown when it ends.
    await page.click('.tab[data-view="backups"]');
    await page.locator('#backups-empty').waitFor();
    await page.click('#backup-create');
    await page.click('#confirm-ok');
    await page.locator('#backups-body tr').first().waitFor({ timeout: 60_000 });
    assert.match(await page.locator('#backups-body tr').first().innerText(), /dash1/);
    await page.locator('#backups-body button[data-restore]').first().click();
    await page.click('#confirm-ok');
    await page
      .locator('.toast', { hasText: /Restore of \S+ done: 1 session\(s\) restored/ })
      .waitFor({ timeout: 120_000 });
    assert.equal(await page.locator('#backups-error').isVisible(), false);
    // Anti-ban view: its data, or the API's error in plain sight (never a silent blank).
    await page.click('.tab[data-view="antiban"]');
    await waitFor(
      'limits shown or an error shown',
      async () => (await page.locator('#ab-current dt').count()) > 0 || (await page.locator('#ab-error').isVisible()),
      15_000,
    );
    if (await page.locator('#ab-error').isVisible())
      assert.match(await page.locator('#ab-error').innerText(), /HTTP \d{3}/);
    else assert.match(await page.locator('#ab-current').innerText(), /Trust level/);
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-antiban.png') });
    await page.click('.tab[data-view="backups"]');
    await page.waitForTimeout(500);
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-backups.png') });
    await page.click('.tab[data-view="sessions"]');
    await page.locator('tr[data-session="dash1"][data-status="connected"]').waitFor();

    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(statSync(SCREENSHOT).size > 10_000, 'screenshot written');
    assert.deepEqual(pageErrors, [], 'no JavaScript errors in the page');
  });

  it('API errors are shown, not swallowed: a bad phone in the form names the field', async () => {
    await page.click('#new-session');
    await page.fill('#n-phone', '12ab');
    await page.click('#new-submit');
    const err = page.locator('#new-error');
    await err.waitFor({ state: 'visible' });
    assert.match(await err.innerText(), /phone.*HTTP 400 VALIDATION_ERROR, field phone/);
    await page.click('#new-cancel');
  });
});
