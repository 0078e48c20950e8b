/**
 * One scan → connected, traced: when the simulator paired the phone, when the worker reconnected and logged in,
 * when Baileys opened the socket, when the CONNECTED webhook reached the API, and when the status changed. Prints
 * the timeline in milliseconds from the scan (the worker's own log lines included), to find where the time goes.
 *
 *   node --import tsx bench/trace-connect.ts [--runs 3]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Stack, waitFor } from '../test/helpers/stack.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const stack = await new Stack({
  proxies: 2,
  extraEnv: { WORKER_ENV_LOG_LEVEL: 'debug', WORKER_ENV_BAILEYS_LOG_LEVEL: 'debug' },
}).start();
try {
  for (let run = 0; run < Number(values.runs); run++) {
    const id = `trace${run}`;
    const phone = `1555700${String(run).padStart(4, '0')}`;
    const marks: Array<[string, number]> = [];
    const mark = (what: string) => marks.push([what, Date.now()]);
    const onEvent = (name: string) => () => mark(`sim: ${name}`);
    for (const name of ['paired', 'login', 'qr-shown', 'pre-keys-uploaded']) stack.sim.events.on(name, onEvent(name));
    await stack.call('POST', '/api/sessions/provision', { sessionId: id });
    const qr = await waitFor('a QR', async () => {
      const r = await stack.call('GET', `/api/sessions/${id}/qr`);
      return r.status === 200 ? (r.body.qr as string) : null;
    });
    const t0 = Date.now();
    mark('scan');
    await stack.sim.scan(qr, phone);
    mark('sim.scan resolved');
    await waitFor('connected', async () => ((await stack.status(id)).status === 'connected' ? true : null), 30_000, 20);
    mark('status connected (API)');
    stack.sim.events.removeAllListeners();
    const log = readFileSync(path.join(path.dirname(stack.logPath('x')), 'logs', 'workers', `${id}.log`), 'utf8')
      .split('\n')
      .flatMap((l) => {
        try {
          const j = JSON.parse(l) as { time: number; msg: string; component?: string };
          return j.time >= t0 - 50
            ? [[`worker${j.component ? `/${j.component}` : ''}: ${j.msg}`, j.time] as [string, number]]
            : [];
        } catch {
          return [];
        }
      });
    const timeline = [...marks, ...log].sort((a, b) => a[1] - b[1]);
    console.log(`\nrun ${run + 1}: scan → connected ${marks.at(-1)![1] - t0} ms`);
    for (const [what, at] of timeline) console.log(`${String(at - t0).padStart(6)} ms  ${what.slice(0, 110)}`);
  }
} finally {
  await stack.stop();
}
process.exit(0);
