import { z } from 'zod';
import { parseProxyUrl, ProxyUrlError } from './proxy-url.js';

/**
 * The one configuration schema for every environment variable of the API and the orchestrator (SPEC §10).
 * Defaults come from the seeds. The wa-worker has its own, smaller schema (wa-worker/config.ts) because it
 * runs in its own container with its own environment.
 */

const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (def: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ message: 'must be a number' })
    .int('must be a whole number')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`)
    .default(def);

const secret = (what: string) =>
  z
    .string({ required_error: `is required (${what})` })
    .min(16, 'must be at least 16 characters')
    .refine((s) => !/\s/.test(s), 'must not contain whitespace');

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
  REDIS_KEY_PREFIX: z
    .string()
    .default('')
    .refine((s) => /^[A-Za-z0-9:_-]*$/.test(s), 'may contain only letters, digits, ":", "_" and "-"'),
  TEMPORAL_ADDRESS: z.string().min(3).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('wa-sessions'),
  /** Prefix of every workflow id: one per deployment sharing a Temporal namespace. */
  WORKFLOW_ID_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be 1-32 letters, digits, "_" or "-"')
    .default('wa'),
  TEMPORAL_UI_URL: url('http://127.0.0.1:8233', ['http:', 'https:']),
  MAX_SESSIONS_PER_PROXY: int(4, 1, 1000),
  WATCHDOG_INTERVAL_MS: int(60_000, 100),
  PING_TIMEOUT_MS: int(180_000, 100),
  /** Comma- or newline-separated pool, in addition to PROXY_URL_1, PROXY_URL_2, ... */
  PROXY_URLS: z.string().default(''),
  LOW_PROXY_INVENTORY_THRESHOLD: int(2, 0),
  TELEGRAM_BOT_TOKEN: z.string().optional(),
  TELEGRAM_CHAT_ID: z.string().optional(),
  TELEGRAM_API_BASE_URL: url('https://api.telegram.org', ['http:', 'https:']),
  SESSIONS_DIR: z.string().min(1).default('./sessions'),
  BACKUPS_DIR: z.string().min(1).default('./backups'),
  MAX_BACKUPS: int(7, 1, 1000),
  BACKUP_CRON: z.string().min(9).default('0 3 * * *'),
  BACKUP_TIMEZONE: z.string().min(1).default('UTC'),
  ENABLE_KEEP_ALIVE: bool(true),
  /** How sessions run: `docker` (one container each, production) or `process` (child processes). */
  RUNNER: z.enum(['docker', 'process']).default('docker'),
  WORKER_IMAGE: z.string().min(1).default('whatsapp-worker-image:0.1.0'),
  DOCKER_NETWORK: z.string().min(1).default('whatsapp-network'),
  WORKER_MEMORY_MB: int(256, 64),
  /** Override of WhatsApp's WebSocket endpoint: the simulator, in tests and the demo. */
  WA_WEBSOCKET_URL: url('wss://web.whatsapp.com/ws/chat', ['ws:', 'wss:']).optional(),
  RATE_LIMIT_MAX_REQUESTS: int(30, 1),
  RATE_LIMIT_WINDOW_MS: int(60_000, 1000),
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
