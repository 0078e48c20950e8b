/**
 * The one outbound-address policy for URLs a tenant gives us (customer webhooks; later media fetches): a URL may
 * not reach loopback, private, link-local (cloud metadata), CGNAT, multicast or reserved addresses unless the
 * admin allow-list names its host. The check runs on every address the name resolves to, and the connection is
 * made to the address that was checked (the `lookup` given to http.request), so DNS rebinding between check and
 * connect cannot slip through. Errors never name the resolved address.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

const blocked = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata (169.254.169.254)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const)
  blocked.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7], // unique local (incl. fd00:ec2::254, the AWS IPv6 metadata address)
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const)
  blocked.addSubnet(net, bits, 'ipv6');

/** IPv4 embedded in an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible or NAT64 (64:ff9b::/96) IPv6 address. */
function embeddedV4(ip: string): string | null {
  const m = /^(?:::ffff:|::|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (m) return m[1]!;
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(ip);
  if (!hex) return null;
  const hi = parseInt(hex[1]!, 16);
  const lo = parseInt(hex[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** True when `ip` is an address a tenant-given URL must not reach. */
export function isForbiddenAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return blocked.check(ip, 'ipv4');
  if (family === 6) {
    const v4 = embeddedV4(ip);
    if (v4) return blocked.check(v4, 'ipv4');
    return blocked.check(ip, 'ipv6');
  }
  return true; // not an address at all
}

export class UrlRefusedError extends Error {
  override readonly name = 'UrlRefusedError';
}

export interface AddressPolicy {
  /** Hosts (names or addresses, lower case) that may resolve anywhere: the admin's CLIENT_WEBHOOK_ALLOW_HOSTS. */
  allowHosts: readonly string[];
}

const hostOf = (url: URL) => url.hostname.toLowerCase().replace(/^\[|\]$/g, '');

/** Parses and checks the shape of a tenant URL (http/https, a host, no credentials). Throws UrlRefusedError. */
export function parseTenantUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UrlRefusedError('must be an absolute http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UrlRefusedError('must be http or https');
  if (url.username || url.password) throw new UrlRefusedError('must not carry credentials');
  if (!url.hostname) throw new UrlRefusedError('must name a host');
  return url;
}

function lookupAll(host: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) =>
    dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
  );
}

/**
 * Resolves the URL's host and refuses it when any address is forbidden (unless allow-listed). Returns the
 * checked addresses. Used at registration; delivery goes through {@link pinnedLookup} instead.
 */
export async function checkTenantUrl(raw: string, policy: AddressPolicy): Promise<URL> {
  const url = parseTenantUrl(raw);
  const host = hostOf(url);
  if (policy.allowHosts.includes(host)) return url;
  let addresses: LookupAddress[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await lookupAll(host);
    } catch {
      throw new UrlRefusedError('host does not resolve');
    }
  }
  if (addresses.length === 0 || addresses.some((a) => isForbiddenAddress(a.address)))
    throw new UrlRefusedError('host resolves to a private, loopback, link-local or reserved address');
  return url;
}

/**
 * A `lookup` for http.request that resolves, refuses forbidden addresses (unless the host is allow-listed) and
 * hands the connection exactly the address it checked.
 */
export function pinnedLookup(policy: AddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
    const allowed = policy.allowHosts.includes(host);
    dnsLookup(host, { all: true, verbatim: true, family: options.family }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const usable = allowed ? addresses : addresses.filter((a) => !isForbiddenAddress(a.address));
      if (usable.length === 0 || usable.length !== addresses.length)
        return callback(new UrlRefusedError('destination address not allowed'), '', 0);
      if (options.all) return callback(null, usable as unknown as string, 0);
      return callback(null, usable[0]!.address, usable[0]!.family);
    });
  };
}

export interface GuardedResponse {
  status: number;
  /** At most `maxBodyBytes` of the body. */
  body: Buffer;
}

/**
 * One HTTP request to a tenant URL under the policy: pinned, checked address; no redirects (a 3xx is returned as
 * is); the response body read up to `maxBodyBytes`, then the connection dropped; a hard timeout.
 */
export function guardedRequest(
  raw: string,
  policy: AddressPolicy,
  req: { method: string; headers: Record<string, string>; body?: string; timeoutMs: number; maxBodyBytes: number },
): Promise<GuardedResponse> {
  return new Promise((resolve, reject) => {
    let url: URL;
    try {
      url = parseTenantUrl(raw);
    } catch (err) {
      reject(err as Error);
      return;
    }
    const host = hostOf(url);
    // An address literal never goes through lookup: check it here.
    if (isIP(host) && !policy.allowHosts.includes(host) && isForbiddenAddress(host)) {
      reject(new UrlRefusedError('destination address not allowed'));
      return;
    }
    const mod = url.protocol === 'https:' ? https : http;
    const r = mod.request(
      url,
      {
        method: req.method,
        headers: {
          ...req.headers,
          ...(req.body !== undefined ? { 'content-length': Buffer.byteLength(req.body) } : {}),
        },
        lookup: pinnedLookup(policy),
        agent: false,
        timeout: req.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
        res.on('data', (c: Buffer) => {
          if (size < req.maxBodyBytes) chunks.push(c.subarray(0, req.maxBodyBytes - size));
          size += c.length;
          if (size >= req.maxBodyBytes) {
            res.destroy();
            done();
          }
        });
        res.on('end', done);
        res.on('error', done);
      },
    );
    const timer = setTimeout(
      () => r.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
      req.timeoutMs,
    );
    r.on('close', () => clearTimeout(timer));
    r.on('timeout', () => r.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    r.on('error', reject);
    r.end(req.body);
  });
}

/** A delivery error as stored and shown to the tenant: its kind, never an address or port. */
export function describeNetError(err: unknown): string {
  if (err instanceof UrlRefusedError) return err.message;
  const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ETIMEDOUT':
    case 'ESOCKETTIMEDOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'connection reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      return code && /^[A-Z_]+$/.test(code) ? `network error (${code})` : 'network error';
  }
}
