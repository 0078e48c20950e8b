import type { FastifyReply } from 'fastify';
import type { WorkerWake } from '../state/worker-wake.js';

/**
 * Claims for a worker, waiting up to `waitMs` for something claimable: woken by a publish for the session, or at
 * the next due time (a command due later, a lease running out). A worker that hung up claims nothing: an item
 * claimed for it would sit leased to nobody until its lease ran out. That holds also when it hung up before this
 * wait began (while the request was authenticated) and when it hangs up while the claim runs: the item goes back.
 */
export async function claimWithWait<T>(opts: {
  wake: WorkerWake | undefined;
  sessionId: string;
  waitMs: number;
  reply: FastifyReply;
  claim: () => Promise<T | null>;
  /** Undoes a claim whose answer can no longer reach the worker. */
  release: (item: T) => Promise<unknown>;
  nextDueAt: () => Promise<number | null>;
}): Promise<T | null> {
  const { wake, sessionId, reply } = opts;
  const hungUp = () => reply.raw.destroyed && !reply.raw.writableFinished;
  const claim = async () => {
    if (hungUp()) return null;
    const item = await opts.claim();
    if (item === null || !hungUp()) return item;
    await opts.release(item);
    return null;
  };
  if (!wake || opts.waitMs <= 0) return claim();
  const deadline = Date.now() + opts.waitMs;
  const gone = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) gone.abort();
  };
  reply.raw.once('close', onClose);
  // Closed before the listener was there: 'close' will not come again.
  if (hungUp()) gone.abort();
  try {
    for (;;) {
      if (gone.signal.aborted || wake.closed) return null;
      const waiter = wake.waiter(sessionId);
      try {
        const item = await claim();
        if (item) return item;
        const now = Date.now();
        if (now >= deadline || gone.signal.aborted) return null;
        const due = await opts.nextDueAt();
        const until = due === null ? deadline : Math.min(deadline, Math.max(due, now + 50));
        await waiter.wait(until - now, gone.signal);
      } finally {
        waiter.cancel();
      }
    }
  } finally {
    reply.raw.off('close', onClose);
  }
}
