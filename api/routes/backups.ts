import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { backupWorkflow } from '../../workflows/backup.js';
import { restoreWorkflow } from '../../workflows/restore.js';
import { failureOf } from '../../common/failure.js';
import { archiveLimits, BACKUP_ID_RE, BackupInvalidError, verifyArchive } from '../../common/backup-archive.js';
import { backupStoreFor, BackupNotFoundError, BackupStoreError } from '../../common/backup-store.js';
import { SessionIdSchema } from '../../common/session.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput } from '../errors.js';

export const IdParams = z.object({
  id: z.string().regex(BACKUP_ID_RE, 'must be a backup id from GET /api/v1/backups'),
});
export const CreateBody = z.object({}).strict();
/** `wait=false`: answer 202 with the workflow id at once instead of waiting for the result (a wait is bounded too). */
export const WaitQuery = z.object({ wait: z.enum(['true', 'false']).default('true') });
export const RestoreBody = z
  .object({
    /** Restore only this session's folder. */
    sessionId: SessionIdSchema.optional(),
  })
  .strict();

/** Backups and restore (SPEC §4): admin key only (registered in the admin sub-scope). Both operations run as Temporal workflows in the orchestrator. */
export function backupRoutes(ctx: ApiContext) {
  const { config, temporal } = ctx;
  const backupsDir = path.resolve(config.BACKUPS_DIR);
  const limits = archiveLimits(config);
  const store = backupStoreFor(config);
  // The store's own failure (wrong credentials, unreachable endpoint) as one 502 naming it, never a secret.
  const storeError = (err: unknown): never => {
    if (err instanceof BackupStoreError) throw new ApiError(502, 'BACKUP_STORE_UNAVAILABLE', err.message);
    throw err;
  };

  return async function plugin(app: FastifyInstance) {
    app.get('/api/v1/backups', async () => {
      const out = [];
      for (const b of await store.list().catch(storeError)) {
        let verification: { ok: boolean; error: string | null } = { ok: true, error: null };
        let sessions: Array<{ sessionId: string; phone: string | null; files: number; bytes: number }> = [];
        let createdAt = b.createdAt;
        let reason: string | null = null;
        try {
          // A local archive is verified on every listing; one in the bucket was verified before its upload and is
          // listed from the manifest stored beside it (a restore downloads and verifies it again).
          const m = store.manifest ? await store.manifest(b.id) : await verifyArchive(b.where, limits);
          sessions = m.sessions.map((s) => ({
            sessionId: s.sessionId,
            phone: s.phone,
            files: s.files,
            bytes: s.bytes,
          }));
          createdAt = m.createdAt;
          reason = m.reason;
        } catch (err) {
          verification = { ok: false, error: (err as Error).message };
        }
        out.push({
          id: b.id,
          size: b.size,
          createdAt: new Date(createdAt).toISOString(),
          reason,
          sessions,
          location: b.location,
          where: b.where,
          verified: verification.ok,
          verificationError: verification.error,
        });
      }
      return { backups: out, maxBackups: config.MAX_BACKUPS, store: store.location };
    });

    app.post('/api/v1/backups/create', async (request, reply) => {
      parseInput(CreateBody, request.body, 'body');
      try {
        const result = await temporal.workflow.execute(backupWorkflow, {
          workflowId: `${config.WORKFLOW_ID_PREFIX}:backup:manual`,
          taskQueue: config.TEMPORAL_TASK_QUEUE,
          args: [{ reason: 'on demand' }],
          workflowIdConflictPolicy: 'FAIL',
          workflowExecutionTimeout: '1h',
        });
        return reply.code(201).send({ backup: result });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError)
          throw new ApiError(409, 'BACKUP_IN_PROGRESS', 'a backup is already running');
        if (err instanceof WorkflowFailedError)
          throw new ApiError(500, 'BACKUP_FAILED', `backup failed: ${failureOf(err).message}`);
        throw err;
      }
    });

    // The outcome of a restore that answered 202: the last restore's state, its report once it has one.
    app.get('/api/v1/backups/restore', async () => {
      const workflowId = `${config.WORKFLOW_ID_PREFIX}:restore`;
      const handle = temporal.workflow.getHandle(workflowId);
      let described;
      try {
        described = await handle.describe();
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw new ApiError(404, 'NO_RESTORE', 'no restore has run');
        throw err;
      }
      const base = { workflowId, runId: described.runId };
      if (described.status.name === 'RUNNING') return { restore: { ...base, status: 'running' } };
      try {
        return { restore: { ...base, status: 'completed', report: await handle.result() } };
      } catch (err) {
        const message = err instanceof WorkflowFailedError ? failureOf(err).message : (err as Error).message;
        return { restore: { ...base, status: 'failed', error: message } };
      }
    });

    app.post('/api/v1/backups/restore/:id', async (request, reply) => {
      const { id } = parseInput(IdParams, request.params, 'params');
      const body = parseInput(RestoreBody, request.body, 'body');
      const { wait } = parseInput(WaitQuery, request.query, 'query');
      if (!(await store.list().catch(storeError)).some((b) => b.id === id))
        throw new ApiError(404, 'BACKUP_NOT_FOUND', `backup ${id} not found`);
      // Refused before any workflow starts (the workflow verifies again before touching anything).
      const opened = await store.open(id, path.join(backupsDir, '.downloads')).catch((err: unknown) => {
        if (err instanceof BackupNotFoundError) throw new ApiError(404, 'BACKUP_NOT_FOUND', `backup ${id} not found`);
        return storeError(err);
      });
      try {
        const m = await verifyArchive(opened.file, limits);
        if (body.sessionId && !m.sessions.some((s) => s.sessionId === body.sessionId))
          throw new ApiError(404, 'SESSION_NOT_IN_BACKUP', `backup ${id} holds no session ${body.sessionId}`);
      } catch (err) {
        if (err instanceof BackupInvalidError) throw new ApiError(422, 'BACKUP_INVALID', err.message);
        throw err;
      } finally {
        await opened.release();
      }
      try {
        const workflowId = `${config.WORKFLOW_ID_PREFIX}:restore`;
        const handle = await temporal.workflow.start(restoreWorkflow, {
          workflowId,
          taskQueue: config.TEMPORAL_TASK_QUEUE,
          args: [
            { backupId: id, sessionId: body.sessionId ?? null, connectTimeoutMs: config.RESTORE_CONNECT_TIMEOUT_MS },
          ],
          workflowIdConflictPolicy: 'FAIL',
          workflowExecutionTimeout: '2h',
        });
        const started = { restore: { workflowId, runId: handle.firstExecutionRunId, status: 'running' } };
        if (wait === 'false') return reply.code(202).send(started);
        // A long restore (many sessions, each waited for until connected) answers 202 rather than hold the request.
        const result = handle.result();
        const done = await Promise.race([result.then(() => true), sleep(config.RESTORE_ANSWER_WAIT_MS, false)]);
        if (!done) {
          result.catch(() => undefined); // its outcome is in the workflow (and its alerts), not in this answer
          return reply.code(202).send(started);
        }
        return { restore: await result };
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError)
          throw new ApiError(409, 'RESTORE_IN_PROGRESS', 'a restore is already running');
        if (err instanceof WorkflowFailedError) {
          const f = failureOf(err);
          if (f.type === 'BackupInvalid') throw new ApiError(422, 'BACKUP_INVALID', f.message);
          throw new ApiError(500, 'RESTORE_FAILED', f.message);
        }
        throw err;
      }
    });
  };
}
