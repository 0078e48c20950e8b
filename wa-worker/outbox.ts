/**
 * Outbox claim loop (contract in common/outbox.ts). While connected: claim the next message, send it, ACK with the
 * WhatsApp message id or NACK (retryable / permanent). At most once per message id, even when a claim or an ACK is
 * retried: a durable ledger in the session folder (`.outbox-ledger.jsonl`) records "sending" before the send and
 * "sent" (with the WhatsApp id) after it. A re-delivered message that the ledger shows as sent is only ACKed again;
 * one that was being sent when the worker crashed (delivery unknown) is NACKed permanently, never resent.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { OutboxMedia } from '../common/media.js';
import { MessageRejectedError, type EngineSocket } from './engine.js';
import { ClaimResponseSchema, REJECTED_COLD_OUTREACH, type OutboxItem } from '../common/outbox.js';
import { backoffDelay } from './config.js';
import { ClaimLoop, type ClaimLoopOptions } from './claim-loop.js';
import { errorText } from './connection.js';
import { JsonlLog } from './jsonl-log.js';
import { SignedClient, SignedHttpError, type Fencing } from './signed-post.js';
import type { Logger } from './logger.js';
import type { SentMessageStore } from './sent-store.js';
import type { WebhookReporter } from './webhooks.js';

export const LEDGER_FILE = '.outbox-ledger.jsonl';
/** A media file is fetched from the API within this time. */
const MEDIA_FETCH_TIMEOUT_MS = 120_000;
const LEDGER_MAX_ENTRIES = 20_000;

export type LedgerState = 'sending' | 'sent' | 'aborted' | 'cleared' | 'rejected';
export interface LedgerEntry {
  messageId: string;
  state: LedgerState;
  waMessageId?: string;
  /** for 'rejected': the status reason */
  reason?: string;
  at: number;
}

/** Append-only, fsync'ed JSONL; the last line for a message id wins. Compacted when it grows. */
export class OutboxLedger {
  private readonly log: JsonlLog<LedgerEntry>;

  constructor(dir: string) {
    this.log = new JsonlLog<LedgerEntry>({
      file: path.join(dir, LEDGER_FILE),
      keyOf: (e) => e.messageId,
      isEntry: (v): v is LedgerEntry =>
        typeof (v as LedgerEntry)?.messageId === 'string' && typeof (v as LedgerEntry).state === 'string',
      keep: (entries) => entries.filter((e) => e.state !== 'cleared').slice(-LEDGER_MAX_ENTRIES),
      compactAtLines: LEDGER_MAX_ENTRIES * 2,
      sync: true,
    });
  }

  open(): Promise<void> {
    return this.log.open();
  }

  get(messageId: string): LedgerEntry | undefined {
    return this.log.get(messageId);
  }

  /** Durably records a state (resolves after fsync). */
  record(entry: Omit<LedgerEntry, 'at'>): Promise<void> {
    return this.log.append({ ...entry, at: Date.now() });
  }

  close(): Promise<void> {
    return this.log.close();
  }
}

/** A stable WhatsApp message id for an outbox message id (same session + id → same WhatsApp id). */
export function waMessageIdFor(sessionId: string, messageId: string): string {
  return `3EB0${createHash('sha256').update(`${sessionId}:${messageId}`).digest('hex').slice(0, 18).toUpperCase()}`;
}

export function toJid(to: string): string {
  return /^\d+$/.test(to) ? `${to}@s.whatsapp.net` : to;
}

export class OutboxClient {
  private readonly http: SignedClient;
  /** `…/sessions/<id>`: the session's media fetch (`…/media`) sits beside its outbox */
  private readonly session: SignedClient;

  constructor(
    baseUrl: string,
    secret: string,
    private readonly timeoutMs: number,
    fencing: Fencing = {},
  ) {
    this.http = new SignedClient(baseUrl, secret, timeoutMs, 'outbox', fencing);
    this.session = new SignedClient(baseUrl.replace(/\/outbox$/, ''), secret, MEDIA_FETCH_TIMEOUT_MS, 'media', fencing);
  }

  /**
   * Streams an upload's bytes from the API into `file` (never whole in memory) and checks size and SHA-256
   * against the descriptor. Throws SignedHttpError (404: gone) or an Error on a mismatch.
   */
  async fetchMedia(media: OutboxMedia, file: string): Promise<void> {
    const res = await this.session.post('media', { uploadId: media.uploadId });
    if (!res.body) throw new Error('media fetch answered without a body');
    const hash = createHash('sha256');
    let size = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    await pipeline(
      Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
      counter,
      createWriteStream(file),
    );
    if (size !== media.size || hash.digest('hex') !== media.sha256)
      throw new Error('fetched media does not match its descriptor (size or SHA-256)');
  }

  /** Waits up to `waitMs` on the API for an item (a long-poll: one request per wait while idle). */
  async claim(waitMs = 0, signal?: AbortSignal): Promise<OutboxItem | null> {
    const res = await this.http.post('claim', waitMs > 0 ? { waitMs } : {}, {
      timeoutMs: waitMs + this.timeoutMs,
      signal,
    });
    if (res.status === 204) return null;
    return ClaimResponseSchema.parse(await res.json()).item;
  }

  async ack(messageId: string, waMessageId: string): Promise<void> {
    await (await this.http.post('ack', { messageId, waMessageId })).body?.cancel();
  }

  async nack(messageId: string, reason: string, permanent: boolean): Promise<void> {
    await (await this.http.post('nack', { messageId, reason: reason.slice(0, 1000), permanent })).body?.cancel();
  }
}

export class OutboxWorker extends ClaimLoop<OutboxItem> {
  /** waMessageId → outbox messageId (for delivery/read statuses). */
  private readonly sent = new Map<string, string>();
  /** When the last send left (for the session's shortest gap). */
  private lastSentAt = 0;
  readonly stats = { claimed: 0, sent: 0, acked: 0, nacked: 0, duplicates: 0, rejected: 0, typedMs: 0 };

  constructor(
    private readonly sessionId: string,
    private readonly client: OutboxClient,
    private readonly ledger: OutboxLedger,
    private readonly reporter: WebhookReporter,
    logger: Logger,
    opts: ClaimLoopOptions,
    private readonly sentStore?: SentMessageStore,
  ) {
    super(logger, opts, 'outbox');
  }

  outboxIdFor(waMessageId: string): string | undefined {
    return this.sent.get(waMessageId);
  }

  protected claim(waitMs: number, signal: AbortSignal): Promise<OutboxItem | null> {
    return this.client.claim(waitMs, signal);
  }

  protected async process(item: OutboxItem): Promise<void> {
    this.stats.claimed++;
    await this.handle(item);
  }

  private async handle(item: OutboxItem): Promise<void> {
    const { messageId } = item;
    const prior = this.ledger.get(messageId);
    if (prior?.state === 'sent' && prior.waMessageId) {
      this.stats.duplicates++;
      this.logger.info({ messageId }, 'outbox message already sent: ACKing again, not resending');
      await this.ackWithRetry(messageId, prior.waMessageId);
      return;
    }
    if (prior?.state === 'rejected') {
      // WhatsApp already refused it; resending would count as another cold reach-out.
      this.stats.duplicates++;
      await this.nackWithRetry(messageId, prior.reason ?? REJECTED_COLD_OUTREACH, true);
      return;
    }
    if (prior?.state === 'sending' || prior?.state === 'aborted') {
      this.stats.duplicates++;
      const reason = 'delivery state unknown after a worker crash during the send; not resent (at most once)';
      this.logger.warn({ messageId }, reason);
      if (prior.state === 'sending') await this.ledger.record({ messageId, state: 'aborted' });
      await this.nackWithRetry(messageId, reason, true);
      this.reporter.emit('MESSAGE_STATUS', { messageId, waMessageId: null, status: 'failed', reason });
      return;
    }
    const sock = this.sock;
    if (!sock) {
      await this.nackWithRetry(messageId, 'not connected', false);
      return;
    }
    // Media first (before typing and the ledger's "sending"): a fetch that fails leaves nothing sent.
    let mediaFile: string | undefined;
    if (item.media) {
      mediaFile = path.join(os.tmpdir(), `wa-media-${randomBytes(8).toString('hex')}`);
      try {
        await this.client.fetchMedia(item.media, mediaFile);
      } catch (err) {
        await rm(mediaFile, { force: true });
        const gone = err instanceof SignedHttpError && err.status === 404;
        const reason = gone ? 'media upload not found (expired or removed)' : `media fetch failed: ${errorText(err)}`;
        this.logger.warn({ messageId, err: errorText(err) }, 'could not fetch the media; NACK');
        await this.nackWithRetry(messageId, reason, gone);
        return;
      }
    }
    try {
      await this.sendClaimed(sock, item, mediaFile);
    } finally {
      if (mediaFile) await rm(mediaFile, { force: true });
    }
  }

  private async sendClaimed(sock: EngineSocket, item: OutboxItem, mediaFile: string | undefined): Promise<void> {
    const { messageId } = item;
    // Typing comes before the ledger's "sending": a crash while typing leaves nothing sent, so the re-delivery
    // types and sends again. A voice note shows `recording` instead.
    const typingState = item.media?.type === 'voice' ? 'recording' : 'composing';
    if (item.typingMs) await this.type(sock, toJid(item.to), item.typingMs, messageId, typingState);
    if (!this.sock) {
      await this.nackWithRetry(messageId, 'not connected', false);
      return;
    }
    // A late hand-off (a slow claim, a busy machine) must not squeeze the next send against this one on the wire.
    const hold = this.lastSentAt + (item.minGapMs ?? 0) - Date.now();
    if (hold > 0) await new Promise((resolve) => setTimeout(resolve, hold));
    const waMessageId = waMessageIdFor(this.sessionId, messageId);
    await this.ledger.record({ messageId, state: 'sending', waMessageId });
    // Before the send: a retry receipt may come as soon as the message is out (text only: a media message's
    // re-send would need its upload again).
    if (!item.media && !item.extra) await this.sentStore?.record(waMessageId, toJid(item.to), item.text);
    let sentId: string;
    try {
      this.lastSentAt = Date.now();
      const opts = { messageId: waMessageId, ...(item.extra?.quoted ? { quoted: item.extra.quoted } : {}) };
      const action = item.extra?.action;
      sentId =
        (action
          ? await sock.sendAction(toJid(item.to), action, item.text, opts)
          : item.media && mediaFile
            ? await sock.sendMedia(
                toJid(item.to),
                {
                  type: item.media.type,
                  filePath: mediaFile,
                  mimeType: item.media.mimeType,
                  ...(item.text ? { caption: item.text } : {}),
                  ...(item.media.fileName ? { fileName: item.media.fileName } : {}),
                },
                opts,
              )
            : await sock.sendText(toJid(item.to), item.text, opts)) || waMessageId;
    } catch (err) {
      if (err instanceof MessageRejectedError) {
        await this.onRejected(messageId, err);
        return;
      }
      const reason = errorText(err);
      // The send failed before the message left (Baileys rejects before writing the node): safe to retry.
      await this.ledger.record({ messageId, state: 'cleared' });
      this.logger.warn({ messageId, err: reason }, 'send failed; NACK (retryable)');
      await this.nackWithRetry(messageId, reason, false);
      return;
    }
    if (item.typingMs) await this.chatState(sock, toJid(item.to), 'paused', messageId);
    await this.ledger.record({ messageId, state: 'sent', waMessageId: sentId });
    this.sent.set(sentId, messageId);
    if (this.sent.size > 10_000) this.sent.delete(this.sent.keys().next().value!);
    this.stats.sent++;
    this.reporter.emit('MESSAGE_STATUS', { messageId, waMessageId: sentId, status: 'sent' });
    this.logger.info({ messageId, waMessageId: sentId, attempt: item.attempt }, 'outbox message sent');
    await this.ackWithRetry(messageId, sentId);
  }

  /** Shows `composing` for `ms` (a human typing the text). A failed presence never blocks the send. */
  private async type(
    sock: EngineSocket,
    jid: string,
    ms: number,
    messageId: string,
    state: 'composing' | 'recording' = 'composing',
  ): Promise<void> {
    await this.chatState(sock, jid, state, messageId);
    this.stats.typedMs += ms;
    await new Promise((resolve) => setTimeout(resolve, ms));
  }

  private async chatState(
    sock: EngineSocket,
    jid: string,
    state: 'composing' | 'recording' | 'paused',
    messageId: string,
  ) {
    try {
      await sock.sendChatState(jid, state);
    } catch (err) {
      this.logger.warn({ messageId, state, err: errorText(err) }, 'could not send the chat state');
    }
  }

  /** The server refused the message (error ack): it failed for good, never `sent`; not resent. */
  private async onRejected(messageId: string, err: MessageRejectedError): Promise<void> {
    const reason = err.coldOutreach ? REJECTED_COLD_OUTREACH : `rejected_by_server_${err.code}`;
    await this.ledger.record({ messageId, state: 'rejected', waMessageId: err.waMessageId, reason });
    this.stats.rejected++;
    this.logger.warn(
      { messageId, waMessageId: err.waMessageId, code: err.code },
      `message refused by WhatsApp (${reason})`,
    );
    this.reporter.emit('MESSAGE_STATUS', { messageId, waMessageId: err.waMessageId, status: 'failed', reason });
    await this.nackWithRetry(messageId, reason, true);
  }

  private async ackWithRetry(messageId: string, waMessageId: string): Promise<void> {
    const outcome = await this.callWithRetry('ACK', messageId, () => this.client.ack(messageId, waMessageId));
    if (outcome === 'done') this.stats.acked++;
    if (outcome === 'gave-up')
      this.logger.warn({ messageId }, 'ACK not delivered; the ledger will answer the re-delivery');
  }

  private async nackWithRetry(messageId: string, reason: string, permanent: boolean): Promise<void> {
    const outcome = await this.callWithRetry('NACK', messageId, () => this.client.nack(messageId, reason, permanent));
    if (outcome === 'done') this.stats.nacked++;
  }

  /**
   * Retries an outbox call with backoff until it succeeds, the outbox refuses it for good (a 4xx other than
   * 408/429, logged) or the worker stops / 20 attempts pass.
   */
  private async callWithRetry(
    what: 'ACK' | 'NACK',
    messageId: string,
    call: () => Promise<unknown>,
  ): Promise<'done' | 'refused' | 'gave-up'> {
    for (let attempt = 0; ; attempt++) {
      try {
        await call();
        return 'done';
      } catch (err) {
        if (
          err instanceof SignedHttpError &&
          err.status >= 400 &&
          err.status < 500 &&
          err.status !== 408 &&
          err.status !== 429
        ) {
          this.logger.error({ messageId, err: err.message }, `outbox refused the ${what}`);
          return 'refused';
        }
        if (this.stopped || attempt >= 20) return 'gave-up';
        await this.sleep(backoffDelay(attempt, this.opts.retryBaseMs, this.opts.retryMaxMs), true);
      }
    }
  }
}
