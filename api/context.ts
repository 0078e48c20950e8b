import type { Client } from '@temporalio/client';
import type { Config } from '../common/config.js';
import type { Stores } from '../state/stores.js';
import type { PgAuthStore } from '../state/auth-pg.js';

/** What every route plugin gets: the configuration, the stores (state/stores.ts) and the Temporal client. */
export interface ApiContext {
  config: Config;
  stores: Stores;
  temporal: Client;
  /** The PostgreSQL auth store (AUTH_STORE=postgres only). */
  authStore?: PgAuthStore;
}
