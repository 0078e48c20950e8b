import { createHash } from 'node:crypto';
import { proxyEndpoint } from '../../common/proxy-url.js';

/** A stable fingerprint of a proxy URL (credentials included) that reveals nothing about them. */
export function proxyFingerprint(proxyUrl: string): string {
  return createHash('sha256').update(proxyUrl).digest('hex').slice(0, 16);
}

export { proxyEndpoint };

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
