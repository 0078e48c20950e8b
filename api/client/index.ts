/**
 * The typed API client: openapi-fetch over the types openapi-typescript generated from the OpenAPI document
 * (`npm run api:client` regenerates schema.d.ts and openapi.json; a test fails when they are stale).
 */
import createClient, { type Client } from 'openapi-fetch';
import type { paths } from './schema.js';

export type { components, operations, paths } from './schema.js';
export type ApiClient = Client<paths>;

/** A client for `baseUrl` (e.g. http://127.0.0.1:3000) sending `apiKey` as X-API-Key. */
export function apiClient(baseUrl: string, apiKey: string): ApiClient {
  return createClient<paths>({ baseUrl, headers: { 'x-api-key': apiKey } });
}
