/**
 * Backup archives of the auth folders (SPEC §4): writing a consistent zip with a manifest, verifying one (manifest,
 * checksums, safe paths, no symlinks, zip-bomb limits) and extracting a verified one. Shared by the backup/restore
 * activities (orchestrator) and the backups API (listing and verification before a restore is accepted).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ZipArchive } from 'archiver';
import yauzl from 'yauzl';
import { AUTH_SCHEMA_FILE, AUTH_SCHEMA_VERSION } from './auth-schema.js';
import type { Config } from './config.js';
import { SessionIdSchema } from './session.js';
import { OWNER_FILE } from './auth-owner.js';

export const MANIFEST_FILE = 'manifest.json';
export const BACKUP_ID_RE = /^backup_\d{4}-\d{2}-\d{2}_\d{6}(?:-\d{1,3})?$/;
/** A session's auth file name (Baileys' names with `/`→`__`, `:`→`-`; base64 ids may hold `+` and `=`). */
const FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@+=,-]{0,199}$/;

/**
 * Files of the worker that are not auth state and are not archived:
 *  - `*.tmp-*`: a write in progress (the atomic write renames it away; copying it would copy a torn file);
 *  - `.health.json`: the worker's liveness file, rewritten every few seconds, meaningless after a restore;
 *  - `.events-spool*`: the webhook spool (already-delivered events; replaying old CONNECTED/DISCONNECTED events
 *    after a restore would mislead the session workflow, and the spool is append-only, not atomically written);
 *  - `.outbox-ledger*`: the send ledger of the outbox; a stale copy would mark messages of another time as sent
 *    or sending. Outgoing messages live in the Redis outbox, not in the folder.
 *  - `.inbound-pending*`: inbound media messages not reported yet; a restored copy would report old ones again.
 */
export function isTransientFile(name: string): boolean {
  return (
    name.includes('.tmp-') ||
    name.endsWith('.tmp') ||
    name === '.health.json' ||
    name.startsWith('.events-spool') ||
    name.startsWith('.outbox-ledger') ||
    name.startsWith('.inbound-pending')
  );
}

export interface ManifestFile {
  /** `sessions/<sessionId>/<file>` inside the archive. */
  path: string;
  size: number;
  sha256: string;
}

export interface ManifestSession {
  sessionId: string;
  /** From creds.json `me.id`; null when the session was never linked. */
  phone: string | null;
  /** The owning tenant (the folder's owner file); null/absent for folders and archives from before owners. */
  tenant?: string | null;
  /** The host whose disk held the folder (multi-host deployments); absent in archives made by older, single-host versions. */
  host?: string | null;
  files: number;
  bytes: number;
  /** How long reading this session's folder took (the worker kept running: no pause). */
  copyMs: number;
}

export interface BackupManifest {
  version: 1;
  id: string;
  createdAt: number;
  reason: string;
  sessions: ManifestSession[];
  files: ManifestFile[];
  skipped: Array<{ path: string; reason: string }>;
  totalBytes: number;
}

export interface ArchiveLimits {
  /** Sum of the uncompressed sizes. */
  maxTotalBytes: number;
  /** Largest uncompressed/compressed ratio accepted for an entry bigger than 64 KiB. */
  maxRatio: number;
  maxEntries: number;
}

export const DEFAULT_LIMITS: ArchiveLimits = { maxTotalBytes: 512 * 1024 * 1024, maxRatio: 200, maxEntries: 100_000 };

/** The archive limits a deployment's configuration sets. */
export function archiveLimits(
  config: Pick<Config, 'BACKUP_MAX_UNCOMPRESSED_MB' | 'BACKUP_MAX_RATIO' | 'BACKUP_MAX_ENTRIES'>,
): ArchiveLimits {
  return {
    maxTotalBytes: config.BACKUP_MAX_UNCOMPRESSED_MB * 1024 * 1024,
    maxRatio: config.BACKUP_MAX_RATIO,
    maxEntries: config.BACKUP_MAX_ENTRIES,
  };
}

export class BackupInvalidError extends Error {
  override readonly name = 'BackupInvalidError';
  readonly code = 'BACKUP_INVALID';
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** `backup_YYYY-MM-DD_HHMMSS` (UTC). */
export function backupIdFor(date: Date): string {
  const iso = date.toISOString(); // 2026-11-23T17:23:27.123Z
  return `backup_${iso.slice(0, 10)}_${iso.slice(11, 19).replace(/:/g, '')}`;
}

/** Phone number from creds.json `me.id` (`15550001001:12@s.whatsapp.net` → `15550001001`). */
export function phoneFromCreds(creds: unknown): { phone: string; jid: string } | null {
  const id = (creds as { me?: { id?: unknown } } | null)?.me?.id;
  if (typeof id !== 'string') return null;
  const phone = id.split('@')[0]!.split(':')[0]!;
  return /^\d{6,15}$/.test(phone) ? { phone, jid: id } : null;
}

async function readStable(file: string, isJson: boolean): Promise<Buffer | null> {
  for (let attempt = 0; ; attempt++) {
    let buf: Buffer;
    try {
      buf = await fs.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // removed since readdir (a used pre-key)
      throw err;
    }
    if (!isJson) return buf;
    try {
      JSON.parse(buf.toString('utf8'));
      return buf;
    } catch {
      // Cannot happen with the worker's atomic writes (a rename swaps complete files); retry, then refuse.
      if (attempt >= 4) throw new Error(`${file} does not parse as JSON after 5 reads`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export interface SnapshotResult {
  sessions: ManifestSession[];
  entries: Array<{ path: string; data: Buffer }>;
  skipped: Array<{ path: string; reason: string }>;
}

/**
 * Reads every session folder once, file by file. The worker writes each auth file with temp + fsync + rename, so a
 * read returns a complete old or new version; JSON files are parsed to prove it. No worker is paused.
 */
export async function snapshotSessions(
  sessionsDir: string,
  only?: string[],
  /** Auth files kept elsewhere (AUTH_STORE=postgres), per session, read at one moment for all listed sessions. */
  authFiles?: (sessionIds: string[]) => Promise<Map<string, Array<{ name: string; data: Buffer }>>>,
): Promise<SnapshotResult> {
  const out: SnapshotResult = { sessions: [], entries: [], skipped: [] };
  let dirents: import('node:fs').Dirent[] = [];
  try {
    dirents = await fs.readdir(sessionsDir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const d of dirents.sort((a, b) => a.name.localeCompare(b.name))) {
    if (!d.isDirectory()) continue; // symlinks and stray files are not session folders
    if (!SessionIdSchema.safeParse(d.name).success) continue; // `.restore-*` staging folders and the like
    if (only && !only.includes(d.name)) continue;
    const t0 = performance.now();
    const dir = path.join(sessionsDir, d.name);
    let phone: string | null = null;
    let tenant: string | null = null;
    let files = 0;
    let bytes = 0;
    let folder: import('node:fs').Dirent[];
    try {
      folder = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      // Deleted since the listing above (a session removed during the backup): not part of this snapshot.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    for (const f of folder.sort((a, b) => a.name.localeCompare(b.name))) {
      const rel = `sessions/${d.name}/${f.name}`;
      if (!f.isFile()) {
        out.skipped.push({ path: rel, reason: 'not a regular file' });
        continue;
      }
      if (isTransientFile(f.name)) {
        out.skipped.push({ path: rel, reason: 'transient worker file' });
        continue;
      }
      if (!FILE_NAME_RE.test(f.name)) {
        out.skipped.push({ path: rel, reason: 'unexpected file name' });
        continue;
      }
      const data = await readStable(path.join(dir, f.name), f.name.endsWith('.json'));
      if (!data) continue;
      if (f.name === 'creds.json') phone = phoneFromCreds(JSON.parse(data.toString('utf8')))?.phone ?? null;
      if (f.name === OWNER_FILE) tenant = ownerFromFile(data);
      out.entries.push({ path: rel, data });
      files++;
      bytes += data.length;
    }
    out.sessions.push({
      sessionId: d.name,
      phone,
      tenant,
      files,
      bytes,
      copyMs: Math.round((performance.now() - t0) * 100) / 100,
    });
  }
  if (authFiles) {
    const extra = await authFiles(out.sessions.map((x) => x.sessionId));
    for (const session of out.sessions) {
      for (const f of extra.get(session.sessionId) ?? []) {
        const rel = `sessions/${session.sessionId}/${f.name}`;
        // A file in the folder wins (a session not moved to the database yet).
        if (!FILE_NAME_RE.test(f.name) || out.entries.some((e) => e.path === rel)) continue;
        out.entries.push({ path: rel, data: f.data });
        session.files++;
        session.bytes += f.data.length;
        if (f.name === 'creds.json') session.phone = phoneFromCreds(JSON.parse(f.data.toString('utf8')))?.phone ?? null;
      }
    }
    out.entries.sort((a, b) => a.path.localeCompare(b.path));
  }
  return out;
}

function ownerFromFile(data: Buffer): string | null {
  try {
    const t = (JSON.parse(data.toString('utf8')) as { tenant?: unknown }).tenant;
    return typeof t === 'string' ? t : null;
  } catch {
    return null;
  }
}

/** Writes `<dir>/<id>.zip` (via a `.partial` file renamed at the end: a listed archive is always complete). */
export async function writeArchive(
  file: string,
  manifest: BackupManifest,
  entries: Array<{ path: string; data: Buffer }>,
): Promise<number> {
  const partial = `${file}.partial`;
  const zip = new ZipArchive({ zlib: { level: 6 } });
  const done = pipeline(zip, createWriteStream(partial, { mode: 0o600, flags: 'wx' })); // two writers never share a name
  for (const e of entries) zip.append(e.data, { name: e.path, mode: 0o600, date: new Date(manifest.createdAt) });
  zip.append(Buffer.from(JSON.stringify(manifest, null, 2)), { name: MANIFEST_FILE, mode: 0o600 });
  await zip.finalize();
  await done;
  const fh = await fs.open(partial, 'r');
  await fh.sync();
  await fh.close();
  await fs.rename(partial, file);
  return (await fs.stat(file)).size;
}

export function buildManifest(id: string, reason: string, createdAt: number, snap: SnapshotResult): BackupManifest {
  const files = snap.entries.map((e) => ({ path: e.path, size: e.data.length, sha256: sha256(e.data) }));
  return {
    version: 1,
    id,
    createdAt,
    reason,
    sessions: snap.sessions,
    files,
    skipped: snap.skipped,
    totalBytes: files.reduce((s, f) => s + f.size, 0),
  };
}

// ------------------------------------------------------------------------------------------ verification
/** Why an entry name is refused, or null when it is a safe relative path of the expected shape. */
export function unsafeEntryName(name: string): string | null {
  if (name.includes('\\')) return `entry "${name}" has a backslash`;
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return `entry "${name}" is an absolute path`;
  const parts = name.split('/');
  if (parts.some((p) => p === '..')) return `entry "${name}" escapes the archive ("..")`;
  if (parts.some((p) => p === '.' || p.includes('\0'))) return `entry "${name}" is not a normalized path`;
  if (name === MANIFEST_FILE) return null;
  if (name === 'sessions/') return null;
  if (parts[0] !== 'sessions' || !parts[1] || !SessionIdSchema.safeParse(parts[1]).success)
    return `entry "${name}" is not under sessions/<sessionId>/`;
  if (parts.length === 3 && parts[2] === '') return null; // a folder entry
  if (parts.length !== 3 || !FILE_NAME_RE.test(parts[2]!)) return `entry "${name}" has an unexpected file name`;
  return null;
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.open(
      file,
      // decodeStrings: false: raw names, so our own check (not yauzl's generic error) judges each one.
      { lazyEntries: true, autoClose: false, validateEntrySizes: true, decodeStrings: false },
      (e, z) => (e || !z ? reject(e ?? new Error('cannot open zip')) : resolve(z)),
    ),
  );
}

function openEntry(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<NodeJS.ReadableStream> {
  return new Promise((resolve, reject) =>
    zip.openReadStream(entry, (e, s) => (e || !s ? reject(e ?? new Error('cannot read entry')) : resolve(s))),
  );
}

/** Every entry of the zip, read one at a time (`onEntry` consumes each before the next is read). */
async function walk(zip: yauzl.ZipFile, onEntry: (entry: yauzl.Entry) => Promise<void>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    zip.on('error', reject);
    zip.on('end', () => resolve());
    zip.on('entry', (entry: yauzl.Entry) => {
      onEntry(entry).then(
        () => zip.readEntry(),
        (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
      );
    });
    zip.readEntry();
  });
}

const MANIFEST_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Reads the archive once and checks, before anything is touched: safe paths only (no absolute path, no `..`, only
 * `sessions/<id>/<file>` and the manifest), no symlinks or special files, entry count, total uncompressed size and
 * compression ratio (zip bombs, with the real streamed byte counts checked against the declared ones), and that the
 * manifest lists exactly the archived files with matching sizes and SHA-256. Throws BackupInvalidError.
 *
 * With `extractTo`, verified file contents are also written there (`<extractTo>/<sessionId>/<file>`, 0700/0600);
 * a caller must discard that folder when this throws.
 */
export async function verifyArchive(
  file: string,
  limits: ArchiveLimits = DEFAULT_LIMITS,
  extractTo?: string,
  onEntry?: () => void,
): Promise<BackupManifest> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(file);
  } catch (err) {
    throw new BackupInvalidError(`archive unreadable: ${(err as Error).message}`);
  }
  const seen = new Map<string, { size: number; sha256: string }>();
  let manifestRaw: Buffer | null = null;
  const schemaVersions = new Map<string, number | null>();
  let total = 0;
  let count = 0;
  try {
    if (zip.entryCount > limits.maxEntries)
      throw new BackupInvalidError(`archive has ${zip.entryCount} entries (limit ${limits.maxEntries})`);
    await walk(zip, async (entry) => {
      count++;
      const name = (entry.fileName as unknown as Buffer).toString('utf8');
      onEntry?.();
      const bad = unsafeEntryName(name);
      if (bad) throw new BackupInvalidError(bad);
      const unixType = (entry.externalFileAttributes >>> 16) & 0o170000;
      if (unixType === 0o120000) throw new BackupInvalidError(`entry "${name}" is a symbolic link`);
      if (unixType !== 0 && unixType !== 0o100000 && unixType !== 0o040000)
        throw new BackupInvalidError(`entry "${name}" is not a regular file`);
      if (name.endsWith('/')) return;
      if (seen.has(name) || (name === MANIFEST_FILE && manifestRaw))
        throw new BackupInvalidError(`entry "${name}" appears twice`);
      total += entry.uncompressedSize;
      if (total > limits.maxTotalBytes)
        throw new BackupInvalidError(
          `archive expands to more than ${limits.maxTotalBytes} bytes (zip bomb?): refused before extraction`,
        );
      if (
        entry.uncompressedSize > 65_536 &&
        entry.uncompressedSize / Math.max(1, entry.compressedSize) > limits.maxRatio
      )
        throw new BackupInvalidError(
          `entry "${name}" compresses ${Math.round(entry.uncompressedSize / Math.max(1, entry.compressedSize))}:1 ` +
            `(limit ${limits.maxRatio}:1, zip bomb?)`,
        );
      if (name === MANIFEST_FILE && entry.uncompressedSize > MANIFEST_MAX_BYTES)
        throw new BackupInvalidError('manifest.json is too large');
      const stream = await openEntry(zip, entry);
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      let size = 0;
      let out: import('node:fs').WriteStream | null = null;
      if (extractTo && name !== MANIFEST_FILE) {
        const [, sid, fname] = name.split('/') as [string, string, string];
        await fs.mkdir(path.join(extractTo, sid), { recursive: true, mode: 0o700 });
        out = createWriteStream(path.join(extractTo, sid, fname), { mode: 0o600, flags: 'wx' });
      }
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > entry.uncompressedSize) throw new BackupInvalidError(`entry "${name}" is larger than declared`);
          hash.update(chunk);
          // The manifest and schema files are also read here; every file but the manifest is extracted.
          if (name === MANIFEST_FILE || name.endsWith(`/${AUTH_SCHEMA_FILE}`)) chunks.push(chunk);
          if (out && !out.write(chunk)) await new Promise<void>((r) => out!.once('drain', () => r()));
        }
      } catch (err) {
        if (err instanceof BackupInvalidError) throw err;
        throw new BackupInvalidError(`entry "${name}" is corrupted: ${(err as Error).message}`);
      } finally {
        if (out) {
          const o = out;
          await new Promise<void>((resolve, reject) => o.end((e?: Error | null) => (e ? reject(e) : resolve())));
        }
      }
      if (name === MANIFEST_FILE) manifestRaw = Buffer.concat(chunks);
      else seen.set(name, { size, sha256: hash.digest('hex') });
      if (name.endsWith(`/${AUTH_SCHEMA_FILE}`)) schemaVersions.set(name, schemaVersionOf(Buffer.concat(chunks)));
    });
  } catch (err) {
    if (err instanceof BackupInvalidError) throw err;
    throw new BackupInvalidError(`archive is corrupted: ${(err as Error).message}`);
  } finally {
    zip.close();
  }
  if (count === 0) throw new BackupInvalidError('archive is empty');
  if (!manifestRaw) throw new BackupInvalidError('archive has no manifest.json');
  // An auth folder written by a newer version of the code cannot be read by this one: refuse before any restore.
  for (const [name, version] of schemaVersions) {
    if (version === null || version > AUTH_SCHEMA_VERSION)
      throw new BackupInvalidError(
        `${name}: auth schema ${version ?? 'unreadable'} is newer than this code reads (${AUTH_SCHEMA_VERSION})`,
      );
  }
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse((manifestRaw as Buffer).toString('utf8')) as BackupManifest;
  } catch {
    throw new BackupInvalidError('manifest.json does not parse');
  }
  if (manifest?.version !== 1 || !Array.isArray(manifest.files) || !Array.isArray(manifest.sessions))
    throw new BackupInvalidError('manifest.json has an unknown format');
  const listed = new Set<string>();
  for (const f of manifest.files) {
    const got = seen.get(f.path);
    if (!got) throw new BackupInvalidError(`file ${f.path} is listed in the manifest but missing from the archive`);
    if (got.size !== f.size || got.sha256 !== f.sha256)
      throw new BackupInvalidError(`checksum mismatch for ${f.path} (the archive is corrupted)`);
    listed.add(f.path);
  }
  for (const name of seen.keys())
    if (!listed.has(name)) throw new BackupInvalidError(`file ${name} is in the archive but not in the manifest`);
  for (const s of manifest.sessions)
    if (!SessionIdSchema.safeParse(s.sessionId).success)
      throw new BackupInvalidError(`manifest names an invalid session id "${String(s.sessionId)}"`);
  return manifest;
}

function schemaVersionOf(raw: Buffer): number | null {
  try {
    const v = (JSON.parse(raw.toString('utf8')) as { version?: unknown }).version;
    return Number.isInteger(v) ? (v as number) : null;
  } catch {
    return null;
  }
}

export interface BackupInfo {
  id: string;
  file: string;
  size: number;
  createdAt: number;
}

/** Archives in `backupsDir`, newest first. */
export async function listArchives(backupsDir: string): Promise<BackupInfo[]> {
  let names: string[] = [];
  try {
    names = await fs.readdir(backupsDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const out: BackupInfo[] = [];
  for (const n of names) {
    if (!n.endsWith('.zip') || !BACKUP_ID_RE.test(n.slice(0, -4))) continue;
    const st = await fs.lstat(path.join(backupsDir, n)).catch(() => null);
    if (!st?.isFile()) continue;
    out.push({ id: n.slice(0, -4), file: path.join(backupsDir, n), size: st.size, createdAt: st.mtimeMs });
  }
  return out.sort((a, b) => b.id.localeCompare(a.id, 'en', { numeric: true }) || b.createdAt - a.createdAt);
}
