/**
 * wa-worker configuration, from the environment only (one container = one session). Invalid configuration is
 * reported once, naming every bad variable, and the process exits with code 2 (see main.ts). No message built here
 * ever contains the proxy password or the webhook secret.
 */
import path from 'node:path';
import { z } from 'zod';
import { envBool, envInt, envSecret } from '../common/env-schema.js';
import { parseProxyUrl, ProxyUrlError, type ParsedProxy } from '../common/proxy-url.js';
import { authUrlOf } from '../common/auth-keys.js';

export const CONFIG_EXIT_CODE = 2;

const bool = envBool;
// Worker intervals and timeouts are at most a day unless a variable says otherwise.
const int = (def: number, min: number, max = 24 * 3600_000) => envInt(def, min, max);

const httpUrl = (what: string) =>
  z
    .string({ required_error: `is required (${what})` })
    .url('must be an http(s) URL')
    .refine((u) => /^https?:\/\//i.test(u), 'must be an http(s) URL');

const EnvSchema = z.object({
  SESSION_ID: z
    .string({ required_error: 'is required (the session id)' })
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must match ^[A-Za-z0-9_-]{1,64}$ (letters, digits, _ and -)'),
  PROXY_URL: z.string({ required_error: 'is required (socks5h://user:pass@host:port)' }).transform((raw, ctx) => {
    try {
      return parseProxyUrl(raw);
    } catch (err) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: err instanceof ProxyUrlError ? err.message : 'is invalid' });
      return z.NEVER;
    }
  }),
  WEBHOOK_URL: httpUrl('where events are posted'),
  WEBHOOK_SECRET: envSecret('HMAC key for webhook signatures'),
  ENABLE_KEEP_ALIVE: bool(true),
  SESSIONS_DIR: z.string().min(1).default('/app/sessions'),
  /** Overrides `${SESSIONS_DIR}/${SESSION_ID}`. */
  AUTH_DIR: z.string().min(1).optional(),
  WA_WEBSOCKET_URL: z
    .string()
    .url('must be a ws:// or wss:// URL')
    .refine((u) => /^wss?:\/\//i.test(u), 'must be a ws:// or wss:// URL')
    .optional(),
  /** Trust this Noise certificate root instead of WhatsApp's (the simulator's published key; 64 hex chars). */
  WA_CERT_ROOT_PUBLIC_KEY: z
    .string()
    .regex(/^[0-9a-f]{64}$/i, 'must be 64 hex characters (a 32-byte public key)')
    .optional(),
  /** WhatsApp Web version to announce (`2.3000.1043857760`); default: the engine's pinned one. */
  WA_VERSION: z
    .string()
    .regex(/^\d+\.\d+\.\d+$/, 'must look like 2.3000.1043857760')
    .optional(),
  /**
   * Where the current WhatsApp Web version is read (`client_revision` in the service worker script), through the
   * session's proxy. Default: https://web.whatsapp.com/sw.js against WhatsApp; none against another server
   * (WA_WEBSOCKET_URL) unless set; `off` never fetches. WA_VERSION wins over it.
   */
  WA_VERSION_URL: z.union([z.literal('off'), httpUrl('the WhatsApp Web service worker script')]).optional(),
  WA_VERSION_FETCH_TIMEOUT_MS: int(3000, 100),
  /** Link by pairing code for this phone (digits, country code first) instead of showing QRs; ignored once linked. */
  PAIRING_PHONE: z
    .string()
    .regex(/^[1-9][0-9]{7,14}$/, 'must be an international number, digits only (country code first)')
    .optional(),
  /**
   * How long a pairing code may be typed on the phone before the worker gives up (reports PAIRING_FAILED). Below
   * the QR refs window (Baileys: 60 s + 5 × 20 s), which would end the attempt first.
   */
  PAIRING_CODE_TTL_MS: int(150_000, 500),
  /** The device/browser identity the client presents, `os|browser|version` (the session's device profile). */
  WA_BROWSER: z
    .string()
    .regex(/^[^|]{1,40}\|[^|]{1,40}\|[^|]{0,40}$/, 'must be os|browser|version, e.g. Ubuntu|Chrome|22.04.4')
    .optional(),
  OUTBOX_URL: httpUrl('the orchestrator outbox endpoint').optional(),
  /** Where the auth state lives: `file` (AUTH_DIR) or `postgres` (through the API's signed auth-state endpoint). */
  AUTH_STORE: z.enum(['file', 'postgres']).default('file'),
  /** The auth-state endpoint (default: next to OUTBOX_URL). */
  AUTH_STATE_URL: httpUrl('the auth-state endpoint').optional(),
  /** How long auth writes are gathered before they go as one request (AUTH_STORE=postgres). */
  AUTH_WRITE_BATCH_MS: int(5, 0, 1000),
  OUTBOX_POLL_MS: int(2000, 50),
  /** Outbox and command claims wait this long on the API for work (long-poll); 0: poll every OUTBOX_POLL_MS. */
  OUTBOX_WAIT_MS: int(50_000, 0, 60_000),
  /** Longest wait between two asks for a login slot while the host's logins are all taken. */
  LOGIN_POLL_MAX_MS: int(1000, 10),
  /** The API cannot be asked for a login slot for this long: connect anyway (pacing never keeps a session down). */
  LOGIN_GATE_TIMEOUT_MS: int(30_000, 100),
  /** Inbound media larger than this is not downloaded (the event says `too_large`). */
  INBOUND_MEDIA_MAX_BYTES: int(100 * 1024 * 1024, 1, 4 * 1024 ** 3),
  /** Time limit of downloading one inbound media file, and of handing it to the API. */
  INBOUND_MEDIA_TIMEOUT_MS: int(120_000, 100),
  PRESENCE_INTERVAL_MS: int(15_000, 100),
  /** Set by the orchestrator: which start of this session's worker this is (stamped on every event). */
  WORKER_GENERATION: int(0, 0).optional(),
  /** Liveness heartbeat (PING webhook) period: always on, in every state, independent of ENABLE_KEEP_ALIVE
   * (default: PRESENCE_INTERVAL_MS). */
  LIVENESS_INTERVAL_MS: int(15_000, 100).optional(),
  /** How long one QR lives (Baileys: 60 s for the first, 20 s for the next); unset keeps Baileys' defaults. */
  WA_QR_TIMEOUT_MS: int(60_000, 500).optional(),
  HIDDEN_MESSAGE_INTERVAL_MS: int(600_000, 100),
  RECONNECT_BASE_MS: int(1000, 10),
  RECONNECT_MAX_MS: int(60_000, 10),
  /** A lost connection back within this long is not reported (neither DISCONNECTED nor CONNECTED); 0 reports all. */
  DISCONNECT_GRACE_MS: int(5_000, 0, 60_000),
  /** The first login's pre-keys are stored while the QR waits only at a host CPU pressure (PSI %) up to this; 100:
   * always, 0: only on an idle host (see pre-keys-ahead.ts). */
  PREKEYS_AHEAD_MAX_CPU_PRESSURE: int(50, 0, 100),
  PREKEYS_AHEAD_RETRY_MS: int(3_000, 10),
  PROXY_RECONNECT_MAX_MS: int(60_000, 10),
  PROXY_TIMEOUT_MS: int(20_000, 100),
  WA_CONNECT_TIMEOUT_MS: int(20_000, 100),
  WA_KEEPALIVE_INTERVAL_MS: int(30_000, 500),
  WA_QUERY_TIMEOUT_MS: int(60_000, 100),
  /** A socket that neither shows a QR nor opens within this time is dropped and reconnected. */
  WA_OPEN_TIMEOUT_MS: int(45_000, 500),
  WEBHOOK_TIMEOUT_MS: int(10_000, 100),
  WEBHOOK_RETRY_BASE_MS: int(500, 10),
  WEBHOOK_RETRY_MAX_MS: int(30_000, 10),
  SPOOL_MAX_BYTES: int(10 * 1024 * 1024, 4096, 1024 * 1024 * 1024),
  HEALTH_INTERVAL_MS: int(5000, 100),
  SHUTDOWN_TIMEOUT_MS: int(8000, 100, 9500),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BAILEYS_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('warn'),
});

export interface WorkerConfig {
  sessionId: string;
  proxy: ParsedProxy;
  webhookUrl: string;
  webhookSecret: string;
  enableKeepAlive: boolean;
  authDir: string;
  waWebSocketUrl: string | undefined;
  waCertRootPublicKey: string | undefined;
  waVersion: [number, number, number] | undefined;
  waVersionUrl: string | undefined;
  waVersionFetchTimeoutMs: number;
  pairingPhone: string | undefined;
  pairingCodeTtlMs: number;
  browser: [string, string, string] | undefined;
  outboxUrl: string | undefined;
  outboxPollMs: number;
  outboxWaitMs: number;
  loginPollMaxMs: number;
  loginGateTimeoutMs: number;
  inboundMediaMaxBytes: number;
  inboundMediaTimeoutMs: number;
  authStore: 'file' | 'postgres';
  /** The auth-state endpoint (set with AUTH_STORE=postgres). */
  authStateUrl: string | undefined;
  authWriteBatchMs: number;
  presenceIntervalMs: number;
  generation: number | undefined;
  livenessIntervalMs: number;
  waQrTimeoutMs: number | undefined;
  hiddenMessageIntervalMs: number;
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  disconnectGraceMs: number;
  preKeysAheadMaxCpuPressure: number;
  preKeysAheadRetryMs: number;
  proxyReconnectMaxMs: number;
  proxyTimeoutMs: number;
  waConnectTimeoutMs: number;
  waKeepAliveIntervalMs: number;
  waQueryTimeoutMs: number;
  waOpenTimeoutMs: number;
  webhookTimeoutMs: number;
  webhookRetryBaseMs: number;
  webhookRetryMaxMs: number;
  spoolMaxBytes: number;
  healthIntervalMs: number;
  shutdownTimeoutMs: number;
  logLevel: string;
  baileysLogLevel: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p.variable}: ${p.message}`).join('\n')}`);
  }
}

/** Parses the environment. Throws {@link ConfigError} listing every bad variable (never echoing secret values). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  // Empty strings count as unset, so `FOO=` in an env file falls back to the default.
  const clean = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(clean);
  if (!parsed.success) {
    const seen = new Set<string>();
    const problems: { variable: string; message: string }[] = [];
    for (const issue of parsed.error.issues) {
      const variable = String(issue.path[0] ?? '(environment)');
      if (seen.has(variable)) continue;
      seen.add(variable);
      problems.push({ variable, message: issue.message === 'Required' ? 'is required' : issue.message });
    }
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  const problems: { variable: string; message: string }[] = [];
  if (e.RECONNECT_MAX_MS < e.RECONNECT_BASE_MS) {
    problems.push({ variable: 'RECONNECT_MAX_MS', message: 'must be at least RECONNECT_BASE_MS' });
  }
  if (e.WEBHOOK_RETRY_MAX_MS < e.WEBHOOK_RETRY_BASE_MS) {
    problems.push({ variable: 'WEBHOOK_RETRY_MAX_MS', message: 'must be at least WEBHOOK_RETRY_BASE_MS' });
  }
  const outboxUrl = e.OUTBOX_URL?.replace(/\/+$/, '');
  const authStateUrl = e.AUTH_STATE_URL?.replace(/\/+$/, '') ?? (outboxUrl ? authUrlOf(outboxUrl) : undefined);
  if (e.AUTH_STORE === 'postgres' && !authStateUrl) {
    problems.push({ variable: 'AUTH_STATE_URL', message: 'is required with AUTH_STORE=postgres (or OUTBOX_URL)' });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    sessionId: e.SESSION_ID,
    proxy: e.PROXY_URL,
    webhookUrl: e.WEBHOOK_URL,
    webhookSecret: e.WEBHOOK_SECRET,
    enableKeepAlive: e.ENABLE_KEEP_ALIVE,
    authDir: path.resolve(e.AUTH_DIR ?? path.join(e.SESSIONS_DIR, e.SESSION_ID)),
    waWebSocketUrl: e.WA_WEBSOCKET_URL,
    waCertRootPublicKey: e.WA_CERT_ROOT_PUBLIC_KEY?.toLowerCase(),
    waVersion: e.WA_VERSION ? (e.WA_VERSION.split('.').map(Number) as [number, number, number]) : undefined,
    waVersionUrl:
      e.WA_VERSION_URL === 'off'
        ? undefined
        : (e.WA_VERSION_URL ?? (e.WA_WEBSOCKET_URL ? undefined : 'https://web.whatsapp.com/sw.js')),
    waVersionFetchTimeoutMs: e.WA_VERSION_FETCH_TIMEOUT_MS,
    pairingPhone: e.PAIRING_PHONE,
    pairingCodeTtlMs: e.PAIRING_CODE_TTL_MS,
    browser: e.WA_BROWSER ? (e.WA_BROWSER.split('|') as [string, string, string]) : undefined,
    outboxUrl,
    outboxPollMs: e.OUTBOX_POLL_MS,
    outboxWaitMs: e.OUTBOX_WAIT_MS,
    loginPollMaxMs: e.LOGIN_POLL_MAX_MS,
    loginGateTimeoutMs: e.LOGIN_GATE_TIMEOUT_MS,
    inboundMediaMaxBytes: e.INBOUND_MEDIA_MAX_BYTES,
    inboundMediaTimeoutMs: e.INBOUND_MEDIA_TIMEOUT_MS,
    authStore: e.AUTH_STORE,
    authStateUrl: e.AUTH_STORE === 'postgres' ? authStateUrl : undefined,
    authWriteBatchMs: e.AUTH_WRITE_BATCH_MS,
    presenceIntervalMs: e.PRESENCE_INTERVAL_MS,
    generation: e.WORKER_GENERATION,
    livenessIntervalMs: e.LIVENESS_INTERVAL_MS ?? e.PRESENCE_INTERVAL_MS,
    waQrTimeoutMs: e.WA_QR_TIMEOUT_MS,
    hiddenMessageIntervalMs: e.HIDDEN_MESSAGE_INTERVAL_MS,
    reconnectBaseMs: e.RECONNECT_BASE_MS,
    reconnectMaxMs: e.RECONNECT_MAX_MS,
    disconnectGraceMs: e.DISCONNECT_GRACE_MS,
    preKeysAheadMaxCpuPressure: e.PREKEYS_AHEAD_MAX_CPU_PRESSURE,
    preKeysAheadRetryMs: e.PREKEYS_AHEAD_RETRY_MS,
    proxyReconnectMaxMs: e.PROXY_RECONNECT_MAX_MS,
    proxyTimeoutMs: e.PROXY_TIMEOUT_MS,
    waConnectTimeoutMs: e.WA_CONNECT_TIMEOUT_MS,
    waKeepAliveIntervalMs: e.WA_KEEPALIVE_INTERVAL_MS,
    waQueryTimeoutMs: e.WA_QUERY_TIMEOUT_MS,
    waOpenTimeoutMs: e.WA_OPEN_TIMEOUT_MS,
    webhookTimeoutMs: e.WEBHOOK_TIMEOUT_MS,
    webhookRetryBaseMs: e.WEBHOOK_RETRY_BASE_MS,
    webhookRetryMaxMs: e.WEBHOOK_RETRY_MAX_MS,
    spoolMaxBytes: e.SPOOL_MAX_BYTES,
    healthIntervalMs: e.HEALTH_INTERVAL_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    logLevel: e.LOG_LEVEL,
    baileysLogLevel: e.BAILEYS_LOG_LEVEL,
  };
}

/** Backoff with full jitter: a random delay in [base/2, min(cap, base·2^attempt)]. */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  const floor = Math.min(ceiling, baseMs / 2);
  return Math.round(floor + random() * (ceiling - floor));
}
