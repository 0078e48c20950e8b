import type { Client } from '@temporalio/client';
import type { Redis } from 'ioredis';
import type { Config } from '../common/config.js';
import type { ProxyPool } from '../state/proxy-pool.js';
import type { SessionStore } from '../state/sessions.js';

/** What every route plugin gets. */
export interface ApiContext {
  config: Config;
  redis: Redis;
  pool: ProxyPool;
  sessions: SessionStore;
  temporal: Client;
}
