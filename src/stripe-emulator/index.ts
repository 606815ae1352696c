/**
 * The local Stripe server ("emulator"): start it in-process and point the unmodified `stripe` SDK at
 * it with `new Stripe(key, { host, port, protocol: 'http' })`.
 *
 * It implements the contract in the project's `stripe-contract.md` (idempotency rows I1–I20, the
 * PaymentIntent lifecycle, refunds, events, search with lag, fault injection); the operator guide is
 * `docs/stripe-emulator.md`.
 */
import { z } from 'zod';
import { type Clock } from './clock';
import { type EventLog } from './events';
import { type FaultRule, type FaultRuleInput } from './faults';
import { type PaymentIntentObject, type SettleOutcome } from './payment-intents';
import { Router } from './router';
import { emulatorRoutes } from './routes';
import { EmulatorHttpServer } from './server';
import {
  type EmulatorSettings,
  type SettingsPatch,
  applySettingsPatch,
  parseSettingsPatch,
} from './settings';
import { EmulatorState, type Ledger, type RequestStats } from './state';

export { Clock } from './clock';
export { EventLog, type StripeEvent, type EventRequest, STRIPE_API_VERSION } from './events';
export { FAULT_KINDS, type FaultKind, type FaultRule, type FaultRuleInput } from './faults';
export { EmulatorState, type Ledger, type RequestStats } from './state';
export { Router, type Route, type ApiRoute, type RawRoute } from './router';
export { StripeApiError } from './errors';
export { TEST_PAYMENT_METHODS } from './payment-methods';
export type { EmulatorSettings, SettingsPatch } from './settings';
export type { PaymentIntentObject, SettleOutcome } from './payment-intents';

export interface StripeEmulatorOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** When set, only this exact key is accepted; otherwise any `sk_test_…` key. */
  apiKey?: string;
  /** Default 0. */
  searchLagSeconds?: number;
  /** Default 3. */
  asyncSettleSeconds?: number;
  /** Default 86 400 (24 h). */
  idempotencyTtlSeconds?: number;
  /** Do not log unexpected handler errors to stderr. */
  quiet?: boolean;
}

export interface EmulatorControl {
  addFault(rule: FaultRuleInput): FaultRule;
  /** Removes one rule by id, or all of them; returns how many were removed. */
  clearFaults(id?: string): number;
  faults(): FaultRule[];
  advanceClock(seconds: number): void;
  ledger(): Ledger;
  reset(): void;
  configure(patch: SettingsPatch): EmulatorSettings;
  settings(): EmulatorSettings;
  stats(): RequestStats;
  authenticate(paymentIntentId: string, outcome: SettleOutcome): PaymentIntentObject;
  settle(paymentIntentId: string, outcome?: SettleOutcome): PaymentIntentObject;
}

export interface StripeEmulator {
  /** `http://host:port`, no trailing slash. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly clock: Clock;
  readonly events: EventLog;
  readonly control: EmulatorControl;
  /** The registries behind the API, for in-process extensions. */
  readonly state: EmulatorState;
  readonly router: Router;
  stop(): Promise<void>;
}

const optionsSchema = z.strictObject({
  host: z.string().min(1).optional(),
  port: z.number().int().min(0).max(65_535).optional(),
  apiKey: z.string().min(1).optional(),
  searchLagSeconds: z.number().finite().min(0).optional(),
  asyncSettleSeconds: z.number().finite().min(0).optional(),
  idempotencyTtlSeconds: z.number().finite().min(0).optional(),
  quiet: z.boolean().optional(),
});

/** How often real time is checked for asynchronous payments that became due. */
const SETTLE_POLL_MS = 200;

export async function startStripeEmulator(options: StripeEmulatorOptions = {}): Promise<StripeEmulator> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new Error(
      `Invalid Stripe emulator options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const opts = parsed.data;
  const onError = (error: unknown): void => {
    if (!opts.quiet) console.error('[stripe-emulator] unexpected error:', error);
  };
  const settings: SettingsPatch = parseSettingsPatch({
    ...(opts.searchLagSeconds === undefined ? {} : { searchLagSeconds: opts.searchLagSeconds }),
    ...(opts.asyncSettleSeconds === undefined ? {} : { asyncSettleSeconds: opts.asyncSettleSeconds }),
    ...(opts.idempotencyTtlSeconds === undefined
      ? {}
      : { idempotencyTtlSeconds: opts.idempotencyTtlSeconds }),
  });
  const state = new EmulatorState({
    settings: Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined)),
    ...(opts.apiKey === undefined ? {} : { apiKey: opts.apiKey }),
    onError,
  });
  const router = new Router(emulatorRoutes(state));
  const http = new EmulatorHttpServer(state, router, onError);
  const host = opts.host ?? '127.0.0.1';
  const address = await http.listen(host, opts.port ?? 0);
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  state.baseUrl = `http://${urlHost}:${address.port}`;

  const settleTimer = setInterval(() => {
    try {
      state.paymentIntents.settleDue();
    } catch (error) {
      onError(error);
    }
  }, SETTLE_POLL_MS);
  settleTimer.unref();

  let stopped: Promise<void> | undefined;
  const control: EmulatorControl = {
    addFault: (rule) => state.faults.add(rule),
    clearFaults: (id) => state.faults.remove(id),
    faults: () => state.faults.list(),
    advanceClock: (seconds) => state.advanceClock(seconds),
    ledger: () => state.ledger(),
    reset: () => state.reset(),
    configure: (patch) => {
      applySettingsPatch(state.settings, parseSettingsPatch(patch));
      return { ...state.settings };
    },
    settings: () => ({ ...state.settings }),
    stats: () => state.stats(),
    authenticate: (id, outcome) => state.paymentIntents.authenticate(id, outcome),
    settle: (id, outcome) => state.paymentIntents.settle(id, outcome),
  };

  return {
    url: state.baseUrl,
    host: address.address,
    port: address.port,
    clock: state.clock,
    events: state.events,
    control,
    state,
    router,
    stop: () => {
      stopped ??= (async () => {
        clearInterval(settleTimer);
        await state.runStopHooks();
        await http.close();
      })();
      return stopped;
    },
  };
}
