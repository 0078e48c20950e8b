// Dashboard view: sessions (table, stats, actions, filters), and the session pickers of other views.
// A plain ES module (no build step); the page shell is ../app.js.

import { $, $$, state, api, dash, el, badgeEl, ago, toast, showError, confirmDialog, safeUrl } from '../lib.js';
import { scheduleReload } from '../live.js';
import { showView } from '../nav.js';

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

export async function loadSessions() {
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
      let view;
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
export function fillSessionSelects() {
  fillSessionSelect($('#ab-session'));
  fillSessionSelect($('#read-session'), { preferConnected: true, withStatus: true });
  fillSessionSelect($('#check-session'), { preferConnected: true, withStatus: true });
}

/** A session's pacing is read again on the next render (its limits were just changed). */
export function forgetPacing(sessionId) {
  pacing.delete(sessionId);
}
