/**
 * What the API does with accepted worker events for messaging, plugged into the webhook bridge through
 * WebhookHooks.onEvent: message statuses move the message record forward and go to the customer's webhook;
 * inbound messages and session status changes go to the customer's webhook; CONNECTED wakes the dispatcher.
 * Errors are logged, never thrown: the bridge has already recorded the event.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Logger } from 'pino';
import { statusEventData } from '../state/messages.js';
import { dispatcherWorkflowIdFor } from '../common/anti-ban.js';
import type { WebhookEnvelope } from '../common/events.js';
import type { InboundMediaEvent } from '../common/media.js';
import { CUSTOMER_ACTION_EVENT } from '../common/message-actions.js';
import { replanSignal, wakeSignal } from '../workflows/dispatcher.js';
import { REJECTED_COLD_OUTREACH } from '../common/outbox.js';
import type { ApiContext } from './context.js';
import type { InboundMediaStore } from './media-inbound.js';
import type { WebhookHooks } from './routes/webhook.js';

const SESSION_EVENTS = new Set([
  'CONNECTED',
  'DISCONNECTED',
  'AUTH_FAILURE',
  'PROXY_ERROR',
  'PAIRING_CODE',
  'PAIRING_FAILED',
]);

/** The session status a customer's `session.status` webhook announces for a worker event. */
function customerStatus(type: string, data: Record<string, unknown>): string {
  if (type === 'CONNECTED') return 'connected';
  if (type === 'AUTH_FAILURE') return 'logged_out';
  // A pairing code waits to be typed (GET …/pairing-code shows it; the webhook never carries the code itself).
  if (type === 'PAIRING_CODE') return 'qr_ready';
  if (type === 'PAIRING_FAILED') return data.reason === 'expired' ? 'qr_expired' : 'failed';
  return 'reconnecting';
}

/** A sender's chat JID from the user part the worker reported (older workers send no `chat`). */
const jidOf = (from: string) => (from.includes('@') ? from : `${from}@s.whatsapp.net`);

function createMessagingHooks(ctx: ApiContext, logger: Logger, inbound: InboundMediaStore): Required<WebhookHooks> {
  const { config, temporal } = ctx;
  const { sessions, messages, commands, clientWebhooks: hooks } = ctx.stores;
  /** Indexes the inbound message (for POST …/read) and, with auto-read on, queues its read receipt after a delay. */
  async function rememberInbound(
    sessionId: string,
    waMessageId: string,
    chat: string,
    participant: string | undefined,
    text: string,
  ) {
    await commands.recordInbound(sessionId, waMessageId, chat, config.MESSAGE_RETENTION_MS, participant, text);
    const limits = await messages.limits(sessionId);
    if (!limits.autoRead) return;
    const delay = limits.readDelayMinMs + Math.random() * (limits.readDelayMaxMs - limits.readDelayMinMs);
    const due = Date.now() + Math.round(delay);
    const message = { id: waMessageId, chat, ...(participant ? { participant } : {}) };
    await commands.enqueue(sessionId, { kind: 'read', messages: [message] }, due, due + 10 * 60_000);
  }
  /**
   * The media object of a `message.received` webhook: what the worker reported, plus a signed download URL when the
   * file was stored for this tenant (a file that is not, or another tenant's, gets no URL).
   */
  async function customerMedia(tenant: string, m: InboundMediaEvent) {
    const record = m.id ? await inbound.get(m.id, tenant) : null;
    const link = record ? inbound.signedUrl(record) : null;
    return {
      id: record ? record.mediaId : null,
      type: m.type,
      mimetype: m.mimetype,
      size: m.size,
      sha256: m.sha256,
      fileName: m.fileName,
      caption: m.caption,
      url: link?.url ?? null,
      urlExpiresAt: link?.expiresAt ?? null,
      ...(m.error ? { error: m.error } : !record ? { error: 'store_failed' } : {}),
    };
  }
  return {
    async onEvent(event: WebhookEnvelope) {
      try {
        if (event.type === 'MESSAGE_STATUS') {
          const d = event.data;
          // Only this session's own messages: a worker cannot move another session's (or tenant's) records.
          const ch = await messages.setStatus(d.messageId, d.status, d.waMessageId, d.reason ?? null, event.sessionId);
          if (ch) await hooks.enqueue(ch.tenant, 'message.status', statusEventData(ch));
          // Counted per event (the bridge dedupes by event id), not per record change: the dispatcher's
          // reconcile may have recorded the failure first.
          if (d.status === 'sent' || (d.status === 'failed' && d.reason === REJECTED_COLD_OUTREACH)) {
            const run = await messages.recordSendOutcome(event.sessionId, d.status === 'failed');
            if (run > 0) {
              // A run of refusals is a strong signal (WhatsApp restricts the number): slow down like a burst.
              logger.warn({ sessionId: event.sessionId, run }, 'WhatsApp refused cold sends in a row: session slowed');
              const session = await sessions.get(event.sessionId);
              if (session)
                await hooks.enqueue(session.tenant, 'session.burst', {
                  sessionId: event.sessionId,
                  reason: REJECTED_COLD_OUTREACH,
                  rejections: run,
                  slowdown: config.ANTIBAN_BURST_SLOWDOWN,
                  forMs: config.ANTIBAN_BURST_PAUSE_MS,
                });
              await temporal.workflow
                .getHandle(dispatcherWorkflowIdFor(config.WORKFLOW_ID_PREFIX, event.sessionId))
                .signal(replanSignal)
                .catch(() => undefined);
            }
          }
          return;
        }
        if (event.type !== 'MESSAGE_RECEIVED' && event.type !== 'MESSAGE_ACTION' && !SESSION_EVENTS.has(event.type))
          return;
        const session = await sessions.get(event.sessionId);
        if (!session) return;
        if (event.type === 'MESSAGE_ACTION') {
          const d = event.data;
          await hooks.enqueue(session.tenant, CUSTOMER_ACTION_EVENT[d.kind], {
            sessionId: event.sessionId,
            messageId: d.messageId,
            // our id when the target is a message we sent (and the worker still knows it), else its WhatsApp id
            targetMessageId: d.targetOutboxId ?? d.targetId,
            targetWaMessageId: d.targetId,
            targetFromMe: d.targetFromMe,
            from: d.from,
            fromPhone: d.fromPhone ?? null,
            fromLid: d.fromLid ?? null,
            group: d.group ?? null,
            ...(d.kind === 'reaction' ? { emoji: d.emoji ?? '' } : {}),
            ...(d.kind === 'edit' ? { text: d.text ?? '' } : {}),
            timestamp: d.timestamp,
          });
          return;
        }
        if (event.type === 'MESSAGE_RECEIVED') {
          const { group } = event.data;
          await rememberInbound(
            event.sessionId,
            event.data.messageId,
            group ?? event.data.chat ?? jidOf(event.data.from),
            group ? jidOf(event.data.from) : undefined,
            event.data.text,
          );
          const media = event.data.media ? await customerMedia(session.tenant, event.data.media) : undefined;
          await hooks.enqueue(session.tenant, 'message.received', {
            sessionId: event.sessionId,
            messageId: event.data.messageId,
            from: event.data.from,
            fromPhone: event.data.fromPhone ?? null,
            fromLid: event.data.fromLid ?? null,
            group: event.data.group ?? null,
            text: event.data.text,
            timestamp: event.data.timestamp,
            ...(media ? { media } : {}),
          });
          return;
        }
        const data = event.data as Record<string, unknown>;
        await hooks.enqueue(session.tenant, 'session.status', {
          sessionId: event.sessionId,
          event: event.type,
          status: customerStatus(event.type, data),
          ...(typeof data.reason === 'string' ? { reason: data.reason } : {}),
          ...(typeof data.phoneNumber === 'string' ? { phone: data.phoneNumber } : {}),
          ...(event.type === 'PAIRING_CODE' ? { phone: data.phone, expiresAt: data.expiresAt } : {}),
          ...(event.type === 'PAIRING_FAILED' ? { message: data.message } : {}),
          timestamp: event.timestamp,
        });
        if (event.type === 'CONNECTED') {
          await temporal.workflow
            .getHandle(dispatcherWorkflowIdFor(config.WORKFLOW_ID_PREFIX, event.sessionId))
            .signal(wakeSignal)
            .catch((err: unknown) => {
              if (!(err instanceof WorkflowNotFoundError)) throw err;
            });
        }
      } catch (err) {
        logger.warn({ sessionId: event.sessionId, type: event.type, err: String(err) }, 'messaging hook failed');
        throw err; // the bridge answers 503 and the worker retries (its effects are recorded before completion)
      }
    },
  };
}

/** Chains the messaging hooks in front of `inner` (other features' hooks keep working unchanged). */
export function withMessagingHooks(
  ctx: ApiContext,
  logger: Logger,
  inbound: InboundMediaStore,
  inner?: WebhookHooks,
): WebhookHooks {
  const mine = createMessagingHooks(ctx, logger, inbound);
  return {
    async onEvent(event) {
      await mine.onEvent(event);
      await inner?.onEvent?.(event);
    },
  };
}
