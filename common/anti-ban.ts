/**
 * Anti-ban pacing model (SPEC §6): trust levels with rolling-24 h caps and a mean gap between sends, per-session
 * overrides, and the automatic promotion rules. Pure functions: the dispatcher activity, the API and the tests
 * share them.
 */
import { z } from 'zod';
import type { Config } from './config.js';

export const TRUST_LEVELS = ['cold', 'warm', 'hot'] as const;
export type TrustLevel = (typeof TRUST_LEVELS)[number];

/** Manual overrides (PUT /api/anti-ban/sessions/:id/limits). Absent fields fall back to the level's defaults. */
export const LimitsOverrideSchema = z
  .object({
    level: z.enum(TRUST_LEVELS, { message: 'must be cold, warm or hot' }).optional(),
    dailyCap: z.number().int('must be a whole number').min(1).max(10_000).optional(),
    gapMs: z.number().int('must be a whole number').min(10).max(3_600_000).optional(),
    burstCount: z.number().int('must be a whole number').min(1).max(100_000).optional(),
    /** false pins the level: automatic promotion stops. */
    autoPromote: z.boolean().optional(),
    /** Bounds of the `composing` time before each send (0/0: no typing; a min above the max counts as the max). */
    typingMinMs: z.number().int('must be a whole number').min(0).max(30_000).optional(),
    typingMaxMs: z.number().int('must be a whole number').min(0).max(30_000).optional(),
    /** Mark inbound messages read automatically, after a uniform delay in [readDelayMinMs, readDelayMaxMs] (min ≤ max as above). */
    autoRead: z.boolean().optional(),
    readDelayMinMs: z.number().int('must be a whole number').min(0).max(3_600_000).optional(),
    readDelayMaxMs: z.number().int('must be a whole number').min(0).max(3_600_000).optional(),
  })
  .strict();
export type LimitsOverride = z.infer<typeof LimitsOverrideSchema>;

export interface EffectiveLimits {
  level: TrustLevel;
  dailyCap: number;
  gapMs: number;
  perMinute: number;
  jitterPercent: number;
  burstCount: number;
  autoPromote: boolean;
  /** composing time bounds before each send; max 0 = no typing */
  typingMinMs: number;
  typingMaxMs: number;
  autoRead: boolean;
  readDelayMinMs: number;
  readDelayMaxMs: number;
  overrides: LimitsOverride;
}

export function levelDefaults(config: Config, level: TrustLevel): { dailyCap: number; gapMs: number } {
  switch (level) {
    case 'hot':
      return { dailyCap: config.ANTIBAN_HOT_DAILY, gapMs: config.ANTIBAN_HOT_GAP_MS };
    case 'warm':
      return { dailyCap: config.ANTIBAN_WARM_DAILY, gapMs: config.ANTIBAN_WARM_GAP_MS };
    default:
      return { dailyCap: config.ANTIBAN_COLD_DAILY, gapMs: config.ANTIBAN_COLD_GAP_MS };
  }
}

export function levelTypingDefaults(config: Config, level: TrustLevel): { min: number; max: number } {
  if (!config.ANTIBAN_TYPING) return { min: 0, max: 0 };
  switch (level) {
    case 'hot':
      return { min: config.ANTIBAN_HOT_TYPING_MIN_MS, max: config.ANTIBAN_HOT_TYPING_MAX_MS };
    case 'warm':
      return { min: config.ANTIBAN_WARM_TYPING_MIN_MS, max: config.ANTIBAN_WARM_TYPING_MAX_MS };
    default:
      return { min: config.ANTIBAN_COLD_TYPING_MIN_MS, max: config.ANTIBAN_COLD_TYPING_MAX_MS };
  }
}

/**
 * How long the worker shows `composing` before sending `text`: grows with the length, jittered, clamped to
 * [min, max] (0 when max is 0). Reading a long message aloud is not modelled; typing speed is.
 */
export function typingDuration(
  text: string,
  bounds: { min: number; max: number },
  msPerChar: number,
  jitterPercent: number,
  rnd: () => number = Math.random,
): number {
  if (bounds.max <= 0) return 0;
  const min = Math.min(bounds.min, bounds.max);
  const base = min + [...text].length * msPerChar;
  const jittered = base * (1 + ((rnd() * 2 - 1) * jitterPercent) / 100);
  return Math.round(Math.min(bounds.max, Math.max(min, jittered)));
}

/** Decodes the Redis limits hash (strings) into overrides; unknown or bad fields are ignored. */
export function overridesFromHash(raw: Record<string, string>): LimitsOverride {
  const out: LimitsOverride = {};
  if (raw.level && (TRUST_LEVELS as readonly string[]).includes(raw.level)) out.level = raw.level as TrustLevel;
  for (const k of ['dailyCap', 'gapMs', 'burstCount'] as const) {
    const n = Number(raw[k]);
    if (raw[k] !== undefined && Number.isInteger(n) && n > 0) out[k] = n;
  }
  for (const k of ['typingMinMs', 'typingMaxMs', 'readDelayMinMs', 'readDelayMaxMs'] as const) {
    const n = Number(raw[k]);
    if (raw[k] !== undefined && Number.isInteger(n) && n >= 0) out[k] = n;
  }
  if (raw.autoPromote !== undefined) out.autoPromote = raw.autoPromote === 'true';
  if (raw.autoRead !== undefined) out.autoRead = raw.autoRead === 'true';
  return out;
}

export function effectiveLimits(config: Config, o: LimitsOverride): EffectiveLimits {
  const level = o.level ?? 'cold';
  const d = levelDefaults(config, level);
  const gapMs = o.gapMs ?? d.gapMs;
  const typing = levelTypingDefaults(config, level);
  const typingMaxMs = o.typingMaxMs ?? typing.max;
  const readDelayMaxMs = o.readDelayMaxMs ?? config.AUTO_READ_DELAY_MAX_MS;
  return {
    level,
    dailyCap: o.dailyCap ?? d.dailyCap,
    gapMs,
    perMinute: Math.round((60_000 / gapMs) * 100) / 100,
    jitterPercent: config.ANTIBAN_JITTER_PERCENT,
    burstCount: o.burstCount ?? config.ANTIBAN_BURST_COUNT,
    autoPromote: o.autoPromote ?? true,
    typingMinMs: Math.min(o.typingMinMs ?? typing.min, typingMaxMs),
    typingMaxMs,
    autoRead: o.autoRead ?? config.AUTO_READ,
    readDelayMinMs: Math.min(o.readDelayMinMs ?? config.AUTO_READ_DELAY_MIN_MS, readDelayMaxMs),
    readDelayMaxMs,
    overrides: o,
  };
}

export interface SessionSendStats {
  /** When the dispatcher first saw the session connected (ms), or null. */
  firstConnectedAt: number | null;
  /** Messages handed off to the worker. */
  released: number;
  /** Messages the recipient's phone confirmed (delivered or read). */
  delivered: number;
  failed: number;
  /** Numbers looked up on WhatsApp (number checks that missed the cache); watched by WhatsApp like sends. */
  lookups?: number;
}

/**
 * Automatic promotion, one level at a time:
 * - cold → warm: account age ≥ ANTIBAN_WARM_MIN_AGE_MS (3 days), ≥ ANTIBAN_WARM_MIN_SENT (20) messages handed off,
 *   delivery rate ≥ ANTIBAN_PROMOTE_MIN_DELIVERY_PERCENT (90%);
 * - warm → hot: age ≥ ANTIBAN_HOT_MIN_AGE_MS (14 days), ≥ ANTIBAN_HOT_MIN_SENT (100), same delivery rate.
 * Never demotes (a manual PUT does). Returns the new level, or null when nothing changes.
 */
export function promotion(
  config: Config,
  level: TrustLevel,
  stats: SessionSendStats,
  now: number,
): { to: TrustLevel; reason: string } | null {
  if (level === 'hot' || stats.firstConnectedAt === null) return null;
  const age = now - stats.firstConnectedAt;
  const rate = stats.released > 0 ? (stats.delivered / stats.released) * 100 : 0;
  const [minAge, minSent, to] =
    level === 'cold'
      ? [config.ANTIBAN_WARM_MIN_AGE_MS, config.ANTIBAN_WARM_MIN_SENT, 'warm' as const]
      : [config.ANTIBAN_HOT_MIN_AGE_MS, config.ANTIBAN_HOT_MIN_SENT, 'hot' as const];
  if (age < minAge || stats.released < minSent || rate < config.ANTIBAN_PROMOTE_MIN_DELIVERY_PERCENT) return null;
  return {
    to,
    reason: `age ${Math.round(age / 1000)} s ≥ ${Math.round(minAge / 1000)} s, ${stats.released} sent ≥ ${minSent}, delivery ${rate.toFixed(1)}% ≥ ${config.ANTIBAN_PROMOTE_MIN_DELIVERY_PERCENT}%`,
  };
}

/** The per-session dispatcher workflow's id (carries the deployment's WORKFLOW_ID_PREFIX). */
export const dispatcherWorkflowIdFor = (prefix: string, sessionId: string) => `${prefix}:dispatch:${sessionId}`;
