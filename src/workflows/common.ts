/**
 * Small helpers the workflows share: time units, the retry policy for Stripe and store activities,
 * the read budget, how a failure is described, and the Stripe event dedup. Workflow code: pure and
 * deterministic (no Node built-ins, no I/O).
 */
import type { MetricCounter, SearchAttributeUpdatePair } from '@temporalio/common';
import {
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  allHandlersFinished,
  condition,
  metricMeter,
  proxyActivities,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { CheckoutActivities } from '../activities';
import { ProductMetric } from '../observability/metric-names';
import {
  CheckoutStateAttr,
  OrderIdAttr,
  PROCESSING,
  SEEN_STRIPE_EVENTS_MAX,
  StripePaymentIntentIdAttr,
  indexedState,
  type CheckoutState,
} from './definitions';

export const SECOND = 1_000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** Longest gap between two reads of Stripe while waiting. */
export const MAX_POLL_INTERVAL_MS = 1 * MINUTE;
/**
 * Longest gap between a parked checkout's own re-reads of a payment that may still settle (a bank
 * debit takes days; its webhook wakes the checkout at once, the re-reads only cover a lost one).
 * They start at `reconcileIntervalMs` and double: each read is a few history events.
 */
export const MAX_PARKED_REREAD_INTERVAL_MS = 1 * HOUR;

/** The next gap between parked re-reads: doubled, at most the longer of the two bounds. */
export function nextParkedRereadInterval(current: number, reconcileIntervalMs: number): number {
  return Math.min(current * 2, Math.max(reconcileIntervalMs, MAX_PARKED_REREAD_INTERVAL_MS));
}
/** A write with less budget than this left is not worth starting: read Stripe instead. */
export const MIN_WRITE_BUDGET_MS = 1 * SECOND;
/** Reads are always safe to repeat; give up (inconclusive) after this long. */
export const READ_SCHEDULE_TO_CLOSE_MS = 10 * MINUTE;

/**
 * The workflow's result, once every update and signal handler has finished: update callers wait
 * for the main flow to take their request, so they return first. With no handler running (the
 * usual end) it is the result itself, not a promise: the sandbox records a stack trace for every
 * promise a workflow creates, and this wait would be three of them. Either way the workflow
 * completes in the same activation, with the same commands.
 */
export function whenHandlersFinished<T>(result: T): T | Promise<T> {
  if (allHandlersFinished()) return result;
  return condition(allHandlersFinished).then(() => result);
}

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

/**
 * A deadline a workflow waits against, decided by history: a timer of its own, so "has it passed?"
 * is whether that timer has fired, the same answer live and on every replay.
 *
 * Comparing `Date.now()` with the deadline was not replay-safe. Workflow time is the start time of
 * the workflow task that runs the code, and the task that decides is not always the task that
 * history keeps: the fresh-clone CI's chaos run stalled on orders `s200-o17` and `s200-o119` with
 * "Activity type of scheduled event 'getPaymentIntent' does not match activity type of activity
 * command 'cancelPaymentIntent'", a poll that had decided "not yet, read Stripe" on one task's clock
 * replayed on a later task's clock, past the deadline, as "expire". Timers are events; clocks are not.
 *
 * `timer` false keeps the clock, exactly as before, for runs recorded without the timer (the caller
 * decides that with `patched()`, see docs/changing-workflows.md): their histories replay the
 * commands they recorded.
 */
export class Deadline {
  /** Epoch ms, workflow time: for what the checkout shows, never for a decision. */
  readonly atMs: number;
  private fired = false;
  private readonly scope: CancellationScope | undefined;

  constructor(ms: number, timer: boolean) {
    this.atMs = Date.now() + ms;
    if (!timer) return;
    this.scope = new CancellationScope();
    this.scope
      .run(() => sleep(ms))
      .then(
        () => {
          this.fired = true;
        },
        () => undefined, // stopped: the wait ended first
      );
  }

  /** Whether a timer decides this deadline (false: the clock, for runs recorded without it). */
  get timed(): boolean {
    return this.scope !== undefined;
  }

  /** Whether the deadline has passed: its timer has fired (on the clock for runs without it). */
  get passed(): boolean {
    return this.scope ? this.fired : Date.now() >= this.atMs;
  }

  /**
   * For a wait's predicate, so the timer ends the wait. Never the clock: a predicate that read the
   * clock would end a wait of a run without the timer where its history's timer did not.
   */
  get timerFired(): boolean {
    return this.fired;
  }

  /**
   * How long the next poll may wait, or undefined when the deadline has passed and it must not wait.
   * With the timer, the interval (the timer ends the wait); on the clock, at most what is left.
   */
  pollMs(intervalMs: number): number | undefined {
    if (this.scope) return this.fired ? undefined : intervalMs;
    const left = this.atMs - Date.now();
    return left > 0 ? Math.min(intervalMs, left) : undefined;
  }

  /** The wait ended before the deadline: cancel the timer, whose firing would only wake the run. */
  stop(): void {
    if (this.scope && !this.fired) this.scope.cancel();
  }
}

/** An update validator's structural check: throwing rejects the update with every problem named. */
export function rejectInvalid(v: { ok: true } | { ok: false; problems: readonly string[] }): void {
  if (!v.ok) throw new Error(`invalid request: ${v.problems.join('; ')}`);
}

/**
 * What a checkout writes to its search attributes (docs/checkout.md, "What operators can search").
 *
 * `CheckoutState` changes only where the checkout rests: `processing` while it works through its
 * steps (set by `startCheckout` at the start), then the state it waits in (customer action, an
 * asynchronous payment, a new card, an operator) or ends in. `StripePaymentIntentId` is written with
 * the first resting state that follows a PaymentIntent, and `OrderId` at the start only if the start
 * did not carry it. So a card checkout that is paid at once writes its search attributes once, with
 * its completion: every upsert is a visibility write on the server, and indexing each step (eight
 * upserts in four workflow tasks) cost about a third of the checkout's throughput
 * (docs/benchmarks.md). The step itself is always in the status query, the audit trail and the
 * pending activity the Temporal UI shows.
 *
 * Which way a run indexes is decided by its start event alone, so replay is deterministic and no
 * patch marker is needed (`patched()` would itself upsert `TemporalChangeVersion`, one more
 * visibility write): a run started with `CheckoutState=processing` indexes where it rests; any
 * other start (runs from before this change, which `startCheckout` started with `validating`, or a
 * start by hand without search attributes) upserts as those runs always did: the order id first,
 * then every state change and every adopted PaymentIntent. docs/changing-workflows.md.
 */
export class CheckoutSearchIndex {
  /** False for runs not started with `CheckoutState=processing`: they upsert every step. */
  private readonly restingOnly: boolean;
  private state: string | undefined;
  private paymentIntentId: string | undefined;

  /** Call in the run's first activation, before any upsert: it reads the start's attributes. */
  constructor() {
    const attributes = workflowInfo().typedSearchAttributes;
    this.state = attributes.get(CheckoutStateAttr);
    this.restingOnly = this.state === PROCESSING;
    this.paymentIntentId = attributes.get(StripePaymentIntentIdAttr);
  }

  /** At the top of a run. */
  begin(orderId: string): void {
    if (this.restingOnly && workflowInfo().typedSearchAttributes.get(OrderIdAttr) === orderId) return;
    upsertSearchAttributes([{ key: OrderIdAttr, value: orderId }]);
  }

  /** After the checkout moved from `previous` to `state`, following `paymentIntentId` (if any). */
  stateChanged(previous: CheckoutState, state: CheckoutState, paymentIntentId: string | undefined): void {
    if (!this.restingOnly) {
      if (state !== previous) upsertSearchAttributes([{ key: CheckoutStateAttr, value: state }]);
      return;
    }
    const value = indexedState(state);
    const pairs: SearchAttributeUpdatePair[] = [];
    if (value !== this.state) {
      pairs.push({ key: CheckoutStateAttr, value });
      this.state = value;
    }
    if (value !== PROCESSING && paymentIntentId !== undefined && paymentIntentId !== this.paymentIntentId) {
      pairs.push({ key: StripePaymentIntentIdAttr, value: paymentIntentId });
      this.paymentIntentId = paymentIntentId;
    }
    if (pairs.length > 0) upsertSearchAttributes(pairs);
  }

  /** The checkout follows `paymentIntentId` now. Indexed with the next resting state. */
  adopted(paymentIntentId: string): void {
    if (!this.restingOnly)
      upsertSearchAttributes([{ key: StripePaymentIntentIdAttr, value: paymentIntentId }]);
  }
}

/**
 * The product's state counters (docs/observability.md), counted where the state changes. The
 * workflow metric meter drops values while a workflow replays, so a worker that rebuilds a checkout
 * from history does not count its past again; a workflow task that ran but never reached the server
 * (the worker died) is counted by both runs of it.
 */
export class StateMetrics {
  private readonly stateEntered: MetricCounter;
  private readonly chargesSucceeded: MetricCounter;
  private readonly reconciliations: MetricCounter;
  /** Set during replay too, so a rebuilt checkout never counts its charge a second time. */
  private paidCounted = false;

  constructor() {
    this.stateEntered = metricMeter.createCounter(
      ProductMetric.stateEntered,
      '1',
      'Checkouts that entered a state, by state',
    );
    this.chargesSucceeded = metricMeter.createCounter(
      ProductMetric.chargesSucceeded,
      '1',
      'Checkouts whose payment Stripe shows succeeded (entered paid)',
    );
    this.reconciliations = metricMeter.createCounter(
      ProductMetric.reconciliations,
      '1',
      'Times a checkout read Stripe before any write (entered reconciling)',
    );
  }

  /** `state`: a checkout state, or a reconciler case's (`resolved`). */
  entered(state: string): void {
    this.stateEntered.add(1, { state });
    if (state === 'reconciling') this.reconciliations.add(1);
    if (state === 'paid' && !this.paidCounted) {
      this.paidCounted = true;
      this.chargesSucceeded.add(1);
    }
  }
}

/**
 * What a checkout's state change sets off beyond the workflow's own fields: the state counters and
 * the search index. One per run, shared by the card and the hosted checkout, so each `setState`
 * makes one call.
 */
export class CheckoutStateChanges {
  readonly index = new CheckoutSearchIndex();
  private readonly metrics = new StateMetrics();

  /** After the checkout moved from `previous` to `state`, following `paymentIntentId` (if any). */
  changed(previous: CheckoutState, state: CheckoutState, paymentIntentId: string | undefined): void {
    if (state !== previous) this.metrics.entered(state);
    this.index.stateChanged(previous, state, paymentIntentId);
  }
}
