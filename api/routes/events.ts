import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import type { Config } from '../../common/config.js';
import type { WebhookEnvelope } from '../../common/events.js';
import { redactText } from '../../common/redact.js';
import { LIVE_EVENT_TYPES, type EventBus, type LiveEvent, type LiveEventInput } from '../../state/events-bus.js';
import type { Principal } from '../auth.js';
import type { ApiContext } from '../context.js';
import { parseInput } from '../errors.js';
import type { WebhookHooks } from './webhook.js';

const EventsQuery = z.object({
  apiKey: z.string().optional(),
  /** Comma-separated event types to receive (default: all). */
  types: z
    .string()
    .max(400)
    .optional()
    .transform((s) => (s ? s.split(',').map((t) => t.trim()) : undefined))
    .pipe(z.array(z.enum(LIVE_EVENT_TYPES)).optional()),
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

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The principal of an API key (constant-time, as in auth.ts), for the WebSocket upgrade. */
function principalForKey(config: Config, key: string | undefined): Principal | null {
  if (!key) return null;
  const d = digest(key);
  let match: Principal | null = null;
  if (timingSafeEqual(digest(config.API_KEY), d)) match = { tenant: null, admin: true };
  for (const t of config.TENANT_API_KEYS)
    if (timingSafeEqual(digest(t.key), d)) match = { tenant: t.tenant, admin: false };
  return match;
}

/**
 * The webhook bridge's hook: worker events become live events (and move the Redis counters that `/metrics`
 * reads). CONNECTED is published by the orchestrator once the session is bound, PINGs are not events.
 */
export function liveEventsHook(ctx: ApiContext, bus: EventBus): NonNullable<WebhookHooks['onEvent']> {
  return async (ev: WebhookEnvelope) => {
    let input: Omit<LiveEventInput, 'tenant' | 'sessionId'> | null = null;
    if (ev.type === 'QR_CODE') {
      const qr = await ctx.sessions.getQr(ev.sessionId).catch(() => null);
      input = { type: 'qr', data: { count: qr?.count ?? null, generatedAt: qr?.at ?? ev.timestamp } };
    } else if (ev.type === 'DISCONNECTED') {
      input = { type: 'disconnected', data: { ...ev.data } };
    } else if (ev.type === 'PROXY_ERROR') {
      input = { type: 'error', data: { kind: 'proxy', error: redactText(ev.data.error) } };
    } else if (ev.type === 'AUTH_FAILURE') {
      input = { type: 'error', data: { kind: 'auth', error: ev.data.reason } };
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
    const record = await ctx.sessions.get(ev.sessionId).catch(() => null);
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
 * `GET /api/events`: live events as Server-Sent Events (EventSource sends the key as `?apiKey=`), and the same
 * stream over WebSocket on the same path. Tenant-filtered; optional `types` and `sessionId` filters.
 */
export function liveEventsRoutes(ctx: ApiContext, bus: EventBus) {
  const clients = new Set<() => void>();
  return async function plugin(app: FastifyInstance) {
    app.get('/api/events', async (request, reply) => {
      const filter = parseInput(EventsQuery, request.query, 'query');
      const principal = request.principal;
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

    // WebSocket on the same path: `new WebSocket('ws://host/api/events?apiKey=...')` or an X-API-Key header.
    const wss = new WebSocketServer({ noServer: true });
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== '/api/events') return;
      const headerKey = req.headers['x-api-key'];
      const principal = principalForKey(
        ctx.config,
        typeof headerKey === 'string' ? headerKey : (url.searchParams.get('apiKey') ?? undefined),
      );
      const parsed = EventsQuery.safeParse(Object.fromEntries(url.searchParams));
      if (!principal || !parsed.success) {
        const status = principal ? '400 Bad Request' : '401 Unauthorized';
        socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        let unsubscribe = () => {};
        let closed = false;
        const close = () => {
          closed = true;
          unsubscribe();
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
