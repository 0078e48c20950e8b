import { SocksClientError } from 'socks';

/**
 * Helpers to classify the `lastDisconnect.error` Baileys reports in `connection.update`.
 *
 * Baileys wraps WebSocket errors as `Boom('WebSocket Error (<msg>)', { statusCode, data: err })`, so the
 * original error sits in `data`. Status codes alone mislead: a proxy that is down gives 500, a WhatsApp
 * server that is down (no proxy) gives 408, and a hanging proxy gives 408 too.
 */

interface BoomLike {
  data?: unknown;
  output?: { statusCode?: unknown };
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
}

/** True when the disconnect was caused by the SOCKS proxy (down, refusing, hanging, bad credentials, rejected CONNECT). */
export function isProxyError(err: unknown): boolean {
  const data = asRecord(err)?.data ?? undefined;
  return isSocksClientError(data) || isSocksClientError(err);
}

function isSocksClientError(candidate: unknown): boolean {
  if (candidate instanceof SocksClientError) return true;
  const record = asRecord(candidate);
  if (!record) return false;
  // another copy of the `socks` package would fail instanceof; its errors still carry the proxy options
  if (record.constructor?.name === 'SocksClientError') return true;
  return asRecord(asRecord(record.options)?.proxy) !== undefined;
}

/** The Boom status code Baileys attached to a disconnect (401 logged out, 403 banned, 440 replaced, ...). */
export function disconnectStatusCode(err: unknown): number | undefined {
  const statusCode = (asRecord(err) as BoomLike | undefined)?.output?.statusCode;
  return typeof statusCode === 'number' ? statusCode : undefined;
}

/**
 * True when the transport just went away (428 "Connection Terminated") rather than the server ending the
 * stream (428 "Connection Terminated by Server"). A proxy killing an established tunnel looks like this:
 * no proxy error is visible at that moment, only the next connection attempt can tell whether the proxy is
 * still healthy.
 */
export function isTransportDrop(err: unknown): boolean {
  return disconnectStatusCode(err) === 428 && err instanceof Error && err.message === 'Connection Terminated';
}
