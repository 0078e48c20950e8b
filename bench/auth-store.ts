/**
 * The auth store's cost, `file` vs `postgres`:
 *  1. auth writes per second for one session, through the real stores: the crash-safe folder store (temp + fsync +
 *     rename + fsync(dir), fence check) and the worker's remote store against a real API (signed calls, generation
 *     fence, one PostgreSQL transaction per batch). Two patterns: one key at a time, each awaited (a worker's
 *     latency-bound worst case), and a message's worth of keys at once (Baileys writes a transaction's keys in one
 *     keys.set: here 10 keys), many messages in flight;
 *  2. send latency p50/p99: POST /api/send accepted → the message at the simulator, sequential sends to one
 *     contact (each send ratchets and stores its Signal session), on a real stack per store, both stacks up at once
 *     and the sends interleaved, so both stores see the same machine load.
 *
 *   node --import tsx bench/auth-store.ts [writes=2000] [sends=60]
 *
 * Prints a table and writes bench/results/auth-store.json.
 */
import fs from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeWorkerFence } from '../common/worker-fence.js';
import { sessionWebhookSecret } from '../common/session.js';
import { SessionStore } from '../state/sessions.js';
import { useCrashSafeAuthState, type CrashSafeAuthState } from '../wa-worker/auth-store.js';
import { useRemoteAuthState } from '../wa-worker/auth-remote.js';
import { WorkerFence } from '../wa-worker/fence.js';
import { SignedClient } from '../wa-worker/signed-post.js';
import { AUTH_SECRET, authDatabaseUrl } from '../test/helpers/auth-db.js';
import { connectedSession, terminateDispatchers } from '../test/helpers/messaging.js';
import { API_KEY, PACING_OFF_ENV, ROOT, Stack, waitFor, WEBHOOK_SECRET } from '../test/helpers/stack.js';

const WRITES = Number(process.argv[2] ?? 2000);
const SENDS = Number(process.argv[3] ?? 60);
const KEYS_PER_MESSAGE = 10;
const IN_FLIGHT = 8;

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;

const value = { key: Buffer.alloc(512, 7).toString('base64') };

/** Writes per second: one awaited key at a time, and messages of 10 keys with IN_FLIGHT messages in flight. */
async function writeRates(
  auth: CrashSafeAuthState,
  beforeBatched?: () => void,
): Promise<{ sequential: number; batched: number }> {
  const n = Math.max(50, Math.floor(WRITES / 4));
  let t0 = performance.now();
  for (let i = 0; i < n; i++) await auth.state.keys.set({ session: { [`c${i % 50}`]: value } } as never);
  const sequential = n / ((performance.now() - t0) / 1000);

  const messages = Math.ceil(WRITES / KEYS_PER_MESSAGE);
  beforeBatched?.();
  let next = 0;
  t0 = performance.now();
  const lane = async () => {
    while (next < messages) {
      const m = next++;
      const keys: Record<string, unknown> = {};
      for (let k = 0; k < KEYS_PER_MESSAGE; k++) keys[`m${m % 100}-${k}`] = value;
      await auth.state.keys.set({ session: keys } as never);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  await auth.flush();
  const batched = (messages * KEYS_PER_MESSAGE) / ((performance.now() - t0) / 1000);
  return { sequential, batched };
}

async function fileRates() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-bench-'));
  writeWorkerFence(dir, 1);
  const fence = new WorkerFence(dir, 1, () => undefined);
  const auth = await useCrashSafeAuthState(dir, undefined, { beforeCommit: () => fence.check() });
  try {
    return await writeRates(auth);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function postgresRates(stack: Stack) {
  // A session record of its own (the endpoint serves existing sessions only); never a live session's keys.
  const sessionId = `bench-auth-${stack.id}`;
  await new SessionStore(stack.redis, stack.prefix).create(sessionId, 'bench');
  const client = new SignedClient(
    `${stack.apiUrl}/api/worker/sessions/${sessionId}/auth`,
    sessionWebhookSecret(WEBHOOK_SECRET, sessionId),
    10_000,
    'auth state',
    { generation: 1 },
  );
  const auth = await useRemoteAuthState(client, undefined, { batchMs: 5 });
  let at = { requests: 0, entries: 0 };
  const rates = await writeRates(auth, () => {
    at = { requests: auth.stats.writeRequests, entries: auth.stats.writtenEntries };
  });
  // The batched phase only (the sequential one is one entry per request by construction).
  return {
    ...rates,
    requests: auth.stats.writeRequests - at.requests,
    entries: auth.stats.writtenEntries - at.entries,
  };
}

/** A connected session ready to send, and one send measured: accepted → at the simulator. */
async function sender(stack: Stack, tag: string) {
  const sessionId = `bench-send-${tag}-${stack.id}`;
  const phone = tag === 'file' ? '15553330001' : '15553330002';
  await connectedSession(stack, sessionId, phone);
  const to = '15553339999';
  let n = 0;
  return {
    sessionId,
    async send(): Promise<number> {
      const text = `bench ${tag} ${n++}`;
      const t0 = performance.now();
      const res = await fetch(`${stack.apiUrl}/api/send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': API_KEY },
        body: JSON.stringify({ sessionId, to, text }),
      });
      if (res.status !== 202) throw new Error(`send answered ${res.status}: ${await res.text()}`);
      await waitFor(
        `${text} at the simulator`,
        () => stack.sim.messages(phone).some((m) => m.text === text),
        30_000,
        2,
      );
      return performance.now() - t0;
    },
  };
}

/**
 * Send latencies of both stores, interleaved (file, postgres, file, …) so both see the same machine load; the
 * first send of each (it creates the contact's Signal session) is left out.
 */
async function sendLatencies(fileStack: Stack, pgStack: Stack): Promise<{ file: number[]; postgres: number[] }> {
  const f = await sender(fileStack, 'file');
  const p = await sender(pgStack, 'postgres');
  const out = { file: [] as number[], postgres: [] as number[] };
  try {
    await f.send();
    await p.send();
    for (let i = 0; i < SENDS; i++) {
      out.file.push(await f.send());
      out.postgres.push(await p.send());
    }
  } finally {
    await terminateDispatchers(fileStack, [f.sessionId]);
    await terminateDispatchers(pgStack, [p.sessionId]);
  }
  out.file.sort((a, b) => a - b);
  out.postgres.sort((a, b) => a - b);
  return out;
}

function stackFor(store: 'file' | 'postgres'): Stack {
  return new Stack({
    proxies: 1,
    extraEnv: {
      AUTH_STORE: store,
      AUTH_DATABASE_URL: authDatabaseUrl(),
      AUTH_STORE_SECRET: AUTH_SECRET,
      // the point is the store's share of a send
      ...PACING_OFF_ENV,
    },
  });
}

async function main() {
  const file = await fileRates();
  const fileStack = await stackFor('file').start();
  const pgStack = await stackFor('postgres').start();
  let pgRates: Awaited<ReturnType<typeof postgresRates>>;
  let sends: Awaited<ReturnType<typeof sendLatencies>>;
  try {
    pgRates = await postgresRates(pgStack);
    sends = await sendLatencies(fileStack, pgStack);
  } finally {
    await pgStack.stop();
    await fileStack.stop();
  }
  const fileSends = sends.file;
  const pgSends = sends.postgres;

  const rows = [
    {
      store: 'file',
      writesPerSecSequential: file.sequential,
      writesPerSecBatched: file.batched,
      sendP50Ms: pct(fileSends, 50),
      sendP99Ms: pct(fileSends, 99),
    },
    {
      store: 'postgres',
      writesPerSecSequential: pgRates.sequential,
      writesPerSecBatched: pgRates.batched,
      sendP50Ms: pct(pgSends, 50),
      sendP99Ms: pct(pgSends, 99),
    },
  ];
  console.log(
    `\n| store | auth writes/s, one key awaited at a time | auth writes/s, ${KEYS_PER_MESSAGE} keys per message, ${IN_FLIGHT} in flight | send p50 | send p99 |`,
  );
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of rows)
    console.log(
      `| ${r.store} | ${r.writesPerSecSequential.toFixed(0)} | ${r.writesPerSecBatched.toFixed(0)} | ${r.sendP50Ms.toFixed(0)} ms | ${r.sendP99Ms.toFixed(0)} ms |`,
    );
  console.log(
    `\npostgres batching (messages in flight): ${pgRates.entries} entries in ${pgRates.requests} write requests (${(pgRates.entries / pgRates.requests).toFixed(1)} per request, one transaction each); ${SENDS} sends per store; load average ${os.loadavg()[0]!.toFixed(1)}`,
  );
  const out = path.join(ROOT, 'bench', 'results');
  await mkdir(out, { recursive: true });
  await writeFile(
    path.join(out, 'auth-store.json'),
    `${JSON.stringify(
      {
        at: new Date().toISOString(),
        node: process.version,
        loadavg: os.loadavg(),
        writes: WRITES,
        sends: SENDS,
        keysPerMessage: KEYS_PER_MESSAGE,
        inFlight: IN_FLIGHT,
        rows,
        postgresBatching: { requests: pgRates.requests, entries: pgRates.entries },
        sendLatenciesMs: { file: fileSends, postgres: pgSends },
      },
      null,
      2,
    )}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
