// Dashboard view: proxies and their load.
// A plain ES module (no build step); the page shell is ../app.js.

import { $, api, dash, el, badgeEl, ago, fmtTime, showError } from '../lib.js';

export async function loadProxies() {
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
