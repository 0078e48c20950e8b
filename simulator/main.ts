/**
 * Runs the WhatsApp simulator, its control API and N local SOCKS5 proxies as one process (demo, e2e).
 *
 *   node --import tsx simulator/main.ts [--port 9400] [--control-port 9401] [--proxies 4]
 *        [--proxy-user demo] [--proxy-password demo-secret] [--qr-refs 6] [--anti-spam]
 *
 * Every flag has an env twin: SIM_PORT, SIM_CONTROL_PORT, SIM_PROXIES, SIM_PROXY_USER, SIM_PROXY_PASSWORD,
 * SIM_QR_REFS, SIM_ANTI_SPAM=1 (+ SIM_MAX_PER_MINUTE, SIM_MAX_NEW_CONTACTS_PER_HOUR_YOUNG, SIM_YOUNG_FOR_MS),
 * SIM_COLD_OUTREACH=1 (463 for a young number's cold 1:1 sends), SIM_PAIRING_CODE_TTL_MS (pairing code lifetime),
 * SIM_LOG_LEVEL. Proxy i (0-based) listens on 127.0.0.1:(1080+i) and binds its outgoing side to 127.0.0.(10+i).
 * Prints one JSON line with the URLs (proxy passwords redacted); logs go to stderr.
 */
import { parseArgs } from 'node:util';
import pino from 'pino';
import { startControlApi } from './control-api.js';
import { Socks5Proxy } from './socks5.js';
import { WhatsAppSimulator } from './wa-server.js';

const { values: flags } = parseArgs({
  options: {
    port: { type: 'string' },
    'control-port': { type: 'string' },
    proxies: { type: 'string' },
    'proxy-user': { type: 'string' },
    'proxy-password': { type: 'string' },
    'qr-refs': { type: 'string' },
    'anti-spam': { type: 'boolean' },
  },
});

function integer(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

const env = process.env;
const logger = pino({ level: env.SIM_LOG_LEVEL ?? 'info' }, pino.destination(2));
const simPort = integer('port', flags.port ?? env.SIM_PORT, 9400, 0, 65535);
const controlPort = integer('control-port', flags['control-port'] ?? env.SIM_CONTROL_PORT, 9401, 0, 65535);
const proxyCount = integer('proxies', flags.proxies ?? env.SIM_PROXIES, 4, 0, 200);
const qrRefs = integer('qr-refs', flags['qr-refs'] ?? env.SIM_QR_REFS, 6, 1, 100);
const pairingCodeTtlMs = integer('SIM_PAIRING_CODE_TTL_MS', env.SIM_PAIRING_CODE_TTL_MS, 180_000, 100, 3_600_000);
const username = flags['proxy-user'] ?? env.SIM_PROXY_USER ?? 'demo';
const password = flags['proxy-password'] ?? env.SIM_PROXY_PASSWORD ?? 'demo-secret';
const antiSpamEnabled = flags['anti-spam'] ?? env.SIM_ANTI_SPAM === '1';
const antiSpam = antiSpamEnabled
  ? {
      maxPerMinute: integer('SIM_MAX_PER_MINUTE', env.SIM_MAX_PER_MINUTE, 20, 1, 100_000),
      maxNewContactsPerHourYoung: integer(
        'SIM_MAX_NEW_CONTACTS_PER_HOUR_YOUNG',
        env.SIM_MAX_NEW_CONTACTS_PER_HOUR_YOUNG,
        10,
        1,
        100_000,
      ),
      youngForMs: integer('SIM_YOUNG_FOR_MS', env.SIM_YOUNG_FOR_MS, 7 * 24 * 3_600_000, 0, Number.MAX_SAFE_INTEGER),
    }
  : null;

// SIM_MIN_CLIENT_VERSION=2.3000.1043857760: older clients get 405 client_too_old.
const minVersionRaw = env.SIM_MIN_CLIENT_VERSION;
const minClientVersion = minVersionRaw ? (minVersionRaw.split('.').map(Number) as [number, number, number]) : null;
if (
  minClientVersion &&
  (minClientVersion.length !== 3 || minClientVersion.some((n) => !Number.isInteger(n) || n < 0))
) {
  throw new Error(`SIM_MIN_CLIENT_VERSION must look like 2.3000.1043857760, got "${minVersionRaw}"`);
}
// SIM_COLD_OUTREACH=1: a young number's cold 1:1 sends are refused with 463 (young: SIM_YOUNG_FOR_MS).
const coldOutreach =
  env.SIM_COLD_OUTREACH === '1'
    ? { youngForMs: integer('SIM_YOUNG_FOR_MS', env.SIM_YOUNG_FOR_MS, 7 * 24 * 3_600_000, 0, Number.MAX_SAFE_INTEGER) }
    : null;
const sim = await WhatsAppSimulator.start({
  port: simPort,
  qrRefs,
  pairingCodeTtlMs,
  antiSpam,
  minClientVersion,
  coldOutreach,
  logger: logger.child({ c: 'sim' }),
});
const proxies: Socks5Proxy[] = [];
for (let i = 0; i < proxyCount; i++) {
  proxies.push(await Socks5Proxy.start({ port: 1080 + i, username, password, bindAddress: `127.0.0.${10 + i}` }));
}
const control = await startControlApi(sim, { port: controlPort, proxies });
for (const event of ['paired', 'login', 'banned', 'fault', 'rejected'] as const) {
  sim.events.on(event, (data: unknown) => logger.info({ event, data }, event));
}

process.stdout.write(
  `${JSON.stringify({
    simulator: sim.url,
    webVersionUrl: sim.webVersionUrl,
    control: control.url,
    certificateRootPublicKey: Buffer.from(sim.certificateRootPublicKey).toString('hex'),
    antiSpam,
    coldOutreach,
    proxies: proxies.map((p) => ({ url: p.redactedUrl, bindAddress: p.bindAddress })),
  })}\n`,
);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down');
  await control.close();
  await Promise.all(proxies.map((p) => p.close()));
  await sim.close();
  logger.flush();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
