/**
 * Proxy failover as a compensating child workflow (SPEC §3.5). Steps: mark the old proxy BAD, release its slot,
 * reserve a new one, probe it, move the sticky binding, replace the worker (the auth folder stays: no new scan).
 * Each step after the reservation registers its compensation; if a later step fails, the compensations run in
 * reverse and the next proxy is tried. "No proxy left" ends with no slot held and the old binding restored.
 */
import { ApplicationFailure, log } from '@temporalio/workflow';
import { bestEffortAlert, containerActivitiesOn, quickActivities } from './session-activities-proxy.js';

export interface FailoverInput {
  sessionId: string;
  phone: string | null;
  oldProxy: string;
  reason: string;
  maxAttempts: number;
  probeTimeoutMs: number;
  /** false: the old proxy answered a probe (manual failover of a healthy proxy): do not mark it BAD. */
  markOldBad?: boolean;
  /** Worker generation of the replacement worker (its events carry it). */
  generation?: number;
  /** The session's host queue: the replacement worker starts on the host that holds its auth volume. */
  hostQueue?: string;
}

export type FailoverResult =
  | { ok: true; proxyUrl: string; proxyEndpoint: string; attempts: number }
  | { ok: false; reason: string; attempts: number };

const quick = quickActivities();

export async function failoverWorkflow(input: FailoverInput): Promise<FailoverResult> {
  const { sessionId, phone, oldProxy } = input;
  const workers = containerActivitiesOn(input.hostQueue, 3);
  if (input.markOldBad !== false) {
    await quick.markProxyBad(oldProxy);
    await bestEffortAlert({
      kind: 'proxy_burned',
      text: `proxy burned for session ${sessionId}: ${input.reason}`,
      dedupeKey: `proxy_burned:${oldProxy}`,
    });
  }
  await quick.releaseProxy(sessionId);
  const previousSticky = phone ? await quick.getStickyProxy(phone) : null;
  const exclude = [oldProxy];

  for (let attempt = 1; attempt <= input.maxAttempts; attempt++) {
    const compensations: Array<() => Promise<unknown>> = [];
    let candidate: string | null = null;
    try {
      const reservation = await quick.reserveProxy({ sessionId, phone: null, override: null, exclude });
      candidate = reservation.proxyUrl;
      compensations.unshift(() => quick.releaseProxy(sessionId));

      const probe = await quick.probeProxy({ proxyUrl: candidate, timeoutMs: input.probeTimeoutMs });
      if (!probe.ok) {
        await quick.markProxyBad(candidate);
        throw ApplicationFailure.nonRetryable(
          `new proxy ${reservation.endpoint} is dead too: ${probe.error}`,
          'ProxyDead',
        );
      }

      if (phone) {
        await quick.setStickyProxy({ phone, proxyUrl: candidate });
        compensations.unshift(() => quick.setStickyProxy({ phone, proxyUrl: previousSticky }));
      }
      await quick.updateSession({ sessionId, fields: { proxy: candidate } });
      compensations.unshift(() => quick.updateSession({ sessionId, fields: { proxy: null } }));

      await workers.stopWorker({ sessionId, remove: true });
      // A worker that started half-way on the candidate must not outlive a failed attempt.
      compensations.unshift(() => workers.stopWorker({ sessionId, remove: true }));
      await workers.startWorker({ sessionId, proxyUrl: candidate, generation: input.generation });
      await quick.checkProxyInventory();
      return { ok: true, proxyUrl: candidate, proxyEndpoint: reservation.endpoint, attempts: attempt };
    } catch (err) {
      const cause = (err as { cause?: { type?: string; message?: string } }).cause;
      if (cause?.type === 'NoProxyCapacity') {
        await quick.checkProxyInventory();
        return { ok: false, reason: 'no proxy left with capacity', attempts: attempt };
      }
      log.warn('failover attempt failed; compensating', { attempt, error: cause?.message ?? String(err) });
      for (const undo of compensations) await undo();
      if (candidate) exclude.push(candidate);
    }
  }
  return { ok: false, reason: `no working proxy after ${input.maxAttempts} attempts`, attempts: input.maxAttempts };
}
