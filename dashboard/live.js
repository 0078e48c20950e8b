// Live events: /api/events (SSE) opened with a single-use ticket; each event updates the views it concerns.

import { LIVE_TYPES } from './vocabulary.js';
import { $, api, state, toast } from './lib.js';
import { loadSessions } from './views/sessions.js';
import { loadQr, loadPairingCode, setQrStatus, markConnected } from './views/new-session.js';
import { loadProxies } from './views/proxies.js';
import { loadBackups } from './views/backups.js';
import { addInbound } from './views/inbox.js';

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
export async function connectEvents() {
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

export function scheduleReload() {
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(() => {
    if (state.view === 'sessions') void loadSessions();
    if (state.view === 'proxies') void loadProxies();
  }, 150);
}

/** Closes the stream for good (sign-out): a pending retry of an older generation does nothing. */
export function disconnectEvents() {
  eventsGeneration++;
  state.events?.close();
  state.events = null;
}
