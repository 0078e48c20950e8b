import { createHash } from 'node:crypto';

/**
 * The id by which the API, metrics and logs name a proxy: stable, short, and revealing neither host, port nor
 * credentials. The one place to change when proxies get stored ids.
 */
export function proxyIdOf(proxyUrl: string): string {
  return createHash('sha256').update(proxyUrl).digest('hex').slice(0, 16);
}
