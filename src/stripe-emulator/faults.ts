/**
 * Fault injection for API requests, one rule kind per row of the contract's fault table.
 *
 * A rule selects requests by method, path (exact, or a prefix ending in `*`), idempotency key
 * (exact or prefix `*`) and metadata values, then fires on the `nth` match only, on at most `times`
 * matches, and/or with a `probability` drawn from its own seeded generator, so a run is
 * reproducible. Every rule whose filters match counts the match; the first rule that fires decides
 * the request's fate. What each fault does is carried out by the server at the right moment:
 *
 * - reset_before_execution: destroy the socket before anything executes.
 * - rate_limit_429 / lock_timeout_429 / transient_500: answer at once, nothing executed or stored.
 * - stored_500: execute nothing, store a 500 with `Stripe-Should-Retry: false` under the key.
 * - slow: execute and hold the idempotency lock for `delayMs`, then store and answer.
 * - lose_response_after_commit: execute and store, then destroy the socket.
 * - truncated_body: execute and store, send the headers and half the body, then destroy the socket.
 */
import { z } from 'zod';
import { type FormParams } from './router';
import { mulberry32 } from './prng';

export const FAULT_KINDS = [
  'lose_response_after_commit',
  'reset_before_execution',
  'slow',
  'truncated_body',
  'stored_500',
  'transient_500',
  'rate_limit_429',
  'lock_timeout_429',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export const DEFAULT_SLOW_DELAY_MS = 35_000;

export const faultRuleInputSchema = z.strictObject({
  fault: z.enum(FAULT_KINDS),
  method: z
    .string()
    .transform((method) => method.toUpperCase())
    .optional(),
  path: z.string().min(1).optional(),
  idempotencyKey: z.string().min(1).optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  nth: z.number().int().min(1).optional(),
  times: z.number().int().min(1).optional(),
  probability: z.number().min(0).max(1).optional(),
  seed: z.number().int().optional(),
  delayMs: z.number().int().min(0).max(600_000).optional(),
});

export type FaultRuleInput = z.input<typeof faultRuleInputSchema>;

export interface FaultRule {
  readonly id: string;
  readonly fault: FaultKind;
  readonly method?: string;
  readonly path?: string;
  readonly idempotencyKey?: string;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly nth?: number;
  readonly times?: number;
  readonly probability?: number;
  readonly seed?: number;
  readonly delayMs?: number;
  /** Requests that matched the filters. */
  readonly matched: number;
  /** Requests the fault was applied to. */
  readonly hits: number;
}

export interface FaultCandidate {
  readonly method: string;
  readonly path: string;
  readonly idempotencyKey: string | undefined;
  readonly params: FormParams;
}

interface ActiveRule {
  rule: FaultRule;
  readonly random: () => number;
}

export class FaultInjector {
  private readonly rules: ActiveRule[] = [];
  private nextId = 1;

  /** Validates and adds a rule; throws an Error listing the problems. */
  add(input: unknown): FaultRule {
    const parsed = faultRuleInputSchema.safeParse(input);
    if (!parsed.success) {
      throw new Error(
        parsed.error.issues.map((issue) => `${issue.path.join('.') || 'rule'}: ${issue.message}`).join('; '),
      );
    }
    const rule: FaultRule = { id: `fault_${this.nextId++}`, ...parsed.data, matched: 0, hits: 0 };
    this.rules.push({ rule, random: mulberry32(parsed.data.seed ?? 1) });
    return rule;
  }

  list(): FaultRule[] {
    return this.rules.map(({ rule }) => rule);
  }

  /** Removes one rule by id (returns how many were removed), or all rules when no id is given. */
  remove(id?: string): number {
    if (id === undefined) {
      const count = this.rules.length;
      this.rules.length = 0;
      return count;
    }
    const index = this.rules.findIndex(({ rule }) => rule.id === id);
    if (index < 0) return 0;
    this.rules.splice(index, 1);
    return 1;
  }

  /** Decides which fault, if any, applies to this request, counting matches and hits. */
  select(candidate: FaultCandidate): FaultRule | undefined {
    if (this.rules.length === 0) return undefined;
    let chosen: FaultRule | undefined;
    for (const active of this.rules) {
      const rule = active.rule;
      if (!matches(rule, candidate)) continue;
      const matched = rule.matched + 1;
      const limit = rule.times ?? (rule.nth === undefined ? Number.POSITIVE_INFINITY : 1);
      let fires =
        chosen === undefined && (rule.nth === undefined || matched >= rule.nth) && rule.hits < limit;
      if (fires && rule.probability !== undefined) fires = active.random() < rule.probability;
      active.rule = { ...rule, matched, hits: fires ? rule.hits + 1 : rule.hits };
      if (fires) chosen = active.rule;
    }
    return chosen;
  }
}

function matches(rule: FaultRule, candidate: FaultCandidate): boolean {
  if (rule.method !== undefined && rule.method !== candidate.method) return false;
  if (rule.path !== undefined && !patternMatches(rule.path, candidate.path)) return false;
  if (rule.idempotencyKey !== undefined) {
    if (candidate.idempotencyKey === undefined) return false;
    if (!patternMatches(rule.idempotencyKey, candidate.idempotencyKey)) return false;
  }
  if (rule.metadata !== undefined) {
    const metadata = candidate.params['metadata'];
    if (typeof metadata !== 'object' || Array.isArray(metadata)) return false;
    for (const [key, value] of Object.entries(rule.metadata)) {
      if (metadata[key] !== value) return false;
    }
  }
  return true;
}

function patternMatches(pattern: string, value: string): boolean {
  return pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern === value;
}
