import pino, { type Logger } from 'pino';
import { REDACTED_LOG_PATHS, redactText } from './redact.js';

/**
 * The product's logger: JSON lines (pino) with secrets censored twice, by field path and inside every string
 * (a proxy URL quoted in an error message, a bot token in a URL).
 */
export function createLogger(name: string, level = 'info'): Logger {
  return pino({
    name,
    level,
    redact: { paths: REDACTED_LOG_PATHS, censor: '***' },
    formatters: {
      log(object) {
        return JSON.parse(redactText(JSON.stringify(object))) as Record<string, unknown>;
      },
    },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? redactText(a) : a)) as Parameters<typeof method>);
      },
    },
  });
}

export type { Logger };
