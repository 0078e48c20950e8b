/**
 * Worker command loop (contract: common/worker-commands.ts): while connected, claim the next due command, carry it
 * out on the socket (number check, read receipts, group operations) and post the result. Separate from the outbox
 * loop so a check is not held up behind a send that is still typing.
 */
import {
  CommandClaimResponseSchema,
  type CommandResultRequest,
  type GroupCommand,
  type WorkerCommand,
} from '../common/worker-commands.js';
import { ClaimLoop, type ClaimLoopOptions } from './claim-loop.js';
import { errorText } from './connection.js';
import { waErrorCode, type EngineSocket } from './engine.js';
import type { Logger } from './logger.js';
import { SignedClient, type Fencing } from './signed-post.js';

export class CommandClient {
  private readonly http: SignedClient;

  constructor(
    baseUrl: string,
    secret: string,
    private readonly timeoutMs: number,
    fencing: Fencing = {},
  ) {
    this.http = new SignedClient(baseUrl, secret, timeoutMs, 'commands', fencing);
  }

  /** Waits up to `waitMs` on the API for a command (a long-poll). */
  async claim(waitMs = 0, signal?: AbortSignal): Promise<WorkerCommand | null> {
    const res = await this.http.post('claim', waitMs > 0 ? { waitMs } : {}, {
      timeoutMs: waitMs + this.timeoutMs,
      signal,
    });
    if (res.status === 204) return null;
    return CommandClaimResponseSchema.parse(await res.json()).command;
  }

  async result(r: CommandResultRequest): Promise<void> {
    await (await this.http.post('result', r)).body?.cancel();
  }
}

export class CommandWorker extends ClaimLoop<WorkerCommand> {
  readonly stats = { checks: 0, numbersChecked: 0, reads: 0, groups: 0, expired: 0, failed: 0 };

  constructor(
    private readonly client: CommandClient,
    logger: Logger,
    opts: ClaimLoopOptions,
  ) {
    super(logger, opts, 'command');
  }

  protected claim(waitMs: number, signal: AbortSignal): Promise<WorkerCommand | null> {
    return this.client.claim(waitMs, signal);
  }

  protected async process(command: WorkerCommand): Promise<void> {
    const result = await this.execute(command);
    try {
      await this.client.result(result);
    } catch (err) {
      // The caller times out (504) or, for a read, the receipt went out anyway: nothing to redo.
      this.logger.warn({ commandId: command.id, err: errorText(err) }, 'command result not delivered');
    }
  }

  private async execute(command: WorkerCommand): Promise<CommandResultRequest> {
    const sock = this.sock;
    if (Date.now() > command.deadline) {
      this.stats.expired++;
      return { commandId: command.id, ok: false, error: 'expired' };
    }
    if (!sock) return { commandId: command.id, ok: false, error: 'not connected' };
    try {
      if (command.kind === 'check') {
        const results = await sock.checkNumbers(command.phones);
        this.stats.checks++;
        this.stats.numbersChecked += command.phones.length;
        this.logger.info({ commandId: command.id, numbers: command.phones.length }, 'number check done');
        return { commandId: command.id, ok: true, result: { results } };
      }
      if (command.kind === 'group') return await this.group(sock, command);
      await sock.readMessages(command.messages);
      this.stats.reads += command.messages.length;
      this.logger.info({ commandId: command.id, messages: command.messages.length }, 'read receipts sent');
      return { commandId: command.id, ok: true, result: { read: command.messages.length } };
    } catch (err) {
      this.stats.failed++;
      const error = errorText(err);
      this.logger.warn({ commandId: command.id, kind: command.kind, err: error }, 'command failed');
      const errorCode = waErrorCode(err);
      return { commandId: command.id, ok: false, error, ...(errorCode ? { errorCode } : {}) };
    }
  }

  private async group(sock: EngineSocket, c: GroupCommand): Promise<CommandResultRequest> {
    const done = (result: CommandResultRequest['result']): CommandResultRequest => {
      this.stats.groups++;
      this.logger.info({ commandId: c.id, action: c.action }, 'group command done');
      return { commandId: c.id, ok: true, result };
    };
    const need = <T>(v: T | undefined, what: string): T => {
      if (v === undefined) throw new Error(`group ${c.action} without ${what}`);
      return v;
    };
    switch (c.action) {
      case 'list':
        return done({ groups: await sock.groupList() });
      case 'info':
        return done({ group: await sock.groupInfo(need(c.jid, 'jid')) });
      case 'create':
        return done({ group: await sock.groupCreate(need(c.subject, 'subject'), need(c.phones, 'phones')) });
      case 'participants':
        return done({
          participants: await sock.groupParticipants(
            need(c.jid, 'jid'),
            need(c.phones, 'phones'),
            need(c.change, 'change'),
          ),
        });
      case 'leave':
        await sock.groupLeave(need(c.jid, 'jid'));
        return done({});
    }
  }
}
