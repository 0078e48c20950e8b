/**
 * The typed client (api/client/) is generated from the OpenAPI document: a change to the API's schemas that is
 * not regenerated (`npm run api:client`) fails here, and the generated types must compile (typecheck).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { generate } from '../scripts/api-client.js';
import { ROOT } from './helpers/stack.js';

describe('generated API client', () => {
  it('api/client matches the current OpenAPI document (run npm run api:client when this fails)', async () => {
    const files = await generate();
    for (const [name, text] of Object.entries(files)) {
      const committed = readFileSync(path.join(ROOT, 'api', 'client', name), 'utf8');
      assert.ok(committed === text, `api/client/${name} is stale: run npm run api:client`);
    }
  });
});
