/**
 * Worker webhook ingestion: signed events per second through POST /api/webhook (HMAC check, zod validation,
 * de-duplication in Redis, then Redis write or workflow signal), with latency percentiles. Two mixes: PINGs only
 * (the steady state: Redis only) and lifecycle events (each one a Temporal signal). Prints a table and writes
 * bench/results/webhook-ingest.json.
 *
 *   node --import tsx bench/webhook-ingest.ts [--seconds 10] [--in-flight 32]
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { signedHeaders } from '../common/events.js';
import { sessionWebhookSecret } from '../common/session.js';
import { Stack, WEBHOOK_SECRET, waitFor } from '../test/helpers/stack.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, 'in-flight': { type: 'string', default: '32' } },
});
const seconds = Number(values.seconds);
const inFlight = Number(values['in-flight']);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};

const stack = await new Stack({ proxies: 1 }).start();
try {
  const sessionId = `wh${stack.id}`;
  const r = await stack.call('POST', '/api/sessions/provision', { sessionId });
  if (r.status !== 201) throw new Error(`provision: ${r.status}`);
  await waitFor('qr_ready', async () => (await stack.status(sessionId)).status === 'qr_ready', 60_000);
  const secret = sessionWebhookSecret(WEBHOOK_SECRET, sessionId);

  async function run(label: string, make: () => Record<string, unknown>) {
    const latencies: number[] = [];
    const statuses: Record<number, number> = {};
    const deadline = performance.now() + seconds * 1000;
    const lane = async () => {
      while (performance.now() < deadline) {
        const body = JSON.stringify({ sessionId, timestamp: Date.now(), eventId: randomUUID(), ...make() });
        const t0 = performance.now();
        const res = await fetch(`${stack.apiUrl}/api/webhook`, {
          method: 'POST',
          body,
          headers: signedHeaders(secret, body),
        });
        await res.arrayBuffer();
        latencies.push(performance.now() - t0);
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: inFlight }, lane));
    const elapsed = (performance.now() - t0) / 1000;
    const accepted = statuses[202] ?? 0;
    return {
      label,
      eventsPerSecond: accepted / elapsed,
      accepted,
      statuses,
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
    };
  }

  const pings = await run('PING (Redis only)', () => ({ type: 'PING', data: { timestamp: Date.now() } }));
  const signals = await run('QR_CODE (Redis + Temporal signal)', () => ({
    type: 'QR_CODE',
    data: { qr: `2@bench,${randomUUID()}` },
  }));
  const results = {
    machine: { cpus: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    at: new Date().toISOString(),
    seconds,
    inFlight,
    runs: [pings, signals],
  };
  console.log(
    `\n| events (${inFlight} in flight, ${seconds} s) | accepted/s | p50 ms | p99 ms | statuses |\n|---|---|---|---|---|`,
  );
  for (const x of results.runs) {
    console.log(
      `| ${x.label} | ${x.eventsPerSecond.toFixed(0)} | ${x.p50.toFixed(1)} | ${x.p99.toFixed(1)} | ${JSON.stringify(x.statuses)} |`,
    );
  }
  const out = path.join(path.dirname(new URL(import.meta.url).pathname), 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'webhook-ingest.json'), JSON.stringify(results, null, 2));
} finally {
  await stack.stop();
}
process.exit(0);
