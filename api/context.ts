import type { Client } from '@temporalio/client';
import type { Config } from '../common/config.js';
import type { Stores } from '../state/stores.js';

/** What every route plugin gets: the configuration, the stores (state/stores.ts) and the Temporal client. */
export interface ApiContext {
  config: Config;
  stores: Stores;
  temporal: Client;
}
