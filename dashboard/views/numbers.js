// Dashboard view: number check (is this number on WhatsApp?).
// A plain ES module (no build step); the page shell is ../app.js.

import { $, api, dash, el, badgeEl, showError } from '../lib.js';

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
