/**
 * Proxy failover as a compensating child workflow (SPEC §3.5). Steps: mark the old proxy BAD, release its slot,
 * reserve a new one, probe it, move the sticky binding, replace the worker (the auth folder stays: no new scan).
 * Each step after the reservation registers its compensation; if a later step fails, the compensations run in
 * reverse and the next proxy is tried. "No proxy left" ends with no slot held and the old binding restored.
 */
import { ApplicationFailure, log, patched } from '@temporalio/workflow';
import { failureOf, FailureType } from '../common/failure.js';
import { bestEffortAlert, containerActivitiesOn, quickActivities } from './activity-options.js';

export interface FailoverInput {
  sessionId: string;
  phone: string | null;
  /** The proxy that failed, by id; `oldProxy` (its URL) only from sessions whose run predates ids. */
  oldProxyId?: string;
  oldProxy?: string;
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
  | { ok: true; proxyId?: string; proxyUrl?: string; proxyEndpoint: string; attempts: number }
  | { ok: false; reason: string; attempts: number };

const quick = quickActivities();

export async function failoverWorkflow(input: FailoverInput): Promise<FailoverResult> {
  const { sessionId, phone } = input;
  const workers = containerActivitiesOn(input.hostQueue, 3);
  // Proxies by id from here on: their URLs (credentials) stay out of this history.
  const byId = patched('proxy-id');
  const oldRef = input.oldProxyId ? { proxyId: input.oldProxyId } : { proxyUrl: input.oldProxy! };
  /** A proxy as activities take it, in this run's way of naming proxies. */
  const ref = (proxy: string | null) => (byId ? { proxyId: proxy } : { proxyUrl: proxy });
  if (input.markOldBad !== false) {
    await quick.markProxyBad(byId ? oldRef : input.oldProxy!);
    await bestEffortAlert({
      kind: 'proxy_burned',
      text: `proxy burned for session ${sessionId}: ${input.reason}`,
      dedupeKey: `proxy_burned:${input.oldProxyId ?? input.oldProxy}`,
    });
  }
  await quick.releaseProxy(sessionId);
  let previousSticky: string | null = null;
  if (phone) previousSticky = byId ? await quick.getStickyProxyId(phone) : await quick.getStickyProxy(phone);
  // In this run's naming; an old URL-named proxy is excluded by its URL.
  const exclude = input.oldProxyId || !byId ? [input.oldProxyId ?? input.oldProxy!] : [];
  const excludeUrls = byId && !input.oldProxyId ? [input.oldProxy!] : [];

  for (let attempt = 1; attempt <= input.maxAttempts; attempt++) {
    const compensations: Array<() => Promise<unknown>> = [];
    let candidate: string | null = null;
    try {
      const reservation = await quick.reserveProxy(
        byId
          ? { sessionId, phone: null, override: null, exclude: excludeUrls, excludeIds: exclude, idOnly: true }
          : { sessionId, phone: null, override: null, exclude },
      );
      const reserved = byId ? reservation.proxyId : reservation.proxyUrl!;
      candidate = reserved;
      compensations.unshift(() => quick.releaseProxy(sessionId));

      const probe = await quick.probeProxy({ ...ref(reserved), timeoutMs: input.probeTimeoutMs });
      if (!probe.ok) {
        await quick.markProxyBad(byId ? ref(reserved) : reserved);
        throw ApplicationFailure.nonRetryable(
          `new proxy ${reservation.endpoint} is dead too: ${probe.error}`,
          'ProxyDead',
        );
      }

      if (phone) {
        await quick.setStickyProxy({ phone, ...ref(reserved) });
        compensations.unshift(() => quick.setStickyProxy({ phone, ...ref(previousSticky) }));
      }
      await quick.updateSession(
        byId ? { sessionId, fields: {}, proxyId: reserved } : { sessionId, fields: { proxy: reserved } },
      );
      compensations.unshift(() => quick.updateSession({ sessionId, fields: { proxy: null } }));

      await workers.stopWorker({ sessionId, remove: true });
      // A worker that started half-way on the candidate must not outlive a failed attempt.
      compensations.unshift(() => workers.stopWorker({ sessionId, remove: true }));
      await workers.startWorker({ sessionId, ...ref(reserved), generation: input.generation });
      await quick.checkProxyInventory();
      return {
        ok: true,
        ...(byId ? { proxyId: reserved } : { proxyUrl: reserved }),
        proxyEndpoint: reservation.endpoint,
        attempts: attempt,
      };
    } catch (err) {
      const cause = failureOf(err);
      if (cause.type === FailureType.NoProxyCapacity) {
        await quick.checkProxyInventory();
        return { ok: false, reason: 'no proxy left with capacity', attempts: attempt };
      }
      log.warn('failover attempt failed; compensating', { attempt, error: cause.message });
      for (const undo of compensations) await undo();
      if (candidate) exclude.push(candidate);
    }
  }
  return { ok: false, reason: `no working proxy after ${input.maxAttempts} attempts`, attempts: input.maxAttempts };
}
