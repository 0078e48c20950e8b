/**
 * Wakes a session's dispatcher workflow (signal-with-start) after the gateway queued a message. Signals are
 * coalesced per session: while one is in flight, later requests share the next one (sent after it), so a burst of
 * N requests costs about two Temporal calls instead of N, and every request still waits for a signal that started
 * after its own message was queued.
 */
import type { Client } from '@temporalio/client';
import { wakeDispatcher } from '../workflows/dispatcher-client.js';
import type { Config } from '../common/config.js';

export class DispatchWaker {
  private readonly inflight = new Map<string, { current: Promise<void>; next: Promise<void> | null }>();

  constructor(
    private readonly client: Client,
    private readonly config: Config,
  ) {}

  wake(sessionId: string): Promise<void> {
    const slot = this.inflight.get(sessionId);
    if (!slot) return this.launch(sessionId);
    if (!slot.next) {
      slot.next = slot.current.catch(() => undefined).then(() => this.launch(sessionId, true));
    }
    return slot.next;
  }

  private launch(sessionId: string, fromQueue = false): Promise<void> {
    const p = wakeDispatcher(this.client, this.config, sessionId);
    const slot = this.inflight.get(sessionId);
    if (fromQueue && slot) {
      slot.current = p;
      slot.next = null;
    } else {
      this.inflight.set(sessionId, { current: p, next: null });
    }
    const cleanup = () => {
      const s = this.inflight.get(sessionId);
      if (s && s.current === p && !s.next) this.inflight.delete(sessionId);
    };
    p.then(cleanup, cleanup);
    return p;
  }
}
