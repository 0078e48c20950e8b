// Dashboard view: backups: list, create, restore.
// A plain ES module (no build step); the page shell is ../app.js.

import { $, api, dash, el, badgeEl, fmtTime, fmtBytes, toast, showError, confirmDialog } from '../lib.js';

export async function loadBackups() {
  const err = $('#backups-error');
  try {
    const body = await api('GET', '/api/v1/backups');
    const list = Array.isArray(body) ? body : (body.backups ?? []);
    showError(err, null);
    $('#backups-empty').hidden = list.length > 0;
    $('#backups-body').replaceChildren(
      ...list.map((b) => {
        const id = b.id ?? b.name ?? b.file;
        const sessions = b.sessions ?? [];
        const names = Array.isArray(sessions) ? sessions.map((s) => (typeof s === 'string' ? s : s.sessionId)) : [];
        const verified =
          b.verified === true
            ? badgeEl('verified', 'OK')
            : b.verified === false
              ? [badgeEl('invalid', 'BAD'), el('span', { class: 'sub' }, b.verificationError ?? '')]
              : dash;
        return el(
          'tr',
          { dataset: { backup: id } },
          el('td', { class: 'mono' }, id),
          el('td', {}, fmtTime(b.createdAt ?? b.date)),
          el('td', { class: 'num' }, fmtBytes(b.size ?? b.sizeBytes)),
          el('td', { class: 'small' }, names.length ? names.join(', ') : dash),
          el('td', {}, verified),
          el(
            'td',
            {},
            el('div', { class: 'actions' }, el('button', { class: 'btn btn-sm', dataset: { restore: id } }, 'Restore')),
          ),
        );
      }),
    );
  } catch (e) {
    showError(err, `Backups unavailable: ${String(e)}`);
    $('#backups-body').replaceChildren();
  }
}

$('#backup-create').addEventListener('click', async () => {
  if (!(await confirmDialog('Create a backup now?', 'Archives every session’s auth files.', 'Create'))) return;
  try {
    toast('Backup running…');
    const r = await api('POST', '/api/v1/backups/create', {});
    toast(`Backup created${r?.backup?.id ? `: ${r.backup.id}` : ''}`);
    await loadBackups();
  } catch (err) {
    showError($('#backups-error'), `Create backup failed: ${String(err)}`);
  }
});

$('#backups-body').addEventListener('click', async (ev) => {
  const btn = ev.target.closest('button[data-restore]');
  if (!btn) return;
  const id = btn.dataset.restore;
  if (
    !(await confirmDialog(
      'Restore this backup?',
      `Sessions are restored from ${id}; their current auth files are replaced.`,
      'Restore',
    ))
  )
    return;
  try {
    // Started at once (a restore waits for every session to reconnect); its outcome is read from GET …/restore.
    const started = await api('POST', `/api/v1/backups/restore/${encodeURIComponent(id)}?wait=false`, {});
    toast(`Restore of ${id} started`);
    const r = await restoreOutcome(started.restore.runId);
    if (r.status === 'completed' && r.report?.ok)
      toast(`Restore of ${id} done: ${r.report.restored?.length ?? 0} session(s) restored`);
    else showError($('#backups-error'), `Restore of ${id} failed: ${r.error ?? r.report?.error ?? r.status}`);
    await loadBackups();
  } catch (err) {
    showError($('#backups-error'), `Restore failed: ${String(err)}`);
  }
});

/** Polls the last restore until the one with this run id is no longer running. */
async function restoreOutcome(runId) {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const { restore } = await api('GET', '/api/v1/backups/restore');
    if (restore.runId !== runId) throw new Error('another restore replaced this one');
    if (restore.status !== 'running') return restore;
  }
}
