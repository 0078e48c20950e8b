/**
 * JSON Schema hints for zod schemas whose check is code (a parser, a refinement) rather than a zod rule: the schema
 * keeps its precise error messages, the OpenAPI document (api/openapi.ts) shows the equivalent rule registered
 * here. The zod schema must enforce exactly this rule (both ways), so the document promises neither more nor less.
 *   - `replace`: the JSON Schema of the value is `json`;
 *   - `extend`: `json` is merged into the JSON Schema of the refined (inner) schema (e.g. an `anyOf` of required).
 */
import type { ZodTypeAny } from 'zod';

export interface JsonSchemaHint {
  mode: 'replace' | 'extend';
  json: Record<string, unknown>;
}

export const jsonSchemaHints = new WeakMap<object, JsonSchemaHint>();

export function documentAs<T extends ZodTypeAny>(
  schema: T,
  json: Record<string, unknown>,
  mode: JsonSchemaHint['mode'] = 'replace',
): T {
  jsonSchemaHints.set(schema._def as object, { mode, json });
  return schema;
}
