/**
 * Moves sessions' Baileys auth state between the two stores, both ways:
 *   node --import tsx scripts/auth-migrate.ts --to postgres [--session ID]... [--idle-ms 15000]
 *   node --import tsx scripts/auth-migrate.ts --to file     [--session ID]...
 * Environment: SESSIONS_DIR, AUTH_DATABASE_URL, AUTH_STORE_SECRET (as the deployment's).
 *
 * Run it while the sessions' workers are stopped (stop the orchestrators; their workers stop with
 * `docker stop` / the runner), then start them with the new AUTH_STORE: they log in again without a QR. A session
 * whose worker wrote its heartbeat file within --idle-ms is left alone (reported as `busy`).
 *
 * Per session: copy, verify (every entry read back and compared byte for byte), then switch — the source is
 * emptied, creds first, so the session's creds are only ever in one store after the switch starts. Idempotent and
 * resumable: a session whose creds are already only in the target is `done` (leftover source keys of an
 * interrupted switch are removed then); a session interrupted before its switch is copied again.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { SessionIdSchema } from '../common/events.js';
import { PgAuthStore } from '../state/auth-pg.js';
import { folderToPostgres, postgresToFolder } from '../state/auth-transfer.js';
import { HEALTH_FILE } from '../wa-worker/health.js';

export type Outcome = 'moved' | 'done' | 'empty' | 'busy' | 'failed';
export interface MigrationReport {
  to: 'file' | 'postgres';
  sessions: Array<{ sessionId: string; outcome: Outcome; entries?: number; error?: string }>;
}

const EnvSchema = z.object({
  SESSIONS_DIR: z.string().min(1).default('./sessions'),
  AUTH_DATABASE_URL: z
    .string({ required_error: 'is required (the auth database)' })
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  AUTH_STORE_SECRET: z
    .string({ required_error: 'is required (the deployment secret of the auth store)' })
    .min(32, 'must be at least 32 characters'),
});

/** A worker wrote its heartbeat within `idleMs`: it may still be writing keys. */
async function busy(dir: string, idleMs: number): Promise<boolean> {
  if (idleMs <= 0) return false;
  try {
    const at = (JSON.parse(await readFile(path.join(dir, HEALTH_FILE), 'utf8')) as { at?: number }).at ?? 0;
    return Date.now() - at < idleMs;
  } catch {
    return false;
  }
}

export async function migrate(opts: {
  to: 'file' | 'postgres';
  sessionsDir: string;
  store: PgAuthStore;
  sessions?: string[];
  idleMs?: number;
  log?: (line: string) => void;
}): Promise<MigrationReport> {
  const idleMs = opts.idleMs ?? 15_000;
  let ids = opts.sessions;
  if (!ids?.length) {
    if (opts.to === 'postgres') {
      const dirents = await readdir(opts.sessionsDir, { withFileTypes: true }).catch(() => []);
      ids = dirents.filter((d) => d.isDirectory() && SessionIdSchema.safeParse(d.name).success).map((d) => d.name);
    } else {
      ids = await opts.store.sessions();
    }
  }
  const report: MigrationReport = { to: opts.to, sessions: [] };
  for (const sessionId of [...new Set(ids)].sort()) {
    try {
      const dir = path.join(opts.sessionsDir, sessionId);
      const r = (await busy(dir, idleMs))
        ? { outcome: 'busy' as const }
        : opts.to === 'postgres'
          ? await folderToPostgres(opts.store, dir, sessionId)
          : await postgresToFolder(opts.store, dir, sessionId);
      report.sessions.push({ sessionId, ...r });
    } catch (err) {
      report.sessions.push({ sessionId, outcome: 'failed', error: (err as Error).message });
    }
    const last = report.sessions.at(-1)!;
    opts.log?.(
      `${last.sessionId}: ${last.outcome}${last.entries !== undefined ? ` (${last.entries} entries)` : ''}${last.error ? ` — ${last.error}` : ''}`,
    );
  }
  return report;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      to: { type: 'string' },
      session: { type: 'string', multiple: true },
      'idle-ms': { type: 'string', default: '15000' },
      json: { type: 'boolean', default: false },
    },
  });
  if (values.to !== 'file' && values.to !== 'postgres') {
    process.stderr.write('usage: auth-migrate.ts --to postgres|file [--session ID]... [--idle-ms MS] [--json]\n');
    process.exit(2);
  }
  for (const s of values.session ?? []) {
    if (!SessionIdSchema.safeParse(s).success) {
      process.stderr.write(`--session: not a session id: ${s}\n`);
      process.exit(2);
    }
  }
  const env = EnvSchema.safeParse(process.env);
  if (!env.success) {
    for (const i of env.error.issues) process.stderr.write(`${String(i.path[0])}: ${i.message}\n`);
    process.exit(2);
  }
  const idleMs = Number(values['idle-ms']);
  const store = PgAuthStore.connect(env.data.AUTH_DATABASE_URL, env.data.AUTH_STORE_SECRET, 2);
  try {
    await store.migrate();
    const report = await migrate({
      to: values.to,
      sessionsDir: path.resolve(env.data.SESSIONS_DIR),
      store,
      sessions: values.session,
      idleMs: Number.isFinite(idleMs) ? idleMs : 15_000,
      log: values.json ? undefined : (line) => process.stdout.write(`${line}\n`),
    });
    if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    const count = (o: Outcome) => report.sessions.filter((s) => s.outcome === o).length;
    if (!values.json)
      process.stdout.write(
        `to ${values.to}: ${count('moved')} moved, ${count('done')} already done, ${count('empty')} empty, ${count('busy')} busy, ${count('failed')} failed\n`,
      );
    process.exitCode = count('failed') || count('busy') ? 1 : 0;
  } finally {
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    process.stderr.write(`auth-migrate: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
