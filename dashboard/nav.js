// The tabs: one view shown at a time, each loaded when shown.

import { $, $$, state } from './lib.js';
import { loadSessions, fillSessionSelects } from './views/sessions.js';
import { loadProxies } from './views/proxies.js';
import { loadBackups } from './views/backups.js';
import { loadLimits } from './views/antiban.js';
import { renderInbox } from './views/inbox.js';

const VIEWS = ['sessions', 'proxies', 'backups', 'antiban', 'inbox', 'numbers'];
export function showView(view, sessionId) {
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
