/**
 * Device profiles: the device/browser identity a session presents to WhatsApp, Baileys' `browser`
 * triple [os, browser, os version]. Each session gets one from the inventory at provision and keeps it for life
 * (restart, failover, restore, host moves), so a phone never sees its linked device change its identity; two
 * sessions on the same proxy never share one (state/device-profile-assign.lua).
 */
import { z } from 'zod';

export interface DeviceProfile {
  id: string;
  os: string;
  browser: string;
  osVersion: string;
  /** Order in the inventory: ties are broken by it, so consecutive sessions get different OS/browser pairs. */
  seq: number;
}

const part = (what: string) =>
  z
    .string()
    .min(1)
    .max(40)
    .regex(/^[A-Za-z0-9 ._()-]+$/, `${what} must be 1-40 letters, digits, spaces or . _ ( ) -`);

export const DeviceProfileBodySchema = z
  .object({ os: part('os'), browser: part('browser'), osVersion: part('osVersion') })
  .strict();

export const DeviceProfileIdSchema = z.string().regex(/^[a-z0-9-]{3,130}$/, 'must be a profile id from the list');

export const deviceProfileId = (p: { os: string; browser: string; osVersion: string }) =>
  `${p.os}-${p.browser}-${p.osVersion}`
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');

/** Baileys' `browser` option and the worker's WA_BROWSER (`os|browser|version`). */
export const browserTriple = (p: Pick<DeviceProfile, 'os' | 'browser' | 'osVersion'>): [string, string, string] => [
  p.os,
  p.browser,
  p.osVersion,
];

// Desktop OS releases and the browsers people run WhatsApp Web in on them (Safari only on macOS).
const SYSTEMS: Array<[string, string[], string[]]> = [
  ['Windows', ['10.0.19045', '10.0.22631', '10.0.26100'], ['Chrome', 'Edge', 'Firefox', 'Opera']],
  ['Mac OS', ['13.6.9', '14.7.1', '15.1.1'], ['Chrome', 'Safari', 'Firefox', 'Edge']],
  ['Ubuntu', ['22.04.4', '24.04.1'], ['Chrome', 'Firefox']],
  ['Fedora', ['40', '41'], ['Firefox', 'Chrome']],
  ['Debian', ['12'], ['Firefox', 'Chrome']],
];

/**
 * The default inventory seeded at start (34 realistic triples), interleaved so that profiles handed out one after
 * the other differ in OS and browser, not only in the OS version.
 */
export const DEFAULT_DEVICE_PROFILES: Omit<DeviceProfile, 'id' | 'seq'>[] = (() => {
  const lists = SYSTEMS.map(([os, versions, browsers]) =>
    versions.flatMap((osVersion, v) =>
      browsers.map((_, b) => ({ os, browser: browsers[(b + v) % browsers.length]!, osVersion })),
    ),
  );
  const out: Omit<DeviceProfile, 'id' | 'seq'>[] = [];
  for (let i = 0; out.length < lists.reduce((n, l) => n + l.length, 0); i++)
    for (const l of lists) if (l[i]) out.push(l[i]!);
  return out;
})();
