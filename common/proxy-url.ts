/**
 * Proxy URLs: the product accepts exactly `socks5h://user:pass@host:port` (the `h` makes DNS resolve at the
 * proxy, so the session's real location never leaks through a local DNS lookup). Every error message here is
 * built without the password, so it is safe to log or return to an API client.
 */

export class ProxyUrlError extends Error {
  override readonly name = 'ProxyUrlError';
  constructor(message: string) {
    super(message);
  }
}

export interface ParsedProxy {
  /** Canonical form, credentials included: `socks5h://user:pass@host:port`. Never log this. */
  url: string;
  host: string;
  port: number;
  username: string;
  password: string;
  /** `host:port`, the identity shown to operators. */
  endpoint: string;
  /** The URL with the password replaced by `***`. */
  redacted: string;
}

const MAX_URL_LENGTH = 2048;
const MAX_CREDENTIAL_LENGTH = 255; // RFC 1929: username and password are at most 255 bytes each
// Letters, digits, dots and dashes: a DNS name or an IPv4 address. No underscores, no unicode look-alikes.
const HOSTNAME =
  /^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6_LITERAL = /^\[[0-9A-Fa-f:.]+\]$/;
// Printable ASCII without the characters that would break the URL's structure when not percent-encoded.
const SAFE_CREDENTIAL = /^[\x21-\x7e]+$/;

/** Parses and validates a proxy URL. Throws {@link ProxyUrlError} naming the problem; never echoes the password. */
export function parseProxyUrl(raw: unknown): ParsedProxy {
  if (typeof raw !== 'string') throw new ProxyUrlError('proxy URL must be a string');
  if (raw.length === 0) throw new ProxyUrlError('proxy URL is empty');
  if (raw.length > MAX_URL_LENGTH)
    throw new ProxyUrlError(`proxy URL is too long (${raw.length} > ${MAX_URL_LENGTH} characters)`);
  if (/\s/.test(raw)) throw new ProxyUrlError('proxy URL must not contain spaces or other whitespace');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) throw new ProxyUrlError('proxy URL contains control characters');
  if (/[^\x20-\x7e]/.test(raw)) {
    throw new ProxyUrlError('proxy URL must be plain ASCII (percent-encode credentials; use punycode for hostnames)');
  }

  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw);
  if (!schemeMatch) throw new ProxyUrlError('proxy URL must look like socks5h://user:pass@host:port');
  const scheme = schemeMatch[1]!.toLowerCase();
  if (scheme !== 'socks5h') {
    const hint = scheme === 'socks5' ? ' (socks5:// resolves DNS locally and leaks it; use socks5h://)' : '';
    throw new ProxyUrlError(`unsupported proxy scheme "${scheme}://": only socks5h:// is allowed${hint}`);
  }

  const rest = raw.slice(schemeMatch[0].length);
  const at = rest.lastIndexOf('@');
  if (at < 0) throw new ProxyUrlError('proxy URL needs credentials: socks5h://user:pass@host:port');
  const userInfo = rest.slice(0, at);
  const hostPart = rest.slice(at + 1);
  if (/[/?#]/.test(hostPart))
    throw new ProxyUrlError('proxy URL must not have a path, query or fragment after host:port');

  const colon = userInfo.indexOf(':');
  if (colon < 0) throw new ProxyUrlError('proxy URL needs both a username and a password (user:pass@)');
  const username = decodeCredential(userInfo.slice(0, colon), 'username');
  const password = decodeCredential(userInfo.slice(colon + 1), 'password');

  const portSep = hostPart.lastIndexOf(':');
  if (portSep < 0 || (hostPart.startsWith('[') && portSep < hostPart.indexOf(']'))) {
    throw new ProxyUrlError('proxy URL is missing the port (host:port)');
  }
  const host = hostPart.slice(0, portSep);
  const portText = hostPart.slice(portSep + 1);
  if (host.length === 0) throw new ProxyUrlError('proxy URL is missing the host');
  if (!HOSTNAME.test(host) && !IPV6_LITERAL.test(host)) {
    throw new ProxyUrlError(`proxy host "${truncate(host)}" is not a valid hostname or IP address`);
  }
  if (portText.length === 0) throw new ProxyUrlError('proxy URL is missing the port (host:port)');
  if (!/^[0-9]{1,5}$/.test(portText)) throw new ProxyUrlError(`proxy port "${truncate(portText)}" is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new ProxyUrlError(`proxy port ${port} is out of range (1-65535)`);

  const lowerHost = host.toLowerCase();
  const encodedUser = encodeURIComponent(username);
  const encodedPass = encodeURIComponent(password);
  return {
    url: `socks5h://${encodedUser}:${encodedPass}@${lowerHost}:${port}`,
    host: lowerHost,
    port,
    username,
    password,
    endpoint: `${lowerHost}:${port}`,
    redacted: `socks5h://${encodedUser}:***@${lowerHost}:${port}`,
  };
}

function decodeCredential(encoded: string, what: 'username' | 'password'): string {
  if (encoded.length === 0) throw new ProxyUrlError(`proxy ${what} is empty`);
  let decoded: string;
  try {
    decoded = decodeURIComponent(encoded);
  } catch {
    throw new ProxyUrlError(`proxy ${what} has an invalid percent-encoding`);
  }
  if (decoded.length > MAX_CREDENTIAL_LENGTH) {
    throw new ProxyUrlError(`proxy ${what} is too long (more than ${MAX_CREDENTIAL_LENGTH} characters)`);
  }
  if (!SAFE_CREDENTIAL.test(decoded)) {
    throw new ProxyUrlError(`proxy ${what} contains characters that are not printable ASCII`);
  }
  return decoded;
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/**
 * Replaces the password of anything that looks like a proxy URL with `***`. Works on invalid URLs too,
 * because an invalid URL that reaches a log line must not leak its password either.
 */
export function redactProxyUrl(text: string): string {
  return text.replace(/\b(socks5h?|socks4a?|https?):\/\/([^:@/\s]*):([^@\s]*)@/gi, '$1://$2:***@');
}

/** The operator-facing identity of a proxy (`host:port`), or a redacted string when it does not parse. */
export function proxyEndpoint(url: string): string {
  try {
    return parseProxyUrl(url).endpoint;
  } catch {
    return redactProxyUrl(url);
  }
}
