/**
 * PaymentIntents: create (optionally confirming at once), confirm, retrieve, cancel, capture, list
 * and search, with the state machine Stripe documents:
 *
 *   requires_payment_method → requires_confirmation → (confirm)
 *     → succeeded | requires_capture (manual capture) | requires_action (3-D Secure)
 *     | processing (bank debit, settles later) | back to requires_payment_method (decline, 402)
 *
 * A PaymentIntent succeeds at most once: every path to `succeeded` starts from a state that cannot
 * be reached again afterwards, and authenticating or settling a canceled PaymentIntent is refused
 * before any charge is made. Each change emits its events with the causing request's id and
 * idempotency key, and records a search snapshot so search can lag behind writes.
 *
 * All parameter checks run before any state changes, and raise non-stored errors; once a method
 * starts changing state, every error it raises is a stored business error.
 */
import { type ChargeObject, type Charges, isSuccessfulCharge } from './charges';
import { type Clock } from './clock';
import { type Customers } from './customers';
import { StripeApiError, paramError, resourceMissing } from './errors';
import { type EventLog, type EventRequest, NO_REQUEST } from './events';
import { newClientSecret, newId } from './ids';
import { type ListPage, type ListPaging, listPage } from './list';
import { type Metadata, ParamReader } from './params';
import { type PaymentMethodObject, type PaymentMethodRecord, type PaymentMethods } from './payment-methods';
import { type FormParams } from './router';
import { type EmulatorSettings } from './settings';

export type PaymentIntentStatus =
  | 'requires_payment_method'
  | 'requires_confirmation'
  | 'requires_action'
  | 'processing'
  | 'requires_capture'
  | 'canceled'
  | 'succeeded';

export type CaptureMethod = 'automatic' | 'automatic_async' | 'manual';

export interface LastPaymentError {
  type: string;
  code: string;
  decline_code?: string;
  message: string;
  param?: string;
  doc_url: string;
  charge?: string;
  payment_method: PaymentMethodObject;
}

export type NextAction =
  | { type: 'redirect_to_url'; redirect_to_url: { url: string; return_url: string } }
  | { type: 'use_stripe_sdk'; use_stripe_sdk: { type: 'three_d_secure_redirect'; stripe_js: string } };

export interface PaymentIntentObject {
  id: string;
  object: 'payment_intent';
  allowed_payment_method_types: string[] | null;
  amount: number;
  amount_capturable: number;
  amount_received: number;
  automatic_payment_methods: { enabled: boolean; allow_redirects?: 'always' | 'never' } | null;
  canceled_at: number | null;
  cancellation_reason: string | null;
  capture_method: CaptureMethod;
  client_secret: string;
  confirmation_method: 'automatic' | 'manual';
  created: number;
  currency: string;
  customer: string | null;
  description: string | null;
  excluded_payment_method_types: string[] | null;
  last_payment_error: LastPaymentError | null;
  latest_charge: string | null;
  livemode: false;
  metadata: Metadata;
  next_action: NextAction | null;
  payment_method: string | null;
  payment_method_types: string[];
  receipt_email: string | null;
  setup_future_usage: string | null;
  statement_descriptor: string | null;
  status: PaymentIntentStatus;
}

interface SearchVersion {
  readonly at: number;
  readonly snapshot: PaymentIntentObject;
}

interface PaymentIntentRecord {
  readonly object: PaymentIntentObject;
  returnUrl: string | null;
  /** Snapshots for lagged search, oldest first; see `recordVersion`. */
  versions: SearchVersion[];
}

interface PendingSettlement {
  readonly dueAt: number;
  readonly succeed: boolean;
}

export type SettleOutcome = 'succeed' | 'fail';

export interface ConfirmOptions {
  readonly paymentMethod?: string;
  readonly returnUrl?: string;
  readonly offSession?: boolean;
}

export interface LedgerPaymentIntent {
  readonly id: string;
  readonly status: PaymentIntentStatus;
  readonly amount: number;
  readonly currency: string;
  readonly metadata: Metadata;
  readonly successful_charges: number;
  readonly amount_refunded: number;
  readonly created: number;
}

export interface PaymentIntentListOptions extends ListPaging {
  readonly customer?: string;
}

export type PaymentIntentListPage = ListPage<PaymentIntentObject>;

export interface SearchResult {
  readonly object: 'search_result';
  readonly data: PaymentIntentObject[];
  readonly has_more: boolean;
  readonly next_page: string | null;
  readonly url: '/v1/payment_intents/search';
}

const CONFIRMABLE: readonly PaymentIntentStatus[] = [
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
];
const CANCELABLE: readonly PaymentIntentStatus[] = [
  'requires_payment_method',
  'requires_capture',
  'requires_confirmation',
  'requires_action',
];
const CONFIRM_PARAMS = [
  'error_on_requires_action',
  'mandate_data',
  'off_session',
  'payment_method',
  'payment_method_options',
  'receipt_email',
  'return_url',
  'setup_future_usage',
  'use_stripe_sdk',
] as const;
const CREATE_PARAMS = [
  ...CONFIRM_PARAMS,
  'allowed_payment_method_types',
  'amount',
  'automatic_payment_methods',
  'capture_method',
  'confirm',
  'confirmation_method',
  'currency',
  'customer',
  'description',
  'excluded_payment_method_types',
  'metadata',
  'payment_method_types',
  'statement_descriptor',
  'statement_descriptor_suffix',
] as const;
const MINIMUM_AMOUNTS: Readonly<Record<string, number>> = { usd: 50, eur: 50, gbp: 30, cad: 50, aud: 50 };
const AUTHENTICATION_FAILED_MESSAGE =
  'The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.';
const RETURN_URL_REQUIRED_MESSAGE =
  "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these payment methods might redirect your customer off of your page, you must provide a `return_url`. If you don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.";

export interface PaymentIntentsDeps {
  readonly clock: Clock;
  readonly events: EventLog;
  readonly settings: EmulatorSettings;
  readonly paymentMethods: PaymentMethods;
  readonly charges: Charges;
  readonly customers: Customers;
  /** The emulator's base URL (for the 3-D Secure page in `next_action`). */
  readonly baseUrl: () => string;
}

export class PaymentIntents {
  private readonly records = new Map<string, PaymentIntentRecord>();
  /**
   * Records by every metadata pair they have ever carried (`key\u0000value`), so a metadata search
   * looks at a handful of candidates instead of every PaymentIntent. Entries are only added: the
   * candidates are always checked against the version search may see.
   */
  private readonly metadataIndex = new Map<string, Set<PaymentIntentRecord>>();
  private readonly pending = new Map<string, PendingSettlement>();
  /** The earliest `dueAt` among pending settlements, so the per-request check is one comparison. */
  private nextDueAt = Number.POSITIVE_INFINITY;

  constructor(private readonly deps: PaymentIntentsDeps) {}

  create(params: FormParams, request: EventRequest): PaymentIntentObject {
    const p = new ParamReader(params).allowOnly(CREATE_PARAMS);
    const amount = p.requiredInteger('amount');
    const currency = p.requiredString('currency', 3).toLowerCase();
    if (!/^[a-z]{3}$/.test(currency)) throw paramError(`Invalid currency: ${currency}.`, 'currency');
    const minimum = MINIMUM_AMOUNTS[currency] ?? 1;
    if (amount < minimum) {
      throw paramError(
        `Amount must be at least ${minimum} ${currency} (in the currency's smallest unit)`,
        'amount',
        'amount_too_small',
      );
    }
    if (amount > 99_999_999) {
      throw paramError('Amount must be no more than 99999999', 'amount', 'amount_too_large');
    }
    const confirm = p.optionalBoolean('confirm') ?? false;
    // API version 2026-10-28.endive names the list `allowed_payment_method_types`; older versions
    // (and the contract) say `payment_method_types`. Both restrict the PaymentIntent the same way.
    const allowedTypes = p.optionalStringList('allowed_payment_method_types');
    const legacyTypes = p.optionalStringList('payment_method_types');
    if (allowedTypes && legacyTypes) {
      throw paramError(
        'You may only specify one of these parameters: allowed_payment_method_types, payment_method_types.',
        'allowed_payment_method_types',
      );
    }
    const paymentMethodTypes = allowedTypes ?? legacyTypes;
    const excludedTypes = p.optionalStringList('excluded_payment_method_types');
    const apm = p.optionalObject('automatic_payment_methods');
    apm?.allowOnly(['enabled', 'allow_redirects']);
    const apmEnabled = apm?.optionalBoolean('enabled');
    const allowRedirects = apm?.optionalEnum('allow_redirects', ['always', 'never'] as const);
    if (paymentMethodTypes && apmEnabled) {
      throw paramError(
        `You may only specify one of these parameters: automatic_payment_methods, ${allowedTypes ? 'allowed_payment_method_types' : 'payment_method_types'}.`,
        'automatic_payment_methods',
      );
    }
    const customer = p.optionalString('customer');
    if (customer !== undefined && !this.deps.customers.has(customer)) {
      throw paramError(`No such customer: '${customer}'`, 'customer', 'resource_missing');
    }
    if (!confirm) {
      for (const key of ['return_url', 'off_session', 'error_on_requires_action', 'mandate_data']) {
        if (p.has(key)) {
          throw paramError(`You can only pass \`${key}\` when \`confirm\` is \`true\`.`, key);
        }
      }
    }
    // Current API versions turn automatic payment methods on unless types are listed or it is
    // explicitly disabled (then cards only).
    const automatic =
      paymentMethodTypes === undefined && apmEnabled !== false
        ? { enabled: true, allow_redirects: allowRedirects ?? 'always' }
        : null;
    const confirmOptions = this.readConfirmOptions(p);
    if (confirmOptions.paymentMethod !== undefined) {
      this.checkPaymentMethodType(
        confirmOptions.paymentMethod,
        automatic ? null : (paymentMethodTypes ?? ['card']),
      );
    }
    if (confirm) this.checkConfirmable(automatic, confirmOptions, confirmOptions.paymentMethod);
    const captureMethod = p.optionalEnum('capture_method', [
      'automatic',
      'automatic_async',
      'manual',
    ] as const);
    const confirmationMethod = p.optionalEnum('confirmation_method', ['automatic', 'manual'] as const);
    p.optionalOpaqueObject('payment_method_options');
    p.optionalOpaqueObject('mandate_data');

    const id = newId('pi');
    const paymentMethod =
      confirmOptions.paymentMethod === undefined
        ? undefined
        : this.deps.paymentMethods.resolve(confirmOptions.paymentMethod);
    const object: PaymentIntentObject = {
      id,
      object: 'payment_intent',
      allowed_payment_method_types: allowedTypes ?? null,
      amount,
      amount_capturable: 0,
      amount_received: 0,
      automatic_payment_methods: automatic,
      canceled_at: null,
      cancellation_reason: null,
      capture_method: captureMethod ?? 'automatic_async',
      client_secret: newClientSecret(id),
      confirmation_method: confirmationMethod ?? 'automatic',
      created: this.deps.clock.unix(),
      currency,
      customer: customer ?? null,
      description: p.optionalString('description') ?? null,
      excluded_payment_method_types: excludedTypes ?? null,
      last_payment_error: null,
      latest_charge: null,
      livemode: false,
      metadata: p.optionalMetadata() ?? {},
      next_action: null,
      payment_method: paymentMethod?.object.id ?? null,
      payment_method_types: (
        paymentMethodTypes ?? (automatic ? ['card', 'us_bank_account'] : ['card'])
      ).filter((type) => !excludedTypes?.includes(type)),
      receipt_email: p.optionalString('receipt_email') ?? null,
      setup_future_usage:
        p.optionalEnum('setup_future_usage', ['on_session', 'off_session'] as const) ?? null,
      statement_descriptor: p.optionalString('statement_descriptor', 22) ?? null,
      status: paymentMethod ? 'requires_confirmation' : 'requires_payment_method',
    };
    const record: PaymentIntentRecord = { object, returnUrl: null, versions: [] };
    this.records.set(id, record);
    this.indexMetadata(record);
    this.emit('payment_intent.created', record, request);
    if (confirm && paymentMethod) this.runConfirm(record, paymentMethod, confirmOptions, request);
    return object;
  }

  confirm(id: string, params: FormParams, request: EventRequest): PaymentIntentObject {
    const p = new ParamReader(params).allowOnly(CONFIRM_PARAMS);
    const record = this.getRecord(id);
    const pi = record.object;
    const options = this.readConfirmOptions(p);
    p.optionalOpaqueObject('payment_method_options');
    p.optionalOpaqueObject('mandate_data');
    this.checkState(pi, CONFIRMABLE, 'confirm', 'confirmed');
    const paymentMethodId = options.paymentMethod ?? pi.payment_method ?? undefined;
    if (paymentMethodId !== undefined) {
      this.checkPaymentMethodType(
        paymentMethodId,
        pi.automatic_payment_methods ? null : pi.payment_method_types,
      );
    }
    this.checkConfirmable(pi.automatic_payment_methods, options, paymentMethodId);
    const paymentMethod = this.deps.paymentMethods.resolve(paymentMethodId ?? '');
    this.runConfirm(record, paymentMethod, options, request);
    return pi;
  }

  retrieve(id: string): PaymentIntentObject {
    return this.getRecord(id).object;
  }

  /** The `return_url` given when the PaymentIntent was last confirmed, if any. */
  returnUrlOf(id: string): string | null {
    return this.getRecord(id).returnUrl;
  }

  cancel(id: string, params: FormParams, request: EventRequest): PaymentIntentObject {
    const p = new ParamReader(params).allowOnly(['cancellation_reason']);
    const reason = p.optionalEnum('cancellation_reason', [
      'duplicate',
      'fraudulent',
      'requested_by_customer',
      'abandoned',
    ] as const);
    const record = this.getRecord(id);
    const pi = record.object;
    this.checkState(pi, CANCELABLE, 'cancel', 'canceled');
    if (pi.status === 'requires_capture') {
      const charge = this.latestCharge(pi);
      if (charge) {
        charge.refunded = true;
        charge.amount_refunded = charge.amount;
      }
    }
    pi.status = 'canceled';
    pi.canceled_at = this.deps.clock.unix();
    pi.cancellation_reason = reason ?? null;
    pi.amount_capturable = 0;
    pi.next_action = null;
    this.emit('payment_intent.canceled', record, request);
    return pi;
  }

  capture(id: string, params: FormParams, request: EventRequest): PaymentIntentObject {
    const p = new ParamReader(params).allowOnly(['amount_to_capture', 'metadata']);
    const amountToCapture = p.optionalInteger('amount_to_capture');
    const metadata = p.optionalMetadata();
    const record = this.getRecord(id);
    const pi = record.object;
    const charge = this.latestCharge(pi);
    if (pi.status === 'succeeded' && charge?.captured) {
      throw new StripeApiError(
        400,
        'invalid_request_error',
        `Charge ${charge.id} has already been captured.`,
        {
          code: 'charge_already_captured',
        },
      );
    }
    this.checkState(pi, ['requires_capture'], 'capture', 'captured');
    const amount = amountToCapture ?? pi.amount_capturable;
    if (amount <= 0 || amount > pi.amount_capturable) {
      throw new StripeApiError(
        400,
        'invalid_request_error',
        `The amount_to_capture must be greater than 0 and at most the PaymentIntent's amount_capturable (${pi.amount_capturable}).`,
        { code: 'amount_too_large', param: 'amount_to_capture' },
      );
    }
    if (charge) {
      charge.captured = true;
      charge.amount_captured = amount;
      if (amount < charge.amount) {
        charge.amount_refunded = charge.amount - amount;
      }
    }
    if (metadata) {
      mergeMetadata(pi.metadata, metadata);
      this.indexMetadata(record);
    }
    pi.status = 'succeeded';
    pi.amount_received = amount;
    pi.amount_capturable = 0;
    if (charge) this.deps.events.emit('charge.captured', charge, request);
    this.emit('payment_intent.succeeded', record, request);
    return pi;
  }

  /**
   * Completes or fails 3-D Secure for a PaymentIntent in `requires_action` (the control endpoint
   * and the emulator's 3-D Secure page call this). Any other state, canceled included, is refused
   * before anything changes, so a late authentication can never charge.
   */
  authenticate(id: string, outcome: SettleOutcome): PaymentIntentObject {
    const record = this.getRecord(id);
    const pi = record.object;
    if (pi.status !== 'requires_action') {
      throw new StripeApiError(
        400,
        'invalid_request_error',
        `PaymentIntent ${pi.id} has status ${pi.status}; only a PaymentIntent in requires_action can be authenticated.`,
        { code: 'payment_intent_unexpected_state' },
      );
    }
    const paymentMethod = this.deps.paymentMethods.get(pi.payment_method ?? '');
    if (!paymentMethod) throw resourceMissing('PaymentMethod', pi.payment_method ?? '', 'payment_method');
    pi.next_action = null;
    if (outcome === 'succeed') {
      this.chargeSucceeded(record, paymentMethod, NO_REQUEST);
    } else {
      pi.status = 'requires_payment_method';
      pi.last_payment_error = {
        type: 'invalid_request_error',
        code: 'payment_intent_authentication_failure',
        message: AUTHENTICATION_FAILED_MESSAGE,
        doc_url: 'https://stripe.com/docs/error-codes/payment-intent-authentication-failure',
        payment_method: paymentMethod.object,
      };
      this.emit('payment_intent.payment_failed', record, NO_REQUEST);
    }
    return pi;
  }

  /**
   * Settles a `processing` PaymentIntent now, with its payment method's outcome or the one given.
   * Refused for any other state (a canceled PaymentIntent never settles).
   */
  settle(id: string, outcome?: SettleOutcome): PaymentIntentObject {
    const record = this.getRecord(id);
    const pi = record.object;
    const pending = this.pending.get(id);
    if (pi.status !== 'processing' || !pending) {
      throw new StripeApiError(
        400,
        'invalid_request_error',
        `PaymentIntent ${pi.id} has status ${pi.status}; only a processing PaymentIntent can settle.`,
        { code: 'payment_intent_unexpected_state' },
      );
    }
    this.pending.delete(id);
    this.finishSettlement(record, outcome === undefined ? pending.succeed : outcome === 'succeed');
    return pi;
  }

  /** Settles every asynchronous payment whose time has come on the emulator clock. */
  settleDue(): void {
    const now = this.deps.clock.now();
    if (now < this.nextDueAt) return;
    this.nextDueAt = Number.POSITIVE_INFINITY;
    for (const [id, pending] of this.pending) {
      if (pending.dueAt > now) {
        this.nextDueAt = Math.min(this.nextDueAt, pending.dueAt);
        continue;
      }
      this.pending.delete(id);
      const record = this.records.get(id);
      if (record && record.object.status === 'processing') this.finishSettlement(record, pending.succeed);
    }
  }

  /**
   * `GET /v1/payment_intents`: newest first, filtered by `customer` and `created`, paged with
   * `starting_after` / `ending_before`. Unlike search, a list sees every PaymentIntent at once
   * (Stripe's list endpoints read the primary store), so it is the read a reconciler relies on.
   */
  list(options: PaymentIntentListOptions = {}): PaymentIntentListPage {
    // Records are kept in creation order and the clock only moves forward: reversed is newest first.
    const all = [...this.records.values()].map((r) => r.object).reverse();
    return listPage(
      all,
      (pi) => options.customer === undefined || pi.customer === options.customer,
      options,
      'payment_intent',
    );
  }

  /**
   * `query` clauses `metadata['k']:'v'`, `status:'v'`, `currency:'v'`, `customer:'v'` joined by AND.
   * Matches against what was indexed `searchLagSeconds` ago; returns the current objects.
   */
  search(params: FormParams): SearchResult {
    const p = new ParamReader(params).allowOnly(['query', 'limit', 'page']);
    const query = p.requiredString('query');
    const limit = p.optionalInteger('limit') ?? 10;
    if (limit < 1 || limit > 100) throw paramError('Invalid limit: must be between 1 and 100', 'limit');
    const page = p.optionalString('page');
    let offset = 0;
    if (page !== undefined) {
      const match = /^page_(\d+)$/.exec(page);
      if (!match) throw paramError(`Invalid page: ${page}`, 'page');
      offset = Number(match[1]);
    }
    const clauses = parseSearchQuery(query);
    const cutoff = this.deps.clock.now() - this.deps.settings.searchLagSeconds;
    const matches: PaymentIntentObject[] = [];
    for (const record of this.searchCandidates(clauses)) {
      const visible = visibleVersion(record.versions, cutoff);
      if (visible && clauses.every((clause) => clauseMatches(clause, visible))) matches.push(record.object);
    }
    matches.sort((a, b) => b.created - a.created);
    const data = matches.slice(offset, offset + limit);
    const hasMore = matches.length > offset + limit;
    return {
      object: 'search_result',
      data,
      has_more: hasMore,
      next_page: hasMore ? `page_${offset + limit}` : null,
      url: '/v1/payment_intents/search',
    };
  }

  /** The succeeded charge a refund for this PaymentIntent applies to. */
  refundableCharge(id: string): ChargeObject {
    const pi = this.getRecord(id, 'payment_intent').object;
    const charge = this.latestCharge(pi);
    if (pi.status !== 'succeeded' || !charge || !charge.captured) {
      throw new StripeApiError(
        400,
        'invalid_request_error',
        `This PaymentIntent (${pi.id}) does not have a successful charge to refund.`,
        { code: 'payment_intent_unexpected_state', param: 'payment_intent' },
      );
    }
    return charge;
  }

  ledger(): LedgerPaymentIntent[] {
    const successful = new Map<string, { count: number; refunded: number }>();
    for (const charge of this.deps.charges.all()) {
      if (!isSuccessfulCharge(charge)) continue;
      const entry = successful.get(charge.payment_intent) ?? { count: 0, refunded: 0 };
      entry.count += 1;
      if (charge.captured)
        entry.refunded += charge.amount_refunded - (charge.amount - charge.amount_captured);
      successful.set(charge.payment_intent, entry);
    }
    return [...this.records.values()].map(({ object: pi }) => ({
      id: pi.id,
      status: pi.status,
      amount: pi.amount,
      currency: pi.currency,
      metadata: { ...pi.metadata },
      successful_charges: successful.get(pi.id)?.count ?? 0,
      amount_refunded: successful.get(pi.id)?.refunded ?? 0,
      created: pi.created,
    }));
  }

  clear(): void {
    this.records.clear();
    this.metadataIndex.clear();
    this.pending.clear();
    this.nextDueAt = Number.POSITIVE_INFINITY;
  }

  private indexMetadata(record: PaymentIntentRecord): void {
    for (const [key, value] of Object.entries(record.object.metadata)) {
      const indexKey = `${key}\u0000${value}`;
      let set = this.metadataIndex.get(indexKey);
      if (!set) {
        set = new Set();
        this.metadataIndex.set(indexKey, set);
      }
      set.add(record);
    }
  }

  private searchCandidates(clauses: readonly SearchClause[]): Iterable<PaymentIntentRecord> {
    for (const clause of clauses) {
      if (clause.field === 'metadata') {
        return this.metadataIndex.get(`${clause.key}\u0000${clause.value}`) ?? [];
      }
    }
    return this.records.values();
  }

  private readConfirmOptions(p: ParamReader): ConfirmOptions {
    const paymentMethod = p.optionalString('payment_method');
    const returnUrl = p.optionalString('return_url', 2048);
    if (returnUrl !== undefined && !/^https?:\/\/\S+$/.test(returnUrl)) {
      throw paramError('Not a valid URL', 'return_url', 'url_invalid');
    }
    const offSession = p.optionalBoolean('off_session');
    p.optionalBoolean('error_on_requires_action');
    p.optionalBoolean('use_stripe_sdk');
    p.optionalString('receipt_email');
    p.optionalEnum('setup_future_usage', ['on_session', 'off_session'] as const);
    return {
      ...(paymentMethod === undefined ? {} : { paymentMethod }),
      ...(returnUrl === undefined ? {} : { returnUrl }),
      ...(offSession === undefined ? {} : { offSession }),
    };
  }

  private checkPaymentMethodType(idOrToken: string, allowedTypes: readonly string[] | null): void {
    if (!this.deps.paymentMethods.isKnown(idOrToken)) {
      throw paramError(`No such PaymentMethod: '${idOrToken}'`, 'payment_method', 'resource_missing');
    }
    if (allowedTypes === null) return;
    const type = idOrToken.startsWith('pm_usBankAccount')
      ? 'us_bank_account'
      : (this.deps.paymentMethods.get(idOrToken)?.object.type ?? 'card');
    if (!allowedTypes.includes(type)) {
      throw paramError(
        `The provided PaymentMethod of type ${type} does not match the expected types: ${allowedTypes.join(', ')}.`,
        'payment_method',
        'payment_intent_incompatible_payment_method',
      );
    }
  }

  /** Checks made before confirming changes anything; they raise non-stored 400s. */
  private checkConfirmable(
    automatic: PaymentIntentObject['automatic_payment_methods'],
    options: ConfirmOptions,
    paymentMethod: string | undefined,
  ): void {
    if (paymentMethod === undefined) {
      throw paramError(
        "You cannot confirm this PaymentIntent because it's missing a payment method. You can either update the PaymentIntent with a payment method and then confirm it again, or confirm it again directly with a payment method.",
        'payment_method',
        'payment_intent_unexpected_state',
      );
    }
    if (automatic?.enabled && automatic.allow_redirects !== 'never' && options.returnUrl === undefined) {
      throw paramError(RETURN_URL_REQUIRED_MESSAGE, 'return_url');
    }
  }

  private checkState(
    pi: PaymentIntentObject,
    allowed: readonly PaymentIntentStatus[],
    verb: string,
    participle: string,
  ): void {
    if (allowed.includes(pi.status)) return;
    const message =
      verb === 'confirm' && pi.status === 'succeeded'
        ? 'You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed.'
        : `You cannot ${verb} this PaymentIntent because it has a status of ${pi.status}. Only a PaymentIntent with one of the following statuses may be ${participle}: ${allowed.join(', ')}.`;
    throw new StripeApiError(400, 'invalid_request_error', message, {
      code: 'payment_intent_unexpected_state',
      payment_intent: structuredClone(pi) as unknown as Record<string, unknown>,
    });
  }

  private runConfirm(
    record: PaymentIntentRecord,
    paymentMethod: PaymentMethodRecord,
    options: ConfirmOptions,
    request: EventRequest,
  ): void {
    const pi = record.object;
    pi.payment_method = paymentMethod.object.id;
    pi.last_payment_error = null;
    pi.next_action = null;
    if (options.returnUrl !== undefined) record.returnUrl = options.returnUrl;
    const behaviour = paymentMethod.behaviour;
    switch (behaviour.kind) {
      case 'succeed':
        this.chargeSucceeded(record, paymentMethod, request);
        return;
      case 'decline':
        this.decline(record, paymentMethod, request, {
          code: behaviour.code,
          declineCode: behaviour.declineCode,
          message: behaviour.message,
          ...(behaviour.param === undefined ? {} : { param: behaviour.param }),
        });
        return;
      case 'authenticate':
        if (options.offSession) {
          this.decline(record, paymentMethod, request, {
            code: 'authentication_required',
            declineCode: 'authentication_required',
            message: 'Your card was declined. This transaction requires authentication.',
          });
          return;
        }
        pi.status = 'requires_action';
        pi.next_action = this.nextAction(record);
        this.emit('payment_intent.requires_action', record, request);
        return;
      case 'async_succeed':
      case 'async_fail': {
        const charge = this.newCharge(pi, paymentMethod, 'pending', true);
        pi.latest_charge = charge.id;
        pi.status = 'processing';
        const dueAt = this.deps.clock.now() + this.deps.settings.asyncSettleSeconds;
        this.pending.set(pi.id, { dueAt, succeed: behaviour.kind === 'async_succeed' });
        this.nextDueAt = Math.min(this.nextDueAt, dueAt);
        this.deps.events.emit('charge.pending', charge, request);
        this.emit('payment_intent.processing', record, request);
        return;
      }
    }
  }

  private nextAction(record: PaymentIntentRecord): NextAction {
    const url = `${this.deps.baseUrl()}/_emulator/3ds/${record.object.id}`;
    if (record.returnUrl !== null) {
      return { type: 'redirect_to_url', redirect_to_url: { url, return_url: record.returnUrl } };
    }
    return { type: 'use_stripe_sdk', use_stripe_sdk: { type: 'three_d_secure_redirect', stripe_js: url } };
  }

  private chargeSucceeded(
    record: PaymentIntentRecord,
    paymentMethod: PaymentMethodRecord,
    request: EventRequest,
  ): void {
    const pi = record.object;
    const manual = pi.capture_method === 'manual';
    const charge = this.newCharge(pi, paymentMethod, 'succeeded', !manual);
    pi.latest_charge = charge.id;
    this.deps.events.emit('charge.succeeded', charge, request);
    if (manual) {
      pi.status = 'requires_capture';
      pi.amount_capturable = pi.amount;
      this.emit('payment_intent.amount_capturable_updated', record, request);
    } else {
      pi.status = 'succeeded';
      pi.amount_received = pi.amount;
      this.emit('payment_intent.succeeded', record, request);
    }
  }

  private decline(
    record: PaymentIntentRecord,
    paymentMethod: PaymentMethodRecord,
    request: EventRequest,
    failure: { code: string; declineCode: string; message: string; param?: string },
  ): never {
    const pi = record.object;
    const charge = this.newCharge(pi, paymentMethod, 'failed', false, {
      code: failure.code,
      message: failure.message,
    });
    pi.latest_charge = charge.id;
    pi.status = 'requires_payment_method';
    const docUrl = `https://stripe.com/docs/error-codes/${failure.code.replace(/_/g, '-')}`;
    pi.last_payment_error = {
      type: 'card_error',
      code: failure.code,
      decline_code: failure.declineCode,
      message: failure.message,
      ...(failure.param === undefined ? {} : { param: failure.param }),
      doc_url: docUrl,
      charge: charge.id,
      payment_method: paymentMethod.object,
    };
    this.deps.events.emit('charge.failed', charge, request);
    this.emit('payment_intent.payment_failed', record, request);
    throw new StripeApiError(402, 'card_error', failure.message, {
      code: failure.code,
      decline_code: failure.declineCode,
      ...(failure.param === undefined ? {} : { param: failure.param }),
      doc_url: docUrl,
      charge: charge.id,
      payment_intent: structuredClone(pi) as unknown as Record<string, unknown>,
      payment_method: structuredClone(paymentMethod.object) as unknown as Record<string, unknown>,
    });
  }

  private finishSettlement(record: PaymentIntentRecord, succeed: boolean): void {
    const pi = record.object;
    const charge = this.latestCharge(pi);
    const paymentMethod = this.deps.paymentMethods.get(pi.payment_method ?? '');
    const behaviour = paymentMethod?.behaviour;
    if (succeed) {
      if (charge) {
        charge.status = 'succeeded';
        charge.paid = true;
        charge.captured = true;
        charge.amount_captured = charge.amount;
        this.deps.events.emit('charge.succeeded', charge, NO_REQUEST);
      }
      pi.status = 'succeeded';
      pi.amount_received = pi.amount;
      this.emit('payment_intent.succeeded', record, NO_REQUEST);
      return;
    }
    const code = behaviour?.kind === 'async_fail' ? behaviour.code : 'payment_method_provider_decline';
    const message =
      behaviour?.kind === 'async_fail' ? behaviour.message : 'The payment was declined by the bank.';
    if (charge) {
      charge.status = 'failed';
      charge.failure_code = code;
      charge.failure_message = message;
      this.deps.events.emit('charge.failed', charge, NO_REQUEST);
    }
    pi.status = 'requires_payment_method';
    if (paymentMethod) {
      pi.last_payment_error = {
        type: 'invalid_request_error',
        code,
        message,
        doc_url: `https://stripe.com/docs/error-codes/${code.replace(/_/g, '-')}`,
        ...(charge ? { charge: charge.id } : {}),
        payment_method: paymentMethod.object,
      };
    }
    this.emit('payment_intent.payment_failed', record, NO_REQUEST);
  }

  private newCharge(
    pi: PaymentIntentObject,
    paymentMethod: PaymentMethodRecord,
    status: ChargeObject['status'],
    captured: boolean,
    failure?: { code: string; message: string },
  ): ChargeObject {
    return this.deps.charges.create({
      amount: pi.amount,
      currency: pi.currency,
      customer: pi.customer,
      description: pi.description,
      metadata: pi.metadata,
      paymentIntent: pi.id,
      paymentMethod: paymentMethod.object.id,
      status,
      captured,
      ...(failure === undefined ? {} : { failure }),
    });
  }

  private latestCharge(pi: PaymentIntentObject): ChargeObject | undefined {
    return pi.latest_charge === null ? undefined : this.deps.charges.get(pi.latest_charge);
  }

  private getRecord(id: string, param = 'intent'): PaymentIntentRecord {
    const record = this.records.get(id);
    if (!record) throw resourceMissing('payment_intent', id, param);
    return record;
  }

  /** Emits a PaymentIntent event and records the snapshot it carries for lagged search. */
  private emit(type: string, record: PaymentIntentRecord, request: EventRequest): void {
    const event = this.deps.events.emit(type, record.object, request);
    this.recordVersion(record, event.data.object as unknown as PaymentIntentObject);
  }

  /**
   * Keeps every snapshot younger than the search lag plus the newest older one: that one is what
   * search sees now, the younger ones become visible as the clock moves.
   */
  private recordVersion(record: PaymentIntentRecord, snapshot: PaymentIntentObject): void {
    const now = this.deps.clock.now();
    record.versions.push({ at: now, snapshot });
    const cutoff = now - this.deps.settings.searchLagSeconds;
    let firstKept = 0;
    for (let i = record.versions.length - 1; i >= 0; i--) {
      if ((record.versions[i]?.at ?? 0) <= cutoff) {
        firstKept = i;
        break;
      }
    }
    if (firstKept > 0) record.versions = record.versions.slice(firstKept);
  }
}

function mergeMetadata(target: Metadata, patch: Metadata): void {
  for (const [key, value] of Object.entries(patch)) {
    if (value === '') delete target[key];
    else target[key] = value;
  }
}

function visibleVersion(versions: readonly SearchVersion[], cutoff: number): PaymentIntentObject | undefined {
  for (let i = versions.length - 1; i >= 0; i--) {
    const version = versions[i];
    if (version && version.at <= cutoff) return version.snapshot;
  }
  return undefined;
}

type SearchClause =
  | { readonly field: 'metadata'; readonly key: string; readonly value: string }
  | { readonly field: 'status' | 'currency' | 'customer'; readonly value: string };

const CLAUSE =
  /^\s*(?:metadata\[(?:'([^']*)'|"([^"]*)")\]|(status|currency|customer))\s*:\s*(?:'([^']*)'|"([^"]*)")\s*/;

/** Parses Stripe's search query language, restricted to the clauses the emulator supports. */
export function parseSearchQuery(query: string): SearchClause[] {
  const clauses: SearchClause[] = [];
  let rest = query;
  for (;;) {
    const match = CLAUSE.exec(rest);
    if (!match) {
      throw paramError(
        `The search query could not be parsed near: ${rest.slice(0, 40) || '(end)'}. The emulator supports metadata['key']:'value', status:'value', currency:'value' and customer:'value' joined by AND.`,
        'query',
      );
    }
    const value = match[4] ?? match[5] ?? '';
    const metadataKey = match[1] ?? match[2];
    if (metadataKey !== undefined) {
      clauses.push({ field: 'metadata', key: metadataKey, value });
    } else {
      const field = match[3];
      if (field === 'status' || field === 'currency' || field === 'customer') clauses.push({ field, value });
    }
    rest = rest.slice(match[0].length);
    if (rest === '') return clauses;
    const and = /^AND\s+/i.exec(rest);
    if (!and) throw paramError(`The search query could not be parsed near: ${rest.slice(0, 40)}`, 'query');
    rest = rest.slice(and[0].length);
  }
}

function clauseMatches(clause: SearchClause, pi: PaymentIntentObject): boolean {
  switch (clause.field) {
    case 'metadata':
      return pi.metadata[clause.key] === clause.value;
    case 'status':
      return pi.status === clause.value;
    case 'currency':
      return pi.currency === clause.value.toLowerCase();
    case 'customer':
      return pi.customer === clause.value;
  }
}
