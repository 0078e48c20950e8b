import type { Redis } from 'ioredis';
import type { Config } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { ClientWebhookStore } from './client-webhooks.js';
import { DeviceProfileStore } from './device-profiles.js';
import { EventBus } from './events-bus.js';
import { HostRegistry } from './hosts.js';
import { LoginSlots } from './login-slots.js';
import { MessageStore } from './messages.js';
import { OutboxStore } from './outbox.js';
import { ProxyPool } from './proxy-pool.js';
import { SessionStore } from './sessions.js';
import { WorkerCommandStore } from './worker-commands.js';

/** Every store of the product's Redis state, over one connection and one deployment's key prefix. */
export interface Stores {
  /** The connection, for the few process-own records (API key tickets, tenant quotas) and health checks. */
  redis: Redis;
  sessions: SessionStore;
  pool: ProxyPool;
  profiles: DeviceProfileStore;
  hosts: HostRegistry;
  logins: LoginSlots;
  messages: MessageStore;
  outbox: OutboxStore;
  clientWebhooks: ClientWebhookStore;
  commands: WorkerCommandStore;
  events: EventBus;
}

/** The composition root of a process's state: each process (API, orchestrator) builds its stores here, once. */
export function createStores(redis: Redis, config: Config, logger?: Logger): Stores {
  const prefix = config.REDIS_KEY_PREFIX;
  return {
    redis,
    sessions: new SessionStore(redis, prefix),
    pool: new ProxyPool(redis, prefix, { maxSessionsPerProxy: config.MAX_SESSIONS_PER_PROXY }),
    profiles: new DeviceProfileStore(redis, prefix),
    hosts: new HostRegistry(redis, prefix),
    logins: new LoginSlots(redis, prefix),
    messages: new MessageStore(redis, prefix, config),
    outbox: new OutboxStore(redis, prefix, { retentionMs: config.MESSAGE_RETENTION_MS }),
    clientWebhooks: new ClientWebhookStore(redis, prefix),
    commands: new WorkerCommandStore(redis, prefix),
    events: new EventBus(redis, prefix, { logger }),
  };
}

/**
 * Start-up of the API and of each orchestrator (idempotent, safe concurrently: whichever starts first does the work):
 * proxy keys named by URL renamed to proxy ids, the configured pool registered, the default device-profile inventory
 * seeded (added profiles and retirements are kept). Returns how many proxy keys were renamed.
 */
export async function prepareStores(stores: Stores, config: Config): Promise<number> {
  const migrated = await stores.pool.migrateLegacyKeys();
  if (config.proxyPool.length) await stores.pool.register(...config.proxyPool);
  await stores.profiles.seed();
  return migrated;
}
