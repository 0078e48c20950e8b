/**
 * Customer webhooks: a tenant's endpoint config and the durable delivery queue. A delivery is a JSON
 * item in a HASH plus its due time in a ZSET; the deliverer claims due items with a lease (client-webhook-claim.lua),
 * so a process killed mid-delivery loses nothing: the item simply comes due again.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { redisKeys, type RedisKeys } from '../common/redis-keys.js';
import { luaCommand } from './lua.js';
import { execAll } from './redis.js';

const claimScript = luaCommand<[due: string, items: string], [limit: number, leaseMs: number], string[]>(
  new URL('./client-webhook-claim.lua', import.meta.url),
);

export const CLIENT_EVENT_TYPES = [
  'message.received',
  'message.status',
  'message.reaction',
  'message.edited',
  'message.revoked',
  'session.status',
  'session.burst',
] as const;
export type ClientEventType = (typeof CLIENT_EVENT_TYPES)[number];

/**
 * An http(s) URL without credentials, written so the OpenAPI document can carry it: a DNS name whose last label
 * starts with a letter, or a dotted IPv4; an optional port; a path and query of URL-safe characters.
 */
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const LABEL = '[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*';
const TOP = '[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*';
const PORT = '(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
const URL_CHARS = "[A-Za-z0-9._~!$&'()*+,;=:@/-]";
export const CLIENT_WEBHOOK_URL_PATTERN =
  `^https?://(?:(?:${OCTET}\\.){3}${OCTET}|(?:${LABEL}\\.){0,8}${TOP})(?::${PORT})?` +
  `(?:/${URL_CHARS}*)?(?:\\?${URL_CHARS.replace('/-]', '/?-]')}*)?$`;

export const ClientWebhookConfigSchema = z
  .object({
    url: z
      .string({ required_error: 'url is required' })
      .max(2048)
      .regex(new RegExp(CLIENT_WEBHOOK_URL_PATTERN), 'must be an http(s) URL'),
    secret: z.string({ required_error: 'secret is required' }).min(16, 'must be at least 16 characters').max(256),
    events: z
      .array(z.enum(CLIENT_EVENT_TYPES, { message: `must be one of ${CLIENT_EVENT_TYPES.join(', ')}` }))
      .min(1)
      .default([...CLIENT_EVENT_TYPES]),
  })
  .strict();
export type ClientWebhookConfig = z.infer<typeof ClientWebhookConfigSchema>;

export interface ClientDelivery {
  id: string;
  tenant: string;
  event: ClientEventType;
  /** The exact body to POST (signed as is). */
  body: string;
  attempt: number;
  createdAt: number;
  lastError?: string;
}

export interface DeadLetter extends ClientDelivery {
  deadAt: number;
}

export class ClientWebhookStore {
  readonly keys: RedisKeys;

  constructor(
    private readonly redis: Redis,
    prefix = '',
  ) {
    this.keys = redisKeys(prefix);
  }

  async setConfig(tenant: string, cfg: ClientWebhookConfig): Promise<void> {
    const key = this.keys.clientWebhook(tenant);
    await execAll(
      this.redis
        .multi()
        .del(key)
        .hset(key, { url: cfg.url, secret: cfg.secret, events: cfg.events.join(',') }),
    );
  }

  async getConfig(tenant: string): Promise<ClientWebhookConfig | null> {
    const h = await this.redis.hgetall(this.keys.clientWebhook(tenant));
    if (!h.url || !h.secret) return null;
    return { url: h.url, secret: h.secret, events: (h.events ?? '').split(',').filter(Boolean) as ClientEventType[] };
  }

  async deleteConfig(tenant: string): Promise<boolean> {
    return (await this.redis.del(this.keys.clientWebhook(tenant))) === 1;
  }

  /** Queues an event for the tenant if it has a webhook subscribed to this event type. Returns the delivery id. */
  async enqueue(
    tenant: string,
    event: ClientEventType,
    data: Record<string, unknown>,
    now = Date.now(),
  ): Promise<string | null> {
    const cfg = await this.getConfig(tenant);
    if (!cfg || !cfg.events.includes(event)) return null;
    const id = `whd_${randomBytes(12).toString('hex')}`;
    const body = JSON.stringify({ id, event, tenant, timestamp: now, data });
    const item: ClientDelivery = { id, tenant, event, body, attempt: 0, createdAt: now };
    await execAll(
      this.redis
        .multi()
        .hset(this.keys.clientWebhookItems(), id, JSON.stringify(item))
        .zadd(this.keys.clientWebhookDue(), now, id),
    );
    return id;
  }

  async claim(limit: number, leaseMs: number): Promise<ClientDelivery[]> {
    const k = this.keys;
    const flat = await claimScript(this.redis, [k.clientWebhookDue(), k.clientWebhookItems()], [limit, leaseMs]);
    const out: ClientDelivery[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push(JSON.parse(flat[i + 1]!) as ClientDelivery);
    return out;
  }

  async complete(id: string): Promise<void> {
    await execAll(this.redis.multi().zrem(this.keys.clientWebhookDue(), id).hdel(this.keys.clientWebhookItems(), id));
  }

  async retryLater(item: ClientDelivery, dueAt: number): Promise<void> {
    await execAll(
      this.redis
        .multi()
        .hset(this.keys.clientWebhookItems(), item.id, JSON.stringify(item))
        .zadd(this.keys.clientWebhookDue(), dueAt, item.id),
    );
  }

  async deadLetter(item: ClientDelivery, now = Date.now()): Promise<void> {
    const dead: DeadLetter = { ...item, deadAt: now };
    await execAll(
      this.redis
        .multi()
        .lpush(this.keys.clientWebhookDead(item.tenant), JSON.stringify(dead))
        .ltrim(this.keys.clientWebhookDead(item.tenant), 0, 9_999)
        .zrem(this.keys.clientWebhookDue(), item.id)
        .hdel(this.keys.clientWebhookItems(), item.id),
    );
  }

  async deadLetters(tenant: string, limit = 100): Promise<DeadLetter[]> {
    const rows = await this.redis.lrange(this.keys.clientWebhookDead(tenant), 0, limit - 1);
    return rows.map((r) => JSON.parse(r) as DeadLetter);
  }

  async pending(tenant?: string): Promise<number> {
    if (!tenant) return this.redis.zcard(this.keys.clientWebhookDue());
    const all = await this.redis.hvals(this.keys.clientWebhookItems());
    return all.filter((r) => (JSON.parse(r) as ClientDelivery).tenant === tenant).length;
  }
}
