// Dashboard view: anti-ban limits of one session, and the admin override form.
// A plain ES module (no build step); the page shell is ../app.js.

import { $, $$, api, dash, el, fmtTime, toast, showError, confirmDialog } from '../lib.js';
import { forgetPacing } from './sessions.js';

export async function loadLimits() {
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
    forgetPacing(id);
    toast(`Limits of ${id} saved`);
    for (const k of [...AB_NUMBERS, 'level', ...AB_BOOLEANS]) $(`#ab-${k}`).value = '';
    await loadLimits();
  } catch (e) {
    showFieldErrors(form, e);
    showError(err, `Override failed: ${String(e)}`);
  }
});
