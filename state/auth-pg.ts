/**
 * Baileys auth state in PostgreSQL (AUTH_STORE=postgres). One table of entries (session, category, key id) whose
 * values are encrypted per session: AES-256-GCM under a key derived by HKDF-SHA256 from the deployment secret
 * (AUTH_STORE_SECRET) and the session id, with the entry's name as associated data (a value cannot be moved to
 * another session or key unnoticed). Only the API and the orchestrator hold the connection; a worker reaches its
 * own session's entries through the signed auth-state endpoint (api/routes/worker-auth.ts).
 *
 * Fencing: `wa_auth_sessions.generation` is the newest worker generation that read or wrote the session; a call of
 * an older generation is refused inside the same transaction, so a replaced worker can never overwrite newer keys,
 * even in the moment before the API's Redis mirror of the generation moves on.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import pg from 'pg';
import type { AuthCategory } from '../common/auth-keys.js';

export interface AuthEntryRef {
  category: AuthCategory;
  keyId: string;
}
export interface AuthEntry extends AuthEntryRef {
  /** The plaintext (Baileys' BufferJSON text); null = delete. */
  value: Buffer | null;
}

/** A call of a worker generation older than the session's newest. */
export class StaleAuthGenerationError extends Error {
  override readonly name = 'StaleAuthGenerationError';
  constructor(
    readonly generation: number,
    readonly current: number,
  ) {
    super(`worker generation ${generation} was replaced by generation ${current}`);
  }
}

const FORMAT_V1 = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Idempotent, safe when several processes start at once (one advisory lock). */
const MIGRATION = `
SELECT pg_advisory_xact_lock(727175001);
CREATE TABLE IF NOT EXISTS wa_auth_entries (
  session_id text NOT NULL,
  category text NOT NULL,
  key_id text NOT NULL,
  value bytea NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, category, key_id)
);
CREATE TABLE IF NOT EXISTS wa_auth_sessions (
  session_id text PRIMARY KEY,
  generation bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
`;

export class PgAuthStore {
  private readonly keys = new Map<string, Buffer>();

  constructor(
    readonly pool: pg.Pool,
    private readonly secret: string,
  ) {}

  static connect(url: string, secret: string, max = 10): PgAuthStore {
    const pool = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 30_000 });
    // An idle client losing its server must not crash the process; the next query reconnects.
    pool.on('error', () => undefined);
    return new PgAuthStore(pool, secret);
  }

  async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(MIGRATION);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private keyOf(sessionId: string): Buffer {
    let key = this.keys.get(sessionId);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.secret, 'wa-auth-store', `session:${sessionId}`, 32));
      this.keys.set(sessionId, key);
    }
    return key;
  }

  private aad(sessionId: string, category: string, keyId: string): Buffer {
    return Buffer.from(`${sessionId}\u0000${category}\u0000${keyId}`);
  }

  encrypt(sessionId: string, category: string, keyId: string, plain: Buffer): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keyOf(sessionId), iv);
    cipher.setAAD(this.aad(sessionId, category, keyId));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return Buffer.concat([Buffer.from([FORMAT_V1]), iv, cipher.getAuthTag(), body]);
  }

  decrypt(sessionId: string, category: string, keyId: string, stored: Buffer): Buffer {
    if (stored.length < 1 + IV_BYTES + TAG_BYTES || stored[0] !== FORMAT_V1)
      throw new Error(`auth entry ${category}/${keyId} has an unknown format`);
    const iv = stored.subarray(1, 1 + IV_BYTES);
    const tag = stored.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.keyOf(sessionId), iv);
    decipher.setAAD(this.aad(sessionId, category, keyId));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(stored.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
  }

  /** Raises the session's generation to `generation` (no-op without one); throws when a newer one was seen. */
  private async fence(client: pg.PoolClient, sessionId: string, generation: number | undefined): Promise<void> {
    if (generation === undefined) return;
    const { rows } = await client.query<{ generation: string }>(
      `INSERT INTO wa_auth_sessions (session_id, generation) VALUES ($1, $2)
       ON CONFLICT (session_id) DO UPDATE
         SET generation = GREATEST(wa_auth_sessions.generation, EXCLUDED.generation), updated_at = now()
       RETURNING generation`,
      [sessionId, generation],
    );
    const current = Number(rows[0]!.generation);
    if (current > generation) throw new StaleAuthGenerationError(generation, current);
  }

  private async tx<T>(fn: (client: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query(begin);
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** The entries asked for that exist, decrypted. */
  async read(sessionId: string, refs: AuthEntryRef[], generation?: number): Promise<AuthEntry[]> {
    if (refs.length === 0 && generation === undefined) return [];
    return this.tx(async (client) => {
      await this.fence(client, sessionId, generation);
      if (refs.length === 0) return [];
      const { rows } = await client.query<{ category: AuthCategory; key_id: string; value: Buffer }>(
        `SELECT e.category, e.key_id, e.value FROM wa_auth_entries e
           JOIN unnest($2::text[], $3::text[]) AS r(category, key_id)
             ON e.category = r.category AND e.key_id = r.key_id
          WHERE e.session_id = $1`,
        [sessionId, refs.map((r) => r.category), refs.map((r) => r.keyId)],
      );
      return rows.map((r) => ({
        category: r.category,
        keyId: r.key_id,
        value: this.decrypt(sessionId, r.category, r.key_id, r.value),
      }));
    });
  }

  /**
   * Applies a batch of sets and deletes atomically (later entries of the batch win), fenced by `generation`: ONE
   * statement (data-modifying CTEs: the fence, the upserts, the deletes), so one round trip and one commit per batch.
   * A stale generation changes nothing: the entries are written only when the fence row allows it.
   */
  async write(sessionId: string, entries: AuthEntry[], generation?: number): Promise<void> {
    const last = new Map<string, AuthEntry>();
    for (const e of entries) last.set(`${e.category}\u0000${e.keyId}`, e);
    const sets = [...last.values()].filter((e) => e.value !== null);
    const dels = [...last.values()].filter((e) => e.value === null);
    const { rows } = await this.pool.query<{ generation: string | null }>(
      `WITH fence AS (
         INSERT INTO wa_auth_sessions (session_id, generation)
         SELECT $1, $2::bigint WHERE $2::bigint IS NOT NULL
         ON CONFLICT (session_id) DO UPDATE
           SET generation = GREATEST(wa_auth_sessions.generation, EXCLUDED.generation), updated_at = now()
         RETURNING generation
       ),
       allowed AS (
         SELECT 1 WHERE $2::bigint IS NULL OR (SELECT generation FROM fence) <= $2::bigint
       ),
       upserted AS (
         INSERT INTO wa_auth_entries (session_id, category, key_id, value)
         SELECT $1, t.category, t.key_id, t.value
           FROM unnest($3::text[], $4::text[], $5::bytea[]) AS t(category, key_id, value), allowed
         ON CONFLICT (session_id, category, key_id) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
         RETURNING 1
       ),
       deleted AS (
         DELETE FROM wa_auth_entries e USING unnest($6::text[], $7::text[]) AS r(category, key_id), allowed
          WHERE e.session_id = $1 AND e.category = r.category AND e.key_id = r.key_id
         RETURNING 1
       )
       SELECT (SELECT generation FROM fence) AS generation,
              (SELECT count(*) FROM upserted) + (SELECT count(*) FROM deleted) AS changed`,
      [
        sessionId,
        generation ?? null,
        sets.map((e) => e.category),
        sets.map((e) => e.keyId),
        sets.map((e) => this.encrypt(sessionId, e.category, e.keyId, e.value!)),
        dels.map((e) => e.category),
        dels.map((e) => e.keyId),
      ],
    );
    const current = rows[0]?.generation;
    if (generation !== undefined && current !== null && current !== undefined && Number(current) > generation)
      throw new StaleAuthGenerationError(generation, Number(current));
  }

  /** Every entry of a session, decrypted (migration, verification). */
  async readAll(sessionId: string): Promise<AuthEntry[]> {
    const { rows } = await this.pool.query<{ category: AuthCategory; key_id: string; value: Buffer }>(
      'SELECT category, key_id, value FROM wa_auth_entries WHERE session_id = $1 ORDER BY category, key_id',
      [sessionId],
    );
    return rows.map((r) => ({
      category: r.category,
      keyId: r.key_id,
      value: this.decrypt(sessionId, r.category, r.key_id, r.value),
    }));
  }

  /**
   * Every entry of these sessions as of one moment (one REPEATABLE READ transaction): the consistent snapshot a
   * backup archives.
   */
  async snapshot(sessionIds: string[]): Promise<Map<string, AuthEntry[]>> {
    const out = new Map<string, AuthEntry[]>();
    if (!sessionIds.length) return out;
    const rows = await this.tx(async (client) => {
      const result = await client.query<{
        session_id: string;
        category: AuthCategory;
        key_id: string;
        value: Buffer;
      }>(
        `SELECT session_id, category, key_id, value FROM wa_auth_entries
          WHERE session_id = ANY($1::text[]) ORDER BY session_id, category, key_id`,
        [sessionIds],
      );
      return result.rows;
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    for (const r of rows) {
      const list = out.get(r.session_id) ?? [];
      list.push({
        category: r.category,
        keyId: r.key_id,
        value: this.decrypt(r.session_id, r.category, r.key_id, r.value),
      });
      out.set(r.session_id, list);
    }
    return out;
  }

  /** Replaces every entry of a session by `entries`, in one transaction (migration into PostgreSQL). */
  async replaceAll(sessionId: string, entries: AuthEntry[]): Promise<void> {
    await this.tx(async (client) => {
      await client.query('DELETE FROM wa_auth_entries WHERE session_id = $1', [sessionId]);
      const sets = entries.filter((e) => e.value !== null);
      if (!sets.length) return;
      await client.query(
        `INSERT INTO wa_auth_entries (session_id, category, key_id, value)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bytea[])`,
        [
          sessionId,
          sets.map((e) => e.category),
          sets.map((e) => e.keyId),
          sets.map((e) => this.encrypt(sessionId, e.category, e.keyId, e.value!)),
        ],
      );
    });
  }

  async hasCreds(sessionId: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      "SELECT 1 FROM wa_auth_entries WHERE session_id = $1 AND category = 'creds' LIMIT 1",
      [sessionId],
    );
    return (rowCount ?? 0) > 0;
  }

  /**
   * Sets the session's generation before its worker of that generation starts (the orchestrator, like the fence
   * file of the session folder): from then on every older worker is refused. Set, not raised: a session provisioned
   * again starts counting anew.
   */
  async setGeneration(sessionId: string, generation: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO wa_auth_sessions (session_id, generation) VALUES ($1, $2)
       ON CONFLICT (session_id) DO UPDATE SET generation = EXCLUDED.generation, updated_at = now()`,
      [sessionId, generation],
    );
  }

  /** Sessions with entries. */
  async sessions(): Promise<string[]> {
    const { rows } = await this.pool.query<{ session_id: string }>(
      'SELECT DISTINCT session_id FROM wa_auth_entries ORDER BY session_id',
    );
    return rows.map((r) => r.session_id);
  }

  /** Removes every entry of a session (delete, logout) and its generation record. Returns the entries removed. */
  async deleteSession(sessionId: string): Promise<number> {
    return this.tx(async (client) => {
      const res = await client.query('DELETE FROM wa_auth_entries WHERE session_id = $1', [sessionId]);
      await client.query('DELETE FROM wa_auth_sessions WHERE session_id = $1', [sessionId]);
      return res.rowCount ?? 0;
    });
  }
}
