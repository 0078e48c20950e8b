/**
 * Commands the API gives a session's worker besides sends: number checks and read receipts. The worker
 * pulls them like the outbox (it opens no port): signed like every worker call, served under
 * COMMANDS_URL = `http://host/api/worker/sessions/<id>/commands` (the outbox URL's sibling).
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
  /** inbound messages to mark read: WhatsApp id and the chat's JID */
  messages: z
    .array(z.object({ id: z.string().min(1).max(256), chat: z.string().min(3).max(256) }))
    .min(1)
    .max(500),
});
export const WorkerCommandSchema = z.discriminatedUnion('kind', [CheckCommandSchema, ReadCommandSchema]);
export type WorkerCommand = z.infer<typeof WorkerCommandSchema>;
export type CheckCommand = z.infer<typeof CheckCommandSchema>;
export type ReadCommand = z.infer<typeof ReadCommandSchema>;

export const NumberCheckResultSchema = z.object({
  phone: z.string(),
  exists: z.boolean(),
  jid: z.string().optional(),
  lid: z.string().optional(),
});
export type NumberCheckResult = z.infer<typeof NumberCheckResultSchema>;

export const CommandResultRequestSchema = z.object({
  commandId: CommandIdSchema,
  ok: z.boolean(),
  /** check: {results: NumberCheckResult[]}; read: {read: number} */
  result: z
    .object({ results: z.array(NumberCheckResultSchema).max(500).optional(), read: z.number().int().optional() })
    .optional(),
  error: z.string().max(1000).optional(),
});
export type CommandResultRequest = z.infer<typeof CommandResultRequestSchema>;

export const CommandClaimResponseSchema = z.object({ command: WorkerCommandSchema });

/** The commands URL of a worker, next to its outbox URL. */
export const commandsUrlOf = (outboxUrl: string) => outboxUrl.replace(/\/outbox$/, '/commands');
