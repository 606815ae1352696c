/**
 * The chaos schedule: everything a run will do to the stack, decided up front as a pure function of
 * (checkouts, seed, workers), so the same arguments always give the same schedule and its hash
 * proves it. Nothing here performs I/O; the harness carries the schedule out.
 *
 * Each order gets a card plan (succeeds, declines then a new card, 3-D Secure passed, failed or never
 * answered, ...), at most two Stripe faults aimed at its own idempotency keys (`…/g1/create` or
 * `…/g1/confirm`), and possibly a duplicate start. Faults are dealt from a deck with a fixed count
 * per kind (about 7 % of orders each, at least one), so every kind is exercised at any size instead
 * of leaving coverage to luck. Stack events (worker SIGKILL, Temporal restart, clock +25 h) fire when
 * a given order index is reached, so they land at the same point of the run every time.
 */
import { createHash } from 'node:crypto';
import { FAULT_KINDS, type FaultKind } from '../stripe-emulator/faults';
import { createPrng } from './prng';

export const CARD_PLANS = [
  'succeeds',
  'declines_then_new_card',
  'declines',
  'three_ds_authenticated',
  'three_ds_fails_then_new_card',
  'three_ds_never_answered',
] as const;
export type CardPlan = (typeof CARD_PLANS)[number];

/** Share of orders per card plan; the rest succeed. */
const CARD_SHARES: Readonly<Record<Exclude<CardPlan, 'succeeds'>, number>> = {
  declines_then_new_card: 0.12,
  declines: 0.04,
  three_ds_authenticated: 0.12,
  three_ds_fails_then_new_card: 0.06,
  three_ds_never_answered: 0.06,
};

/** The test payment method each plan starts with; a new card is always `pm_card_visa`. */
export const FIRST_CARD: Readonly<Record<CardPlan, string>> = {
  succeeds: 'pm_card_visa',
  declines_then_new_card: 'pm_card_chargeDeclined',
  declines: 'pm_card_chargeDeclinedInsufficientFunds',
  three_ds_authenticated: 'pm_card_threeDSecure2Required',
  three_ds_fails_then_new_card: 'pm_card_threeDSecure2Required',
  three_ds_never_answered: 'pm_card_threeDSecure2Required',
};
export const NEW_CARD = 'pm_card_visa';

export type StripeStep = 'create' | 'confirm';

export interface StepFault {
  readonly step: StripeStep;
  readonly fault: FaultKind;
  /** Requests the rule may hit (lost answers need 2: the SDK retries a closed connection once). */
  readonly times: number;
  readonly delayMs?: number;
}

export type DuplicateStart = 'none' | 'concurrent' | 'after_end';

export interface OrderPlan {
  readonly index: number;
  readonly orderId: string;
  readonly amount: number;
  readonly customerIndex: number;
  readonly card: CardPlan;
  readonly faults: readonly StepFault[];
  readonly duplicateStart: DuplicateStart;
}

export const STACK_EVENT_KINDS = ['worker_sigkill', 'temporal_restart', 'clock_advance_25h'] as const;
export type StackEventKind = (typeof STACK_EVENT_KINDS)[number];

export interface StackEvent {
  /** Fires just before the order with this index is started. */
  readonly beforeOrder: number;
  readonly kind: StackEventKind;
  /** For `worker_sigkill`: which worker slot. */
  readonly worker: number;
  /** For `worker_sigkill`: how long the slot stays empty before a new worker starts. */
  readonly downMs: number;
}

export interface ReadFault {
  readonly fault: FaultKind;
  readonly method: 'GET';
  readonly path: string;
  readonly probability: number;
  readonly seed: number;
}

export interface WebhookChaos {
  readonly duplicate: number;
  readonly reorder: boolean;
  readonly reorderWindowMs: number;
  readonly delayMs: number;
  readonly seed: number;
}

export interface ChaosSchedule {
  readonly checkouts: number;
  readonly seed: number;
  readonly workers: number;
  readonly customers: number;
  readonly searchLagSeconds: number;
  /** Stripe client timeout for the workers; `slow` faults hold answers well past it. */
  readonly stripeTimeoutMs: number;
  readonly webhook: WebhookChaos;
  readonly readFaults: readonly ReadFault[];
  readonly orders: readonly OrderPlan[];
  readonly events: readonly StackEvent[];
}

export interface ScheduleOptions {
  readonly checkouts: number;
  readonly seed: number;
  readonly workers: number;
}

/** Share of orders each API fault kind is dealt to. */
const FAULT_SHARE = 0.07;
const MAX_FAULTS_PER_ORDER = 2;
const STRIPE_TIMEOUT_MS = 2_000;

function timesFor(fault: FaultKind, int: (min: number, max: number) => number): number {
  switch (fault) {
    case 'lose_response_after_commit':
    case 'reset_before_execution':
      return 2;
    case 'truncated_body':
    case 'stored_500':
    case 'slow':
      return 1;
    case 'transient_500':
    case 'rate_limit_429':
    case 'lock_timeout_429':
      return int(1, 3);
  }
}

function clamp(n: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, n));
}

export function buildSchedule(options: ScheduleOptions): ChaosSchedule {
  const { checkouts, seed, workers } = options;
  if (!Number.isSafeInteger(checkouts) || checkouts < 1)
    throw new Error('checkouts must be a positive integer');
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error('seed must be a non-negative integer');
  if (!Number.isSafeInteger(workers) || workers < 2)
    throw new Error('workers must be an integer of at least 2');
  const root = createPrng(seed);
  const cards = root.fork('cards');
  const faultRng = root.fork('faults');
  const misc = root.fork('orders');
  const eventRng = root.fork('events');
  const stackRng = root.fork('stack');

  const deck: CardPlan[] = [];
  for (const [plan, share] of Object.entries(CARD_SHARES) as [CardPlan, number][]) {
    const count = Math.max(1, Math.round(checkouts * share));
    for (let i = 0; i < count && deck.length < checkouts; i++) deck.push(plan);
  }
  while (deck.length < checkouts) deck.push('succeeds');
  const cardOf = cards.shuffle(deck);

  const faults: StepFault[][] = Array.from({ length: checkouts }, () => []);
  for (const fault of FAULT_KINDS) {
    const count = Math.max(1, Math.ceil(checkouts * FAULT_SHARE));
    for (let dealt = 0; dealt < count; dealt++) {
      // The first of each kind aims at the confirm, the step that moves money.
      const step: StripeStep = dealt === 0 || faultRng.chance(0.5) ? 'confirm' : 'create';
      const times = timesFor(fault, (min, max) => faultRng.int(min, max));
      const delayMs =
        fault === 'slow' ? faultRng.int(STRIPE_TIMEOUT_MS * 2.5, STRIPE_TIMEOUT_MS * 4) : undefined;
      for (let tries = 0; tries < 20; tries++) {
        const target = faults[faultRng.int(0, checkouts - 1)];
        if (target === undefined || target.length >= MAX_FAULTS_PER_ORDER) continue;
        target.push(delayMs === undefined ? { step, fault, times } : { step, fault, times, delayMs });
        break;
      }
    }
  }

  const customers = clamp(Math.ceil(checkouts / 50), 1, 50);
  const orders: OrderPlan[] = [];
  for (let index = 0; index < checkouts; index++) {
    const roll = misc.next();
    const duplicateStart: DuplicateStart = roll < 0.1 ? 'concurrent' : roll < 0.15 ? 'after_end' : 'none';
    orders.push({
      index,
      orderId: `s${seed}-o${index}`,
      amount: misc.int(500, 20_000),
      customerIndex: misc.int(0, customers - 1),
      card: cardOf[index] ?? 'succeeds',
      faults: faults[index] ?? [],
      duplicateStart,
    });
  }

  const events: StackEvent[] = [];
  const perKind = clamp(Math.ceil(checkouts / 20), 1, 40);
  const first = Math.min(checkouts - 1, Math.max(1, Math.floor(checkouts * 0.05)));
  const last = Math.max(first, Math.floor(checkouts * 0.9));
  for (const kind of STACK_EVENT_KINDS) {
    const count = kind === 'worker_sigkill' ? Math.max(2, perKind) : perKind;
    for (let i = 0; i < count; i++) {
      events.push({
        beforeOrder: eventRng.int(first, last),
        kind,
        worker: eventRng.int(0, workers - 1),
        downMs: eventRng.int(500, 3_000),
      });
    }
  }
  events.sort((a, b) => a.beforeOrder - b.beforeOrder || a.kind.localeCompare(b.kind));

  const readFaults: ReadFault[] = (['transient_500', 'rate_limit_429', 'lock_timeout_429'] as const).map(
    (fault) => ({
      fault,
      method: 'GET',
      path: '/v1/payment_intents/*',
      probability: 0.03,
      seed: stackRng.int(1, 2 ** 31 - 1),
    }),
  );

  return {
    checkouts,
    seed,
    workers,
    customers,
    searchLagSeconds: stackRng.int(1, 3),
    stripeTimeoutMs: STRIPE_TIMEOUT_MS,
    webhook: {
      duplicate: 0.25,
      reorder: true,
      reorderWindowMs: 200,
      delayMs: stackRng.int(200, 800),
      seed: stackRng.int(1, 2 ** 31 - 1),
    },
    readFaults,
    orders,
    events,
  };
}

/** SHA-256 of the schedule's canonical JSON: equal hashes mean the same faults at the same points. */
export function scheduleHash(schedule: ChaosSchedule): string {
  return createHash('sha256').update(JSON.stringify(schedule)).digest('hex');
}

/**
 * What the schedule plans, by the same names the harness counts what happened under, so the report
 * can put "planned" and "injected" side by side.
 */
export function plannedCounts(schedule: ChaosSchedule): Record<string, number> {
  const counts: Record<string, number> = {};
  const add = (k: string, n = 1): void => {
    counts[k] = (counts[k] ?? 0) + n;
  };
  for (const o of schedule.orders) {
    for (const f of o.faults) add(f.fault);
    if (o.duplicateStart !== 'none') add(`duplicate_start_${o.duplicateStart}`);
    if (o.card === 'declines_then_new_card' || o.card === 'three_ds_fails_then_new_card') {
      add('decline_then_new_card');
    }
    if (o.card === 'declines') add('decline_kept');
    if (o.card === 'three_ds_authenticated') add('three_ds_succeed');
    if (o.card === 'three_ds_fails_then_new_card') add('three_ds_fail');
    if (o.card === 'three_ds_never_answered') add('three_ds_never_answered');
  }
  for (const e of schedule.events) add(e.kind);
  return counts;
}

/** Orders by card plan, for the report. */
export function cardPlanCounts(schedule: ChaosSchedule): Record<CardPlan, number> {
  const counts = Object.fromEntries(CARD_PLANS.map((p) => [p, 0])) as Record<CardPlan, number>;
  for (const o of schedule.orders) counts[o.card] += 1;
  return counts;
}
