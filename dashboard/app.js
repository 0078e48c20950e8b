// WA Orchestrator dashboard: plain ES module, no build step, no third-party code.
// Talks to the API with the operator's key (sessionStorage) and listens to /api/events (SSE) for live changes.

import { LIVE_TYPES, STATUSES } from './vocabulary.js';

const KEY_STORAGE = 'wa-dashboard-api-key';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

const state = {
  key: sessionStorage.getItem(KEY_STORAGE),
  admin: false,
  view: 'sessions',
  sessions: [],
  fetchedAt: 0,
  events: null,
  live: false,
  newSession: null, // { id, connected }
  reloadTimer: null,
};

// ---------------------------------------------------------------------------------------------- helpers

export class ApiFailure extends Error {
  constructor(status, code, message, field, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter; // seconds, from a 429's Retry-After header
  }
  toString() {
    const retry = this.retryAfter !== null ? `; retry after ${this.retryAfter} s` : '';
    return `${this.message} (HTTP ${this.status}${this.code ? ` ${this.code}` : ''}${this.field ? `, field ${this.field}` : ''}${retry})`;
  }
}

async function api(method, path, body, key = state.key) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: {
        'x-api-key': key ?? '',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    throw new ApiFailure(0, 'NETWORK', `cannot reach the API: ${err.message}`);
  }
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const e = json && json.error;
    const retry = res.headers.get('retry-after');
    throw new ApiFailure(
      res.status,
      e?.code ?? '',
      e?.message ?? (text.slice(0, 200) || res.statusText),
      e?.field,
      retry !== null && retry !== '' && !Number.isNaN(Number(retry)) ? Number(retry) : null,
    );
  }
  return json;
}

const dash = '—';

/**
 * Builds an element without innerHTML: attributes are set as attributes and children as text nodes or elements,
 * so API data can never become markup. `el('td', {class: 'mono'}, value)`.
 */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'hidden' || k === 'disabled') node[k] = Boolean(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const badgeEl = (status, cls = status) =>
  el('span', { class: `badge badge-${cls}` }, el('span', { class: 'dot' }), String(status));

function ago(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return dash;
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : dash);
function fmtBytes(n) {
  if (typeof n !== 'number') return dash;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function toast(text, kind = 'info') {
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  el.textContent = text;
  $('#toasts').append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 9000 : 4000);
}

function showError(el, err) {
  if (!err) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  el.hidden = false;
  el.textContent = String(err);
}

function confirmDialog(title, text, okLabel = 'Confirm') {
  const dlg = $('#confirm-dialog');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  dlg.returnValue = '';
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
  });
}

// ---------------------------------------------------------------------------------------------- sign-in

async function signIn(key) {
  // Any authenticated read tells whether the key is valid and whether it is the admin's.
  const stats = await api('GET', '/api/v1/dashboard/stats', undefined, key);
  state.key = key;
  state.admin = stats.proxies !== null;
  sessionStorage.setItem(KEY_STORAGE, key);
  // Demo mode (the simulator instead of WhatsApp): a button lets a simulated phone scan the QR.
  state.demo = await api('GET', '/api/demo', undefined, key).then(
    () => true,
    () => false,
  );
  return stats;
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = null;
  eventsGeneration++;
  state.events?.close();
  state.events = null;
  $('#app').hidden = true;
  $('#signin').hidden = false;
  $('#api-key').value = '';
}

$('#signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = $('#api-key').value.trim();
  const btn = $('#signin-submit');
  btn.disabled = true;
  showError($('#signin-error'), null);
  try {
    await signIn(key);
    start();
  } catch (err) {
    const msg =
      err.status === 401 ? `Invalid API key: the API refused it (${err.message}).` : `Sign-in failed: ${String(err)}`;
    showError($('#signin-error'), msg);
  } finally {
    btn.disabled = false;
  }
});
$('#signout').addEventListener('click', signOut);

// ---------------------------------------------------------------------------------------------- live events

function retryEvents(generation) {
  if (state.key && generation === eventsGeneration) return connectEvents();
}

function setLive(on) {
  state.live = on;
  const el = $('#live');
  el.className = `live ${on ? 'live-on' : 'live-off'}`;
  el.textContent = on ? '● live' : '○ offline';
}

// The stream is opened with a short-lived single-use ticket (POST /api/events/ticket), never the key in the URL.
// A ticket cannot be reused, so on any error the page closes the stream and opens a new one with a new ticket.
let eventsGeneration = 0;
async function connectEvents() {
  state.events?.close();
  state.events = null;
  const generation = ++eventsGeneration;
  let ticket;
  try {
    ({ ticket } = await api('POST', '/api/events/ticket'));
  } catch {
    setLive(false);
    if (state.key && generation === eventsGeneration) setTimeout(() => void retryEvents(generation), 3000);
    return;
  }
  if (generation !== eventsGeneration || !state.key) return;
  const es = new EventSource(`/api/events?ticket=${encodeURIComponent(ticket)}`);
  state.events = es;
  es.addEventListener('ready', () => {
    setLive(true);
    scheduleReload(); // catch up on anything missed while disconnected
  });
  es.addEventListener('error', () => {
    setLive(false);
    es.close();
    setTimeout(() => void retryEvents(generation), 2000);
  });
  for (const type of LIVE_TYPES) {
    es.addEventListener(type, (msg) => {
      let e;
      try {
        e = JSON.parse(msg.data);
      } catch {
        return;
      }
      onLiveEvent(e);
    });
  }
}

function onLiveEvent(e) {
  const ns = state.newSession;
  if (ns && e.sessionId === ns.id) {
    if (e.type === 'qr') void loadQr(ns.id);
    if (e.type === 'pairing_code') void loadPairingCode(ns.id);
    if (e.data?.status) setQrStatus(e.data.status);
    if (e.type === 'connected') markConnected();
  }
  if (e.type === 'error' || e.type === 'reconnect_failed' || e.type === 'health_check_failed') {
    const what = e.data?.error ?? e.data?.lastError ?? e.type;
    toast(`${e.sessionId ?? 'system'}: ${e.type.replace(/_/g, ' ')} — ${what}`, 'error');
  }
  if (e.type === 'failover' && e.data?.phase === 'completed') toast(`${e.sessionId}: failed over to ${e.data.proxy}`);
  if (e.type === 'backup' && state.view === 'backups') void loadBackups();
  if (e.type === 'message' && e.data?.direction === 'in' && e.data.messageId) addInbound(e);
  if (e.type !== 'message') scheduleReload();
}

function scheduleReload() {
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(() => {
    if (state.view === 'sessions') void loadSessions();
    if (state.view === 'proxies') void loadProxies();
  }, 150);
}

// ---------------------------------------------------------------------------------------------- sessions

function sessionQuery() {
  const p = new URLSearchParams();
  const status = $('#f-status').value;
  const search = $('#f-search').value.trim();
  const tenant = $('#f-tenant').value.trim();
  if (status) p.set('status', status);
  if (search) p.set('search', search);
  if (tenant && state.admin) p.set('tenant', tenant);
  const q = p.toString();
  return q ? `?${q}` : '';
}

async function loadStats() {
  try {
    const s = await api('GET', '/api/v1/dashboard/stats');
    const by = s.sessions.byStatus;
    const cards = [
      ['Sessions', s.sessions.total],
      ['Connected', by.connected ?? 0],
      ['Waiting QR', (by.qr_ready ?? 0) + (by.pending ?? 0)],
      ['Degraded', (by.reconnecting ?? 0) + (by.unhealthy ?? 0) + (by.failing_over ?? 0)],
      ['Failed', (by.failed ?? 0) + (by.logged_out ?? 0)],
    ];
    if (s.proxies)
      cards.push(
        ['Proxy slots free', `${s.proxies.slotsFree}`],
        ['Healthy proxies', `${s.proxies.healthy}/${s.proxies.total}`],
      );
    $('#stats').replaceChildren(
      ...cards.map(([label, value]) =>
        el('div', { class: 'card stat' }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, value)),
      ),
    );
  } catch (err) {
    showError($('#sessions-error'), err);
  }
}

async function loadSessions() {
  const err = $('#sessions-error');
  try {
    const body = await api('GET', `/api/v1/dashboard/sessions${sessionQuery()}`);
    const prev = new Map(state.sessions.map((s) => [s.sessionId, s.status]));
    state.sessions = body.sessions;
    state.fetchedAt = Date.now();
    showError(err, null);
    renderSessions(prev);
    fillSessionSelects();
    void loadPacing();
  } catch (e) {
    showError(err, e);
  }
  void loadStats();
}

// Anti-ban pacing per session (trust level, sent in the rolling window / cap), from the anti-ban API when it
// exists; refreshed at most every 10 s. A session without it (or an API without the route) shows '—'.
const pacing = new Map(); // sessionId -> { at, view | null }
async function loadPacing() {
  const now = Date.now();
  const due = state.sessions
    .filter((s) => !['deleted'].includes(s.status))
    .filter((s) => !pacing.has(s.sessionId) || now - pacing.get(s.sessionId).at > 10_000)
    .slice(0, 100);
  if (!due.length) return;
  let changed = false;
  await Promise.all(
    due.map(async (s) => {
      let view = null;
      try {
        view = await api('GET', `/api/anti-ban/sessions/${encodeURIComponent(s.sessionId)}/limits`);
      } catch {
        view = null; // no pacing for this session: the cells show '—'
      }
      pacing.set(s.sessionId, { at: now, view });
      changed = true;
    }),
  );
  if (changed) renderSessions();
}
function trustOf(s) {
  return s.trustLevel ?? pacing.get(s.sessionId)?.view?.limits?.level ?? null;
}
function todayOf(s) {
  const v = pacing.get(s.sessionId)?.view;
  const sent = s.messagesToday ?? v?.sentInWindow ?? null;
  const cap = s.dailyCap ?? v?.limits?.dailyCap ?? null;
  if (sent === null && cap === null) return dash;
  return `${sent ?? dash} / ${cap ?? dash}`;
}

/** Only http(s) links from API data (a `javascript:` URL in an href would run on click). */
const safeUrl = (u) => (typeof u === 'string' && /^https?:\/\//i.test(u) ? u : null);

function renderSessions(prev = new Map()) {
  $('#sessions-empty').hidden = state.sessions.length > 0;
  $('#sessions-body').replaceChildren(
    ...state.sessions.map((s) => {
      const changed = prev.has(s.sessionId) && prev.get(s.sessionId) !== s.status;
      const live = !['logged_out', 'failed', 'stopped', 'deleted'].includes(s.status);
      const action = (name, label, extra = {}) =>
        el('button', { class: 'btn btn-sm', dataset: { action: name, id: s.sessionId }, ...extra }, label);
      const temporal = safeUrl(s.temporalUrl);
      return el(
        'tr',
        { dataset: { session: s.sessionId, status: s.status }, class: changed ? 'flash' : '' },
        el(
          'td',
          {},
          el('b', { class: 'mono' }, s.sessionId),
          state.admin ? el('span', { class: 'sub' }, `tenant ${s.tenant}`) : null,
        ),
        el('td', { class: 'mono' }, s.phone ? `+${s.phone}` : dash),
        el(
          'td',
          { class: 'status-cell' },
          badgeEl(s.status),
          s.lastError ? el('span', { class: 'sub', title: s.lastError }, String(s.lastError).slice(0, 60)) : null,
        ),
        el('td', { class: 'mono' }, s.proxy ?? dash),
        el('td', { class: 'ping-age', dataset: { age: s.lastPingAgeMs ?? '' } }, ago(s.lastPingAgeMs)),
        el(
          'td',
          { class: 'num' },
          s.restarts ?? 0,
          s.watchdogRestarts ? el('span', { class: 'sub' }, `${s.watchdogRestarts} watchdog`) : null,
        ),
        el('td', {}, trustOf(s) ?? dash),
        el('td', { class: 'num' }, todayOf(s)),
        el(
          'td',
          {},
          el(
            'div',
            { class: 'actions' },
            live ? action('restart', 'Restart') : null,
            live ? action('failover', 'Failover') : null,
            action('delete', 'Delete'),
            action('limits', 'Limits', { class: 'btn btn-sm btn-ghost', title: 'Pacing, typing and read settings' }),
            temporal
              ? el(
                  'a',
                  {
                    class: 'btn btn-sm btn-ghost',
                    href: temporal,
                    target: '_blank',
                    rel: 'noopener noreferrer',
                    title: `Workflow ${s.workflowId} in the Temporal Web UI`,
                  },
                  'Temporal ↗',
                )
              : null,
          ),
        ),
      );
    }),
  );
}

// Last ping ages tick every second without refetching.
setInterval(() => {
  const elapsed = Date.now() - state.fetchedAt;
  for (const td of $$('#sessions-body .ping-age')) {
    const age = td.dataset.age;
    if (age !== '') td.textContent = ago(Number(age) + elapsed);
  }
}, 1000);

const ACTIONS = {
  restart: {
    title: 'Restart session?',
    text: (id) => `The worker of ${id} is restarted with the same proxy; it reconnects without a new QR.`,
    run: (id) => api('POST', `/api/sessions/${encodeURIComponent(id)}/restart`),
    done: (id) => `Restart of ${id} requested`,
  },
  failover: {
    title: 'Fail over to another proxy?',
    text: (id) => `${id} moves to another healthy proxy (one IP change for this number).`,
    run: (id) =>
      api('POST', `/api/sessions/${encodeURIComponent(id)}/failover`, { reason: 'requested from the dashboard' }),
    done: (id) => `Failover of ${id} requested`,
  },
  delete: {
    title: 'Delete session?',
    text: (id) =>
      `${id} is stopped, its proxy slot released and its WhatsApp auth files deleted. This cannot be undone.`,
    run: (id) => api('DELETE', `/api/sessions/${encodeURIComponent(id)}`),
    done: (id) => `${id} deleted`,
  },
};

$('#sessions-body').addEventListener('click', async (ev) => {
  const btn = ev.target.closest('button[data-action]');
  if (!btn) return;
  const { action, id } = btn.dataset;
  if (action === 'limits') {
    showView('antiban', id);
    return;
  }
  const a = ACTIONS[action];
  if (!(await confirmDialog(a.title, a.text(id), action === 'delete' ? 'Delete' : 'Confirm'))) return;
  btn.disabled = true;
  try {
    await a.run(id);
    toast(a.done(id));
  } catch (err) {
    toast(`${action} ${id} failed: ${String(err)}`, 'error');
  } finally {
    btn.disabled = false;
    scheduleReload();
  }
});

let filterTimer;
for (const el of [$('#f-search'), $('#f-tenant')])
  el.addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(loadSessions, 250);
  });
$('#f-status').addEventListener('change', loadSessions);
$('#refresh').addEventListener('click', loadSessions);

// ---------------------------------------------------------------------------------------------- new session + QR

function openNewSession() {
  state.newSession = null;
  $('#new-form').reset();
  $('#new-fields').hidden = false;
  $('#qr-panel').hidden = true;
  $('#new-submit').hidden = false;
  $('#new-submit').disabled = false;
  showError($('#new-error'), null);
  $('#new-dialog').showModal();
}

function setQrStatus(status) {
  const el = $('#qr-status');
  el.className = `badge badge-${status}`;
  el.textContent = status;
}

function markConnected() {
  if (!state.newSession) return;
  state.newSession.connected = true;
  setQrStatus('connected');
  $('#qr-img').hidden = true;
  $('#qr-wait').hidden = true;
  $('#qr-done').hidden = false;
  $('#qr-demo-scan').hidden = true;
  $('#qr-code-text').hidden = true;
  $('#qr-code-row').hidden = true;
  $('#qr-hint').textContent = 'The session is connected.';
}

$('#qr-demo-scan').addEventListener('click', async () => {
  if (!state.newSession) return;
  const btn = $('#qr-demo-scan');
  btn.disabled = true;
  try {
    const body = state.newSession.phone ? { phone: state.newSession.phone } : {};
    const res = await api('POST', `/api/demo/sessions/${encodeURIComponent(state.newSession.id)}/scan`, body);
    toast(`Simulated phone +${res.phone} scanned the QR`);
  } catch (err) {
    showError($('#new-error'), err);
  } finally {
    btn.disabled = false;
  }
});

/** "Link with code": a pairing code to type on the phone instead of a QR (WhatsApp → Linked devices → Link with phone number). */
function showPairingCode(code) {
  $('#qr-img').hidden = true;
  $('#qr-wait').hidden = true;
  const el = $('#qr-code-text');
  el.textContent = `${code.code.slice(0, 4)}-${code.code.slice(4)}`;
  el.hidden = false;
  $('#qr-code-row').hidden = true;
  $('#qr-hint').textContent =
    `On the phone +${code.phone}: WhatsApp → Linked devices → Link with phone number, then type this code. It expires at ${new Date(code.expiresAt).toLocaleTimeString()}.`;
}

async function loadPairingCode(id) {
  if (!state.newSession || state.newSession.id !== id || state.newSession.connected) return;
  try {
    const code = await api('GET', `/api/sessions/${encodeURIComponent(id)}/pairing-code`);
    state.newSession.code = true;
    showPairingCode(code);
  } catch (err) {
    if (err.code === 'PAIRING_CODE_NOT_AVAILABLE') return;
    showError($('#new-error'), err);
  }
}

$('#qr-code-get').addEventListener('click', async () => {
  if (!state.newSession) return;
  const btn = $('#qr-code-get');
  btn.disabled = true;
  showError($('#new-error'), null);
  try {
    const phone = $('#qr-code-phone').value.trim();
    const id = state.newSession.id;
    const code = await api('POST', `/api/sessions/${encodeURIComponent(id)}/pairing-code`, { phone });
    state.newSession.code = true;
    showPairingCode(code);
  } catch (err) {
    showError($('#new-error'), err);
  } finally {
    btn.disabled = false;
  }
});

async function loadQr(id) {
  if (!state.newSession || state.newSession.id !== id || state.newSession.connected || state.newSession.code) return;
  try {
    const qr = await api('GET', `/api/sessions/${encodeURIComponent(id)}/qr`);
    if (!state.newSession || state.newSession.id !== id || state.newSession.connected) return;
    const img = $('#qr-img');
    img.src = qr.dataUrl;
    img.dataset.count = String(qr.count);
    img.hidden = false;
    $('#qr-demo-scan').hidden = !state.demo;
    $('#qr-wait').hidden = true;
    setQrStatus(qr.status === 'pending' ? 'qr_ready' : qr.status);
    $('#qr-hint').textContent =
      `Scan with WhatsApp → Linked devices. QR #${qr.count}, generated ${new Date(qr.generatedAt).toLocaleTimeString()}; refreshes as it rotates.`;
  } catch (err) {
    if (err.code === 'QR_NOT_AVAILABLE') return; // not yet, or already connected: events will tell
    showError($('#new-error'), err);
  }
}

$('#new-session').addEventListener('click', openNewSession);
$('#new-cancel').addEventListener('click', () => {
  state.newSession = null;
  $('#new-dialog').close();
});
$('#new-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = {};
  const id = $('#n-id').value.trim();
  const phone = $('#n-phone').value.trim();
  const proxy = $('#n-proxy').value.trim();
  if (id) body.sessionId = id;
  if (phone) body.phone = phone;
  if (proxy) body.proxyOverride = proxy;
  const btn = $('#new-submit');
  btn.disabled = true;
  showError($('#new-error'), null);
  try {
    const res = await api('POST', '/api/sessions/provision', body);
    state.newSession = { id: res.sessionId, connected: false, phone: body.phone ?? null };
    $('#n-proxy').value = ''; // never keep a proxy password on screen
    $('#new-fields').hidden = true;
    btn.hidden = true;
    $('#qr-panel').hidden = false;
    $('#qr-session').textContent = res.sessionId;
    $('#qr-img').hidden = true;
    $('#qr-img').removeAttribute('src');
    $('#qr-done').hidden = true;
    $('#qr-demo-scan').hidden = true;
    $('#qr-wait').hidden = false;
    $('#qr-code-text').hidden = true;
    $('#qr-code-row').hidden = false;
    $('#qr-code-phone').value = body.phone ?? '';
    setQrStatus(res.status);
    if (res.status === 'connected') markConnected();
    else void loadQr(res.sessionId);
    scheduleReload();
  } catch (err) {
    showError($('#new-error'), err);
  } finally {
    btn.disabled = false;
  }
});
// Only when the live stream is down: poll the QR so the operator is never stuck on a stale code.
setInterval(() => {
  if (!state.live && state.newSession && !state.newSession.connected) void loadQr(state.newSession.id);
}, 3000);

// ---------------------------------------------------------------------------------------------- proxies

async function loadProxies() {
  const err = $('#proxies-error');
  try {
    const body = await api('GET', '/api/v1/proxies');
    showError(err, null);
    $('#proxies-empty').hidden = body.proxies.length > 0;
    $('#proxies-body').replaceChildren(
      ...body.proxies.map((p) => {
        const bars = Array.from({ length: p.limit }, (_, i) =>
          el('span', { class: `bar ${i < p.load ? 'on' : ''} ${p.load >= p.limit ? 'full' : ''}` }),
        );
        return el(
          'tr',
          { dataset: { proxy: p.id } },
          el('td', { class: 'mono' }, p.endpoint),
          el('td', {}, badgeEl(p.status)),
          el(
            'td',
            {},
            el('span', { class: 'bars', title: `${p.load} of ${p.limit} slots` }, bars),
            el('b', {}, `${p.load}/${p.limit}`),
          ),
          el('td', { class: 'mono small' }, p.sessions.length ? p.sessions.join(', ') : dash),
          el(
            'td',
            {},
            p.badAt ? [`${fmtTime(p.badAt)} `, el('span', { class: 'sub' }, ago(Date.now() - p.badAt))] : dash,
          ),
        );
      }),
    );
  } catch (e) {
    showError(err, e);
    $('#proxies-body').replaceChildren();
  }
}

// ---------------------------------------------------------------------------------------------- backups

async function loadBackups() {
  const err = $('#backups-error');
  try {
    const body = await api('GET', '/api/v1/backups');
    const list = Array.isArray(body) ? body : (body.backups ?? []);
    showError(err, null);
    $('#backups-empty').hidden = list.length > 0;
    $('#backups-body').replaceChildren(
      ...list.map((b) => {
        const id = b.id ?? b.name ?? b.file;
        const sessions = b.sessions ?? [];
        const names = Array.isArray(sessions) ? sessions.map((s) => (typeof s === 'string' ? s : s.sessionId)) : [];
        const verified =
          b.verified === true
            ? badgeEl('verified', 'OK')
            : b.verified === false
              ? [badgeEl('invalid', 'BAD'), el('span', { class: 'sub' }, b.verificationError ?? '')]
              : dash;
        return el(
          'tr',
          { dataset: { backup: id } },
          el('td', { class: 'mono' }, id),
          el('td', {}, fmtTime(b.createdAt ?? b.date)),
          el('td', { class: 'num' }, fmtBytes(b.size ?? b.sizeBytes)),
          el('td', { class: 'small' }, names.length ? names.join(', ') : dash),
          el('td', {}, verified),
          el(
            'td',
            {},
            el('div', { class: 'actions' }, el('button', { class: 'btn btn-sm', dataset: { restore: id } }, 'Restore')),
          ),
        );
      }),
    );
  } catch (e) {
    showError(err, `Backups unavailable: ${String(e)}`);
    $('#backups-body').replaceChildren();
  }
}

$('#backup-create').addEventListener('click', async () => {
  if (!(await confirmDialog('Create a backup now?', 'Archives every session’s auth files.', 'Create'))) return;
  try {
    toast('Backup running…');
    const r = await api('POST', '/api/v1/backups/create', {});
    toast(`Backup created${r?.backup?.id ? `: ${r.backup.id}` : ''}`);
    await loadBackups();
  } catch (err) {
    showError($('#backups-error'), `Create backup failed: ${String(err)}`);
  }
});

$('#backups-body').addEventListener('click', async (ev) => {
  const btn = ev.target.closest('button[data-restore]');
  if (!btn) return;
  const id = btn.dataset.restore;
  if (
    !(await confirmDialog(
      'Restore this backup?',
      `Sessions are restored from ${id}; their current auth files are replaced.`,
      'Restore',
    ))
  )
    return;
  try {
    await api('POST', `/api/v1/backups/restore/${encodeURIComponent(id)}`, {});
    toast(`Restore of ${id} started`);
  } catch (err) {
    showError($('#backups-error'), `Restore failed: ${String(err)}`);
  }
});

// ---------------------------------------------------------------------------------------------- anti-ban

/** Fills a session <select> from the sessions list (keeps the choice; `preferConnected` picks a connected one). */
function fillSessionSelect(sel, { preferConnected = false, withStatus = false } = {}) {
  const current = sel.value;
  sel.replaceChildren(
    ...state.sessions.map((s) =>
      el('option', { value: s.sessionId }, withStatus ? `${s.sessionId} (${s.status})` : s.sessionId),
    ),
  );
  if (current && state.sessions.some((s) => s.sessionId === current)) sel.value = current;
  else if (preferConnected) {
    const c = state.sessions.find((s) => s.status === 'connected');
    if (c) sel.value = c.sessionId;
  }
}
function fillSessionSelects() {
  fillSessionSelect($('#ab-session'));
  fillSessionSelect($('#read-session'), { preferConnected: true, withStatus: true });
  fillSessionSelect($('#check-session'), { preferConnected: true, withStatus: true });
}

async function loadLimits() {
  const id = $('#ab-session').value;
  const err = $('#ab-error');
  if (!id) return showError(err, 'No session selected.');
  try {
    const v = await api('GET', `/api/anti-ban/sessions/${encodeURIComponent(id)}/limits`);
    if ($('#ab-session').value !== id) return; // the operator picked another session meanwhile
    showError(err, null);
    const l = v.limits ?? {};
    const st = v.stats ?? {};
    const overridden = (...ks) => (l.overrides && ks.some((k) => k in l.overrides) ? ' (override)' : '');
    const typing =
      l.typingMaxMs === undefined
        ? dash
        : l.typingMaxMs === 0
          ? 'off (no typing)'
          : `${l.typingMinMs}–${l.typingMaxMs} ms before each send`;
    const rows = [
      ['Trust level', `${l.level ?? dash}${overridden('level')}`, 'level'],
      [
        'Sent / cap (rolling window)',
        `${v.sentInWindow ?? dash} / ${l.dailyCap ?? dash}${overridden('dailyCap')}`,
        'usage',
      ],
      ['Mean gap', l.gapMs !== undefined ? `${l.gapMs} ms (≈${l.perMinute}/min)${overridden('gapMs')}` : dash, 'gap'],
      ['Jitter', l.jitterPercent !== undefined ? `±${l.jitterPercent}%` : dash, 'jitter'],
      ['Burst threshold', `${l.burstCount ?? dash}${overridden('burstCount')}`, 'burst'],
      [
        'Automatic promotion',
        l.autoPromote === undefined ? dash : l.autoPromote ? 'on' : 'off (pinned)',
        'autoPromote',
      ],
      ['Typing', `${typing}${overridden('typingMinMs', 'typingMaxMs')}`, 'typing'],
      [
        'Auto-read inbound',
        l.autoRead === undefined
          ? dash
          : `${l.autoRead ? `on, after ${l.readDelayMinMs}–${l.readDelayMaxMs} ms` : 'off'}${overridden('autoRead', 'readDelayMinMs', 'readDelayMaxMs')}`,
        'autoRead',
      ],
      ['Queued', v.pending ?? dash, 'pending'],
      ['Slowed by burst until', v.burstUntil ? fmtTime(v.burstUntil) : dash, 'burstUntil'],
      [
        'Handed off / delivered / failed',
        `${st.released ?? dash} / ${st.delivered ?? dash} / ${st.failed ?? dash}`,
        'stats',
      ],
      ['Number lookups', st.lookups ?? dash, 'lookups'],
    ];
    $('#ab-current').dataset.session = id;
    $('#ab-current').replaceChildren(
      ...rows.flatMap(([k, val, key]) => [el('dt', {}, k), el('dd', { dataset: { limit: key } }, val)]),
    );
    // The form shows the effective typing bounds, so the operator edits what is in force.
    for (const k of ['typingMinMs', 'typingMaxMs', 'readDelayMinMs', 'readDelayMaxMs'])
      $(`#ab-${k}`).placeholder = l[k] !== undefined ? `${l[k]}` : 'default';
  } catch (e) {
    $('#ab-current').replaceChildren();
    showError(err, `Limits unavailable: ${String(e)}`);
  }
}

const AB_NUMBERS = [
  'dailyCap',
  'gapMs',
  'burstCount',
  'typingMinMs',
  'typingMaxMs',
  'readDelayMinMs',
  'readDelayMaxMs',
];
const AB_BOOLEANS = ['autoPromote', 'autoRead'];

/** Shows an API error next to the field it names (`typingMaxMs`, …), or clears every field error. */
function showFieldErrors(form, err) {
  for (const e of $$('[data-field-error]', form)) {
    e.hidden = true;
    e.textContent = '';
  }
  for (const i of $$('.field-invalid', form)) i.classList.remove('field-invalid');
  const field = err?.field ? String(err.field).split('.')[0] : null;
  const target = field ? $(`[data-field-error="${CSS.escape(field)}"]`, form) : null;
  if (!target) return false;
  target.hidden = false;
  target.textContent = err.message;
  $(`#ab-${CSS.escape(field)}`)?.classList.add('field-invalid');
  return true;
}

$('#ab-load').addEventListener('click', loadLimits);
$('#ab-session').addEventListener('change', loadLimits);
$('#ab-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = $('#ab-form');
  const id = $('#ab-session').value;
  const err = $('#ab-form-error');
  showFieldErrors(form, null);
  if (!id) return showError(err, 'No session selected.');
  const body = {};
  if ($('#ab-level').value) body.level = $('#ab-level').value;
  for (const k of AB_NUMBERS) {
    const raw = $(`#ab-${k}`).value.trim();
    if (raw !== '') body[k] = Number(raw);
  }
  for (const k of AB_BOOLEANS) if ($(`#ab-${k}`).value) body[k] = $(`#ab-${k}`).value === 'true';
  if (!Object.keys(body).length) return showError(err, 'Nothing to change: fill at least one field.');
  if (!(await confirmDialog('Override limits?', `New anti-ban limits for ${id}: ${JSON.stringify(body)}`, 'Save')))
    return;
  try {
    await api('PUT', `/api/anti-ban/sessions/${encodeURIComponent(id)}/limits`, body);
    showError(err, null);
    pacing.delete(id);
    toast(`Limits of ${id} saved`);
    for (const k of [...AB_NUMBERS, 'level', ...AB_BOOLEANS]) $(`#ab-${k}`).value = '';
    await loadLimits();
  } catch (e) {
    showFieldErrors(form, e);
    showError(err, `Override failed: ${String(e)}`);
  }
});

// ---------------------------------------------------------------------------------------------- inbox (read receipts)

// Inbound messages seen on the live stream since the page opened (a tenant key sees only its sessions' events).
const INBOX_MAX = 200;
const inbox = []; // { key, sessionId, messageId, from, at, read: null | {state, text, title} }

function addInbound(e) {
  const key = `${e.sessionId}\n${e.data.messageId}`;
  if (inbox.some((m) => m.key === key)) return;
  inbox.unshift({
    key,
    sessionId: e.sessionId,
    messageId: String(e.data.messageId),
    from: e.data.from ?? null,
    at: e.at ?? Date.now(),
    read: null,
  });
  inbox.length = Math.min(inbox.length, INBOX_MAX);
  renderInbox();
  updateInboxTab();
}

function updateInboxTab() {
  const unread = inbox.filter((m) => !m.read || m.read.state === 'error').length;
  $('.tab[data-view="inbox"]').textContent = unread ? `Inbox (${unread})` : 'Inbox';
}

function renderInbox() {
  $('#inbox-empty').hidden = inbox.length > 0;
  $('#inbox-body').replaceChildren(
    ...inbox.map((m) => {
      const read = m.read;
      const done = read?.state === 'queued' || read?.state === 'sending';
      return el(
        'tr',
        { dataset: { session: m.sessionId, message: m.messageId, read: read?.state ?? 'unread' } },
        el('td', {}, fmtTime(m.at)),
        el('td', { class: 'mono' }, m.sessionId),
        el('td', { class: 'mono' }, m.from ?? dash),
        el('td', { class: 'mono small' }, m.messageId),
        el(
          'td',
          { class: 'read-cell' },
          read
            ? read.state === 'error'
              ? el('span', { class: 'field-error' }, read.text)
              : el('span', { title: read.title ?? '' }, read.text)
            : el('span', { class: 'muted' }, 'unread'),
        ),
        el(
          'td',
          {},
          el(
            'button',
            { class: 'btn btn-sm', dataset: { markRead: m.key }, disabled: done },
            done ? 'Marked' : 'Mark read',
          ),
        ),
      );
    }),
  );
}

/** POST /api/sessions/:id/read for ids of one session; returns the API's answer (202: the receipt is queued). */
function markRead(sessionId, messageIds) {
  return api('POST', `/api/sessions/${encodeURIComponent(sessionId)}/read`, { messageIds });
}

$('#inbox-body').addEventListener('click', async (ev) => {
  const btn = ev.target.closest('button[data-mark-read]');
  if (!btn) return;
  const m = inbox.find((x) => x.key === btn.dataset.markRead);
  if (!m) return;
  m.read = { state: 'sending', text: 'sending…' };
  renderInbox();
  try {
    const r = await markRead(m.sessionId, [m.messageId]);
    m.read = {
      state: 'queued',
      text: 'read receipt queued',
      title: `command ${r.commandId}: the worker sends the receipt`,
    };
    toast(`Read receipt for ${m.messageId} queued`);
  } catch (err) {
    m.read = { state: 'error', text: String(err) };
  }
  renderInbox();
  updateInboxTab();
});
$('#inbox-clear').addEventListener('click', () => {
  inbox.length = 0;
  renderInbox();
  updateInboxTab();
});

$('#read-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const sessionId = $('#read-session').value;
  const ids = $('#read-ids')
    .value.split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);
  const err = $('#read-error');
  const out = $('#read-result');
  showError(err, null);
  out.hidden = true;
  if (!sessionId) return showError(err, 'No session selected.');
  if (!ids.length) return showError(err, 'Enter at least one message id.');
  const btn = $('#read-submit');
  btn.disabled = true;
  try {
    const r = await markRead(sessionId, ids);
    out.hidden = false;
    out.textContent = `Read receipts queued for ${r.messageIds.length} message(s) of ${r.sessionId} (command ${r.commandId}).`;
    for (const m of inbox)
      if (m.sessionId === sessionId && r.messageIds.includes(m.messageId))
        m.read = { state: 'queued', text: 'read receipt queued', title: `command ${r.commandId}` };
    renderInbox();
    updateInboxTab();
  } catch (e) {
    showError(err, String(e));
  } finally {
    btn.disabled = false;
  }
});

// ---------------------------------------------------------------------------------------------- number check

const CHECK_MAX = 50;

$('#check-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const sessionId = $('#check-session').value;
  const err = $('#check-error');
  showError(err, null);
  // One number per line; spaces, dashes, dots and brackets are typing aids, the API wants digits (+ optional '+').
  const phones = $('#check-phones')
    .value.split('\n')
    .map((line) => line.replace(/[\s\-().]/g, ''))
    .filter(Boolean);
  if (!sessionId) return showError(err, 'No session selected.');
  if (phones.length < 1) return showError(err, 'Enter at least one number (one per line).');
  if (phones.length > CHECK_MAX)
    return showError(err, `At most ${CHECK_MAX} numbers per check (${phones.length} given).`);
  const btn = $('#check-submit');
  btn.disabled = true;
  try {
    const r = await api('POST', '/api/contacts/check', { sessionId, phones });
    renderCheck(r);
  } catch (e) {
    // A bad number is named by its index (phones.3): say which line.
    const m = /^phones\.(\d+)$/.exec(e.field ?? '');
    const line = m ? `Number ${Number(m[1]) + 1} (${phones[Number(m[1])]}): ` : '';
    const retry = e.status === 429 && e.retryAfter !== null ? `Rate limited: retry after ${e.retryAfter} s. ` : '';
    showError(err, `${retry}${line}${String(e)}`);
  } finally {
    btn.disabled = false;
  }
});

function renderCheck(r) {
  const yesNo = (b) => (b ? 'yes' : 'no');
  $('#check-empty').hidden = r.results.length > 0;
  $('#check-table').dataset.session = r.sessionId;
  $('#check-body').replaceChildren(
    ...r.results.map((x) =>
      el(
        'tr',
        { dataset: { phone: x.phone, onWhatsapp: String(x.onWhatsApp), cached: String(x.cached) } },
        el('td', { class: 'mono' }, `+${x.phone}`),
        el('td', { class: 'on-wa' }, badgeEl(yesNo(x.onWhatsApp), x.onWhatsApp ? 'OK' : 'BAD')),
        el('td', { class: 'mono small' }, x.jid ?? dash),
        el('td', { class: 'mono small' }, x.lid ?? dash),
        el('td', { class: 'cached' }, x.cached ? 'cached' : 'asked WhatsApp'),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------- views

const VIEWS = ['sessions', 'proxies', 'backups', 'antiban', 'inbox', 'numbers'];
function showView(view, sessionId) {
  state.view = view;
  for (const t of $$('.tab')) t.classList.toggle('active', t.dataset.view === view);
  for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
  if (view === 'sessions') void loadSessions();
  if (view === 'proxies') void loadProxies();
  if (view === 'backups') void loadBackups();
  if (view === 'antiban') {
    fillSessionSelects();
    if (sessionId) $('#ab-session').value = sessionId;
    if ($('#ab-session').value) void loadLimits();
  }
  if (view === 'inbox') renderInbox();
  // Both need the session list (its statuses may have moved since it was drawn).
  if (view === 'inbox' || view === 'numbers') void loadSessions();
}
for (const t of $$('.tab')) t.addEventListener('click', () => showView(t.dataset.view));
for (const b of $$('[data-reload]'))
  b.addEventListener('click', () => (b.dataset.reload === 'proxies' ? loadProxies() : loadBackups()));

function start() {
  $('#signin').hidden = true;
  $('#app').hidden = false;
  $('#whoami').textContent = state.admin ? 'admin' : 'tenant key';
  // Overrides are the admin's (a tenant raising its own caps would defeat them): a tenant key reads only.
  $('#ab-admin-only').hidden = state.admin;
  $('#ab-save').disabled = !state.admin;
  for (const node of $$('.admin-only')) node.hidden = !state.admin;
  const sel = $('#f-status');
  if (sel.options.length === 1) for (const s of STATUSES) sel.append(el('option', { value: s }, s));
  void connectEvents();
  showView('sessions');
}

// Fallback refresh, so the page stays honest even if an event was missed.
setInterval(() => {
  if (state.key && !$('#app').hidden && state.view === 'sessions') void loadSessions();
}, 15_000);

(async function boot() {
  if (state.key) {
    try {
      await signIn(state.key);
      return start();
    } catch (err) {
      showError($('#signin-error'), err.status === 401 ? 'Your saved API key is no longer valid.' : String(err));
      sessionStorage.removeItem(KEY_STORAGE);
      state.key = null;
    }
  }
  $('#signin').hidden = false;
})();
