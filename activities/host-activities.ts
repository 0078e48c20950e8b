import { workflowIdFor } from '../common/session.js';
import type { ActivityDeps } from './session-activities.js';

/** The steps of host failover and drain (workflows/host-failover.ts) and of a session's own move. */
export function createHostActivities(deps: Pick<ActivityDeps, 'config' | 'stores'>) {
  const { config } = deps;
  const { hosts } = deps.stores;
  // A move target must be alive by the same measure as a placement at provision.
  const staleMs = config.HOST_HEARTBEAT_MS * 3;

  return {
    /** The sessions placed on a host, with their workflows. */
    async hostSessions(input: { hostId: string }): Promise<Array<{ sessionId: string; workflowId: string }>> {
      return (await hosts.sessionsOn(input.hostId)).map((sessionId) => ({
        sessionId,
        workflowId: workflowIdFor(config.WORKFLOW_ID_PREFIX, sessionId),
      }));
    },

    /**
     * Moves the session's placement off `from` (one Redis step; the session record's `host` follows). null: no
     * other live host has room (nothing changed). `to`: that host, the way back of a move that failed.
     * `fromAlive`: `from` still heartbeats (a dead host came back, or a drain), so its worker can be stopped there.
     */
    async moveSessionHost(input: {
      sessionId: string;
      from: string;
      exclude: string[];
      to?: string;
    }): Promise<{ hostId: string; queue: string; fromAlive: boolean } | null> {
      const host = await hosts.move(input.sessionId, input.from, { staleMs, exclude: input.exclude, to: input.to });
      const from = await hosts.get(input.from);
      return (
        host && {
          hostId: host.hostId,
          queue: host.queue,
          fromAlive: !!from && Date.now() - from.heartbeatAt <= staleMs,
        }
      );
    },

    /** Marks a host draining (it takes no new session) or not. */
    async setHostDraining(input: { hostId: string; draining: boolean }): Promise<void> {
      await hosts.setDraining(input.hostId, input.draining);
    },
  };
}

export type HostActivities = ReturnType<typeof createHostActivities>;
