/**
 * Everything one emulator instance holds: settings, clock, event log, the resource registries,
 * idempotency keys, fault rules and request statistics. Resource classes are usable in-process
 * (Checkout Sessions create and confirm PaymentIntents through `state.paymentIntents`), and
 * extensions register `onReset` / `onStop` hooks so `reset()` and `stop()` reach their state too.
 */
import { Charges } from './charges';
import { Clock } from './clock';
import { Customers } from './customers';
import { EventLog } from './events';
import { FaultInjector } from './faults';
import { IdempotencyStore } from './idempotency';
import { type LedgerPaymentIntent, PaymentIntents } from './payment-intents';
import { PaymentMethods } from './payment-methods';
import { type LedgerRefund, Refunds } from './refunds';
import { DEFAULT_SETTINGS, type EmulatorSettings } from './settings';

export interface Ledger {
  readonly payment_intents: LedgerPaymentIntent[];
  readonly refunds: LedgerRefund[];
}

export interface RequestStats {
  readonly total: number;
  /** Counts by `METHOD /route/pattern` (path parameters as `:id`), or `METHOD <unmatched>`. */
  readonly by_route: Record<string, number>;
}

export interface EmulatorStateOptions {
  readonly settings?: Partial<EmulatorSettings>;
  readonly apiKey?: string;
  readonly onError?: (error: unknown) => void;
}

export class EmulatorState {
  readonly settings: EmulatorSettings;
  readonly clock = new Clock();
  readonly events: EventLog;
  readonly paymentMethods: PaymentMethods;
  readonly charges: Charges;
  readonly customers: Customers;
  readonly paymentIntents: PaymentIntents;
  readonly refunds: Refunds;
  readonly idempotency: IdempotencyStore;
  readonly faults = new FaultInjector();
  readonly apiKey: string | undefined;
  /** Set once the server listens: `http://host:port`. */
  baseUrl = '';

  private statsTotal = 0;
  private readonly statsByRoute = new Map<string, number>();
  private readonly resetHooks: (() => void)[] = [];
  private readonly clockHooks: (() => void)[] = [];
  private readonly stopHooks: (() => void | Promise<void>)[] = [];

  constructor(options: EmulatorStateOptions = {}) {
    this.settings = { ...DEFAULT_SETTINGS, ...options.settings };
    this.apiKey = options.apiKey;
    this.events = new EventLog(this.clock, options.onError);
    this.paymentMethods = new PaymentMethods(this.clock);
    this.charges = new Charges(this.clock);
    this.customers = new Customers(this.clock, this.events);
    this.paymentIntents = new PaymentIntents({
      clock: this.clock,
      events: this.events,
      settings: this.settings,
      paymentMethods: this.paymentMethods,
      charges: this.charges,
      customers: this.customers,
      baseUrl: () => this.baseUrl,
    });
    this.refunds = new Refunds(this.clock, this.events, this.charges, this.paymentIntents);
    this.idempotency = new IdempotencyStore(this.clock, () => this.settings.idempotencyTtlSeconds);
  }

  /** Moves the emulator clock and runs whatever became due (asynchronous settlements). */
  advanceClock(seconds: number): void {
    this.clock.advance(seconds);
    this.paymentIntents.settleDue();
    for (const hook of this.clockHooks) hook();
  }

  ledger(): Ledger {
    return { payment_intents: this.paymentIntents.ledger(), refunds: this.refunds.ledger() };
  }

  countRequest(key: string): void {
    this.statsTotal += 1;
    this.statsByRoute.set(key, (this.statsByRoute.get(key) ?? 0) + 1);
  }

  stats(): RequestStats {
    return { total: this.statsTotal, by_route: Object.fromEntries(this.statsByRoute) };
  }

  /** Forgets every object, event, key, fault rule and statistic; settings and subscribers stay. */
  reset(): void {
    this.events.clear();
    this.paymentMethods.clear();
    this.charges.clear();
    this.customers.clear();
    this.paymentIntents.clear();
    this.refunds.clear();
    this.idempotency.clear();
    this.faults.remove();
    this.clock.resetOffset();
    this.statsTotal = 0;
    this.statsByRoute.clear();
    for (const hook of this.resetHooks) hook();
  }

  /** Runs after every `advanceClock`, for extensions with their own deadlines (Checkout expiry). */
  onClockAdvance(hook: () => void): void {
    this.clockHooks.push(hook);
  }

  onReset(hook: () => void): void {
    this.resetHooks.push(hook);
  }

  onStop(hook: () => void | Promise<void>): void {
    this.stopHooks.push(hook);
  }

  async runStopHooks(): Promise<void> {
    for (const hook of this.stopHooks) await hook();
  }
}
