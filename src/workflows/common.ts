/**
 * Small helpers the workflows share: time units, the retry policy for Stripe and store activities,
 * the read budget, how a failure is described, and the Stripe event dedup. Workflow code: pure and
 * deterministic (no Node built-ins, no I/O).
 */
import {
  ApplicationFailure,
  TimeoutFailure,
  proxyActivities,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { CheckoutActivities } from '../activities';
import { SEEN_STRIPE_EVENTS_MAX } from './definitions';

export const SECOND = 1_000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** Longest gap between two reads of Stripe while waiting. */
export const MAX_POLL_INTERVAL_MS = 1 * MINUTE;
/** A write with less budget than this left is not worth starting: read Stripe instead. */
export const MIN_WRITE_BUDGET_MS = 1 * SECOND;
/** Reads are always safe to repeat; give up (inconclusive) after this long. */
export const READ_SCHEDULE_TO_CLOSE_MS = 10 * MINUTE;

/** Backoff for activities: from one second, doubling, at most a minute between attempts. */
export const ACTIVITY_RETRY = {
  initialInterval: 1 * SECOND,
  backoffCoefficient: 2,
  maximumInterval: 1 * MINUTE,
} as const;

/** The failure `type` along an activity failure's cause chain; `Timeout` for a timeout. */
export function failureType(err: unknown): string | undefined {
  let e: unknown = err;
  while (e instanceof Error) {
    if (e instanceof ApplicationFailure && e.type) return e.type;
    if (e instanceof TimeoutFailure) return 'Timeout';
    e = e.cause;
  }
  return undefined;
}

/** The message of the innermost error along a failure's cause chain. */
export function errorMessage(err: unknown): string {
  let e: unknown = err;
  let msg = err instanceof Error ? err.message : String(err);
  while (e instanceof Error && e.cause) {
    e = e.cause;
    if (e instanceof Error) msg = e.message;
  }
  return msg;
}

/**
 * Whether this run may follow an earlier attempt at the same checkout whose Stripe writes it cannot
 * see: a reset (the server fails the task at the reset point, so a run reset to its first task
 * starts after event 3), a continued run, or a workflow retry. A fresh run's first task starts at
 * event 3. Decided from history alone, so a replay decides the same way (the run id is not: the
 * offline replayer does not know a reset run's id). Rare false positives (a first task that timed
 * out, a signal before the first task) cost one Stripe search.
 */
export function mayFollowEarlierAttempts(): boolean {
  const info = workflowInfo();
  return info.historyLength > 3 || info.continuedFromExecutionRunId !== undefined || info.attempt > 1;
}

/**
 * Records a Stripe event id in `seen` (oldest first, at most `SEEN_STRIPE_EVENTS_MAX`) and says
 * whether it is new; a webhook redelivery of an event already seen returns false.
 */
export function firstSightingOfStripeEvent(seen: string[], eventId: string): boolean {
  if (seen.includes(eventId)) return false;
  seen.push(eventId);
  if (seen.length > SEEN_STRIPE_EVENTS_MAX) seen.shift();
  return true;
}

/**
 * How much of a Stripe key's budget is left: its clock starts at the key's first use (recorded in
 * `keyFirstUsedAt`, workflow time). Undefined when too little is left to start a write.
 */
export function writeBudgetLeft(
  keyFirstUsedAt: Map<string, number>,
  key: string,
  budgetMs: number,
): number | undefined {
  const now = Date.now();
  const first = keyFirstUsedAt.get(key) ?? now;
  keyFirstUsedAt.set(key, first);
  const left = budgetMs - (now - first);
  return left >= MIN_WRITE_BUDGET_MS ? left : undefined;
}

/** Activities for a Stripe write, bounded by what is left of its key's budget. */
export function stripeWriteActivities(
  stripeCallTimeoutMs: number,
  budgetMs: number,
  summary: string,
): CheckoutActivities {
  const options: ActivityOptions = {
    startToCloseTimeout: Math.min(stripeCallTimeoutMs, budgetMs),
    scheduleToCloseTimeout: budgetMs,
    retry: ACTIVITY_RETRY,
    summary,
  };
  return proxyActivities<CheckoutActivities>(options);
}

/** Activities for Stripe reads: safe to repeat, inconclusive after `READ_SCHEDULE_TO_CLOSE_MS`. */
export function stripeReadActivities(stripeCallTimeoutMs: number, summary: string): CheckoutActivities {
  return proxyActivities<CheckoutActivities>({
    startToCloseTimeout: stripeCallTimeoutMs,
    scheduleToCloseTimeout: READ_SCHEDULE_TO_CLOSE_MS,
    retry: ACTIVITY_RETRY,
    summary,
  });
}

/** An update validator's structural check: throwing rejects the update with every problem named. */
export function rejectInvalid(v: { ok: true } | { ok: false; problems: readonly string[] }): void {
  if (!v.ok) throw new Error(`invalid request: ${v.problems.join('; ')}`);
}
