/**
 * Auth folders belong to a tenant. The owning tenant is recorded in the folder itself
 * (`wa-owner.json`, so it travels with backups and restores), and a provision may reuse an existing folder
 * (`keepAuth=true` delete, a restore) only for the same tenant: another tenant's provision is refused before any
 * file is touched, so nobody can take over a WhatsApp account by provisioning its session id.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { SessionIdSchema } from './session.js';

// Starts with a letter: backups copy only such names (common/backup-archive.ts FILE_NAME_RE).
export const OWNER_FILE = 'wa-owner.json';
/** The tenant of sessions provisioned with the admin key (api/auth.ts tenantOf). */
const ADMIN_TENANT = 'admin';

export class AuthOwnerError extends Error {
  override readonly name = 'AuthOwnerError';
}

/**
 * Re-validates a session id before it becomes part of a path, a bind mount or a delete: ids come from workflow
 * inputs, which a bug or a forged history could carry past the API's validation.
 */
export function safeSessionDir(sessionsDir: string, sessionId: string): string {
  if (!SessionIdSchema.safeParse(sessionId).success) throw new AuthOwnerError('invalid session id');
  const dir = path.resolve(sessionsDir, sessionId);
  if (path.dirname(dir) !== path.resolve(sessionsDir)) throw new AuthOwnerError('invalid session id');
  return dir;
}

/** The tenant recorded in an auth folder; null when the folder or its owner file is missing or unreadable. */
export async function readAuthOwner(dir: string): Promise<string | null> {
  try {
    const parsed = JSON.parse(await fs.readFile(path.join(dir, OWNER_FILE), 'utf8')) as { tenant?: unknown };
    return typeof parsed.tenant === 'string' ? parsed.tenant : null;
  } catch {
    return null;
  }
}

async function entries(dir: string): Promise<string[] | null> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Claims the session's auth folder for `tenant`: creates it with its owner file, or accepts an existing folder of
 * the same tenant. Refuses (AuthOwnerError, nothing written) a folder owned by another tenant, and a folder with
 * files but no owner record (from before owners were recorded) unless the caller is the admin.
 */
export async function claimAuthDir(sessionsDir: string, sessionId: string, tenant: string): Promise<'new' | 'kept'> {
  const dir = safeSessionDir(sessionsDir, sessionId);
  const present = await entries(dir);
  const owner = present ? await readAuthOwner(dir) : null;
  if (owner !== null && owner !== tenant) throw new AuthOwnerError('auth folder belongs to another tenant');
  if (owner === null && present && present.length > 0 && tenant !== ADMIN_TENANT)
    throw new AuthOwnerError('auth folder has no recorded owner');
  if (owner === tenant) return 'kept';
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  // temp + rename: a crash never leaves a half-written owner file.
  const tmp = path.join(dir, `${OWNER_FILE}.tmp-${process.pid}`);
  await fs.writeFile(tmp, JSON.stringify({ tenant, sessionId, at: Date.now() }), { mode: 0o600 });
  await fs.rename(tmp, path.join(dir, OWNER_FILE));
  return present ? 'kept' : 'new';
}
