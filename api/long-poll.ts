import type { FastifyReply } from 'fastify';
import type { WorkerWake } from '../state/worker-wake.js';

/**
 * Claims for a worker, waiting up to `waitMs` for something claimable: woken by a publish for the session, or at
 * the next due time (a command due later, a lease running out). A worker that hung up meanwhile claims nothing
 * (the item would sit leased to nobody).
 */
export async function claimWithWait<T>(opts: {
  wake: WorkerWake | undefined;
  sessionId: string;
  waitMs: number;
  reply: FastifyReply;
  claim: () => Promise<T | null>;
  nextDueAt: () => Promise<number | null>;
}): Promise<T | null> {
  const { wake, sessionId, reply } = opts;
  if (!wake || opts.waitMs <= 0) return opts.claim();
  const deadline = Date.now() + opts.waitMs;
  const hungUp = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) hungUp.abort();
  };
  reply.raw.once('close', onClose);
  try {
    for (;;) {
      if (hungUp.signal.aborted || wake.closed) return null;
      const waiter = wake.waiter(sessionId);
      try {
        const item = await opts.claim();
        if (item) return item;
        const now = Date.now();
        if (now >= deadline) return null;
        const due = await opts.nextDueAt();
        const until = due === null ? deadline : Math.min(deadline, Math.max(due, now + 50));
        await waiter.wait(until - now, hungUp.signal);
      } finally {
        waiter.cancel();
      }
    }
  } finally {
    reply.raw.off('close', onClose);
  }
}
