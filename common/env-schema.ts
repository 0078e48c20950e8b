import { z } from 'zod';

/**
 * zod builders for environment variables, shared by the orchestrator/API schema (common/config.ts) and the
 * wa-worker's (wa-worker/config.ts), so both answer bad values with the same messages.
 */
export const envBool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

export const envInt = (def: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ message: 'must be a number' })
    .int('must be a whole number')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`)
    .default(def);

/** A shared secret: at least 16 characters, no whitespace. */
export const envSecret = (what: string) =>
  z
    .string({ required_error: `is required (${what})` })
    .min(16, 'must be at least 16 characters')
    .refine((s) => !/\s/.test(s), 'must not contain whitespace');
