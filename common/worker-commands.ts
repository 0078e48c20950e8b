/**
 * Commands the API gives a session's worker besides sends: number checks, read receipts and group operations
 * (list, metadata, create, add/remove members, leave). The worker pulls them like the outbox (it opens no port):
 * signed like every worker call, served under COMMANDS_URL = `http://host/api/worker/sessions/<id>/commands` (the
 * outbox URL's sibling).
 *
 *   POST {COMMANDS_URL}/claim   {}                                       → 200 {command} | 204 (nothing due)
 *   POST {COMMANDS_URL}/result  {commandId, ok, result?, error?}         → 200 {ok}
 *
 * A command carries a deadline: past it the worker answers `expired` without touching WhatsApp (the caller gave up).
 */
import { z } from 'zod';

export const CommandIdSchema = z.string().regex(/^cmd_[A-Za-z0-9]{1,64}$/, 'not a command id');

export const CheckCommandSchema = z.object({
  id: CommandIdSchema,
  kind: z.literal('check'),
  deadline: z.number().int(),
  /** digits only (E.164 without '+') */
  phones: z
    .array(z.string().regex(/^\d{8,15}$/))
    .min(1)
    .max(500),
});
export const ReadCommandSchema = z.object({
  id: CommandIdSchema,
  kind: z.literal('read'),
  deadline: z.number().int(),
  /** inbound messages to mark read: WhatsApp id, the chat's JID and, in a group, the member who wrote */
  messages: z
    .array(
      z.object({
        id: z.string().min(1).max(256),
        chat: z.string().min(3).max(256),
        participant: z.string().min(3).max(256).optional(),
      }),
    )
    .min(1)
    .max(500),
});
/** A group's address: `<digits>@g.us` (older groups: `<creator>-<timestamp>@g.us`). */
export const GroupJidSchema = z
  .string()
  .regex(/^[0-9]{6,32}(-[0-9]{6,12})?@g\.us$/, 'must be a group JID (<digits>@g.us)');
export const GROUP_ACTIONS = ['list', 'info', 'create', 'participants', 'leave'] as const;
export const GroupCommandSchema = z.object({
  id: CommandIdSchema,
  kind: z.literal('group'),
  deadline: z.number().int(),
  action: z.enum(GROUP_ACTIONS),
  /** info, participants, leave */
  jid: GroupJidSchema.optional(),
  /** create */
  subject: z.string().min(1).max(100).optional(),
  /** create, participants: digits only */
  phones: z
    .array(z.string().regex(/^\d{8,15}$/))
    .min(1)
    .max(256)
    .optional(),
  /** participants */
  change: z.enum(['add', 'remove']).optional(),
});
export const WorkerCommandSchema = z.discriminatedUnion('kind', [
  CheckCommandSchema,
  ReadCommandSchema,
  GroupCommandSchema,
]);
export type WorkerCommand = z.infer<typeof WorkerCommandSchema>;
export type CheckCommand = z.infer<typeof CheckCommandSchema>;
export type ReadCommand = z.infer<typeof ReadCommandSchema>;
export type GroupCommand = z.infer<typeof GroupCommandSchema>;

export const NumberCheckResultSchema = z.object({
  phone: z.string(),
  exists: z.boolean(),
  jid: z.string().optional(),
  lid: z.string().optional(),
});
export type NumberCheckResult = z.infer<typeof NumberCheckResultSchema>;

/** A group as the worker reports it (from WhatsApp's group metadata). */
export const GroupInfoSchema = z.object({
  /** as WhatsApp names it (not held to GroupJidSchema: an answer is never dropped over an unusual id) */
  jid: z.string().min(3).max(256),
  subject: z.string(),
  /** the creator's phone number, when WhatsApp names it */
  owner: z.string().nullable(),
  /** unix seconds */
  creation: z.number().int().nullable(),
  size: z.number().int(),
  participants: z.array(
    z.object({
      /** the member's address as the group lists it (`…@s.whatsapp.net` or `…@lid`) */
      jid: z.string(),
      /** the member's phone number when known */
      phone: z.string().nullable(),
      admin: z.enum(['admin', 'superadmin']).nullable(),
    }),
  ),
});
export type GroupInfo = z.infer<typeof GroupInfoSchema>;
export const GroupParticipantResultSchema = z.object({
  phone: z.string(),
  /** WhatsApp's per-member answer: '200' done; otherwise its error code (403 not allowed, 409 already a member…) */
  status: z.string(),
});
export type GroupParticipantResult = z.infer<typeof GroupParticipantResultSchema>;

export const CommandResultRequestSchema = z.object({
  commandId: CommandIdSchema,
  ok: z.boolean(),
  /** check: {results}; read: {read}; group: {group} (info, create), {groups} (list), {participants}, {} (leave) */
  result: z
    .object({
      results: z.array(NumberCheckResultSchema).max(500).optional(),
      read: z.number().int().optional(),
      group: GroupInfoSchema.optional(),
      groups: z.array(GroupInfoSchema).max(10_000).optional(),
      participants: z.array(GroupParticipantResultSchema).max(256).optional(),
    })
    .optional(),
  error: z.string().max(1000).optional(),
  /** WhatsApp's error code when it refused the operation (e.g. 404 no such group, 403 not a member) */
  errorCode: z.number().int().optional(),
});
export type CommandResultRequest = z.infer<typeof CommandResultRequestSchema>;

export const CommandClaimResponseSchema = z.object({ command: WorkerCommandSchema });

/** The commands URL of a worker, next to its outbox URL. */
export const commandsUrlOf = (outboxUrl: string) => outboxUrl.replace(/\/outbox$/, '/commands');
