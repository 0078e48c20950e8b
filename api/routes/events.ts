import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import type { WebhookEnvelope } from '../../common/events.js';
import { documentAs } from '../../common/json-schema.js';
import { redactText } from '../../common/redact.js';
import { LIVE_EVENT_TYPES, type EventBus, type LiveEvent, type LiveEventInput } from '../../state/events-bus.js';
import type { ApiKeys, Principal } from '../auth.js';
import { ApiError } from '../errors.js';
import type { ApiContext } from '../context.js';
import { parseInput } from '../errors.js';
import type { WebhookHooks } from './webhook.js';

export const EventsQuery = z.object({
  /** A single-use ticket from POST /api/events/ticket (EventSource cannot send headers). */
  ticket: z.string().max(128).optional(),
  /** Comma-separated event types to receive (default: all). */
  types: documentAs(
    z
      .string()
      .max(400)
      .optional()
      .transform((s) => (s ? s.split(',').map((t) => t.trim()) : undefined))
      .pipe(z.array(z.enum(LIVE_EVENT_TYPES)).optional()),
    {
      type: 'string',
      maxLength: 400,
      pattern: `^(?: *(?:${LIVE_EVENT_TYPES.join('|')}) *(?:, *(?:${LIVE_EVENT_TYPES.join('|')}) *)*)?$`,
      description: 'comma-separated event types (default: all)',
    },
  ),
  sessionId: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .optional(),
});
type Filter = z.infer<typeof EventsQuery>;

/** A tenant sees only its own sessions' events; events of no session (backups) reach the admin only. */
export function visibleTo(principal: Principal, filter: Filter, e: LiveEvent): boolean {
  if (!principal.admin && (e.tenant === null || e.tenant !== principal.tenant)) return false;
  if (filter.types && !filter.types.includes(e.type)) return false;
  if (filter.sessionId && e.sessionId !== filter.sessionId) return false;
  return true;
}

/**
 * The webhook bridge's hook: worker events become live events (and move the Redis counters that `/metrics`
 * reads). CONNECTED is published by the orchestrator once the session is bound, PINGs are not events.
 */
export function liveEventsHook(ctx: ApiContext, bus: EventBus): NonNullable<WebhookHooks['onEvent']> {
  return async (ev: WebhookEnvelope) => {
    let input: Omit<LiveEventInput, 'tenant' | 'sessionId'> | null = null;
    if (ev.type === 'QR_CODE') {
      const qr = await ctx.stores.sessions.getQr(ev.sessionId).catch(() => null);
      input = { type: 'qr', data: { count: qr?.count ?? null, generatedAt: qr?.at ?? ev.timestamp } };
    } else if (ev.type === 'PAIRING_CODE') {
      // Announces the code (GET /api/sessions/:id/pairing-code shows it), never carries it.
      input = { type: 'pairing_code', data: { phone: ev.data.phone, expiresAt: ev.data.expiresAt } };
    } else if (ev.type === 'PAIRING_FAILED') {
      input = { type: 'error', data: { kind: `pairing_${ev.data.reason}`, error: ev.data.message } };
    } else if (ev.type === 'DISCONNECTED') {
      input = { type: 'disconnected', data: { ...ev.data } };
    } else if (ev.type === 'PROXY_ERROR') {
      input = { type: 'error', data: { kind: 'proxy', error: redactText(ev.data.error) } };
    } else if (ev.type === 'AUTH_FAILURE') {
      input = { type: 'error', data: { kind: 'auth', error: ev.data.reason } };
    } else if (ev.type === 'CLIENT_OUTDATED') {
      input = { type: 'error', data: { kind: 'client_outdated', error: `${ev.data.reason} (${ev.data.version})` } };
    } else if (ev.type === 'AUTH_STATE_INVALID') {
      input = { type: 'error', data: { kind: 'auth_state_invalid', error: ev.data.reason } };
    } else if (ev.type === 'MESSAGE_RECEIVED') {
      input = { type: 'message', data: { direction: 'in', messageId: ev.data.messageId, from: ev.data.from } };
    } else if (ev.type === 'MESSAGE_STATUS') {
      input = {
        type: 'message',
        data: {
          direction: 'out',
          messageId: ev.data.messageId,
          status: ev.data.status,
          reason: ev.data.reason ?? null,
        },
      };
    }
    if (!input) return;
    const record = await ctx.stores.sessions.get(ev.sessionId).catch(() => null);
    await bus.publishSafe({ ...input, sessionId: ev.sessionId, tenant: record?.tenant ?? null, at: ev.timestamp });
  };
}

/** Chains the live-events hook before any other webhook hooks (customer webhooks, anti-ban, ...). */
export function withLiveEvents(ctx: ApiContext, bus: EventBus, hooks: WebhookHooks = {}): WebhookHooks {
  const live = liveEventsHook(ctx, bus);
  return {
    ...hooks,
    onEvent: async (ev) => {
      await live(ev);
      await hooks.onEvent?.(ev);
    },
  };
}

/**
 * `GET /api/events`: live events as Server-Sent Events, and the same stream over WebSocket on the same path.
 * Authenticated by the one API-key check (api/auth.ts): an `X-API-Key` header, or a short-lived single-use
 * ticket from `POST /api/events/ticket` in `?ticket=` (EventSource cannot send headers; a key in a URL would
 * outlive the page in logs and history). At most EVENTS_MAX_STREAMS_PER_KEY concurrent streams per key and
 * API process. Tenant-filtered; optional `types` and `sessionId` filters.
 */
export function liveEventsRoutes(ctx: ApiContext, bus: EventBus, keys: ApiKeys) {
  const clients = new Set<() => void>();
  const streams = new Map<string, number>();
  const maxStreams = ctx.config.EVENTS_MAX_STREAMS_PER_KEY;
  /** Takes a stream slot of the key; returns its release, or null when the key is at its cap. */
  const takeSlot = (principal: Principal): (() => void) | null => {
    const n = streams.get(principal.keyId) ?? 0;
    if (n >= maxStreams) return null;
    streams.set(principal.keyId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (streams.get(principal.keyId) ?? 1) - 1;
      if (left <= 0) streams.delete(principal.keyId);
      else streams.set(principal.keyId, left);
    };
  };
  const tooMany = () =>
    new ApiError(429, 'TOO_MANY_STREAMS', `at most ${maxStreams} live event streams per API key`, undefined, {
      'retry-after': '5',
    });
  return async function plugin(app: FastifyInstance) {
    app.post('/api/events/ticket', async (request, reply) => {
      const t = await keys.issueTicket(request.principal);
      return reply.status(201).send({ ticket: t.ticket, expiresInMs: t.expiresInMs });
    });

    app.get('/api/events', { config: { ticket: true } }, async (request, reply) => {
      const filter = parseInput(EventsQuery, request.query, 'query');
      const principal = request.principal;
      const release = takeSlot(principal);
      if (!release) throw tooMany();
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write('retry: 2000\n\n');
      let closed = false;
      let unsubscribe = () => {};
      const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
      const close = () => {
        if (closed) return;
        closed = true;
        clearInterval(ping);
        unsubscribe();
        release();
        clients.delete(close);
        res.end();
      };
      clients.add(close);
      res.on('close', close); // the client went away (or the server is closing)
      try {
        unsubscribe = await bus.subscribe((e) => {
          if (!closed && visibleTo(principal, filter, e))
            res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
        });
      } catch (err) {
        res.write(`event: stream_error\ndata: ${JSON.stringify({ message: 'event bus unavailable' })}\n\n`);
        request.log.warn({ err: String(err) }, 'live events: subscribe failed');
        close();
        return;
      }
      if (closed) unsubscribe();
      else res.write(`event: ready\ndata: ${JSON.stringify({ at: Date.now(), admin: principal.admin })}\n\n`);
    });

    // WebSocket on the same path: an X-API-Key header or `?ticket=`, through the same check as HTTP.
    const wss = new WebSocketServer({ noServer: true });
    const refuse = (socket: Duplex, status: number, reason: string) =>
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void upgrade(req, socket, head).catch(() => refuse(socket, 500, 'Internal Server Error'));
    };
    const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      let pathname: string;
      try {
        pathname = decodeURIComponent(url.pathname);
      } catch {
        pathname = '';
      }
      if (pathname !== '/api/events') return refuse(socket, 404, 'Not Found');
      let principal: Principal;
      try {
        principal = await keys.authenticate(req.headers, url.searchParams.get('ticket'), true);
      } catch {
        return refuse(socket, 401, 'Unauthorized');
      }
      const parsed = EventsQuery.safeParse(Object.fromEntries(url.searchParams));
      if (!parsed.success) return refuse(socket, 400, 'Bad Request');
      const release = takeSlot(principal);
      if (!release) return refuse(socket, 429, 'Too Many Requests');
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        let unsubscribe = () => {};
        let closed = false;
        const close = () => {
          closed = true;
          unsubscribe();
          release();
          clients.delete(close);
          ws.terminate();
        };
        clients.add(close);
        ws.on('close', close);
        ws.on('error', close);
        bus
          .subscribe((e) => {
            if (!closed && visibleTo(principal, parsed.data, e)) ws.send(JSON.stringify(e));
          })
          .then((u) => {
            unsubscribe = u;
            if (closed) u();
            else ws.send(JSON.stringify({ type: 'ready', at: Date.now() }));
          })
          .catch(() => close());
      });
    };
    app.server.on('upgrade', onUpgrade);
    app.addHook('preClose', async () => {
      app.server.off('upgrade', onUpgrade);
      for (const close of [...clients]) close();
      wss.close();
      await bus.close();
    });
  };
}
