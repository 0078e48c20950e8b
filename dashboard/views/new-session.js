// Dashboard view: new session, with its QR or pairing code until it connects.
// A plain ES module (no build step); the page shell is ../app.js.

import { $, state, api, toast, showError } from '../lib.js';
import { scheduleReload } from '../live.js';

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

export function setQrStatus(status) {
  const el = $('#qr-status');
  el.className = `badge badge-${status}`;
  el.textContent = status;
}

export function markConnected() {
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

export async function loadPairingCode(id) {
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

export async function loadQr(id) {
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
