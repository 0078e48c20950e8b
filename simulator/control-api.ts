import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import type { Socks5Proxy } from './socks5.js';
import { FAULT_KINDS, isLoopbackHost, PairingCodeError, type WhatsAppSimulator } from './wa-server.js';

export interface ControlApiOptions {
  host?: string;
  port?: number;
  proxies?: Socks5Proxy[];
}

export interface ControlApi {
  url: string;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;
const phoneParam = z.string().regex(/^\d{6,15}$/, 'phone must be 6-15 digits');
const scanBody = z.object({ qr: z.string().min(1).max(4096), phone: phoneParam });
const pairingCodeBody = z.object({
  phone: phoneParam,
  code: z.string().regex(/^[0-9A-Za-z]{4}-?[0-9A-Za-z]{4}$/, 'code must be 8 letters/digits'),
});
const pairingRuleBody = z.object({ ttlMs: z.number().int().min(100).max(3_600_000) });
const PAIRING_ERROR_STATUS: Record<PairingCodeError['reason'], number> = {
  invalid: 400,
  not_found: 404,
  expired: 410,
  wrong_code: 403,
  refused: 409,
};
const faultBody = z.object({ kind: z.enum(FAULT_KINDS) });
const inboundBody = z.object({
  from: z
    .string()
    .regex(/^(\d{6,15}(@s\.whatsapp\.net)?|\d{6,20}@lid)$/, 'from must be a phone number, user jid or LID jid'),
  text: z.string().min(1).max(65_536),
  /** with a LID sender: whether the contact shares its phone number (`sender_pn`) */
  revealPhone: z.boolean().optional(),
});
/** Inbound media: the file travels base64-encoded (the control API is a loopback test tool). */
const INBOUND_MEDIA_MAX_BYTES = 32 * 1024 * 1024;
const inboundMediaBody = z.object({
  from: z.string().regex(/^\d{6,15}(@s\.whatsapp\.net)?$/, 'from must be a phone number or user jid'),
  type: z.enum(['image', 'document']),
  /** the file, base64 */
  data: z
    .string()
    .min(1)
    .max(Math.ceil(INBOUND_MEDIA_MAX_BYTES / 3) * 4)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'data must be base64'),
  mimetype: z.string().regex(/^[\w.+-]+\/[\w.+-]+(; ?[\w.+-]+=[\w.+-]+)?$/, 'mimetype must be a MIME type'),
  caption: z.string().min(1).max(4096).optional(),
  fileName: z.string().min(1).max(255).optional(),
});
const privacyTokenBody = z.object({
  from: z
    .string()
    .regex(/^(\d{6,15}(@s\.whatsapp\.net)?|\d{6,20}@lid)$/, 'from must be a phone number, user jid or LID jid'),
});
const groupParam = z.string().regex(/^\d{6,32}(-\d{6,12})?(@g\.us)?$/, 'group must be a group id or <id>@g.us');
const groupCreateBody = z.object({
  creator: phoneParam,
  subject: z.string().min(1).max(100),
  participants: z.array(phoneParam).min(1).max(256),
  /** 'lid': members addressed by LID, as WhatsApp addresses most groups today */
  addressingMode: z.enum(['pn', 'lid']).optional(),
});
const groupInboundBody = z.object({
  from: z.string().regex(/^\d{6,15}(@s\.whatsapp\.net)?$/, 'from must be a phone number or user jid'),
  text: z.string().min(1).max(65_536),
});
/** A contact's reaction to (emoji; '' removes it), edit of (text) or delete for everyone of a message. */
const inboundActionBody = z
  .object({
    from: z.string().regex(/^\d{6,15}(@s\.whatsapp\.net)?$/, 'from must be a phone number or user jid'),
    kind: z.enum(['reaction', 'edit', 'revoke']),
    messageId: z.string().min(1).max(128),
    emoji: z.string().max(64).optional(),
    text: z.string().min(1).max(65_536).optional(),
  })
  .superRefine((b, ctx) => {
    if (b.kind === 'reaction' && b.emoji === undefined)
      ctx.addIssue({ code: 'custom', message: 'a reaction needs emoji', path: ['emoji'] });
    if (b.kind === 'edit' && b.text === undefined)
      ctx.addIssue({ code: 'custom', message: 'an edit needs text', path: ['text'] });
  });
const readBody = z.object({ messageId: z.string().min(1).max(128) });
const proxyFaultBody = z.object({ kind: z.enum(['none', 'refuse', 'hang', 'wrong-credentials', 'kill']) });
const coldOutreachBody = z.object({
  enabled: z.boolean(),
  youngForMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});
const messagesQuery = z.object({ phone: phoneParam.optional() });
const presenceQuery = z.object({ contact: phoneParam.optional() });
const registrationBody = z.object({ onWhatsApp: z.boolean() });

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

type Handler = (params: string[], body: unknown, query: URLSearchParams) => unknown;

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  handler: Handler;
  /** largest JSON body (default MAX_BODY_BYTES) */
  maxBody?: number;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, field?: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path.join('.') || field;
  throw new ApiError(400, 'invalid_request', issue?.message ?? 'invalid request', path);
}

/** Turns simulator exceptions (unknown phone, no live session, stale QR) into a 409/404 with their message. */
function guard<T>(action: () => T): T {
  try {
    return action();
  } catch (error) {
    throw new ApiError(409, 'conflict', error instanceof Error ? error.message : String(error));
  }
}

async function guardAsync<T>(action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    throw new ApiError(409, 'conflict', error instanceof Error ? error.message : String(error));
  }
}

/**
 * JSON control and inspection API for tests, benchmarks and the demo dashboard. Loopback only; proxy
 * passwords are never returned.
 */
export async function startControlApi(sim: WhatsAppSimulator, opts: ControlApiOptions = {}): Promise<ControlApi> {
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopbackHost(host)) throw new Error(`control API must listen on loopback, not ${host}`);
  const proxies = opts.proxies ?? [];
  const proxyAt = (index: string): Socks5Proxy => {
    const proxy = proxies[Number(index)];
    if (!proxy) throw new ApiError(404, 'not_found', `no proxy ${index}`, 'index');
    return proxy;
  };
  const phoneFrom = (raw: string | undefined): string => parse(phoneParam, raw, 'phone');

  const routes: Route[] = [
    {
      method: 'GET',
      pattern: /^\/healthz$/,
      handler: () => ({
        ok: true,
        url: sim.url,
        certificateRootPublicKey: Buffer.from(sim.certificateRootPublicKey).toString('hex'),
      }),
    },
    {
      method: 'POST',
      pattern: /^\/scan$/,
      handler: (_p, body) => {
        const { qr, phone } = parse(scanBody, body);
        return guardAsync(() => sim.scan(qr, phone));
      },
    },
    {
      // "The phone types the pairing code": 200 linked; 403 wrong_code, 410 expired, 404 nobody waiting.
      method: 'POST',
      pattern: /^\/pairing-code$/,
      handler: async (_p, body) => {
        const { phone, code } = parse(pairingCodeBody, body);
        try {
          return await sim.enterPairingCode(phone, code);
        } catch (error) {
          if (error instanceof PairingCodeError)
            throw new ApiError(PAIRING_ERROR_STATUS[error.reason], error.reason, error.message);
          throw new ApiError(409, 'conflict', error instanceof Error ? error.message : String(error));
        }
      },
    },
    {
      method: 'POST',
      pattern: /^\/rules\/pairing-code$/,
      handler: (_p, body) => {
        sim.pairingCodeTtlMs = parse(pairingRuleBody, body).ttlMs;
        return { ok: true, ttlMs: sim.pairingCodeTtlMs };
      },
    },
    {
      // WhatsApp's privacy-token gate: a young number's cold 1:1 sends are refused with error 463 (groups 479).
      method: 'POST',
      pattern: /^\/rules\/cold-outreach$/,
      handler: (_p, body) => {
        const { enabled, youngForMs } = parse(coldOutreachBody, body);
        sim.coldOutreach = enabled ? { youngForMs: youngForMs ?? 7 * 24 * 3_600_000 } : null;
        return { ok: true, coldOutreach: sim.coldOutreach };
      },
    },
    {
      // The contact's device lost its Signal sessions: the next message to it is answered with a retry receipt.
      method: 'POST',
      pattern: /^\/contacts\/([^/]+)\/reset-session$/,
      handler: async ([contact]) => {
        const number = parse(phoneParam, contact, 'contact');
        await sim.resetContactSessions(number);
        return { ok: true, contact: number };
      },
    },
    { method: 'GET', pattern: /^\/phones$/, handler: () => ({ phones: sim.phones() }) },
    {
      // Groups with their members and what each member received (decrypted); ?phone= narrows to one member's.
      method: 'GET',
      pattern: /^\/groups$/,
      handler: (_p, _b, query) => {
        const phone = query.get('phone');
        return { groups: sim.groupList(phone === null ? undefined : phoneFrom(phone)) };
      },
    },
    {
      // A simulated contact creates a group (the members' connected sessions get a `w:gp2` notification).
      method: 'POST',
      pattern: /^\/groups$/,
      handler: (_p, body) => {
        const { creator, subject, participants, addressingMode } = parse(groupCreateBody, body);
        return guard(() => sim.createGroupBy(creator, subject, participants, addressingMode));
      },
    },
    {
      method: 'GET',
      pattern: /^\/groups\/([^/]+)$/,
      handler: ([jid]) => {
        const group = sim.group(parse(groupParam, decodeURIComponent(jid ?? ''), 'group'));
        if (!group) throw new ApiError(404, 'not_found', `no group ${jid}`, 'group');
        return group;
      },
    },
    {
      // A member (a simulated contact) writes into the group: delivered to the members' connected sessions.
      method: 'POST',
      pattern: /^\/groups\/([^/]+)\/inbound$/,
      handler: async ([jid], body) => {
        const group = parse(groupParam, decodeURIComponent(jid ?? ''), 'group');
        const { from, text } = parse(groupInboundBody, body);
        return guardAsync(() => sim.sendInboundGroup(group, from, text));
      },
    },
    {
      // A member reacts to a group message, or edits / deletes its own.
      method: 'POST',
      pattern: /^\/groups\/([^/]+)\/inbound-action$/,
      handler: async ([jid], body) => {
        const group = parse(groupParam, decodeURIComponent(jid ?? ''), 'group');
        const { from, ...action } = parse(inboundActionBody, body);
        return guardAsync(() => sim.sendInboundGroupAction(group, from, action));
      },
    },
    {
      method: 'GET',
      pattern: /^\/phones\/([^/]+)\/connections$/,
      handler: ([phone]) => {
        const number = phoneFrom(phone);
        return { connections: sim.connections(number), sourceAddresses: sim.sourceAddresses(number) };
      },
    },
    {
      method: 'POST',
      pattern: /^\/phones\/([^/]+)\/faults$/,
      handler: ([phone], body) => {
        const number = phoneFrom(phone);
        const { kind } = parse(faultBody, body);
        guard(() => sim.fault(number, kind));
        return { ok: true, phone: number, kind };
      },
    },
    {
      // Contact `from` issues its privacy token to the phone without writing (e.g. it saved the number): the
      // session receives a `privacy_token` notification; its cold sends to that contact then pass the 463 gate.
      method: 'POST',
      pattern: /^\/phones\/([^/]+)\/privacy-tokens$/,
      handler: ([phone], body) => {
        const number = phoneFrom(phone);
        const { from } = parse(privacyTokenBody, body);
        guard(() => sim.grantPrivacyToken(number, from));
        return { ok: true, phone: number, from };
      },
    },
    {
      method: 'POST',
      pattern: /^\/phones\/([^/]+)\/inbound$/,
      handler: async ([phone], body) => {
        const number = phoneFrom(phone);
        const { from, text, revealPhone } = parse(inboundBody, body);
        return { id: await guardAsync(() => sim.sendInbound(number, from, text, { revealPhone })) };
      },
    },
    {
      // A contact reacts to a message of the chat (the session's or its own), or edits / deletes its own.
      method: 'POST',
      pattern: /^\/phones\/([^/]+)\/inbound-action$/,
      handler: async ([phone], body) => {
        const number = phoneFrom(phone);
        const { from, ...action } = parse(inboundActionBody, body);
        return { id: await guardAsync(() => sim.sendInboundAction(number, from, action)) };
      },
    },
    {
      // A contact sends an image or a document: encrypted as WhatsApp clients do, served by the media host.
      method: 'POST',
      pattern: /^\/phones\/([^/]+)\/inbound-media$/,
      maxBody: Math.ceil(INBOUND_MEDIA_MAX_BYTES / 3) * 4 + 64 * 1024,
      handler: async ([phone], body) => {
        const number = phoneFrom(phone);
        const { from, type, data, mimetype, caption, fileName } = parse(inboundMediaBody, body);
        const bytes = Buffer.from(data, 'base64');
        if (bytes.length === 0) throw new ApiError(400, 'invalid_request', 'data is empty', 'data');
        return guardAsync(() =>
          sim.sendInboundMedia(number, from, {
            type,
            data: bytes,
            mimetype,
            ...(caption ? { caption } : {}),
            ...(fileName ? { fileName } : {}),
          }),
        );
      },
    },
    {
      method: 'POST',
      pattern: /^\/phones\/([^/]+)\/read$/,
      handler: ([phone], body) => {
        const number = phoneFrom(phone);
        const { messageId } = parse(readBody, body);
        guard(() => sim.markRead(number, messageId));
        return { ok: true };
      },
    },
    {
      // The contact registry answering number checks: register a number as on WhatsApp or not.
      method: 'POST',
      pattern: /^\/contacts\/([^/]+)\/registration$/,
      handler: ([contact], body) => {
        const number = parse(phoneParam, contact, 'contact');
        const { onWhatsApp } = parse(registrationBody, body);
        sim.setOnWhatsApp(number, onWhatsApp);
        return { ok: true, contact: number, onWhatsApp };
      },
    },
    {
      method: 'GET',
      pattern: /^\/phones\/([^/]+)\/read-receipts$/,
      handler: ([phone]) => ({ readReceipts: sim.readReceipts(phoneFrom(phone)) }),
    },
    {
      method: 'GET',
      pattern: /^\/phones\/([^/]+)\/lookups$/,
      handler: ([phone]) => ({ lookups: sim.lookups(phoneFrom(phone)) }),
    },
    {
      // Chat states (composing / recording / paused) the phone's session sent, per contact.
      method: 'GET',
      pattern: /^\/phones\/([^/]+)\/presence$/,
      handler: ([phone], _b, query) => {
        const number = phoneFrom(phone);
        const { contact } = parse(presenceQuery, { contact: query.get('contact') ?? undefined });
        return { presence: sim.presence(number, contact) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/messages$/,
      handler: (_p, _b, query) => {
        const { phone } = parse(messagesQuery, { phone: query.get('phone') ?? undefined });
        return { messages: sim.messages(phone) };
      },
    },
    {
      method: 'GET',
      pattern: /^\/proxies$/,
      handler: () => ({
        proxies: proxies.map((proxy, index) => ({
          index,
          url: proxy.redactedUrl,
          host: proxy.host,
          port: proxy.port,
          username: proxy.username,
          bindAddress: proxy.bindAddress ?? null,
          fault: proxy.fault,
          ...proxy.stats,
        })),
      }),
    },
    {
      method: 'POST',
      pattern: /^\/proxies\/(\d+)\/faults$/,
      handler: ([index], body) => {
        const proxy = proxyAt(index ?? '');
        const { kind } = parse(proxyFaultBody, body);
        if (kind === 'kill') proxy.killConnections();
        else proxy.setFault(kind);
        return { ok: true, index: Number(index), kind, fault: proxy.fault };
      },
    },
  ];

  const server = http.createServer((req, res) => {
    void handle(routes, req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(routes: Route[], req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://control.local');
    const candidates = routes.filter((route) => route.pattern.test(url.pathname));
    if (candidates.length === 0) throw new ApiError(404, 'not_found', `no route for ${url.pathname}`);
    const route = candidates.find((r) => r.method === req.method);
    if (!route) throw new ApiError(405, 'method_not_allowed', `${req.method ?? '?'} not allowed on ${url.pathname}`);
    const params = (route.pattern.exec(url.pathname) ?? []).slice(1).map((p) => decodeURIComponent(p));
    const body = req.method === 'POST' ? await readJson(req, route.maxBody ?? MAX_BODY_BYTES) : undefined;
    send(res, 200, await route.handler(params, body, url.searchParams));
  } catch (error) {
    if (error instanceof ApiError) {
      send(res, error.status, { error: { code: error.code, message: error.message, field: error.field } });
    } else {
      send(res, 500, {
        error: { code: 'internal', message: error instanceof Error ? error.message : 'internal error' },
      });
    }
  }
}

async function readJson(req: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new ApiError(413, 'payload_too_large', `body larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError(400, 'invalid_json', 'body is not valid JSON');
  }
}

function send(res: http.ServerResponse, status: number, payload: unknown): void {
  const body = JSON.stringify(payload);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
