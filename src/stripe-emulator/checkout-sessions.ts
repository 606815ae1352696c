/**
 * Checkout Sessions (mode `payment`) for the Stripe emulator: `POST /v1/checkout/sessions`,
 * retrieve, list, line items and `POST /v1/checkout/sessions/:id/expire`, plus the payment step the
 * hosted page (hosted-page.ts) drives.
 *
 * A session is `open` until it is paid (`complete`) or expires (`expired`, by the expire endpoint or
 * when the emulator clock passes `expires_at`). Paying goes through the emulator's own PaymentIntents
 * (the `CheckoutPaymentGateway` seam), so the charge lands in the same ledger as API-created ones,
 * with the session's `payment_intent_data[metadata]` on the PaymentIntent. One PaymentIntent serves
 * every attempt of a session, as in Stripe: a decline leaves it `requires_payment_method` and the
 * next card confirms the same one, so the ledger can never hold two successful charges for one
 * session.
 *
 * Failure paths: a second Pay while the first is still running waits for it (a per-session queue),
 * then finds the session complete and charges nothing; paying an expired session is refused; when a
 * session expires, its unfinished PaymentIntent is canceled, so a 3-D Secure challenge completed
 * late cannot charge. Asynchronous methods complete the session as `unpaid`; the PaymentIntent's
 * later `payment_intent.succeeded` or `payment_intent.payment_failed` event turns into
 * `checkout.session.async_payment_succeeded` or `..._failed`.
 *
 * Our choices where Stripe documents nothing: `payment_intent` stays null until the session
 * completes; `success_url` is optional (the hosted page then shows its own confirmation); only
 * `mode=payment` with inline `price_data` is emulated.
 */
import { type Clock } from './clock';
import { StripeApiError, paramError, resourceMissing } from './errors';
import { NO_REQUEST, type EventLog, type EventRequest, type StripeEvent } from './events';
import { newId } from './ids';
import { type Metadata, ParamReader } from './params';
import { type ApiRequest, type ApiResponse, type ApiRoute, type FormParams, type FormValue } from './router';

export const CHECKOUT_EVENT_TYPES = {
  completed: 'checkout.session.completed',
  asyncSucceeded: 'checkout.session.async_payment_succeeded',
  asyncFailed: 'checkout.session.async_payment_failed',
  expired: 'checkout.session.expired',
} as const;

const MIN_EXPIRY_SECONDS = 30 * 60;
const MAX_EXPIRY_SECONDS = 24 * 60 * 60;
const DEFAULT_EXPIRY_SWEEP_MS = 1000;

/** What a PaymentIntent looks like to checkout after a create, confirm or authentication. */
export interface CheckoutPaymentIntent {
  readonly id: string;
  readonly status: string;
  /** The decline or authentication failure message when the last attempt failed. */
  readonly lastErrorMessage: string | null;
}

export interface CheckoutPaymentIntentParams {
  readonly amount: number;
  readonly currency: string;
  readonly paymentMethod: string;
  readonly paymentMethodTypes: readonly string[];
  readonly customer: string | null;
  readonly receiptEmail: string | null;
  readonly description: string | null;
  readonly metadata: Metadata;
}

/**
 * The emulator's PaymentIntents as checkout uses them, in process. Declines are returned (the
 * PaymentIntent back in `requires_payment_method` with `lastErrorMessage`), not thrown.
 */
export interface CheckoutPaymentGateway {
  createAndConfirm(
    params: CheckoutPaymentIntentParams,
    account: string,
  ): CheckoutPaymentIntent | Promise<CheckoutPaymentIntent>;
  confirm(
    id: string,
    paymentMethod: string,
    account: string,
  ): CheckoutPaymentIntent | Promise<CheckoutPaymentIntent>;
  /** Completes (`succeed`) or fails the pending 3-D Secure challenge of a `requires_action` intent. */
  authenticate(
    id: string,
    succeed: boolean,
    account: string,
  ): CheckoutPaymentIntent | Promise<CheckoutPaymentIntent>;
  /** Cancels an unfinished intent; ignoring intents that can no longer be canceled. */
  cancel(id: string, account: string): void | Promise<void>;
  customerExists(id: string, account: string): boolean;
  /** Payment method types the emulator supports besides `card` (e.g. an asynchronous bank debit). */
  readonly asyncPaymentMethodTypes: readonly string[];
}

export interface CheckoutLineItem {
  readonly id: string;
  readonly object: 'item';
  readonly amount_discount: number;
  readonly amount_subtotal: number;
  readonly amount_tax: number;
  readonly amount_total: number;
  readonly currency: string;
  readonly description: string;
  readonly price: {
    readonly id: string;
    readonly object: 'price';
    readonly active: boolean;
    readonly currency: string;
    readonly product: string;
    readonly type: 'one_time';
    readonly unit_amount: number;
    readonly livemode: false;
  };
  readonly quantity: number;
}

export type CheckoutSessionStatus = 'open' | 'complete' | 'expired';
export type CheckoutPaymentStatus = 'paid' | 'unpaid' | 'no_payment_required';

/** The session as the API returns it (the fields a `payment`-mode session carries). */
export interface CheckoutSessionObject {
  id: string;
  object: 'checkout.session';
  after_expiration: null;
  allow_promotion_codes: null;
  allowed_payment_method_types: string[] | null;
  amount_subtotal: number;
  amount_total: number;
  automatic_tax: { enabled: false; liability: null; status: null };
  billing_address_collection: null;
  cancel_url: string | null;
  client_reference_id: string | null;
  client_secret: null;
  created: number;
  currency: string;
  custom_fields: [];
  custom_text: {
    after_submit: null;
    shipping_address: null;
    submit: null;
    terms_of_service_acceptance: null;
  };
  customer: string | null;
  customer_creation: 'if_required';
  customer_details: { email: string | null; name: null; phone: null; tax_exempt: 'none' } | null;
  customer_email: string | null;
  expires_at: number;
  invoice: null;
  livemode: false;
  locale: null;
  metadata: Metadata;
  mode: 'payment';
  payment_intent: string | null;
  payment_link: null;
  payment_method_collection: 'if_required';
  payment_method_options: Record<string, never>;
  payment_method_types: string[];
  payment_status: CheckoutPaymentStatus;
  phone_number_collection: { enabled: false };
  recovered_from: null;
  setup_intent: null;
  shipping_address_collection: null;
  shipping_cost: null;
  shipping_options: [];
  status: CheckoutSessionStatus;
  submit_type: null;
  subscription: null;
  success_url: string | null;
  total_details: { amount_discount: 0; amount_shipping: 0; amount_tax: 0 };
  ui_mode: 'hosted';
  url: string | null;
}

/** What the hosted page gets back from a payment attempt. */
export type CheckoutPaymentOutcome =
  | { readonly kind: 'complete'; readonly session: CheckoutSessionObject }
  | { readonly kind: 'requires_action'; readonly session: CheckoutSessionObject }
  | { readonly kind: 'declined'; readonly session: CheckoutSessionObject; readonly message: string }
  | { readonly kind: 'not_open'; readonly session: CheckoutSessionObject; readonly message: string };

interface SessionRecord {
  readonly session: CheckoutSessionObject;
  readonly account: string;
  readonly lineItems: readonly CheckoutLineItem[];
  readonly paymentIntentMetadata: Metadata;
  readonly description: string | null;
  /** The PaymentIntent every attempt confirms; public `payment_intent` stays null until complete. */
  paymentIntentId: string | null;
  /** True while a 3-D Secure challenge is pending on the PaymentIntent. */
  awaitingAuthentication: boolean;
  lastErrorMessage: string | null;
  /** Serializes payment attempts of this session (a double-clicked Pay). */
  queue: Promise<unknown>;
}

export interface CheckoutSessionsOptions {
  readonly clock: Clock;
  readonly events: EventLog;
  readonly payments: CheckoutPaymentGateway;
  /** The emulator's base URL (`http://127.0.0.1:12111`), read when a session is created. */
  readonly baseUrl: () => string;
  /** How often open sessions are checked against `expires_at` on the emulator clock. Default 1 s. */
  readonly expirySweepMs?: number;
}

export class CheckoutSessions {
  private readonly records = new Map<string, SessionRecord>();
  private readonly open = new Set<SessionRecord>();
  /** PaymentIntent id → session still waiting for an asynchronous payment to settle. */
  private readonly awaitingSettlement = new Map<string, SessionRecord>();
  private readonly clock: Clock;
  private readonly events: EventLog;
  private readonly payments: CheckoutPaymentGateway;
  private readonly baseUrl: () => string;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(options: CheckoutSessionsOptions) {
    this.clock = options.clock;
    this.events = options.events;
    this.payments = options.payments;
    this.baseUrl = options.baseUrl;
    this.sweepTimer = setInterval(() => this.expireDue(), options.expirySweepMs ?? DEFAULT_EXPIRY_SWEEP_MS);
    this.sweepTimer.unref();
    this.unsubscribe = this.events.subscribe((event) => this.onPaymentIntentEvent(event));
  }

  stop(): void {
    clearInterval(this.sweepTimer);
    this.unsubscribe();
  }

  /** Forgets every session (the emulator's reset). */
  clear(): void {
    this.records.clear();
    this.open.clear();
    this.awaitingSettlement.clear();
  }

  create(params: FormParams, account: string): CheckoutSessionObject {
    const p = new ParamReader(params).allowOnly([
      'mode',
      'line_items',
      'success_url',
      'cancel_url',
      'client_reference_id',
      'metadata',
      'payment_intent_data',
      'customer',
      'customer_email',
      'expires_at',
      'payment_method_types',
      'allowed_payment_method_types',
      'currency',
    ]);
    const mode = p.optionalString('mode');
    if (mode === undefined) throw paramError('Missing required param: mode.', 'mode', 'parameter_missing');
    if (mode !== 'payment') {
      throw paramError(
        `Invalid mode: the emulator supports only \`payment\` Checkout Sessions, got \`${mode}\`.`,
        'mode',
        'parameter_invalid_string',
      );
    }
    const successUrl = p.optionalString('success_url', 5000);
    const cancelUrl = p.optionalString('cancel_url', 5000);
    for (const [name, url] of [
      ['success_url', successUrl],
      ['cancel_url', cancelUrl],
    ] as const) {
      if (url !== undefined && !isAbsoluteUrl(url)) {
        throw paramError('Not a valid URL', name, 'url_invalid');
      }
    }
    const lineItems = readLineItems(params.line_items);
    const currency = lineItems[0]?.currency ?? '';
    const requestedCurrency = p.optionalString('currency');
    if (requestedCurrency !== undefined && requestedCurrency.toLowerCase() !== currency) {
      throw paramError(
        'The `currency` parameter must match the currency of the line items.',
        'currency',
        'parameter_invalid_string',
      );
    }
    // SDK 23 (API 2026-10-28) sends `allowed_payment_method_types`; older versions send
    // `payment_method_types`. Either selects the page's methods; without one, cards only.
    const allowedTypes = p.optionalStringList('allowed_payment_method_types');
    const legacyTypes = p.optionalStringList('payment_method_types');
    if (allowedTypes !== undefined && legacyTypes !== undefined) {
      throw paramError(
        'You may only specify one of these parameters: allowed_payment_method_types, payment_method_types.',
        'allowed_payment_method_types',
        'parameters_exclusive',
      );
    }
    const typesParam = allowedTypes === undefined ? 'payment_method_types' : 'allowed_payment_method_types';
    const paymentMethodTypes = allowedTypes ?? legacyTypes ?? ['card'];
    const supported = ['card', ...this.payments.asyncPaymentMethodTypes];
    for (const type of paymentMethodTypes) {
      if (!supported.includes(type)) {
        throw paramError(
          `Invalid ${typesParam}[]: must be one of ${supported.join(', ')}`,
          typesParam,
          'parameter_invalid_string',
        );
      }
    }
    const customer = p.optionalString('customer');
    const customerEmail = p.optionalString('customer_email', 800);
    if (customer !== undefined && customerEmail !== undefined) {
      throw paramError(
        'You may only specify one of these parameters: customer, customer_email.',
        'customer_email',
        'parameter_invalid_string',
      );
    }
    const paymentIntentData = p.optionalObject('payment_intent_data');
    paymentIntentData?.allowOnly(['metadata', 'description']);
    const paymentIntentMetadata = paymentIntentData?.optionalMetadata() ?? {};
    const description = paymentIntentData?.optionalString('description', 1000) ?? null;
    const metadata = dropEmptyValues(p.optionalMetadata() ?? {});
    const clientReferenceId = p.optionalString('client_reference_id', 200) ?? null;
    const now = this.clock.unix();
    const expiresAt = p.optionalInteger('expires_at') ?? now + MAX_EXPIRY_SECONDS;
    if (expiresAt > now + MAX_EXPIRY_SECONDS) {
      throw paramError(
        'The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.',
        'expires_at',
        'parameter_invalid_integer',
      );
    }
    if (expiresAt < now + MIN_EXPIRY_SECONDS) {
      throw paramError(
        'The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.',
        'expires_at',
        'parameter_invalid_integer',
      );
    }
    // Business checks run after validation: a missing customer is stored under the key like any 404.
    if (customer !== undefined && !this.payments.customerExists(customer, account)) {
      throw resourceMissing('customer', customer, 'customer');
    }
    const amount = lineItems.reduce((sum, item) => sum + item.amount_total, 0);
    // Stripe's session ids are long: `cs_test_` and about 58 characters.
    const id = `cs_test_${newId('a').slice(2)}${newId('b').slice(2)}`;
    const session: CheckoutSessionObject = {
      id,
      object: 'checkout.session',
      after_expiration: null,
      allow_promotion_codes: null,
      allowed_payment_method_types: allowedTypes ?? null,
      amount_subtotal: amount,
      amount_total: amount,
      automatic_tax: { enabled: false, liability: null, status: null },
      billing_address_collection: null,
      cancel_url: cancelUrl ?? null,
      client_reference_id: clientReferenceId,
      client_secret: null,
      created: now,
      currency,
      custom_fields: [],
      custom_text: {
        after_submit: null,
        shipping_address: null,
        submit: null,
        terms_of_service_acceptance: null,
      },
      customer: customer ?? null,
      customer_creation: 'if_required',
      customer_details: null,
      customer_email: customerEmail ?? null,
      expires_at: expiresAt,
      invoice: null,
      livemode: false,
      locale: null,
      metadata,
      mode: 'payment',
      payment_intent: null,
      payment_link: null,
      payment_method_collection: 'if_required',
      payment_method_options: {},
      payment_method_types: paymentMethodTypes,
      payment_status: 'unpaid',
      phone_number_collection: { enabled: false },
      recovered_from: null,
      setup_intent: null,
      shipping_address_collection: null,
      shipping_cost: null,
      shipping_options: [],
      status: 'open',
      submit_type: null,
      subscription: null,
      success_url: successUrl ?? null,
      total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
      ui_mode: 'hosted',
      url: `${this.baseUrl()}/checkout/pay/${id}`,
    };
    const record: SessionRecord = {
      session,
      account,
      lineItems,
      paymentIntentMetadata: dropEmptyValues(paymentIntentMetadata),
      description,
      paymentIntentId: null,
      awaitingAuthentication: false,
      lastErrorMessage: null,
      queue: Promise.resolve(),
    };
    this.records.set(id, record);
    this.open.add(record);
    return structuredClone(session);
  }

  retrieve(id: string, account: string): CheckoutSessionObject {
    return structuredClone(this.require(id, account).session);
  }

  lineItems(id: string, account: string): readonly CheckoutLineItem[] {
    return this.require(id, account).lineItems;
  }

  list(
    filter: { payment_intent?: string; customer?: string; status?: string; limit?: number },
    account: string,
  ): { data: CheckoutSessionObject[]; has_more: boolean } {
    this.expireDue();
    const limit = filter.limit ?? 10;
    const matches = [...this.records.values()]
      .filter(
        (r) =>
          r.account === account &&
          (filter.payment_intent === undefined || r.session.payment_intent === filter.payment_intent) &&
          (filter.customer === undefined || r.session.customer === filter.customer) &&
          (filter.status === undefined || r.session.status === filter.status),
      )
      .reverse();
    return {
      data: matches.slice(0, limit).map((r) => structuredClone(r.session)),
      has_more: matches.length > limit,
    };
  }

  expire(id: string, account: string, request: EventRequest): CheckoutSessionObject {
    const record = this.require(id, account);
    if (record.session.status !== 'open') {
      throw new StripeApiError(
        400,
        'invalid_request_error',
        `Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of \`${record.session.status}\`.`,
      );
    }
    this.markExpired(record, request);
    return structuredClone(record.session);
  }

  /** The session as the hosted page shows it, or undefined for an unknown id (no account check). */
  forPage(id: string):
    | {
        session: CheckoutSessionObject;
        lineItems: readonly CheckoutLineItem[];
        awaitingAuthentication: boolean;
        lastErrorMessage: string | null;
      }
    | undefined {
    const record = this.records.get(id);
    if (record === undefined) return undefined;
    this.expireIfDue(record);
    return {
      session: structuredClone(record.session),
      lineItems: record.lineItems,
      awaitingAuthentication: record.awaitingAuthentication,
      lastErrorMessage: record.lastErrorMessage,
    };
  }

  /** Pays an open session with a test payment method (the hosted page's Pay button). */
  pay(id: string, paymentMethod: string): Promise<CheckoutPaymentOutcome> {
    return this.serialize(id, async (record) => {
      const notOpen = this.refuseUnlessPayable(record);
      if (notOpen) return notOpen;
      if (record.awaitingAuthentication) {
        return { kind: 'requires_action', session: structuredClone(record.session) };
      }
      const intent =
        record.paymentIntentId === null
          ? await this.payments.createAndConfirm(
              {
                amount: record.session.amount_total,
                currency: record.session.currency,
                paymentMethod,
                paymentMethodTypes: record.session.payment_method_types,
                customer: record.session.customer,
                receiptEmail: record.session.customer_email,
                description: record.description,
                metadata: record.paymentIntentMetadata,
              },
              record.account,
            )
          : await this.payments.confirm(record.paymentIntentId, paymentMethod, record.account);
      record.paymentIntentId = intent.id;
      return this.afterAttempt(record, intent);
    });
  }

  /** Completes or fails the 3-D Secure challenge of the session's pending payment. */
  authenticate(id: string, succeed: boolean): Promise<CheckoutPaymentOutcome> {
    return this.serialize(id, async (record) => {
      const notOpen = this.refuseUnlessPayable(record);
      if (notOpen) return notOpen;
      if (!record.awaitingAuthentication || record.paymentIntentId === null) {
        return {
          kind: 'declined',
          session: structuredClone(record.session),
          message: 'There is no payment waiting for authentication. Choose a payment method and pay.',
        };
      }
      const intent = await this.payments.authenticate(record.paymentIntentId, succeed, record.account);
      return this.afterAttempt(record, intent);
    });
  }

  /** Every API route this module serves; the server applies authentication and idempotency. */
  routes(): ApiRoute[] {
    return [
      {
        kind: 'api',
        method: 'POST',
        pattern: '/v1/checkout/sessions',
        handler: (request) => ok(this.create(request.params, request.account)),
      },
      {
        kind: 'api',
        method: 'GET',
        pattern: '/v1/checkout/sessions',
        handler: (request) => ok(this.listResponse(request)),
      },
      {
        kind: 'api',
        method: 'GET',
        pattern: '/v1/checkout/sessions/:id',
        handler: (request) => {
          const expand = new ParamReader(request.params).allowOnly([]).optionalStringList('expand') ?? [];
          const id = pathParam(request);
          const session: CheckoutSessionObject & { line_items?: unknown } = this.retrieve(
            id,
            request.account,
          );
          // `expand[]=line_items` is how fulfillment code usually reads what was bought.
          if (expand.includes('line_items')) session.line_items = this.lineItemsList(id, request.account);
          return ok(session);
        },
      },
      {
        kind: 'api',
        method: 'GET',
        pattern: '/v1/checkout/sessions/:id/line_items',
        handler: (request) => {
          new ParamReader(request.params).allowOnly(['limit', 'starting_after', 'ending_before']);
          return ok(this.lineItemsList(pathParam(request), request.account));
        },
      },
      {
        kind: 'api',
        method: 'POST',
        pattern: '/v1/checkout/sessions/:id/expire',
        handler: (request) => {
          new ParamReader(request.params).allowOnly([]);
          return ok(this.expire(pathParam(request), request.account, request.eventRequest));
        },
      },
    ];
  }

  private lineItemsList(id: string, account: string): unknown {
    const data = [...this.lineItems(id, account)];
    return { object: 'list', data, has_more: false, url: `/v1/checkout/sessions/${id}/line_items` };
  }

  private listResponse(request: ApiRequest): unknown {
    const p = new ParamReader(request.params).allowOnly([
      'limit',
      'payment_intent',
      'customer',
      'status',
      'starting_after',
      'ending_before',
      'created',
    ]);
    const limit = p.optionalInteger('limit');
    if (limit !== undefined && (limit < 1 || limit > 100)) {
      throw paramError('Invalid limit: must be between 1 and 100', 'limit', 'parameter_invalid_integer');
    }
    const page = this.list(
      {
        ...optional('payment_intent', p.optionalString('payment_intent')),
        ...optional('customer', p.optionalString('customer')),
        ...optional('status', p.optionalEnum('status', ['open', 'complete', 'expired'])),
        ...optional('limit', limit),
      },
      request.account,
    );
    return { object: 'list', url: '/v1/checkout/sessions', ...page };
  }

  private require(id: string, account: string): SessionRecord {
    const record = this.records.get(id);
    if (record === undefined || record.account !== account) {
      throw resourceMissing('checkout.session', id, 'session');
    }
    this.expireIfDue(record);
    return record;
  }

  private serialize(
    id: string,
    run: (record: SessionRecord) => Promise<CheckoutPaymentOutcome>,
  ): Promise<CheckoutPaymentOutcome> {
    const record = this.records.get(id);
    if (record === undefined) return Promise.reject(resourceMissing('checkout.session', id, 'session'));
    const next = record.queue.then(() => run(record));
    record.queue = next.catch(() => undefined);
    return next;
  }

  private refuseUnlessPayable(record: SessionRecord): CheckoutPaymentOutcome | undefined {
    this.expireIfDue(record);
    const { status } = record.session;
    if (status === 'open') return undefined;
    return {
      kind: 'not_open',
      session: structuredClone(record.session),
      message:
        status === 'expired'
          ? 'This Checkout Session has expired. No payment was taken.'
          : 'This Checkout Session is already complete.',
    };
  }

  private afterAttempt(record: SessionRecord, intent: CheckoutPaymentIntent): CheckoutPaymentOutcome {
    record.awaitingAuthentication = intent.status === 'requires_action';
    switch (intent.status) {
      case 'succeeded':
      case 'requires_capture':
        this.complete(record, intent.id, 'paid');
        return { kind: 'complete', session: structuredClone(record.session) };
      case 'processing':
        this.complete(record, intent.id, 'unpaid');
        this.awaitingSettlement.set(intent.id, record);
        return { kind: 'complete', session: structuredClone(record.session) };
      case 'requires_action':
        record.lastErrorMessage = null;
        return { kind: 'requires_action', session: structuredClone(record.session) };
      default: {
        const message =
          intent.lastErrorMessage ?? 'Your payment was not completed. Try another payment method.';
        record.lastErrorMessage = message;
        return { kind: 'declined', session: structuredClone(record.session), message };
      }
    }
  }

  private complete(
    record: SessionRecord,
    paymentIntentId: string,
    paymentStatus: CheckoutPaymentStatus,
  ): void {
    const { session } = record;
    session.status = 'complete';
    session.payment_status = paymentStatus;
    session.payment_intent = paymentIntentId;
    session.url = null;
    session.customer_details = { email: session.customer_email, name: null, phone: null, tax_exempt: 'none' };
    record.lastErrorMessage = null;
    this.open.delete(record);
    this.events.emit(CHECKOUT_EVENT_TYPES.completed, session, NO_REQUEST);
  }

  private onPaymentIntentEvent(event: StripeEvent): void {
    if (event.type !== 'payment_intent.succeeded' && event.type !== 'payment_intent.payment_failed') return;
    const id = event.data.object.id;
    if (typeof id !== 'string') return;
    const record = this.awaitingSettlement.get(id);
    if (record === undefined) return;
    this.awaitingSettlement.delete(id);
    if (event.type === 'payment_intent.succeeded') {
      record.session.payment_status = 'paid';
      this.events.emit(CHECKOUT_EVENT_TYPES.asyncSucceeded, record.session, NO_REQUEST);
    } else {
      this.events.emit(CHECKOUT_EVENT_TYPES.asyncFailed, record.session, NO_REQUEST);
    }
  }

  /** Expires every open session whose `expires_at` has passed on the emulator clock. */
  expireDue(): void {
    for (const record of [...this.open]) this.expireIfDue(record);
  }

  private expireIfDue(record: SessionRecord): void {
    if (record.session.status === 'open' && this.clock.unix() >= record.session.expires_at) {
      this.markExpired(record, NO_REQUEST);
    }
  }

  private markExpired(record: SessionRecord, request: EventRequest): void {
    record.session.status = 'expired';
    record.session.url = null;
    record.awaitingAuthentication = false;
    this.open.delete(record);
    const pending = record.paymentIntentId;
    if (pending !== null) {
      // Stripe cancels the session's unfinished PaymentIntent so that nothing can charge later.
      record.queue = record.queue
        .then(() => this.payments.cancel(pending, record.account))
        .catch(() => undefined);
    }
    this.events.emit(CHECKOUT_EVENT_TYPES.expired, record.session, request);
  }
}

function ok(body: unknown): ApiResponse {
  return { status: 200, body };
}

function pathParam(request: ApiRequest): string {
  return request.pathParams.id ?? '';
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}

function dropEmptyValues(metadata: Metadata): Metadata {
  return Object.fromEntries(Object.entries(metadata).filter(([, value]) => value !== ''));
}

function isAbsoluteUrl(value: string): boolean {
  try {
    const url = new URL(value.replace('{CHECKOUT_SESSION_ID}', 'cs'));
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function readLineItems(value: FormValue | undefined): CheckoutLineItem[] {
  if (value === undefined || value === '') {
    throw paramError('`line_items` is required in `payment` mode.', 'line_items', 'parameter_missing');
  }
  const items = Array.isArray(value) ? value : typeof value === 'object' ? Object.values(value) : undefined;
  if (items === undefined || items.length === 0) {
    throw paramError('`line_items` is required in `payment` mode.', 'line_items', 'parameter_missing');
  }
  const lineItems: CheckoutLineItem[] = [];
  items.forEach((item, index) => {
    const name = `line_items[${index}]`;
    if (typeof item !== 'object' || Array.isArray(item)) throw paramError('Invalid object', name);
    const p = new ParamReader(item, name).allowOnly(['price_data', 'quantity', 'price']);
    if (p.has('price')) {
      throw paramError(
        'The emulator has no Prices: give each line item inline `price_data` instead of `price`.',
        `${name}[price]`,
        'parameter_invalid_string',
      );
    }
    const priceData = p.optionalObject('price_data');
    if (priceData === undefined) {
      throw paramError(
        `Missing required param: ${name}[price_data].`,
        `${name}[price_data]`,
        'parameter_missing',
      );
    }
    priceData.allowOnly(['currency', 'unit_amount', 'product_data']);
    const currency = priceData.requiredString('currency').toLowerCase();
    if (!/^[a-z]{3}$/.test(currency)) {
      throw paramError(
        `Invalid currency: ${currency}`,
        `${name}[price_data][currency]`,
        'parameter_invalid_string',
      );
    }
    const unitAmount = priceData.requiredInteger('unit_amount');
    if (unitAmount < 0) {
      throw paramError(
        'This value must be greater than or equal to 0.',
        `${name}[price_data][unit_amount]`,
        'parameter_invalid_integer',
      );
    }
    const productData = priceData.optionalObject('product_data');
    if (productData === undefined) {
      throw paramError(
        `Missing required param: ${name}[price_data][product_data].`,
        `${name}[price_data][product_data]`,
        'parameter_missing',
      );
    }
    productData.allowOnly(['name', 'description', 'metadata']);
    const productName = productData.requiredString('name', 250);
    const quantity = p.optionalInteger('quantity');
    if (quantity === undefined) {
      throw paramError(
        `Missing required param: ${name}[quantity].`,
        `${name}[quantity]`,
        'parameter_missing',
      );
    }
    if (quantity < 1) {
      throw paramError(
        'This value must be greater than or equal to 1.',
        `${name}[quantity]`,
        'parameter_invalid_integer',
      );
    }
    const first = lineItems[0];
    if (first !== undefined && first.currency !== currency) {
      throw paramError(
        'All line items must use the same currency.',
        `${name}[price_data][currency]`,
        'parameter_invalid_string',
      );
    }
    const total = unitAmount * quantity;
    lineItems.push({
      id: newId('li'),
      object: 'item',
      amount_discount: 0,
      amount_subtotal: total,
      amount_tax: 0,
      amount_total: total,
      currency,
      description: productName,
      price: {
        id: newId('price'),
        object: 'price',
        active: false,
        currency,
        product: newId('prod'),
        type: 'one_time',
        unit_amount: unitAmount,
        livemode: false,
      },
      quantity,
    });
  });
  return lineItems;
}
