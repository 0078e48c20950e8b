/** What StandinRunner (in the orchestrator) and the stand-in hosts say to each other over IPC. */
import { createHash } from 'node:crypto';
import type { WorkerSpec } from '../../activities/runner/types.js';

export type HostRequest =
  | { id: number; op: 'start'; spec: WorkerSpec }
  | { id: number; op: 'stop'; sessionId: string; remove: boolean }
  | { id: number; op: 'restart'; sessionId: string }
  | { id: number; op: 'inspect'; sessionId: string }
  | { id: number; op: 'list' };
export type HostReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** Which of `n` (hosts, API instances) a session goes to: always the same one. */
export function indexOf(sessionId: string, n: number): number {
  return createHash('sha256').update(sessionId).digest().readUInt32BE(0) % n;
}
