/**
 * Media costs through the real stack (API + orchestrator processes, Temporal, Redis, a connected simulator session,
 * real Baileys uploading encrypted media to the simulator's media host), once per media store (disk, and s3 on the
 * SeaweedFS that scripts/services.sh runs):
 *   (a) image sends per second for one session (a ~100 KB PNG, pacing turned down to 10 ms gaps: the point is the
 *       media path — fetch from the store, encrypt, upload, send — not the anti-ban pacing);
 *   (b) the API's peak RSS while 20 clients upload 16 MB each at once;
 *   (c) a 2 GB upload streamed without a length: how much is read before the 413, and the API's peak RSS meanwhile.
 *
 *   node --import tsx bench/media.ts [--stores disk,s3] [--sends 40]
 *
 * Prints a table and writes bench/results/media.json. Not part of the test suite.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connectedSession, terminateDispatchers } from '../test/helpers/messaging.js';
import { png } from '../test/helpers/media-files.js';
import { mediaStoreEnv, type MediaStoreKind } from '../test/helpers/media-s3.js';
import { API_KEY, PACING_OFF_ENV, ROOT, Stack, waitFor } from '../test/helpers/stack.js';

const { values: args } = parseArgs({
  options: { stores: { type: 'string', default: 'disk,s3' }, sends: { type: 'string', default: '40' } },
});
const stores = args.stores.split(',') as MediaStoreKind[];
const SENDS = Number(args.sends);
const MB = 1024 * 1024;

function rssKb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Samples a process's RSS every 20 ms while `work` runs; the peak in MB. */
async function peakRss<T>(
  pid: number,
  work: () => Promise<T>,
): Promise<{ result: T; peakMb: number; beforeMb: number }> {
  const beforeMb = rssKb(pid).rss / 1024;
  let peak = 0;
  const timer = setInterval(() => (peak = Math.max(peak, rssKb(pid).rss)), 20);
  try {
    const result = await work();
    return { result, peakMb: Math.max(peak / 1024, beforeMb), beforeMb };
  } finally {
    clearInterval(timer);
  }
}

/** One multipart upload of `size` random bytes streamed in 256 KB chunks (no Content-Length). */
function streamUpload(apiUrl: string, size: number) {
  return new Promise<{ status: number; sent: number }>((resolve, reject) => {
    const boundary = 'xBENCHx';
    const req = http.request(`${apiUrl}/api/media`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY, 'content-type': `multipart/form-data; boundary=${boundary}` },
    });
    let sent = 0;
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sent }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, sent }));
    });
    req.on('error', (err) => (answered ? undefined : reject(err)));
    const chunk = randomBytes(256 * 1024);
    req.write(
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\n` +
        `content-type: application/octet-stream\r\n\r\n`,
    );
    const write = () => {
      while (!answered && !req.destroyed && sent < size) {
        const piece = chunk.subarray(0, Math.min(chunk.length, size - sent));
        sent += piece.length;
        if (!req.write(piece)) return void req.once('drain', write);
      }
      if (!answered && !req.destroyed) req.end(`\r\n--${boundary}--\r\n`);
    };
    write();
  });
}

interface Row {
  store: MediaStoreKind;
  imageBytes: number;
  sends: number;
  sendsPerSecond: number;
  concurrentUploads: {
    count: number;
    eachMb: number;
    ok: number;
    seconds: number;
    apiRssBeforeMb: number;
    apiPeakMb: number;
  };
  hugeUpload: { status: number; sentMb: number; ms: number; apiRssBeforeMb: number; apiPeakMb: number };
}

async function bench(store: MediaStoreKind): Promise<Row> {
  const media = mediaStoreEnv(store);
  const stack = await new Stack({
    proxies: 1,
    extraEnv: {
      ...PACING_OFF_ENV,
      MEDIA_MAX_BYTES: String(64 * MB),
      ...media.env,
    },
  }).start();
  const session = { id: `mb${store}`, phone: store === 'disk' ? '15550009101' : '15550009102' };
  try {
    await connectedSession(stack, session.id, session.phone);
    const pid = stack.api!.pid!;

    // (a) image sends per second, one session
    const image = png(190, 175);
    const form = new FormData();
    form.append('file', new Blob([image], { type: 'image/png' }), 'bench.png');
    const up = (await (
      await fetch(`${stack.apiUrl}/api/media`, { method: 'POST', headers: { 'x-api-key': API_KEY }, body: form })
    ).json()) as { uploadId: string };
    const received = () =>
      stack.sim.messages(session.phone).filter((m) => m.to.startsWith('1555800') && m.media?.verified).length;
    const t0 = performance.now();
    for (let i = 0; i < SENDS; i++) {
      const r = await stack.call('POST', '/api/send', {
        sessionId: session.id,
        to: `1555800${String(i).padStart(4, '0')}`,
        type: 'image',
        media: { uploadId: up.uploadId },
      });
      if (r.status !== 202) throw new Error(`send ${i}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    await waitFor(`${SENDS} images at the simulator`, () => received() >= SENDS, 600_000);
    const sendsPerSecond = SENDS / ((performance.now() - t0) / 1000);

    // (b) 20 concurrent 16 MB uploads
    const count = 20;
    const each = 16 * MB;
    const u0 = performance.now();
    const conc = await peakRss(pid, () =>
      Promise.all(Array.from({ length: count }, () => streamUpload(stack.apiUrl, each))),
    );
    const seconds = (performance.now() - u0) / 1000;

    // (c) a 2 GB upload, no Content-Length: cut off at MEDIA_MAX_BYTES
    const h0 = performance.now();
    const huge = await peakRss(pid, () => streamUpload(stack.apiUrl, 2048 * MB));
    const ms = performance.now() - h0;

    return {
      store,
      imageBytes: image.length,
      sends: SENDS,
      sendsPerSecond: Math.round(sendsPerSecond * 100) / 100,
      concurrentUploads: {
        count,
        eachMb: each / MB,
        ok: conc.result.filter((r) => r.status === 201).length,
        seconds: Math.round(seconds * 10) / 10,
        apiRssBeforeMb: Math.round(conc.beforeMb),
        apiPeakMb: Math.round(conc.peakMb),
      },
      hugeUpload: {
        status: huge.result.status,
        sentMb: Math.round((huge.result.sent / MB) * 10) / 10,
        ms: Math.round(ms),
        apiRssBeforeMb: Math.round(huge.beforeMb),
        apiPeakMb: Math.round(huge.peakMb),
      },
    };
  } finally {
    await terminateDispatchers(stack, [session.id]).catch(() => undefined);
    await stack.stop();
  }
}

const rows: Row[] = [];
for (const s of stores) rows.push(await bench(s));
const load = os.loadavg().map((l) => l.toFixed(2));

console.log(`\nmedia through the real stack (${os.cpus().length} CPUs, load average ${load.join(' ')})`);
console.log(
  'store  image KB  sends  images/s  | 20×16 MB uploads: ok  s     API RSS before→peak MB | 2 GB upload: status  read MB  ms    API RSS before→peak MB',
);
for (const r of rows) {
  const c = r.concurrentUploads;
  const h = r.hugeUpload;
  console.log(
    `${r.store.padEnd(5)}  ${(r.imageBytes / 1024).toFixed(0).padStart(8)}  ${String(r.sends).padStart(5)}  ${r.sendsPerSecond.toFixed(2).padStart(8)}  | ${String(c.ok).padStart(21)}  ${c.seconds.toFixed(1).padStart(4)}  ${`${c.apiRssBeforeMb}→${c.apiPeakMb}`.padStart(22)} | ${String(h.status).padStart(19)}  ${h.sentMb.toFixed(1).padStart(7)}  ${String(h.ms).padStart(4)}  ${`${h.apiRssBeforeMb}→${h.apiPeakMb}`.padStart(22)}`,
  );
}
const out = path.join(ROOT, 'bench', 'results', 'media.json');
await mkdir(path.dirname(out), { recursive: true });
await writeFile(
  out,
  JSON.stringify(
    {
      at: new Date().toISOString(),
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      loadAverage: os.loadavg(),
      rows,
    },
    null,
    2,
  ),
);
console.log(`\nwritten ${path.relative(ROOT, out)}`);
process.exit(0);
