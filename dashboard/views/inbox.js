// Dashboard view: inbox of live inbound messages, and read receipts.
// A plain ES module (no build step); the page shell is ../app.js.

import { $, api, dash, el, fmtTime, toast, showError } from '../lib.js';

// Inbound messages seen on the live stream since the page opened (a tenant key sees only its sessions' events).
const INBOX_MAX = 200;
const inbox = []; // { key, sessionId, messageId, from, at, read: null | {state, text, title} }

export function addInbound(e) {
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

export function renderInbox() {
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
