/**
 * Moves a session to another host (host failover, drain), inside the session's own run. Steps:
 *  1. place it on the best other live host (one Redis step; nothing changed when none has room);
 *  2. stop the worker on the old host: a drain must (compensation: the placement goes back); a dead host only if it
 *     heartbeats again, and else the generation fence refuses its worker from step 3 on;
 *  3. claim the auth folder there and start the worker as a new generation, same proxy and device profile;
 *     compensation: stop that worker and place the session on the next host (a drain ends back on its own host).
 * Invariant: the session is placed on one host at a time, and only the newest worker generation is accepted.
 * A session without a worker (failed, stopped, expired QR) only changes its placement.
 */
import { log } from '@temporalio/workflow';
import { failureOf } from '../common/failure.js';
import { containerActivitiesOn } from './activity-options.js';
import { HOLDS_SLOT, type MoveHostRequest, type MoveHostResult } from './session-definitions.js';
import type { SessionLifecycle } from './session-lifecycle.js';

export async function moveHost(session: SessionLifecycle, req: MoveHostRequest): Promise<MoveHostResult> {
  const { state, hosting } = session;
  const from = session.hostId();
  if (from !== req.fromHostId) return { moved: false, hostId: from, reason: `the session is on ${from}` };
  const placeOn = (host: { hostId: string; queue: string }) => {
    state.hostId = host.hostId;
    state.hostQueue = host.queue;
  };

  // 1. Placement.
  const first = await hosting.moveSessionHost({ sessionId: state.sessionId, from, exclude: [] });
  if (!first) return { moved: false, hostId: from, reason: 'no other live host has room' };
  const oldQueue = session.hostQueue();
  placeOn(first);
  if (!session.holdsProxy() || !HOLDS_SLOT.includes(state.status)) return { moved: true, hostId: first.hostId };

  // 2. The old worker stops.
  try {
    // A host still dead is not waited for: nothing polls its queue.
    if (req.graceful || first.fromAlive)
      await containerActivitiesOn(oldQueue, req.graceful ? 3 : 1, req.graceful ? '60s' : '10s').stopWorker({
        sessionId: state.sessionId,
        remove: true,
      });
    else log.warn('old host is dead; its worker is fenced by generation', { host: from });
  } catch (err) {
    if (req.graceful) {
      const back = await hosting.moveSessionHost({
        sessionId: state.sessionId,
        from: first.hostId,
        exclude: [],
        to: from,
      });
      if (back) placeOn(back);
      return { moved: false, hostId: from, reason: `the worker on ${from} did not stop: ${failureOf(err).message}` };
    }
    log.warn('old host did not answer; its worker is fenced by generation', { host: from });
  }

  // 3. The new worker starts; on failure the next host is tried.
  const tried = [from];
  let target: { hostId: string; queue: string } | null = first;
  let backHome = false;
  while (target) {
    try {
      await session.workers().claimAuthFolder({ sessionId: state.sessionId, tenant: state.tenant });
      await session.startWorker();
      const landed = target.hostId;
      await session.transition('reconnecting', `moved from host ${from} to ${landed}: ${req.reason}`);
      return landed === from
        ? { moved: false, hostId: from, reason: 'no other host could start the worker: back on its host' }
        : { moved: true, hostId: landed };
    } catch (err) {
      log.warn('worker did not start on the new host', { host: target.hostId, error: failureOf(err).message });
      await containerActivitiesOn(target.queue, 1, '5s')
        .stopWorker({ sessionId: state.sessionId, remove: true })
        .catch(() => undefined);
      tried.push(target.hostId);
      const at: string = target.hostId;
      target = await hosting.moveSessionHost({ sessionId: state.sessionId, from: at, exclude: tried });
      // A drained host is alive: the session goes back there rather than down.
      if (!target && req.graceful && !backHome) {
        backHome = true;
        target = await hosting.moveSessionHost({ sessionId: state.sessionId, from: at, exclude: [], to: from });
      }
      if (target) placeOn(target);
    }
  }
  await session.park('failed', `no host could start the worker after leaving ${from}`, 'session_failed');
  return { moved: false, hostId: session.hostId(), reason: state.lastError ?? 'no host could start the worker' };
}
