/**
 * Activities of the anti-ban dispatcher (workflows/dispatcher.ts) and the orchestrator's start-up sweep.
 */
import type { Config } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import type { Alerts } from './alerts.js';
import { statusEventData } from '../state/messages.js';
import type { Stores } from '../state/stores.js';

export type DispatchStepOutput =
  | {
      kind: 'released';
      messageId: string;
      releasedAt: number;
      gapMs: number;
      jitterPercent: number;
      slowdown: number;
      level: string;
    }
  | { kind: 'skipped'; messageId: string }
  | { kind: 'idle' | 'offline'; idlePollMs: number; /** handed off, outcome not read back yet */ inFlight?: number }
  | { kind: 'cap'; untilMs: number }
  | { kind: 'gone' };

export interface DispatchActivities {
  /** notBefore: epoch ms before which nothing is handed off (the fine part of the gap is waited here). */
  dispatchStep(input: { sessionId: string; stepId: string; notBefore?: number }): Promise<DispatchStepOutput>;
  /** The session's current pacing (after a limits change the dispatcher re-plans the running gap with it). */
  currentPacing(input: { sessionId: string }): Promise<{ gapMs: number; jitterPercent: number; slowdown: number }>;
}

export function createDispatchActivities(deps: {
  config: Config;
  stores: Stores;
  logger: Logger;
  /** Raises the alert of a run of 463/479 refusals (flagged by the API's messaging hook). */
  alerts?: Pick<Alerts, 'enqueue'>;
}): DispatchActivities {
  const { config, logger, alerts } = deps;
  const { messages, outbox, sessions, clientWebhooks: hooks } = deps.stores;
  return {
    async dispatchStep({ sessionId, stepId, notBefore }): Promise<DispatchStepOutput> {
      const wait = (notBefore ?? 0) - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, 20_000)));
      if ((await sessions.statusOf(sessionId)) === 'connected') await messages.markConnectedOnce(sessionId);
      for (const ch of await messages.reconcile(sessionId, outbox)) {
        await hooks.enqueue(ch.tenant, 'message.status', statusEventData(ch));
      }
      const rejections = await messages.takeRejectionAlert(sessionId);
      if (rejections > 0) {
        logger.warn({ sessionId, rejections }, 'WhatsApp refused cold sends in a row: the session is slowed down');
        await alerts?.enqueue(
          'session_sends_rejected',
          `Session ${sessionId}: WhatsApp refused ${rejections} messages in a row (463, no privacy token: ` +
            `cold outreach from a young number). Sends slowed ×${config.ANTIBAN_BURST_SLOWDOWN} for ` +
            `${Math.round(config.ANTIBAN_BURST_PAUSE_MS / 1000)} s.`,
          `sends_rejected:${sessionId}`,
        );
      }
      const promoted = await messages.maybePromote(sessionId);
      if (promoted) logger.info({ sessionId, ...promoted }, 'session promoted to a higher trust level');
      const limits = await messages.limits(sessionId);
      const r = await messages.step(sessionId, stepId, limits.dailyCap, outbox);
      if (r.kind === 'released') {
        const slowdown = (await messages.burstUntil(sessionId)) > Date.now() ? config.ANTIBAN_BURST_SLOWDOWN : 1;
        logger.debug({ sessionId, messageId: r.messageId, level: limits.level }, 'message handed to the worker');
        return {
          kind: 'released',
          messageId: r.messageId,
          releasedAt: r.releasedAt,
          gapMs: limits.gapMs,
          jitterPercent: limits.jitterPercent,
          slowdown,
          level: limits.level,
        };
      }
      if (r.kind === 'skipped') return { kind: 'skipped', messageId: r.messageId };
      if (r.kind === 'cap') {
        logger.info({ sessionId, until: new Date(r.untilMs).toISOString(), cap: limits.dailyCap }, 'daily cap reached');
        return r;
      }
      if (r.kind === 'gone') return { kind: 'gone' };
      const inFlight = await messages.inFlightCount(sessionId);
      return { kind: r.kind, idlePollMs: config.ANTIBAN_IDLE_POLL_MS, inFlight };
    },

    async currentPacing({ sessionId }) {
      const limits = await messages.limits(sessionId);
      const slowdown = (await messages.burstUntil(sessionId)) > Date.now() ? config.ANTIBAN_BURST_SLOWDOWN : 1;
      return { gapMs: limits.gapMs, jitterPercent: limits.jitterPercent, slowdown };
    },
  };
}
