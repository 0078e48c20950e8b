import { z } from 'zod';
import { envBool, envInt, envSecret } from './env-schema.js';
import { CodecKeyError, parseCodecKeys } from './codec.js';
import { parseProxyUrl, ProxyUrlError } from './proxy-url.js';

/**
 * The one configuration schema for every environment variable of the API and the orchestrator (SPEC §10).
 * Defaults come from the seeds. The wa-worker has its own, smaller schema (wa-worker/config.ts) because it
 * runs in its own container with its own environment.
 */

const bool = envBool;
const int = envInt;
const secret = envSecret;

const url = (def: string, protocols: string[]) =>
  z
    .string()
    .default(def)
    .refine(
      (s) => {
        try {
          return protocols.includes(new URL(s).protocol);
        } catch {
          return false;
        }
      },
      `must be a URL (${protocols.join(' or ')})`,
    );

const tenantKeys = z
  .string()
  .default('')
  .transform((s, ctx) => {
    const out: Array<{ tenant: string; key: string }> = [];
    for (const entry of s
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean)) {
      const sep = entry.indexOf(':');
      const tenant = entry.slice(0, sep);
      const key = entry.slice(sep + 1);
      if (sep <= 0 || !/^[A-Za-z0-9_-]{1,64}$/.test(tenant) || key.length < 16) {
        ctx.addIssue({
          code: 'custom',
          message: 'entries must be tenant:key with a safe tenant name and a key of 16+ chars',
        });
        return z.NEVER;
      }
      out.push({ tenant, key });
    }
    return out;
  });

export const configSchema = z.object({
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  API_HOST: z.string().min(1).default('127.0.0.1'),
  API_PORT: int(3000, 1, 65535),
  /** Admin key: reaches every tenant's sessions. */
  API_KEY: secret('the admin API key, e.g. `openssl rand -hex 32`'),
  /** Tenant-scoped keys: `tenantA:key1,tenantB:key2`. */
  TENANT_API_KEYS: tenantKeys,
  ONE_SESSION_PER_TENANT: bool(true),
  WEBHOOK_SECRET: secret('signs worker webhooks, e.g. `openssl rand -hex 32`'),
  /** Where workers send their events (the API's webhook bridge), as seen from a worker. */
  WEBHOOK_URL: url('http://127.0.0.1:3000/api/webhook', ['http:', 'https:']),
  REDIS_URL: url('redis://127.0.0.1:6379', ['redis:', 'rediss:']),
  /** A leading hash tag (`{wa}:`) puts every key of the deployment in one Redis Cluster slot (state/lua.ts). */
  REDIS_KEY_PREFIX: z
    .string()
    .default('')
    .refine(
      (s) => /^(\{[A-Za-z0-9_-]+\})?[A-Za-z0-9:_-]*$/.test(s),
      'may contain only letters, digits, ":", "_" and "-", after an optional hash tag such as {wa}',
    ),
  TEMPORAL_ADDRESS: z.string().min(3).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('wa-sessions'),
  /** Payload codec keys (common/codec.ts): `id:base64key,...`, the first one encrypts. */
  TEMPORAL_CODEC_KEYS: z
    .string({ required_error: 'is required (payload codec keys, e.g. `k1:` followed by `openssl rand -base64 32`)' })
    .superRefine((s, ctx) => {
      try {
        parseCodecKeys(s);
      } catch (err) {
        if (!(err instanceof CodecKeyError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.message });
      }
    }),
  /** This orchestrator's Docker host: container activities of the sessions placed here run on its own queue. */
  HOST_ID: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be 1-32 letters, digits, "_" or "-"')
    .default('local'),
  /** Sessions this host may hold (placement picks the live host with the most free capacity). */
  HOST_CAPACITY: int(500, 1),
  HOST_HEARTBEAT_MS: int(5000, 100),
  /**
   * A host whose heartbeat is older than this is dead: the live hosts move its sessions (workflows/host-failover.ts;
   * needs AUTH_STORE=postgres, else its sessions wait for it). Well above HOST_HEARTBEAT_MS: a pause is not a death.
   */
  HOST_DEAD_AFTER_MS: int(60_000, 500),
  /** Sessions a host failover moves at once (each move is a login on the new host: no login storm). */
  HOST_FAILOVER_CONCURRENCY: int(4, 1),
  /** Prefix of every workflow id: one per deployment sharing a Temporal namespace. */
  WORKFLOW_ID_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be 1-32 letters, digits, "_" or "-"')
    .default('wa'),
  TEMPORAL_UI_URL: url('http://127.0.0.1:8233', ['http:', 'https:']),
  MAX_SESSIONS_PER_PROXY: int(4, 1, 1000),
  /** Worker logins (connect → open, QR or failure) in flight at once per host: a fleet restart is no login storm. */
  MAX_CONCURRENT_LOGINS: int(10, 1, 10_000),
  /** A login slot whose worker neither opened, showed a QR nor failed within this is given to the next one. */
  LOGIN_LEASE_MS: int(60_000, 100),
  WATCHDOG_INTERVAL_MS: int(60_000, 100),
  PING_TIMEOUT_MS: int(180_000, 100),
  /** A session workflow continues as new past this many history events (small histories replay fast). */
  SESSION_MAX_HISTORY_EVENTS: int(2000, 20),
  /** Attempts of each Redis step of a session workflow before the step fails and is retried later (~1 min at 10). */
  SESSION_ACTIVITY_ATTEMPTS: int(10, 1, 100),
  /** Comma- or newline-separated pool, in addition to PROXY_URL_1, PROXY_URL_2, ... */
  PROXY_URLS: z.string().default(''),
  LOW_PROXY_INVENTORY_THRESHOLD: int(2, 0),
  /** Alert when fewer device profiles than this are unused. */
  LOW_DEVICE_PROFILE_THRESHOLD: int(5, 0),
  TELEGRAM_BOT_TOKEN: z.string().optional(),
  TELEGRAM_CHAT_ID: z.string().optional(),
  TELEGRAM_API_BASE_URL: url('https://api.telegram.org', ['http:', 'https:']),
  /** First retry delay of an undelivered alert (doubles per attempt, capped at 5 min). */
  ALERT_RETRY_BASE_MS: int(2000, 10),
  SESSIONS_DIR: z.string().min(1).default('./sessions'),
  BACKUPS_DIR: z.string().min(1).default('./backups'),
  MAX_BACKUPS: int(7, 1, 1000),
  BACKUP_CRON: z.string().min(9).default('0 3 * * *'),
  BACKUP_TIMEZONE: z.string().min(1).default('UTC'),
  /**
   * Where archives live: `local` (BACKUPS_DIR) or `s3` (an S3-compatible bucket: written and verified in BACKUPS_DIR,
   * uploaded, then the local copy removed). Credentials from S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY, else the AWS
   * SDK's default chain (instance roles).
   */
  BACKUP_STORE: z.enum(['local', 's3']).default('local'),
  S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name (3-63 of a-z 0-9 . -)')
    .optional(),
  /** Key prefix of every object (several deployments in one bucket), e.g. `prod/`. */
  S3_PREFIX: z
    .string()
    .default('backups/')
    .refine(
      (s) => s === '' || /^[A-Za-z0-9!_.*'()/-]{0,200}\/$/.test(s),
      'must be empty or end with / (safe characters)',
    ),
  /** A non-AWS endpoint (SeaweedFS, MinIO): path-style addressing is used. Unset: AWS in S3_REGION. */
  S3_ENDPOINT: url('http://127.0.0.1:8333', ['http:', 'https:']).optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  /** Restore refuses archives that expand beyond this (zip bombs), or compress an entry more than the ratio. */
  BACKUP_MAX_UNCOMPRESSED_MB: int(512, 1),
  BACKUP_MAX_RATIO: int(200, 2),
  BACKUP_MAX_ENTRIES: int(100_000, 10),
  /** How long a restore waits for the restored sessions to be connected before it rolls back. */
  /**
   * Where Baileys' auth state lives: `file` (each session's folder under SESSIONS_DIR) or `postgres` (PostgreSQL at
   * AUTH_DATABASE_URL, encrypted per session with a key derived from AUTH_STORE_SECRET; workers reach it only through
   * the API's signed auth-state endpoint and get no database credentials).
   */
  AUTH_STORE: z.enum(['file', 'postgres']).default('file'),
  AUTH_DATABASE_URL: z.preprocess(
    (v) => (v === '' ? undefined : v),
    url('postgres://127.0.0.1:5432/wa_auth', ['postgres:', 'postgresql:']).optional(),
  ),
  AUTH_STORE_SECRET: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .min(32, 'must be at least 32 characters')
      .refine((s) => !/\s/.test(s), 'must not contain whitespace')
      .optional(),
  ),
  /** How long a worker gathers auth writes before it sends them as one request (one transaction). */
  AUTH_WRITE_BATCH_MS: int(5, 0, 1000),
  RESTORE_CONNECT_TIMEOUT_MS: int(90_000, 1000),
  /** A waiting restore call answers 202 (still running) after this long rather than hold the request open. */
  RESTORE_ANSWER_WAIT_MS: int(45_000, 100),
  ENABLE_KEEP_ALIVE: bool(true),
  /** How sessions run: `docker` (one container each, production) or `process` (child processes). */
  RUNNER: z.enum(['docker', 'process']).default('docker'),
  WORKER_IMAGE: z.string().min(1).default('whatsapp-worker-image:0.1.0'),
  DOCKER_NETWORK: z.string().min(1).default('whatsapp-network'),
  WORKER_MEMORY_MB: int(256, 64),
  /** Override of WhatsApp's WebSocket endpoint: the simulator, in tests and the demo. */
  WA_WEBSOCKET_URL: url('wss://web.whatsapp.com/ws/chat', ['ws:', 'wss:']).optional(),
  /** Demo only: the simulator's control API, so the dashboard can "scan" a QR with a simulated phone. */
  DEMO_SIMULATOR_URL: url('http://127.0.0.1:9401', ['http:']).optional(),
  RATE_LIMIT_MAX_REQUESTS: int(30, 1),
  RATE_LIMIT_WINDOW_MS: int(60_000, 1000),
  // --- Outbound messages and anti-ban (README "Outbound messages and anti-ban") ---
  /** Accepted POST /api/send per window for the whole deployment (all tenants together). */
  RATE_LIMIT_GLOBAL_MAX_REQUESTS: int(1000, 1),
  /** How long an idempotency key maps to its first message and response. */
  IDEMPOTENCY_TTL_MS: int(86_400_000, 1000),
  /** The rolling "day" of the daily caps (shrink in tests). */
  ANTIBAN_WINDOW_MS: int(86_400_000, 100),
  ANTIBAN_COLD_DAILY: int(10, 1),
  ANTIBAN_WARM_DAILY: int(50, 1),
  ANTIBAN_HOT_DAILY: int(200, 1),
  /** Mean gap between two sends per level (messages per minute = 60000 / gap). */
  ANTIBAN_COLD_GAP_MS: int(60_000, 10),
  ANTIBAN_WARM_GAP_MS: int(20_000, 10),
  ANTIBAN_HOT_GAP_MS: int(6_000, 10),
  /** Jitter on every gap, in percent of the mean (30 → ±30%). */
  ANTIBAN_JITTER_PERCENT: int(30, 0, 90),
  /** Burst: more than BURST_COUNT enqueues within BURST_WINDOW_MS slow the session by BURST_SLOWDOWN for BURST_PAUSE_MS. */
  ANTIBAN_BURST_COUNT: int(50, 1),
  ANTIBAN_BURST_WINDOW_MS: int(60_000, 10),
  ANTIBAN_BURST_PAUSE_MS: int(600_000, 10),
  ANTIBAN_BURST_SLOWDOWN: int(3, 1, 100),
  /** This many 463/479 refusals in a row on one session slow it like a burst (and raise an event + alert). */
  ANTIBAN_REJECTION_RUN: int(3, 1, 1000),
  /** How often an idle or disconnected session's dispatcher looks again without being woken. */
  ANTIBAN_IDLE_POLL_MS: int(15_000, 50),
  /** Automatic promotion cold → warm → hot: account age, messages handed off, delivery rate (percent). */
  ANTIBAN_WARM_MIN_AGE_MS: int(3 * 86_400_000, 0),
  ANTIBAN_WARM_MIN_SENT: int(20, 0),
  ANTIBAN_HOT_MIN_AGE_MS: int(14 * 86_400_000, 0),
  ANTIBAN_HOT_MIN_SENT: int(100, 0),
  ANTIBAN_PROMOTE_MIN_DELIVERY_PERCENT: int(90, 0, 100),
  /**
   * Typing before sends: the worker shows `composing` for min + length · MS_PER_CHAR (± jitter),
   * clamped to the level's [MIN, MAX], then sends, then `paused`. MAX 0 turns it off for that level; per-session
   * overrides in PUT /api/anti-ban/sessions/:id/limits (typingMinMs, typingMaxMs). ANTIBAN_TYPING=false: off.
   */
  ANTIBAN_TYPING: bool(true),
  ANTIBAN_TYPING_MS_PER_CHAR: int(40, 0, 1000),
  ANTIBAN_TYPING_JITTER_PERCENT: int(25, 0, 90),
  ANTIBAN_COLD_TYPING_MIN_MS: int(2_000, 0, 30_000),
  ANTIBAN_COLD_TYPING_MAX_MS: int(8_000, 0, 30_000),
  ANTIBAN_WARM_TYPING_MIN_MS: int(1_500, 0, 30_000),
  ANTIBAN_WARM_TYPING_MAX_MS: int(6_000, 0, 30_000),
  ANTIBAN_HOT_TYPING_MIN_MS: int(1_000, 0, 30_000),
  ANTIBAN_HOT_TYPING_MAX_MS: int(4_000, 0, 30_000),
  /**
   * Number checks (POST /api/contacts/check): answers cached per number for CACHE_TTL; at most PER_MINUTE numbers
   * per session sent to WhatsApp per minute (cache hits are free); at most 50 numbers per request (one usync query);
   * the request waits TIMEOUT for the worker.
   */
  CONTACT_CHECK_CACHE_TTL_MS: int(7 * 86_400_000, 1000),
  CONTACT_CHECK_PER_MINUTE: int(60, 1, 100_000),
  CONTACT_CHECK_TIMEOUT_MS: int(15_000, 100),
  /**
   * Read receipts: AUTO_READ marks every inbound message read after a uniform delay in [MIN, MAX] (per-session
   * override in PUT /api/anti-ban/sessions/:id/limits: autoRead, readDelayMinMs, readDelayMaxMs).
   */
  AUTO_READ: bool(false),
  AUTO_READ_DELAY_MIN_MS: int(3_000, 0, 3_600_000),
  AUTO_READ_DELAY_MAX_MS: int(20_000, 0, 3_600_000),
  /** Customer webhooks: retries with exponential backoff and full jitter, then the dead-letter list. */
  CLIENT_WEBHOOK_RETRY_BASE_MS: int(1_000, 10),
  CLIENT_WEBHOOK_RETRY_MAX_MS: int(300_000, 10),
  CLIENT_WEBHOOK_MAX_ATTEMPTS: int(12, 1, 100),
  CLIENT_WEBHOOK_TIMEOUT_MS: int(10_000, 100),
  CLIENT_WEBHOOK_POLL_MS: int(500, 10),
  /** Admin allow-list of customer webhook hosts that may be private or loopback (e.g. an on-premises CRM). */
  CLIENT_WEBHOOK_ALLOW_HOSTS: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((h) =>
          h
            .trim()
            .toLowerCase()
            .replace(/^\[|\]$/g, ''),
        )
        .filter(Boolean),
    ),
  /** Largest customer webhook response body read (the rest is discarded). */
  CLIENT_WEBHOOK_MAX_RESPONSE_BYTES: int(16_384, 0),
  // --- Media ---
  /** Where uploaded media waits for its send (local disk; one file per upload). */
  MEDIA_DIR: z.string().min(1).default('./media'),
  /** Where media bytes live: `disk` (MEDIA_DIR) or `s3` (the S3_* endpoint and credentials, shared with backups). */
  MEDIA_STORE: z.enum(['disk', 's3']).default('disk'),
  /** Bucket of media with MEDIA_STORE=s3 (unset: S3_BUCKET); created if missing. */
  MEDIA_S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name (3-63 of a-z 0-9 . -)')
    .optional(),
  /** Key prefix of media objects (`<prefix><tenant>/<id>`). */
  MEDIA_S3_PREFIX: z
    .string()
    .default('media/')
    .refine(
      (s) => s === '' || /^[A-Za-z0-9!_.*'()/-]{0,200}\/$/.test(s),
      'must be empty or end with / (safe characters)',
    ),
  /** Largest media file accepted by POST /api/media or fetched from a URL (WhatsApp's document limit: 2 GB). */
  MEDIA_MAX_BYTES: int(100 * 1024 * 1024, 1),
  /** Time limit of converting audio to a voice note (Opus in OGG) with ffmpeg. */
  MEDIA_CONVERT_TIMEOUT_MS: int(60_000, 100),
  /** The ffmpeg binary that converts voice notes (Debian `ffmpeg`). */
  FFMPEG_PATH: z.string().min(1).default('ffmpeg'),
  /** How long an upload stays usable (and on disk) after it was made. */
  MEDIA_UPLOAD_TTL_MS: int(86_400_000, 1_000),
  /** Time limit of fetching a media URL. */
  MEDIA_URL_TIMEOUT_MS: int(60_000, 100),
  /** How long inbound media files (received messages) are kept on disk and downloadable. */
  MEDIA_RETENTION_HOURS: int(168, 1, 24 * 365),
  /** Lifetime of the signed download URL a `message.received` webhook carries (never beyond the retention). */
  MEDIA_URL_TTL_MS: int(86_400_000, 1_000),
  /** Key of the signed download URLs (HMAC); unset: derived from WEBHOOK_SECRET. */
  MEDIA_URL_SECRET: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z.string().min(16, 'must be at least 16 characters').optional(),
  ),
  /** The API's address as customers reach it, the base of signed download URLs (unset: http://API_HOST:API_PORT). */
  API_PUBLIC_URL: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .refine((s) => /^https?:\/\/[^/?#]+(\/[^?#]*)?$/.test(s) && URL.canParse(s), 'must be an http(s) URL')
      .optional(),
  ),
  // --- Tenant isolation (README "Security") ---
  /** Bearer token of GET /metrics; unset = /metrics answers 401 to everyone. */
  METRICS_TOKEN: z.preprocess(
    (v) => (v === '' ? undefined : v),
    z
      .string()
      .min(16, 'must be at least 16 characters')
      .refine((s) => !/\s/.test(s), 'must not contain whitespace')
      .optional(),
  ),
  /** Live sessions (any status but deleted/logged out) one tenant key may hold. */
  TENANT_MAX_SESSIONS: int(20, 1),
  /** Provisions one tenant may start per window. */
  TENANT_PROVISION_MAX: int(10, 1),
  TENANT_PROVISION_WINDOW_MS: int(3_600_000, 1000),
  /** Manual failovers one tenant may request per window (each one burns a proxy slot move). */
  TENANT_FAILOVER_MAX: int(3, 1),
  TENANT_FAILOVER_WINDOW_MS: int(3_600_000, 1000),
  /** Lifetime of a live-events ticket (POST /api/events/ticket), and concurrent streams per API key. */
  EVENTS_TICKET_TTL_MS: int(30_000, 1000, 600_000),
  EVENTS_MAX_STREAMS_PER_KEY: int(5, 1, 1000),
  /** How long message records and the outbox's ACK/failure records are kept. */
  MESSAGE_RETENTION_MS: int(7 * 86_400_000, 60_000),
  /** how long after it was sent our message may still be edited (WhatsApp: 15 minutes) */
  MESSAGE_EDIT_WINDOW_MS: int(15 * 60_000, 1_000),
  /** how long after it was sent our message may still be deleted for everyone (WhatsApp: about 2 days) */
  MESSAGE_REVOKE_WINDOW_MS: int(2 * 86_400_000, 1_000),
});

export type Config = z.infer<typeof configSchema> & {
  /** The proxy pool from PROXY_URL_n and PROXY_URLS, canonical and de-duplicated. */
  proxyPool: string[];
};

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: Array<{ variable: string; message: string }>) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p.variable}: ${p.message}`).join('\n')}`);
  }
}

/** Validates the environment; throws one {@link ConfigError} listing every bad variable and why. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: Array<{ variable: string; message: string }> = [];
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push({ variable: String(issue.path[0] ?? '?'), message: issue.message });
    }
  }

  const proxyPool: string[] = [];
  const addProxy = (variable: string, raw: string) => {
    try {
      const { url: canonical } = parseProxyUrl(raw.trim());
      if (!proxyPool.includes(canonical)) proxyPool.push(canonical);
    } catch (err) {
      problems.push({ variable, message: err instanceof ProxyUrlError ? err.message : 'invalid proxy URL' });
    }
  };
  const numbered = Object.keys(env)
    .filter((k) => /^PROXY_URL_\d+$/.test(k))
    .sort((a, b) => Number(a.slice(10)) - Number(b.slice(10)));
  for (const key of numbered) if (env[key]) addProxy(key, env[key]!);
  (env.PROXY_URLS ?? '')
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean)
    .forEach((raw, i) => addProxy(`PROXY_URLS[${i}]`, raw));

  if (parsed.success && parsed.data.TENANT_API_KEYS.some((t) => t.key === parsed.data.API_KEY)) {
    problems.push({ variable: 'TENANT_API_KEYS', message: 'a tenant key must differ from the admin API_KEY' });
  }
  if (parsed.success && parsed.data.PING_TIMEOUT_MS <= parsed.data.WATCHDOG_INTERVAL_MS / 2) {
    problems.push({ variable: 'PING_TIMEOUT_MS', message: 'must be more than half of WATCHDOG_INTERVAL_MS' });
  }
  if (parsed.success && parsed.data.BACKUP_STORE === 's3') {
    if (!parsed.data.S3_BUCKET) problems.push({ variable: 'S3_BUCKET', message: 'is required with BACKUP_STORE=s3' });
    if (!parsed.data.S3_ACCESS_KEY_ID !== !parsed.data.S3_SECRET_ACCESS_KEY)
      problems.push({
        variable: parsed.data.S3_ACCESS_KEY_ID ? 'S3_SECRET_ACCESS_KEY' : 'S3_ACCESS_KEY_ID',
        message: 'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY are set together',
      });
  }
  if (parsed.success && parsed.data.MEDIA_STORE === 's3') {
    if (!parsed.data.MEDIA_S3_BUCKET && !parsed.data.S3_BUCKET)
      problems.push({ variable: 'MEDIA_S3_BUCKET', message: 'is required with MEDIA_STORE=s3 (or S3_BUCKET)' });
    if (!parsed.data.S3_ACCESS_KEY_ID !== !parsed.data.S3_SECRET_ACCESS_KEY && parsed.data.BACKUP_STORE !== 's3')
      problems.push({
        variable: parsed.data.S3_ACCESS_KEY_ID ? 'S3_SECRET_ACCESS_KEY' : 'S3_ACCESS_KEY_ID',
        message: 'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY are set together',
      });
  }
  if (parsed.success && parsed.data.AUTH_STORE === 'postgres') {
    if (!parsed.data.AUTH_DATABASE_URL)
      problems.push({ variable: 'AUTH_DATABASE_URL', message: 'is required with AUTH_STORE=postgres' });
    if (!parsed.data.AUTH_STORE_SECRET)
      problems.push({
        variable: 'AUTH_STORE_SECRET',
        message: 'is required with AUTH_STORE=postgres (at least 32 characters, e.g. `openssl rand -hex 32`)',
      });
  }
  if (parsed.success && parsed.data.HOST_DEAD_AFTER_MS < 3 * parsed.data.HOST_HEARTBEAT_MS)
    problems.push({
      variable: 'HOST_DEAD_AFTER_MS',
      message: 'must be at least 3 × HOST_HEARTBEAT_MS (a host missing one heartbeat is not dead)',
    });
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  return { ...parsed.data, proxyPool };
}

/** For process entry points: prints the one configuration message and exits non-zero. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
