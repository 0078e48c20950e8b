/**
 * Groups of a session, carried out by the session's worker through worker commands (common/worker-commands.ts);
 * each call waits for the worker's answer (GROUP_COMMAND_TIMEOUT_MS, then 504):
 *   GET  /api/sessions/:id/groups                         → 200 {sessionId, groups}
 *   GET  /api/sessions/:id/groups/:jid                    → 200 {sessionId, group}
 *   POST /api/sessions/:id/groups {subject, participants} → 201 {sessionId, group}
 *   POST /api/sessions/:id/groups/:jid/participants {action: add|remove, participants} → 200 {sessionId, jid, results}
 *     (403 GROUP_FORBIDDEN when the session is not an admin)
 *   POST /api/sessions/:id/groups/:jid/leave              → 200 {sessionId, jid, left}
 * Messages go to a group through POST /api/send with the group JID as `to`.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { PhoneSchema, SessionIdSchema } from '../../common/session.js';
import {
  GroupInfoSchema,
  GroupParticipantResultSchema,
  type CommandResultRequest,
  type GroupCommand,
} from '../../common/worker-commands.js';
import { reaches, sessionNotFound, type Principal } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError, parseInput } from '../errors.js';

/** How long a group call waits for the worker (WhatsApp answers group queries within a round trip or two). */
export const GROUP_COMMAND_TIMEOUT_MS = 20_000;
export const GROUP_MAX_PARTICIPANTS = 256;

/** A group in a path: `<digits>@g.us`, or just its digits. */
const GroupJidParam = z
  .string()
  .regex(/^[0-9]{6,32}(-[0-9]{6,12})?(@g\.us)?$/, 'must be a group JID (<digits>@g.us)')
  .transform((s) => (s.endsWith('@g.us') ? s : `${s}@g.us`));

export const SessionGroupsParams = z.object({ id: SessionIdSchema });
export const GroupParams = z.object({ id: SessionIdSchema, jid: GroupJidParam });

const Participants = z
  .array(PhoneSchema, { required_error: 'participants is required', invalid_type_error: 'must be a list of numbers' })
  .min(1, 'must not be empty')
  .max(GROUP_MAX_PARTICIPANTS, `at most ${GROUP_MAX_PARTICIPANTS} numbers`);

export const GroupCreateBodySchema = z
  .object({
    subject: z
      .string({ required_error: 'subject is required', invalid_type_error: 'must be a string' })
      .trim()
      .min(1, 'must not be empty')
      .max(100, 'must be at most 100 characters'),
    participants: Participants,
  })
  .strict();

export const GroupParticipantsBodySchema = z
  .object({
    action: z.enum(['add', 'remove'], { errorMap: () => ({ message: 'must be add or remove' }) }),
    participants: Participants,
  })
  .strict();

export const GroupListResponseSchema = z.object({ sessionId: z.string(), groups: z.array(GroupInfoSchema) });
export const GroupResponseSchema = z.object({ sessionId: z.string(), group: GroupInfoSchema });
export const GroupParticipantsResponseSchema = z.object({
  sessionId: z.string(),
  jid: z.string(),
  results: z.array(GroupParticipantResultSchema),
});
export const GroupLeaveResponseSchema = z.object({ sessionId: z.string(), jid: z.string(), left: z.boolean() });

/** WhatsApp's answers that mean "no such group, as far as this account can tell". */
const GROUP_NOT_FOUND_CODES = new Set([401, 403, 404]);

export function groupRoutes(ctx: ApiContext) {
  const { sessions, commands } = ctx.stores;

  async function connectedSession(principal: Principal, sessionId: string) {
    const record = await sessions.get(sessionId);
    if (!record || record.status === 'deleted' || !reaches(principal, record.tenant))
      throw sessionNotFound(sessionId, 'id');
    if (record.status !== 'connected')
      throw new ApiError(409, 'SESSION_NOT_CONNECTED', `session ${sessionId} is ${record.status}, not connected`, 'id');
    return record;
  }

  /** Queues the command for the session's worker and waits for its answer. */
  async function run(
    sessionId: string,
    input: Omit<GroupCommand, 'id' | 'deadline' | 'kind'>,
  ): Promise<NonNullable<CommandResultRequest['result']>> {
    const command = await commands.enqueue(
      sessionId,
      { kind: 'group', ...input },
      0,
      Date.now() + GROUP_COMMAND_TIMEOUT_MS,
    );
    const answer = await commands.waitResult<CommandResultRequest>(sessionId, command.id, GROUP_COMMAND_TIMEOUT_MS);
    if (!answer) {
      await commands.withdraw(sessionId, command);
      throw new ApiError(
        504,
        'WORKER_TIMEOUT',
        `the session's worker did not answer within ${GROUP_COMMAND_TIMEOUT_MS} ms`,
      );
    }
    if (!answer.ok) {
      if (answer.error === 'expired')
        throw new ApiError(504, 'WORKER_TIMEOUT', `the session's worker took the command too late`);
      if (answer.error === 'not connected')
        throw new ApiError(409, 'SESSION_NOT_CONNECTED', `session ${sessionId} is not connected to WhatsApp`, 'id');
      // a member who is not an admin may not add or remove (WhatsApp: 403 for the whole query)
      if (input.action === 'participants' && answer.errorCode === 403)
        throw new ApiError(
          403,
          'GROUP_FORBIDDEN',
          `WhatsApp refused: session ${sessionId} is not an admin of group ${input.jid}`,
          'jid',
        );
      if (input.jid && answer.errorCode !== undefined && GROUP_NOT_FOUND_CODES.has(answer.errorCode))
        throw new ApiError(404, 'GROUP_NOT_FOUND', `group ${input.jid} not found for session ${sessionId}`, 'jid');
      throw new ApiError(
        502,
        'GROUP_FAILED',
        `WhatsApp refused the group ${input.action}: ${answer.error ?? 'unknown'}`,
      );
    }
    return answer.result ?? {};
  }

  return async function plugin(app: FastifyInstance) {
    app.get('/api/sessions/:id/groups', async (request) => {
      const { id } = parseInput(SessionGroupsParams, request.params, 'params');
      await connectedSession(request.principal, id);
      const result = await run(id, { action: 'list' });
      return { sessionId: id, groups: result.groups ?? [] };
    });

    app.get('/api/sessions/:id/groups/:jid', async (request) => {
      const { id, jid } = parseInput(GroupParams, request.params, 'params');
      await connectedSession(request.principal, id);
      const result = await run(id, { action: 'info', jid });
      if (!result.group) throw new ApiError(502, 'GROUP_FAILED', 'the worker returned no group');
      return { sessionId: id, group: result.group };
    });

    app.post('/api/sessions/:id/groups', async (request, reply) => {
      const { id } = parseInput(SessionGroupsParams, request.params, 'params');
      const body = parseInput(GroupCreateBodySchema, request.body, 'body');
      const record = await connectedSession(request.principal, id);
      const participants = [...new Set(body.participants)].filter((p) => p !== record.phone);
      if (participants.length === 0)
        throw new ApiError(400, 'VALIDATION_ERROR', 'participants: name someone besides the session', 'participants');
      const result = await run(id, { action: 'create', subject: body.subject, phones: participants });
      if (!result.group) throw new ApiError(502, 'GROUP_FAILED', 'the worker returned no group');
      request.log.info({ sessionId: id, group: result.group.jid, size: result.group.size }, 'group created');
      return reply.code(201).send({ sessionId: id, group: result.group });
    });

    app.post('/api/sessions/:id/groups/:jid/participants', async (request) => {
      const { id, jid } = parseInput(GroupParams, request.params, 'params');
      const body = parseInput(GroupParticipantsBodySchema, request.body, 'body');
      await connectedSession(request.principal, id);
      const phones = [...new Set(body.participants)];
      const result = await run(id, { action: 'participants', jid, phones, change: body.action });
      return { sessionId: id, jid, results: result.participants ?? [] };
    });

    app.post('/api/sessions/:id/groups/:jid/leave', async (request) => {
      const { id, jid } = parseInput(GroupParams, request.params, 'params');
      await connectedSession(request.principal, id);
      await run(id, { action: 'leave', jid });
      request.log.info({ sessionId: id, group: jid }, 'left group');
      return { sessionId: id, jid, left: true };
    });
  };
}
