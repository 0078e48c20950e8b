import { redactProxyUrl } from './proxy-url.js';

/**
 * Paths that pino must censor in every log line: secrets travel in these fields. Combined with
 * {@link redactText} for free-form strings (error messages that quote a proxy URL, for instance).
 */
export const REDACTED_LOG_PATHS = [
  'apiKey',
  'webhookSecret',
  'password',
  'secret',
  'token',
  '*.apiKey',
  '*.webhookSecret',
  '*.password',
  '*.secret',
  '*.token',
  'req.headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers["x-wa-signature"]',
  'headers["x-api-key"]',
  'env.API_KEY',
  'env.WEBHOOK_SECRET',
  'env.MEDIA_URL_SECRET',
  'MEDIA_URL_SECRET',
  '*.MEDIA_URL_SECRET',
  'env.TELEGRAM_BOT_TOKEN',
  'env.PROXY_URL',
  'env.S3_SECRET_ACCESS_KEY',
  'S3_SECRET_ACCESS_KEY',
  '*.S3_SECRET_ACCESS_KEY',
  'secretAccessKey',
  '*.secretAccessKey',
  'env.AUTH_STORE_SECRET',
  'AUTH_STORE_SECRET',
  '*.AUTH_STORE_SECRET',
  'env.AUTH_DATABASE_URL',
  'AUTH_DATABASE_URL',
  '*.AUTH_DATABASE_URL',
];

/** Redacts proxy and database credentials and Telegram bot tokens inside any string. */
export function redactText(text: string): string {
  return redactProxyUrl(text)
    .replace(/\b(postgres(?:ql)?):\/\/([^:@/\s]*):([^@\s]*)@/gi, '$1://$2:***@')
    .replace(/\bbot\d{3,}:[A-Za-z0-9_-]{20,}/g, 'bot***');
}

/** Deep-copies a JSON-like value, redacting every string in it. For API responses and log payloads. */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redactText(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v)) as T;
  if (value && typeof value === 'object' && !(value instanceof Date) && !Buffer.isBuffer(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)])) as T;
  }
  return value;
}
