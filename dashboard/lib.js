// Dashboard helpers shared by every view: the page state, the API client, DOM building without innerHTML.

export const KEY_STORAGE = 'wa-dashboard-api-key';

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export const state = {
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

export async function api(method, path, body, key = state.key) {
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
  let json;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null; // not JSON: the error names the text instead
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

export const dash = '—';

/**
 * Builds an element without innerHTML: attributes are set as attributes and children as text nodes or elements,
 * so API data can never become markup. `el('td', {class: 'mono'}, value)`.
 */
export function el(tag, attrs = {}, ...children) {
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
export const badgeEl = (status, cls = status) =>
  el('span', { class: `badge badge-${cls}` }, el('span', { class: 'dot' }), String(status));

export function ago(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return dash;
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
export const fmtTime = (t) => (t ? new Date(t).toLocaleString() : dash);
export function fmtBytes(n) {
  if (typeof n !== 'number') return dash;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function toast(text, kind = 'info') {
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  el.textContent = text;
  $('#toasts').append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 9000 : 4000);
}

export function showError(el, err) {
  if (!err) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  el.hidden = false;
  el.textContent = String(err);
}

export function confirmDialog(title, text, okLabel = 'Confirm') {
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

/** Only http(s) links from API data (a `javascript:` URL in an href would run on click). */
export const safeUrl = (u) => (typeof u === 'string' && /^https?:\/\//i.test(u) ? u : null);
