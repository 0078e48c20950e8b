// WA Orchestrator dashboard: plain ES modules, no build step, no third-party code. This is the shell (sign-in, the
// live stream, the tabs); each view is a module in views/. The status list comes from the API (vocabulary.js).

import { STATUSES } from './vocabulary.js';
import { KEY_STORAGE, $, $$, state, api, el, showError } from './lib.js';
import { connectEvents, disconnectEvents } from './live.js';
import { showView } from './nav.js';
import { loadSessions } from './views/sessions.js';
import './views/new-session.js';
import './views/numbers.js';

export { ApiFailure } from './lib.js';

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
  disconnectEvents();
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
