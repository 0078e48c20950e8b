/**
 * Backup and restore activities (SPEC §4). Each one is idempotent: Temporal retries activities, and the
 * orchestrator may die between an effect and its acknowledgement. The restore keeps its on-disk journal in
 * `<SESSIONS_DIR>/.restore-<restoreId>/` (`new/<id>` = verified extraction, `old/<id>` = the folder it replaced),
 * so every step can tell from the folders alone what was already done.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, heartbeat as activityHeartbeat } from '@temporalio/activity';
import { proxyEndpoint } from '../common/proxy-url.js';
import { LIVE_STATUSES } from '../common/session.js';
import {
  archiveLimits,
  backupIdFor,
  buildManifest,
  BackupInvalidError,
  phoneFromCreds,
  snapshotSessions,
  verifyArchive,
  writeArchive,
  type BackupManifest,
  type SnapshotResult,
} from '../common/backup-archive.js';
import { readAuthOwner, safeSessionDir } from '../common/auth-owner.js';
import { backupStoreFor, BackupNotFoundError, BackupStoreError, type BackupLocation } from '../common/backup-store.js';
import { NoProxyCapacityError } from '../state/proxy-pool.js';
import { folderToPostgres, postgresToFolder } from '../state/auth-transfer.js';
import { authEntryFileName, CREDS_CATEGORY, CREDS_KEY_ID } from '../common/auth-keys.js';
import type { ActivityDeps, SessionActivities } from './session-activities.js';

export const BACKUP_INVALID = 'BackupInvalid';

function heartbeat(details: string) {
  try {
    activityHeartbeat(details);
  } catch {
    /* not in an activity context */
  }
}

/** Heartbeats every second while `fn` runs (steps that stop or start workers can take several seconds). */
async function beating<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const beat = setInterval(() => heartbeat(what), 1000);
  try {
    return await fn();
  } finally {
    clearInterval(beat);
  }
}

export interface BackupResult {
  id: string;
  /** A local path, or `s3://bucket/key` with BACKUP_STORE=s3. */
  file: string;
  location?: BackupLocation;
  /** The host that wrote (and uploaded) the archive. */
  writtenBy?: string;
  /** Upload time to the store (s3), within durationMs. */
  uploadMs?: number;
  size: number;
  durationMs: number;
  sessions: BackupManifest['sessions'];
  files: number;
  totalBytes: number;
  skipped: number;
  verified: boolean;
}

/** A live host and its own task queue (where the activities touching its disk and workers run). */
export interface HostRef {
  hostId: string;
  queue: string;
}

/** The sessions of a restore whose folders live on one host. */
export interface RestoreGroup extends HostRef {
  sessionIds: string[];
}

export interface RestorePlan {
  restoreId: string;
  backupId: string;
  /** Sessions whose folder the restore replaces (or creates). */
  targets: string[];
  /** Targets that had a folder before the restore (the rollback puts it back). */
  hadFolder: string[];
  /** Live sessions (in Redis) among the targets: their workers are stopped and restarted. */
  live: string[];
  /** Targets whose archived folder holds no paired credentials: restored as files only, never waited for. */
  unpaired?: string[];
  phones: Record<string, string | null>;
  /** Sessions of the archive left out: their current folder or session belongs to another tenant. */
  crossTenant?: string[];
}

/** The folder holds creds (AUTH_STORE=postgres: its keys still have to move into the database). */
async function folderHasCreds(folder: string): Promise<boolean> {
  return fs
    .stat(path.join(folder, 'creds.json'))
    .then(() => true)
    .catch(() => false);
}

/** True when the folder's creds.json belongs to a paired device (Baileys writes `me` once a QR was scanned). */
async function isPaired(folder: string): Promise<boolean> {
  try {
    const creds = JSON.parse(await fs.readFile(path.join(folder, 'creds.json'), 'utf8')) as { me?: { id?: string } };
    return typeof creds.me?.id === 'string' && creds.me.id.length > 0;
  } catch {
    return false;
  }
}

export function createBackupActivities(deps: ActivityDeps, session: Pick<SessionActivities, 'startWorker'>) {
  const { config, runner, logger } = deps;
  const { pool, sessions, hosts } = deps.stores;
  const sessionsDir = path.resolve(config.SESSIONS_DIR);
  const backupsDir = path.resolve(config.BACKUPS_DIR);
  const limits = archiveLimits(config);
  // AUTH_STORE=postgres: archives hold the keys as the folder store would (one consistent read of the tables), and a
  // restored folder's keys move into the database before its worker starts.
  const authStore = deps.authStore;
  const authFiles = authStore
    ? async (ids: string[]) =>
        new Map(
          [...(await authStore.snapshot(ids))].map(([id, entries]) => [
            id,
            entries.map((e) => ({ name: authEntryFileName(e.category, e.keyId), data: e.value! })),
          ]),
        )
    : undefined;
  const journal = (restoreId: string) => path.join(sessionsDir, `.restore-${restoreId}`);
  // Per-host copies of a backup in progress, in the shared BACKUPS_DIR (assembled into one archive, then removed).
  const staging = (key: string) => path.join(backupsDir, `.staging-${key.replace(/[^A-Za-z0-9_-]/g, '_')}`);
  const liveHosts = async (): Promise<HostRef[]> => {
    // list() answers the hosts sorted by id.
    return (await hosts.list(config.HOST_HEARTBEAT_MS * 3))
      .filter((h) => h.alive)
      .map((h) => ({ hostId: h.hostId, queue: h.queue }));
  };
  const archivePath = (backupId: string) => path.join(backupsDir, `${backupId}.zip`);
  const store = backupStoreFor(config);
  // A store that refuses (wrong credentials, no bucket access) fails the step at once with S3's answer: retrying
  // for an hour would only delay the alert. A 5xx or a network error is retried like any other activity failure.
  const storeFailure = (err: unknown): never => {
    if (err instanceof BackupStoreError && err.refused)
      throw ApplicationFailure.nonRetryable(err.message, 'BackupStoreFailed');
    if (err instanceof BackupNotFoundError) throw ApplicationFailure.nonRetryable(err.message, BACKUP_INVALID);
    throw err;
  };
  /** A local copy of an archive (a download with s3, into `tmpDir`), released after `fn`. */
  const withArchive = async <T>(backupId: string, tmpDir: string, fn: (file: string) => Promise<T>): Promise<T> => {
    const opened = await store.open(backupId, tmpDir).catch(storeFailure);
    try {
      return await fn(opened.file);
    } finally {
      await opened.release();
    }
  };
  const exists = (p: string) =>
    fs.lstat(p).then(
      () => true,
      () => false,
    );

  const invalid = (err: unknown): never => {
    if (err instanceof BackupInvalidError) throw ApplicationFailure.nonRetryable(err.message, BACKUP_INVALID);
    throw err;
  };

  return {
    /** The live hosts (heartbeat within 3 intervals): each one backs up its own sessions folder. */
    async backupHosts(): Promise<HostRef[]> {
      return liveHosts();
    },

    /**
     * Runs on a host's own queue: reads this host's session folders once (no worker paused) and copies them into
     * the shared staging folder `<BACKUPS_DIR>/.staging-<key>/<hostId>/` (idempotent: a retry starts over).
     */
    async snapshotHost(input: { key: string; hostId: string; only?: string[] }): Promise<{ sessions: number }> {
      if (store.staging) {
        // s3: the hosts share no folder; this host's copy travels as a zip through the bucket.
        heartbeat('snapshot');
        const snap = await snapshotSessions(sessionsDir, input.only, authFiles);
        await fs.mkdir(backupsDir, { recursive: true, mode: 0o700 });
        const file = `${staging(input.key)}-${input.hostId.replace(/[^A-Za-z0-9_-]/g, '_')}.zip`;
        await fs.rm(`${file}.partial`, { force: true });
        await writeArchive(file, buildManifest('staging', `host ${input.hostId}`, Date.now(), snap), snap.entries);
        try {
          await beating('upload', () => store.staging!.put(input.key, input.hostId, file)).catch(storeFailure);
        } finally {
          await fs.rm(file, { force: true });
        }
        return { sessions: snap.sessions.length };
      }
      const dir = path.join(staging(input.key), input.hostId);
      await fs.rm(dir, { recursive: true, force: true });
      heartbeat('snapshot');
      const snap = await snapshotSessions(sessionsDir, input.only, authFiles);
      for (const s of snap.sessions) await fs.mkdir(path.join(dir, s.sessionId), { recursive: true, mode: 0o700 });
      for (const e of snap.entries) {
        heartbeat('copy');
        await fs.writeFile(path.join(dir, e.path.slice('sessions/'.length)), e.data, { mode: 0o600 });
      }
      await fs.writeFile(path.join(dir, '.skipped.json'), JSON.stringify(snap.skipped), { mode: 0o600 });
      return { sessions: snap.sessions.length };
    },

    /**
     * Writes a verified archive: of this host's folder, or (`staging`) of every host's staged copy, each session
     * tagged with its host, then drops the staging folder.
     */
    async createBackup(input: {
      reason: string;
      only?: string[];
      staging?: { key: string; hosts: string[] };
    }): Promise<BackupResult> {
      const t0 = Date.now();
      await fs.mkdir(backupsDir, { recursive: true, mode: 0o700 });
      await store.check().catch(storeFailure); // before any work: a store we cannot write fails fast
      let id = backupIdFor(new Date(t0));
      for (
        let n = 2;
        (await exists(archivePath(id))) ||
        (await exists(`${archivePath(id)}.partial`)) ||
        (await store.exists(id).catch(storeFailure));
        n++
      )
        id = `${backupIdFor(new Date(t0))}-${n}`;
      heartbeat('snapshot');
      let snap: SnapshotResult;
      if (input.staging) {
        snap = { sessions: [], entries: [], skipped: [] };
        for (const hostId of input.staging.hosts) {
          const dir = path.join(staging(input.staging.key), hostId);
          if (store.staging) {
            // s3: download this host's copy, verify it and extract it where the shared folder would have it.
            await fs.rm(dir, { recursive: true, force: true });
            const opened = await store.staging
              .open(input.staging.key, hostId, staging(input.staging.key))
              .catch(storeFailure);
            try {
              const m = await verifyArchive(opened.file, limits, dir, () => heartbeat('assemble'));
              for (const s of m.sessions) await fs.mkdir(path.join(dir, s.sessionId), { recursive: true, mode: 0o700 });
              await fs.writeFile(path.join(dir, '.skipped.json'), JSON.stringify(m.skipped), { mode: 0o600 });
            } catch (err) {
              // A host's copy that does not verify fails this attempt (a download cut short is fetched again).
              throw err instanceof BackupInvalidError ? new Error(`host ${hostId}'s copy: ${err.message}`) : err;
            } finally {
              await opened.release();
            }
          }
          const part = await snapshotSessions(dir, input.only);
          for (const s of part.sessions) {
            if (snap.sessions.some((x) => x.sessionId === s.sessionId)) {
              snap.skipped.push({ path: `sessions/${s.sessionId}/`, reason: `also on host ${hostId}` });
              continue;
            }
            snap.sessions.push({ ...s, host: hostId });
            snap.entries.push(...part.entries.filter((e) => e.path.startsWith(`sessions/${s.sessionId}/`)));
          }
          const skipped = await fs.readFile(path.join(dir, '.skipped.json'), 'utf8').catch(() => '[]');
          snap.skipped.push(...(JSON.parse(skipped) as SnapshotResult['skipped']));
        }
        snap.sessions.sort((a, b) => a.sessionId.localeCompare(b.sessionId));
      } else snap = await snapshotSessions(sessionsDir, input.only, authFiles);
      const manifest = buildManifest(id, input.reason, t0, snap);
      heartbeat('archive');
      const size = await writeArchive(archivePath(id), manifest, snap.entries);
      heartbeat('verify');
      // Never report a backup that would not restore.
      await verifyArchive(archivePath(id), limits, undefined, () => heartbeat('verify'));
      heartbeat('upload');
      const u0 = Date.now();
      const stored = await beating('upload', () => store.publish(id, archivePath(id), manifest)).catch(async (err) => {
        // No half state: the local archive of a failed upload is removed (the upload itself left nothing listed).
        if (store.location !== 'local') await fs.rm(archivePath(id), { force: true });
        return storeFailure(err);
      });
      const uploadMs = Date.now() - u0;
      if (input.staging) {
        await fs.rm(staging(input.staging.key), { recursive: true, force: true });
        await store.staging?.remove(input.staging.key).catch(storeFailure);
      }
      const result: BackupResult = {
        id,
        file: stored.where,
        location: stored.location,
        writtenBy: config.HOST_ID,
        ...(store.location === 's3' ? { uploadMs } : {}),
        size,
        durationMs: Date.now() - t0,
        sessions: manifest.sessions,
        files: manifest.files.length,
        totalBytes: manifest.totalBytes,
        skipped: manifest.skipped.length,
        verified: true,
      };
      logger.info({ ...result, sessions: manifest.sessions }, 'backup written');
      return result;
    },

    /** Keeps the newest MAX_BACKUPS archives (and any protected one); removes stale `.partial` and staging files too. */
    async pruneBackups(input: { protect?: string[] } = {}): Promise<string[]> {
      const all = await store.list().catch(storeFailure);
      const removed: string[] = [];
      for (const b of all.slice(config.MAX_BACKUPS)) {
        if (input.protect?.includes(b.id)) continue; // the archive a restore is reading right now
        await store.remove(b.id).catch(storeFailure);
        removed.push(b.id);
      }
      await store.staging?.prune(3600_000).catch(storeFailure);
      for (const n of await fs.readdir(backupsDir).catch(() => [] as string[]))
        if (n.endsWith('.zip.partial') || n.startsWith('.staging-')) {
          const st = await fs.stat(path.join(backupsDir, n)).catch(() => null);
          // Left by a backup that failed (a host's copy or the assembly): gone after an hour.
          if (st && Date.now() - st.mtimeMs > 3600_000)
            await fs.rm(path.join(backupsDir, n), { recursive: true, force: true });
        }
      return removed;
    },

    /** Restore step 1: verify the archive (nothing is touched yet). */
    async restoreVerify(input: { backupId: string; sessionId: string | null }): Promise<{
      sessions: Array<{ sessionId: string; phone: string | null; host: string | null }>;
    }> {
      const manifest = await withArchive(input.backupId, path.join(backupsDir, '.downloads'), (file) =>
        verifyArchive(file, limits, undefined, () => heartbeat('verify')).catch(invalid),
      );
      const list = manifest.sessions.map((s) => ({
        sessionId: s.sessionId,
        phone: s.phone,
        host: typeof s.host === 'string' ? s.host : null,
      }));
      if (input.sessionId && !list.some((s) => s.sessionId === input.sessionId))
        throw ApplicationFailure.nonRetryable(
          `backup ${input.backupId} holds no session ${input.sessionId}`,
          BACKUP_INVALID,
        );
      return { sessions: list };
    },

    /**
     * Groups the sessions to restore by the host whose disk and workers they belong to: a session's current host
     * (its record), else the host that held it at backup time, else the first live host (files only). A session
     * whose host is not alive fails the restore before anything is touched.
     */
    async restoreHosts(input: {
      sessions: Array<{ sessionId: string; host: string | null }>;
      sessionId: string | null;
    }): Promise<RestoreGroup[]> {
      const live = await liveHosts();
      if (!live.length) throw ApplicationFailure.nonRetryable('no live host to restore onto', 'RestoreNoHost');
      const groups = new Map<string, RestoreGroup>();
      for (const s of input.sessions) {
        if (input.sessionId && s.sessionId !== input.sessionId) continue;
        const rec = await sessions.get(s.sessionId);
        const owner = rec && rec.status !== 'deleted' ? rec.host : null;
        const want = owner ?? s.host;
        const host =
          live.find((h) => h.hostId === want) ?? (owner ? null : (live.find((h) => h.hostId === s.host) ?? live[0]!));
        if (!host)
          throw ApplicationFailure.nonRetryable(
            `host ${owner} of session ${s.sessionId} is not alive`,
            'RestoreHostDown',
          );
        const g = groups.get(host.hostId) ?? { ...host, sessionIds: [] };
        g.sessionIds.push(s.sessionId);
        groups.set(host.hostId, g);
      }
      return [...groups.values()].sort((a, b) => a.hostId.localeCompare(b.hostId));
    },

    /** Restore step 2: extract the verified archive into the journal folder (`new/`), beside the live folders. */
    async restoreStage(input: {
      restoreId: string;
      backupId: string;
      sessionId: string | null;
      /** Only these sessions (the ones on this host). */
      only?: string[];
    }): Promise<RestorePlan> {
      const j = journal(input.restoreId);
      const staged = path.join(j, 'new');
      await fs.mkdir(path.join(j, 'old'), { recursive: true, mode: 0o700 });
      await fs.rm(path.join(j, 'extract'), { recursive: true, force: true });
      heartbeat('extract');
      let manifest: BackupManifest;
      try {
        // With s3 each host downloads the archive itself into its journal (its own disk).
        manifest = await withArchive(input.backupId, j, (file) =>
          verifyArchive(file, limits, path.join(j, 'extract'), () => heartbeat('extract')),
        );
      } catch (err) {
        await fs.rm(j, { recursive: true, force: true });
        return invalid(err);
      }
      const wanted = manifest.sessions
        .map((s) => s.sessionId)
        .filter((id) => !input.sessionId || id === input.sessionId)
        .filter((id) => !input.only || input.only.includes(id))
        .sort();
      // Never put one tenant's credentials into another tenant's session: a session id whose current owner
      // (folder owner file, else the session record) differs from the archive's owner is left out.
      const crossTenant: string[] = [];
      for (const id of wanted) {
        const archived = manifest.sessions.find((s) => s.sessionId === id)?.tenant ?? null;
        const current =
          (await readAuthOwner(safeSessionDir(sessionsDir, id))) ?? (await sessions.get(id))?.tenant ?? null;
        if (current !== null && current !== archived) crossTenant.push(id);
      }
      if (input.sessionId && crossTenant.length) {
        await fs.rm(j, { recursive: true, force: true });
        throw ApplicationFailure.nonRetryable(
          `session ${input.sessionId} of backup ${input.backupId} belongs to another tenant than the current one`,
          BACKUP_INVALID,
        );
      }
      const targets = wanted.filter((id) => !crossTenant.includes(id));
      if (crossTenant.length) logger.warn({ crossTenant }, 'restore leaves out sessions now owned by another tenant');
      await fs.mkdir(path.join(j, 'extract'), { recursive: true, mode: 0o700 });
      for (const id of targets) await fs.mkdir(path.join(j, 'extract', id), { recursive: true, mode: 0o700 });
      // Keep only the targets, then publish the extraction as `new/` in one rename.
      for (const n of await fs.readdir(path.join(j, 'extract')))
        if (!targets.includes(n)) await fs.rm(path.join(j, 'extract', n), { recursive: true, force: true });
      await fs.rm(staged, { recursive: true, force: true });
      await fs.rename(path.join(j, 'extract'), staged);
      const hadFolder: string[] = [];
      for (const id of targets) if (await exists(path.join(sessionsDir, id))) hadFolder.push(id);
      const live: string[] = [];
      for (const id of targets) {
        const rec = await sessions.get(id);
        if (rec && LIVE_STATUSES.includes(rec.status)) live.push(id);
      }
      const phones = Object.fromEntries(manifest.sessions.map((s) => [s.sessionId, s.phone]));
      const unpaired: string[] = [];
      for (const id of targets) if (!(await isPaired(path.join(staged, id)))) unpaired.push(id);
      const plan: RestorePlan = {
        restoreId: input.restoreId,
        backupId: input.backupId,
        targets,
        hadFolder,
        live,
        unpaired,
        phones,
        crossTenant,
      };
      await fs.writeFile(path.join(j, 'plan.json'), JSON.stringify(plan, null, 2), { mode: 0o600 });
      return plan;
    },

    /**
     * Stops the workers of these sessions (their folders are about to be replaced). The Redis mirror is set to
     * `reconnecting` ("restore in progress") so the watchdog does not alarm on the missing pings and restart them;
     * the session workflows keep their state and become `connected` again on the restarted worker's CONNECTED.
     */
    async restoreStopWorkers(input: { sessionIds: string[]; reason: string }): Promise<number> {
      const beat = setInterval(() => heartbeat('stopping'), 1000);
      try {
        const t0 = Date.now();
        for (const id of input.sessionIds) {
          const rec = await sessions.get(id);
          if (rec && LIVE_STATUSES.includes(rec.status))
            await sessions.update(id, { status: 'reconnecting', lastError: input.reason });
          await runner.stop(id, { remove: false });
        }
        return Date.now() - t0;
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * Swaps each target folder with its verified copy: `sessions/<id>` → `old/<id>`, `new/<id>` → `sessions/<id>`
     * (renames within one file system: each folder is whole at every moment; a crash between the two renames is
     * completed by the retry, which reads the state from the folders). Workers are stopped again first, in case a
     * reconcile at orchestrator start brought one back.
     */
    async restoreSwap(input: { restoreId: string; targets: string[] }): Promise<number> {
      return beating('restoreSwap', async () => {
        const t0 = Date.now();
        const j = journal(input.restoreId);
        for (const id of input.targets) {
          heartbeat(`swap ${id}`);
          await runner.stop(id, { remove: false });
          const cur = path.join(sessionsDir, id);
          const next = path.join(j, 'new', id);
          const old = path.join(j, 'old', id);
          if (await exists(next)) {
            if (await exists(cur)) {
              if (await exists(old))
                await fs.rm(cur, { recursive: true, force: true }); // re-created by a stray start
              else {
                // The database's keys go aside with the folder they belong to (a rollback brings both back).
                if (authStore) await postgresToFolder(authStore, cur, id, { keepSource: true });
                await fs.rename(cur, old);
              }
            }
            await fs.rename(next, cur);
            if (authStore && !(await folderHasCreds(cur))) await authStore.deleteSession(id);
          }
          if (authStore) await folderToPostgres(authStore, cur, id);
        }
        return Date.now() - t0;
      });
    },

    /** Compensation of restoreSwap: puts back every folder the restore replaced (idempotent). */
    async restoreRollbackFiles(input: { restoreId: string; targets: string[]; hadFolder: string[] }): Promise<void> {
      return beating('restoreRollbackFiles', async () => {
        const j = journal(input.restoreId);
        await fs.mkdir(path.join(j, 'failed'), { recursive: true, mode: 0o700 });
        for (const id of input.targets) {
          heartbeat(`rollback ${id}`);
          await runner.stop(id, { remove: false });
          const cur = path.join(sessionsDir, id);
          const old = path.join(j, 'old', id);
          const failed = path.join(j, 'failed', id);
          if (await exists(old)) {
            if (await exists(cur)) {
              await fs.rm(failed, { recursive: true, force: true });
              await fs.rename(cur, failed);
            }
            await fs.rename(old, cur);
            if (authStore) {
              if (await folderHasCreds(cur)) await folderToPostgres(authStore, cur, id);
              else await authStore.deleteSession(id);
            }
          } else if (!input.hadFolder.includes(id) && (await exists(cur)) && !(await exists(path.join(j, 'new', id)))) {
            // A folder the restore created (the session had none before): remove it.
            await fs.rm(failed, { recursive: true, force: true });
            await fs.rename(cur, failed);
            await authStore?.deleteSession(id);
          }
        }
      });
    },

    /**
     * Rebuilds the Redis state of these sessions from their folders: phone and jid from creds.json `me.id`, phone
     * ownership, the sticky binding kept for a known phone (else bound to the slot the session holds), and every
     * proxy counter recomputed from the slots. Returns what changed.
     */
    async restoreRebuildRedis(input: { sessionIds: string[] }): Promise<{
      phones: Record<string, string | null>;
      conflicts: string[];
      unknown: string[];
      counters: Record<string, number>;
    }> {
      const phones: Record<string, string | null> = {};
      const conflicts: string[] = [];
      const unknown: string[] = [];
      for (const id of input.sessionIds) {
        let me: { phone: string; jid: string } | null;
        try {
          const creds = authStore
            ? (await authStore.read(id, [{ category: CREDS_CATEGORY, keyId: CREDS_KEY_ID }]))[0]?.value
            : await fs.readFile(path.join(sessionsDir, id, 'creds.json'));
          me = creds ? phoneFromCreds(JSON.parse(creds.toString('utf8'))) : null;
        } catch {
          me = null;
        }
        phones[id] = me?.phone ?? null;
        const rec = await sessions.get(id);
        if (!rec || rec.status === 'deleted') {
          unknown.push(id); // files restored; no live session to attach them to
          continue;
        }
        if (!me) continue;
        if (rec.phone && rec.phone !== me.phone) await sessions.releasePhone(rec.phone, id);
        const owner = await sessions.claimPhone(me.phone, id);
        if (owner) {
          conflicts.push(`${id}: phone ${me.phone} is owned by session ${owner}`);
          continue;
        }
        await sessions.update(id, { phone: me.phone, jid: me.jid });
        let slot = await pool.heldBy(id);
        // A live session that lost its slot key (a crash, a hand edit) takes its phone's sticky proxy again.
        if (!slot && LIVE_STATUSES.includes(rec.status)) {
          try {
            slot = (await pool.reserve({ sessionId: id, phone: me.phone, tenant: rec.tenant })).proxyUrl;
          } catch (err) {
            if (!(err instanceof NoProxyCapacityError)) throw err;
            conflicts.push(`${id}: no proxy capacity to bind it again`);
          }
        }
        if (!(await pool.getSticky(me.phone)) && slot) await pool.setSticky(me.phone, slot);
      }
      // Keyed by host:port: activity results land in the workflow history, proxy credentials must not.
      const counters = Object.fromEntries(
        Object.entries(await pool.recomputeCounters()).map(([url, n]) => [proxyEndpoint(url), n]),
      );
      return { phones, conflicts, unknown, counters };
    },

    /** Starts the workers of live sessions again, with the proxy each holds (the session workflow's proxy). */
    async restoreStartWorkers(input: { sessionIds: string[] }): Promise<string[]> {
      return beating('restoreStartWorkers', async () => {
        const started: string[] = [];
        for (const id of input.sessionIds) {
          heartbeat(`start ${id}`);
          const rec = await sessions.get(id);
          if (!rec || !LIVE_STATUSES.includes(rec.status)) continue;
          const proxyUrl = (await pool.heldBy(id)) ?? rec.proxy;
          if (!proxyUrl) continue;
          await sessions.recordPing(id, Date.now());
          await session.startWorker({ sessionId: id, proxyUrl });
          started.push(id);
        }
        return started;
      });
    },

    /** Waits until every session is connected again (a restored folder that cannot log in fails the restore). */
    async restoreAwaitConnected(input: { sessionIds: string[]; since: number; timeoutMs: number }): Promise<number> {
      const t0 = Date.now();
      for (;;) {
        const pending: string[] = [];
        for (const id of input.sessionIds) {
          const rec = await sessions.get(id);
          if (!rec || rec.status !== 'connected' || (rec.connectedAt ?? 0) < input.since) pending.push(id);
        }
        if (pending.length === 0) return Date.now() - t0;
        if (Date.now() - t0 > input.timeoutMs)
          throw ApplicationFailure.nonRetryable(
            `sessions not connected ${input.timeoutMs} ms after the restore: ${pending.join(', ')}`,
            'RestoreNotConnected',
          );
        heartbeat(`waiting for ${pending.join(',')}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },

    /** Drops the journal folder (the pre-restore state is kept as its own backup archive). */
    async restoreCleanup(input: { restoreId: string }): Promise<void> {
      await fs.rm(journal(input.restoreId), { recursive: true, force: true });
    },
  };
}

export type BackupActivities = ReturnType<typeof createBackupActivities>;
