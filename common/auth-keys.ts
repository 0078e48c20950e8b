/**
 * The names of Baileys' auth entries, shared by both auth stores (wa-worker/auth-store.ts on disk, the PostgreSQL
 * store behind the API) and the migration tool between them. An entry is (category, key id): `creds` is
 * (`creds`, `creds`); a key is (its Baileys type, its id in the file-name encoding — `/`→`__`, `:`→`-` — so an
 * entry maps to exactly one file `${category}-${keyId}.json` and back, whichever store it came from).
 */
import { z } from 'zod';

export const CREDS_CATEGORY = 'creds';
export const CREDS_KEY_ID = 'creds';

/** Every key type of Baileys 7 (SignalDataTypeMap), plus creds. */
export const AUTH_CATEGORIES = [
  CREDS_CATEGORY,
  'pre-key',
  'session',
  'sender-key',
  'sender-key-memory',
  'app-state-sync-key',
  'app-state-sync-version',
  'lid-mapping',
  'device-list',
  'tctoken',
  'identity-key',
] as const;
export type AuthCategory = (typeof AUTH_CATEGORIES)[number];

export const AuthCategorySchema = z.enum(AUTH_CATEGORIES);
/** A key id as stored: already file-name encoded (no `/`, no `:`), printable, bounded. */
export const AuthKeyIdSchema = z
  .string()
  .min(1)
  .max(256)
  .refine(
    (s) => ![...s].some((c) => c === '/' || c === ':' || c.charCodeAt(0) < 0x20),
    'must be a file-name-encoded key id (no "/", ":" or control characters)',
  );

export function encodeKeyId(id: string): string {
  return id.replace(/\//g, '__').replace(/:/g, '-');
}

/** The file of an entry in a session folder. */
export function authEntryFileName(category: AuthCategory, keyId: string): string {
  return category === CREDS_CATEGORY ? 'creds.json' : `${category}-${keyId}.json`;
}

// Longest first: `sender-key-memory-…` must not be read as a `sender-key` named `memory-…`.
const BY_LENGTH = [...AUTH_CATEGORIES].filter((c) => c !== CREDS_CATEGORY).sort((a, b) => b.length - a.length);

/** The entry a session folder's file holds; null for any other file (schema, spool, ledgers, temp files). */
export function parseAuthFileName(name: string): { category: AuthCategory; keyId: string } | null {
  if (name === 'creds.json') return { category: CREDS_CATEGORY, keyId: CREDS_KEY_ID };
  if (!name.endsWith('.json') || name.includes('.tmp-')) return null;
  const stem = name.slice(0, -'.json'.length);
  for (const category of BY_LENGTH) {
    if (!stem.startsWith(`${category}-`)) continue;
    const keyId = stem.slice(category.length + 1);
    return AuthKeyIdSchema.safeParse(keyId).success ? { category, keyId } : null;
  }
  return null;
}

/**
 * The worker ↔ API auth-state contract (AUTH_STORE=postgres), signed per session like the outbox:
 *   POST {AUTH_STATE_URL}/read  {keys: [{category, keyId}]}                 → 200 {entries: [{category, keyId, value}]}
 *   POST {AUTH_STATE_URL}/write {entries: [{category, keyId, value|null}]}  → 200 {ok, written}  (one transaction)
 * `value` is the entry's BufferJSON text (null deletes it); absent entries are simply not in the answer.
 */
export const AUTH_READ_MAX_KEYS = 2000;
export const AUTH_WRITE_MAX_ENTRIES = 5000;
/** Largest write request (a batch is split below it) and largest single value. */
export const AUTH_WRITE_MAX_BYTES = 8 * 1024 * 1024;

const EntryRefSchema = z.object({ category: AuthCategorySchema, keyId: AuthKeyIdSchema }).strict();

export const AuthReadRequestSchema = z.object({ keys: z.array(EntryRefSchema).max(AUTH_READ_MAX_KEYS) }).strict();
export const AuthWriteRequestSchema = z
  .object({
    entries: z
      .array(EntryRefSchema.extend({ value: z.string().max(AUTH_WRITE_MAX_BYTES).nullable() }).strict())
      .min(1)
      .max(AUTH_WRITE_MAX_ENTRIES),
  })
  .strict();
export type AuthWriteEntry = z.infer<typeof AuthWriteRequestSchema>['entries'][number];
export interface AuthReadResponse {
  entries: Array<{ category: AuthCategory; keyId: string; value: string }>;
}

/** The auth-state endpoint next to the outbox's. */
export const authUrlOf = (outboxUrl: string) => outboxUrl.replace(/\/outbox$/, '/auth');
