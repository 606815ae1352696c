/**
 * The one module that workflow code, the worker, the client and the tests all share: the task
 * queue, search attributes, the checkout input and its validation, the idempotency-key scheme,
 * messages (signals, queries, updates) and result types. No string in here is written twice anywhere
 * else.
 *
 * Everything here runs inside the workflow sandbox too, so it is plain, deterministic TypeScript:
 * no I/O, no clock, no randomness, no imports beyond `@temporalio/common` and `@temporalio/workflow`.
 */
import { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

export const TASK_QUEUE = 'checkout';

export const SEARCH_ATTRIBUTE_TYPES = {
  CheckoutState: 'Keyword',
  OrderId: 'Keyword',
  StripePaymentIntentId: 'Keyword',
  NeedsAttentionSince: 'Datetime',
} as const;

export const CheckoutStateAttr = defineSearchAttributeKey('CheckoutState', 'KEYWORD');
export const OrderIdAttr = defineSearchAttributeKey('OrderId', 'KEYWORD');
export const StripePaymentIntentIdAttr = defineSearchAttributeKey('StripePaymentIntentId', 'KEYWORD');
export const NeedsAttentionSinceAttr = defineSearchAttributeKey('NeedsAttentionSince', 'DATETIME');

/** Failure types that cross from activities (or the workflow) to callers. Branch on these strings. */
export const FailureType = {
  InvalidCheckoutInput: 'InvalidCheckoutInput',
  /** The same idempotency key was used with other parameters: never retried, never compensated. */
  IdempotencyMismatch: 'IdempotencyMismatch',
  /** Stripe stored a 500 under the key: the outcome is unknown and replays forever. Read back. */
  StripeOutcomeUnknown: 'StripeOutcomeUnknown',
  StripeConnection: 'StripeConnection',
  StripeIdempotencyKeyInUse: 'StripeIdempotencyKeyInUse',
  StripeTransient: 'StripeTransient',
  StripeLockTimeout: 'StripeLockTimeout',
  StripeRateLimited: 'StripeRateLimited',
  StripeInvalidRequest: 'StripeInvalidRequest',
  StripeAuthentication: 'StripeAuthentication',
  StripePermission: 'StripePermission',
  StripeUnexpected: 'StripeUnexpected',
  ProvisioningFailed: 'ProvisioningFailed',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

// ---------------------------------------------------------------------------------------------
// Input and validation

/**
 * The longest key is `checkout-<order id>/payment/g<generation>/confirm`: 9 + 200 + 10 + 2 + 8 =
 * 229 characters, under Stripe's 255 (contract I3) with room to spare.
 */
export const ORDER_ID_MAX_LENGTH = 200;
/** A deliberate new attempt bumps the generation; past this many the checkout stops taking cards. */
export const MAX_GENERATIONS = 10;
/** Stripe's own ceiling for most currencies is eight digits of minor units. */
export const AMOUNT_MAX = 99_999_999;
export const QUANTITY_MAX = 10_000;

export interface ProvisionItem {
  readonly sku: string;
  readonly quantity: number;
}

/** Durations a caller (or a test) may shorten; every one has a documented production default. */
export interface CheckoutOptions {
  /** How long a customer has to finish 3-D Secure (or an async method to settle). Default 1 h. */
  readonly paymentActionTimeoutMs?: number;
  /** First interval between reads of a pending PaymentIntent; doubles up to 1 min. Default 5 s. */
  readonly paymentPollIntervalMs?: number;
  /** How long a declined checkout waits for `retryPayment` before it ends declined. Default 15 min. */
  readonly paymentRetryWindowMs?: number;
  /**
   * How long one key's Stripe writes may keep being retried, measured from the key's first use.
   * Stripe prunes keys after 24 h; the default 20 h leaves margin. Past it the workflow reads
   * Stripe instead of posting again.
   */
  readonly stripeKeyBudgetMs?: number;
  /** Start-to-close of one Stripe call; keep it above the worker's Stripe client timeout. Default 30 s. */
  readonly stripeCallTimeoutMs?: number;
  /** How often a needs-attention checkout re-reads Stripe on its own. Default 5 min. */
  readonly reconcileIntervalMs?: number;
  /**
   * How long provisioning may keep being retried (schedule-to-close of the provision activity)
   * before it has failed for good and the checkout parks as `needs_attention` /
   * `provisioning_failed`. Default 1 h.
   */
  readonly provisioningTimeoutMs?: number;
  /**
   * After provisioning failed for good: how long an operator has to retry provisioning, refund, or
   * stop the automatic refund before the workflow refunds the payment in full. Default 24 h.
   */
  readonly provisioningGraceMs?: number;
}

export interface CheckoutInput {
  readonly orderId: string;
  /** Positive integer in the currency's minor unit (cents for usd). */
  readonly amount: number;
  /** ISO 4217, lowercase, as Stripe spells it. */
  readonly currency: string;
  /** Stripe customer id (`cus_…`). */
  readonly customerId: string;
  /** Stripe payment method id (`pm_…`). */
  readonly paymentMethodId: string;
  /** What to provision once Stripe says the payment succeeded. */
  readonly provision: ProvisionItem;
  readonly options?: CheckoutOptions;
}

export type Validation<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problems: readonly string[] };

const ORDER_ID_RE = /^[A-Za-z0-9_-]+$/;
const CURRENCY_RE = /^[a-z]{3}$/;
const CUSTOMER_ID_RE = /^cus_[A-Za-z0-9]{1,200}$/;
const PAYMENT_METHOD_ID_RE = /^pm_[A-Za-z0-9_]{1,200}$/;
const SKU_RE = /^[A-Za-z0-9._-]{1,64}$/;
const ACTOR_MAX = 200;
const REASON_MAX = 1_000;
const DURATION_MAX_MS = 7 * 24 * 60 * 60 * 1000;
const KEY_BUDGET_MAX_MS = 23 * 60 * 60 * 1000;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkString(
  problems: string[],
  field: string,
  v: unknown,
  re: RegExp,
  what: string,
  maxLength: number,
): string {
  if (typeof v !== 'string') {
    problems.push(`${field}: must be a string (${what})`);
    return '';
  }
  if (v.length === 0 || v.length > maxLength || !re.test(v)) {
    problems.push(`${field}: must be ${what}, at most ${maxLength} characters`);
  }
  return v;
}

/**
 * The problems with an order id on its own (a URL path, a CLI argument), by the rule
 * `validateCheckoutInput` applies to it: `orderId: …`, or none.
 */
export function orderIdProblems(orderId: unknown): string[] {
  const problems: string[] = [];
  checkString(problems, 'orderId', orderId, ORDER_ID_RE, 'letters, digits, "_" or "-"', ORDER_ID_MAX_LENGTH);
  return problems;
}

function checkInt(problems: string[], field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    problems.push(`${field}: must be an integer from ${min} to ${max}`);
    return 0;
  }
  return v;
}

const OPTION_LIMITS: Readonly<Record<keyof CheckoutOptions, readonly [number, number]>> = {
  paymentActionTimeoutMs: [1, DURATION_MAX_MS],
  paymentPollIntervalMs: [1, DURATION_MAX_MS],
  paymentRetryWindowMs: [0, DURATION_MAX_MS],
  stripeKeyBudgetMs: [1, KEY_BUDGET_MAX_MS],
  stripeCallTimeoutMs: [1, 10 * 60 * 1000],
  reconcileIntervalMs: [1, DURATION_MAX_MS],
  provisioningTimeoutMs: [1, DURATION_MAX_MS],
  provisioningGraceMs: [0, DURATION_MAX_MS],
};

function isOptionName(k: string): k is keyof CheckoutOptions {
  return Object.prototype.hasOwnProperty.call(OPTION_LIMITS, k);
}

/**
 * Validates a checkout input from anywhere (the client, the HTTP intake, the workflow itself),
 * listing every problem with the field it concerns. Unknown fields are rejected so a typo cannot
 * silently drop an option.
 */
export function validateCheckoutInput(input: unknown): Validation<CheckoutInput> {
  const problems: string[] = [];
  if (!isRecord(input)) return { ok: false, problems: ['input: must be an object'] };
  const known = ['orderId', 'amount', 'currency', 'customerId', 'paymentMethodId', 'provision', 'options'];
  for (const k of Object.keys(input)) {
    if (!known.includes(k)) problems.push(`${k}: unknown field`);
  }
  const orderId = checkString(
    problems,
    'orderId',
    input.orderId,
    ORDER_ID_RE,
    'letters, digits, "_" or "-"',
    ORDER_ID_MAX_LENGTH,
  );
  const amount = checkInt(problems, 'amount', input.amount, 1, AMOUNT_MAX);
  const currency = checkString(
    problems,
    'currency',
    input.currency,
    CURRENCY_RE,
    'a lowercase ISO 4217 code such as "usd"',
    3,
  );
  const customerId = checkString(
    problems,
    'customerId',
    input.customerId,
    CUSTOMER_ID_RE,
    'a Stripe customer id (cus_…)',
    204,
  );
  const paymentMethodId = checkPaymentMethodId(problems, 'paymentMethodId', input.paymentMethodId);
  let provision: ProvisionItem = { sku: '', quantity: 0 };
  if (!isRecord(input.provision)) {
    problems.push('provision: must be an object { sku, quantity }');
  } else {
    for (const k of Object.keys(input.provision)) {
      if (k !== 'sku' && k !== 'quantity') problems.push(`provision.${k}: unknown field`);
    }
    provision = {
      sku: checkString(
        problems,
        'provision.sku',
        input.provision.sku,
        SKU_RE,
        'letters, digits, ".", "_" or "-"',
        64,
      ),
      quantity: checkInt(problems, 'provision.quantity', input.provision.quantity, 1, QUANTITY_MAX),
    };
  }
  const options: Record<string, number> = {};
  if (input.options !== undefined) {
    if (!isRecord(input.options)) {
      problems.push('options: must be an object');
    } else {
      for (const [k, v] of Object.entries(input.options)) {
        if (v === undefined) continue;
        if (!isOptionName(k)) {
          problems.push(`options.${k}: unknown option`);
          continue;
        }
        const [min, max] = OPTION_LIMITS[k];
        options[k] = checkInt(problems, `options.${k}`, v, min, max);
      }
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    value: { orderId, amount, currency, customerId, paymentMethodId, provision, options },
  };
}

function checkPaymentMethodId(problems: string[], field: string, v: unknown): string {
  return checkString(problems, field, v, PAYMENT_METHOD_ID_RE, 'a Stripe payment method id (pm_…)', 203);
}

function checkActorReason(problems: string[], input: Record<string, unknown>): void {
  if (typeof input.actor !== 'string' || input.actor.trim().length === 0 || input.actor.length > ACTOR_MAX) {
    problems.push(`actor: must be a non-empty string of at most ${ACTOR_MAX} characters`);
  }
  if (
    typeof input.reason !== 'string' ||
    input.reason.trim().length === 0 ||
    input.reason.length > REASON_MAX
  ) {
    problems.push(`reason: must be a non-empty string of at most ${REASON_MAX} characters`);
  }
}

// ---------------------------------------------------------------------------------------------
// Identity and idempotency keys

export const WORKFLOW_ID_PREFIX = 'checkout-';

/** The only place a workflow id is derived from an order id: a double submit is the same workflow. */
export function checkoutWorkflowId(orderId: string): string {
  return `${WORKFLOW_ID_PREFIX}${orderId}`;
}

export type StripeWriteStep = 'create' | 'confirm' | 'cancel';

/**
 * `<workflow id>/payment/g<generation>/<step>`: stable across activity retries, worker restarts and
 * replays; only a deliberate new attempt (a new generation) changes it. No clock, no randomness, no
 * customer data.
 */
export function paymentIdempotencyKey(workflowId: string, generation: number, step: StripeWriteStep): string {
  return `${workflowId}/payment/g${generation}/${step}`;
}

/** Metadata on every PaymentIntent, so Stripe objects can be found and read back by order. */
export interface CheckoutMetadata {
  readonly order_id: string;
  readonly checkout_workflow_id: string;
  readonly generation: string;
}

/** The parameters the workflow builds for `paymentIntents.create` (a subset of Stripe's). */
export interface CreatePaymentIntentParams {
  readonly amount: number;
  readonly currency: string;
  readonly customer: string;
  /** Cards only, never a redirect: a confirm needs no `return_url` (contract: PaymentIntents). */
  readonly automatic_payment_methods: { readonly enabled: true; readonly allow_redirects: 'never' };
  readonly description: string;
  readonly metadata: CheckoutMetadata;
}

export interface ConfirmPaymentIntentParams {
  readonly payment_method: string;
}

// ---------------------------------------------------------------------------------------------
// What activities return (plain data: it crosses into workflow history)

export type PaymentIntentStatus =
  | 'requires_payment_method'
  | 'requires_confirmation'
  | 'requires_action'
  | 'processing'
  | 'requires_capture'
  | 'canceled'
  | 'succeeded';

export interface PaymentIntentSnapshot {
  readonly id: string;
  readonly status: PaymentIntentStatus;
  readonly amount: number;
  readonly currency: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly lastPaymentError:
    | {
        readonly code: string | undefined;
        readonly declineCode: string | undefined;
        /** The failed charge (card errors): tells one attempt's decline from another's. */
        readonly chargeId?: string;
      }
    | undefined;
}

export interface Decline {
  readonly code: string;
  readonly declineCode: string | undefined;
  readonly paymentIntentId: string | undefined;
  readonly message: string;
  /** The failed charge, when Stripe names it (card declines). */
  readonly chargeId?: string;
}

/** A card decline is an answer, not an error: it is returned, never thrown. */
export type ConfirmOutcome =
  | { readonly outcome: 'payment_intent'; readonly paymentIntent: PaymentIntentSnapshot }
  | ({ readonly outcome: 'declined' } & Decline);

export interface PaymentIntentSearchResult {
  readonly paymentIntents: readonly PaymentIntentSnapshot[];
}

export interface ProvisionRequest {
  readonly workflowId: string;
  readonly orderId: string;
  readonly paymentIntentId: string;
  readonly item: ProvisionItem;
}

export interface Entitlement {
  readonly entitlementId: string;
  readonly workflowId: string;
  readonly orderId: string;
  readonly paymentIntentId: string;
  readonly sku: string;
  readonly quantity: number;
  readonly createdAt: string;
  /** Set once a refund left nothing of the payment; the entitlement no longer grants anything. */
  readonly revokedAt?: string;
}

// ---------------------------------------------------------------------------------------------
// State, status, messages

export const CHECKOUT_STATES = [
  'validating',
  'reconciling',
  'creating_payment',
  'confirming_payment',
  'awaiting_customer_action',
  'awaiting_async_payment',
  'paid',
  'provisioning',
  'completed',
  'declined',
  'expired',
  'canceled',
  'needs_attention',
  'refunded',
] as const;
export type CheckoutState = (typeof CHECKOUT_STATES)[number];

/**
 * The steps a checkout works through without waiting on anyone or anything outside it. On the
 * happy path all of them pass in well under a second. The `CheckoutState` search attribute shows
 * them together as `processing`; the status query and the audit trail name each one
 * (docs/checkout.md, "What operators can search").
 */
export const WORKING_STATES: readonly CheckoutState[] = [
  'validating',
  'reconciling',
  'creating_payment',
  'confirming_payment',
  'paid',
  'provisioning',
];
/**
 * Memo field a checkout's start sets when the starting process exports spans: the run then carries
 * OpenTelemetry's workflow interceptors on every worker that runs or replays it
 * (src/observability/workflow-tracing.ts).
 */
export const TRACED_MEMO = 'traced';
/** The `CheckoutState` search attribute's value for every working state. */
export const PROCESSING = 'processing';
/** What the `CheckoutState` search attribute holds for a checkout in `state`. */
export function indexedState(state: CheckoutState): string {
  return WORKING_STATES.includes(state) ? PROCESSING : state;
}
/**
 * Every value `CheckoutState` can hold: `processing` and the states where a checkout rests, and,
 * in runs started before the checkout indexed only those, the working states too.
 */
export const SEARCHABLE_STATES: readonly string[] = [PROCESSING, ...CHECKOUT_STATES];

/** States the workflow ends in. `needs_attention` is not one: it waits for an operator. */
export const TERMINAL_STATES: readonly CheckoutState[] = [
  'completed',
  'declined',
  'expired',
  'canceled',
  'refunded',
];
export const MONEY_TAKEN_STATES: readonly CheckoutState[] = ['paid', 'provisioning', 'completed'];

export type NeedsAttentionReason =
  /** Same key, other parameters: someone else used our key. Never retried, never compensated. */
  | 'idempotency_mismatch'
  /** Stripe stored a 500 (or the key's budget ran out) and reading back was inconclusive. */
  | 'payment_outcome_unknown'
  /** Stripe rejected a request we built (a 400 other than a decline): a bug or a config problem. */
  | 'stripe_rejected_request'
  /** Stripe shows a PaymentIntent in a state this checkout does not expect (e.g. requires_capture). */
  | 'unexpected_payment_state'
  /** More than one PaymentIntent for this checkout succeeded: refund by hand. */
  | 'multiple_successful_payments'
  | 'provisioning_failed';

export interface NeedsAttention {
  readonly reason: NeedsAttentionReason;
  readonly detail: string;
  readonly since: string;
  /** True only when Stripe was read and shows no charge, so a new card (`retryPayment`) is safe. */
  readonly retryAllowed: boolean;
}

export interface AuditEntry {
  readonly at: string;
  readonly actor: string;
  readonly action: string;
  readonly reason: string;
}

export interface CheckoutStatus {
  readonly workflowId: string;
  readonly orderId: string;
  readonly state: CheckoutState;
  readonly generation: number;
  readonly amount: number;
  readonly currency: string;
  /** The PaymentIntent the checkout currently follows. */
  readonly paymentIntentId: string | undefined;
  /** Every PaymentIntent this checkout has created or adopted, oldest first. */
  readonly paymentIntentIds: readonly string[];
  readonly decline: Decline | undefined;
  readonly needsAttention: NeedsAttention | undefined;
  readonly entitlement: Entitlement | undefined;
  /** State changes and operator actions, oldest first, each with who, when and why. */
  readonly audit: readonly AuditEntry[];
  /** Stripe events received (each id counted once) and deliveries ignored as already seen. */
  readonly stripeEvents: { readonly received: number; readonly duplicates: number };
  /** Minor units refunded so far (the card checkout always sets it; 0 when nothing was). */
  readonly refundedAmount?: number;
  /** Refunds this checkout made, oldest first, each with who asked, when and why. */
  readonly refunds?: readonly RefundEntry[];
  /** After provisioning failed for good: when the payment is refunded, or who stopped that. */
  readonly automaticRefund?: AutomaticRefund;
  /** `hosted` for a checkout paid on Stripe's hosted page; absent for the card checkout. */
  readonly mode?: 'hosted';
  /** A hosted checkout's Checkout Session, once it exists. */
  readonly checkoutSession?: CheckoutSessionInfo;
}

export type CheckoutResult =
  | {
      readonly outcome: 'completed';
      readonly orderId: string;
      readonly paymentIntentId: string;
      readonly amount: number;
      readonly currency: string;
      readonly generation: number;
      readonly entitlement: Entitlement;
      /** Present only when part of the payment was refunded before the checkout completed. */
      readonly refunds?: readonly RefundEntry[];
    }
  | {
      readonly outcome: 'declined';
      readonly orderId: string;
      readonly generation: number;
      readonly decline: Decline;
    }
  | {
      readonly outcome: 'expired';
      readonly orderId: string;
      readonly generation: number;
      readonly paymentIntentId: string | undefined;
    }
  | {
      readonly outcome: 'canceled';
      readonly orderId: string;
      readonly generation: number;
      readonly paymentIntentId: string | undefined;
      readonly actor: string;
      readonly reason: string;
    }
  | {
      /** Paid, then refunded in full: by an operator, or automatically after provisioning failed. */
      readonly outcome: 'refunded';
      readonly orderId: string;
      readonly paymentIntentId: string;
      readonly amount: number;
      readonly currency: string;
      readonly generation: number;
      readonly refundedAmount: number;
      readonly refunds: readonly RefundEntry[];
      /** The revoked entitlement, if one was ever granted. */
      readonly entitlement: Entitlement | undefined;
    };

export interface RetryPaymentRequest {
  readonly paymentMethodId: string;
  readonly actor: string;
  readonly reason: string;
}

export interface CancelRequest {
  readonly actor: string;
  readonly reason: string;
}

export type ResolveOutcome =
  /** Read Stripe again (by id, or by metadata search) and continue from what it shows. */
  | 'recheck'
  /** Give up without charging: cancel any open PaymentIntent (keyed) and end `canceled`. */
  | 'abandon'
  /**
   * Provisioning failed for good after payment: keep the payment, i.e. stop the automatic refund.
   * The checkout stays in `needs_attention` for `retryProvisioning` or a deliberate `refund`.
   */
  | 'keep_payment';

export const RESOLVE_OUTCOMES: readonly ResolveOutcome[] = ['recheck', 'abandon', 'keep_payment'];

export interface ResolveRequest {
  readonly actor: string;
  readonly reason: string;
  readonly outcome: ResolveOutcome;
}

/** Structural checks shared by the client and the workflow's update validators. */
export function validateRetryPaymentRequest(input: unknown): Validation<RetryPaymentRequest> {
  if (!isRecord(input)) return { ok: false, problems: ['request: must be an object'] };
  const problems: string[] = [];
  checkPaymentMethodId(problems, 'paymentMethodId', input.paymentMethodId);
  checkActorReason(problems, input);
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: input as unknown as RetryPaymentRequest };
}

export function validateCancelRequest(input: unknown): Validation<CancelRequest> {
  if (!isRecord(input)) return { ok: false, problems: ['request: must be an object'] };
  const problems: string[] = [];
  checkActorReason(problems, input);
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: input as unknown as CancelRequest };
}

export function validateResolveRequest(input: unknown): Validation<ResolveRequest> {
  if (!isRecord(input)) return { ok: false, problems: ['request: must be an object'] };
  const problems: string[] = [];
  checkActorReason(problems, input);
  if (!RESOLVE_OUTCOMES.some((o) => o === input.outcome)) {
    problems.push(`outcome: must be ${RESOLVE_OUTCOMES.map((o) => `"${o}"`).join(', ')}`);
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: input as unknown as ResolveRequest };
}

/** A refund as a caller asks for it (client, HTTP, CLI). */
export interface RefundRequest {
  /** Minor units; omitted means everything not yet refunded. */
  readonly amount?: number;
  readonly actor: string;
  readonly reason: string;
  /**
   * Caller-chosen id of this request (HTTP `Idempotency-Key`, CLI `--request-id`): sent again, it
   * answers the first request's refund instead of refunding again, even from a later run. Printable
   * ASCII, 1 to 255 characters; use an opaque id (a UUID), never personal data. Only its digest
   * (`refundRequestDigest` in the client) reaches the workflow, Stripe's metadata and update ids.
   */
  readonly requestId?: string;
}

export const REFUND_REQUEST_ID_MAX = 255;
const REFUND_REQUEST_ID_RE = /^[\x20-\x7e]{1,255}$/;

/** `requestId` (or the HTTP header named `field`): printable ASCII, 1 to 255 characters. */
export function refundRequestIdProblem(value: unknown, field = 'requestId'): string | undefined {
  if (typeof value === 'string' && REFUND_REQUEST_ID_RE.test(value)) return undefined;
  return `${field}: must be 1 to ${REFUND_REQUEST_ID_MAX} printable ASCII characters (an opaque id such as a UUID)`;
}

/** Structural checks of a refund request; the workflow adds what only it knows (amount left). */
export function validateRefundRequest(input: unknown): Validation<RefundRequest> {
  if (!isRecord(input)) return { ok: false, problems: ['request: must be an object'] };
  const problems: string[] = [];
  for (const k of Object.keys(input)) {
    if (k !== 'amount' && k !== 'actor' && k !== 'reason' && k !== 'requestId') {
      problems.push(`${k}: unknown field`);
    }
  }
  if (input.amount !== undefined) checkInt(problems, 'amount', input.amount, 1, AMOUNT_MAX);
  checkActorReason(problems, input);
  if (input.requestId !== undefined) {
    const p = refundRequestIdProblem(input.requestId);
    if (p) problems.push(p);
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: input as unknown as RefundRequest };
}

/**
 * The `refund` update's argument: the request as the workflow sees it. The caller's request id
 * arrives only as its digest (32 lowercase hex characters), so no raw id reaches the history, a
 * Stripe key or Stripe's metadata.
 */
export interface RefundUpdateRequest {
  readonly amount?: number;
  readonly actor: string;
  readonly reason: string;
  readonly requestDigest?: string;
}

export const REFUND_REQUEST_DIGEST_RE = /^[0-9a-f]{32}$/;

export function validateRefundUpdateRequest(input: unknown): Validation<RefundUpdateRequest> {
  if (!isRecord(input)) return { ok: false, problems: ['request: must be an object'] };
  const problems: string[] = [];
  for (const k of Object.keys(input)) {
    if (k !== 'amount' && k !== 'actor' && k !== 'reason' && k !== 'requestDigest') {
      problems.push(`${k}: unknown field`);
    }
  }
  if (input.amount !== undefined) checkInt(problems, 'amount', input.amount, 1, AMOUNT_MAX);
  checkActorReason(problems, input);
  if (
    input.requestDigest !== undefined &&
    !(typeof input.requestDigest === 'string' && REFUND_REQUEST_DIGEST_RE.test(input.requestDigest))
  ) {
    problems.push('requestDigest: must be 32 lowercase hex characters');
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: input as unknown as RefundUpdateRequest };
}

/**
 * The update id of a refund request with a request id: Temporal answers a concurrent or repeated
 * update with the same id in the same run once. The terms are part of it, so the same request id
 * with another amount is not silently deduplicated but reaches the workflow, which refuses it.
 */
export function refundUpdateId(requestDigest: string, amount: number | undefined): string {
  return `refund-${requestDigest}-${amount === undefined ? 'rest' : String(amount)}`;
}

/** What a request id asked for: its digest and amount (`null`: everything left). */
export interface RefundRequested {
  readonly digest: string;
  readonly amount: number | null;
}

/** Failure type of a request id used again with other terms. */
export const REFUND_REQUEST_CONFLICT = 'RefundRequestConflict';

/**
 * Why `request` may not reuse the request id of `earlier`, naming the field that differs; undefined
 * when the terms match (the caller answers with the earlier refund).
 */
export function refundRequestConflict(
  earlier: RefundEntry,
  request: RefundUpdateRequest,
): string | undefined {
  const asked = earlier.requested?.amount ?? null;
  const now = request.amount ?? null;
  if (asked === now) return undefined;
  const show = (a: number | null): string => (a === null ? 'everything left' : String(a));
  return (
    `amount: this request id was already used for a refund of ${show(asked)} ` +
    `(${earlier.refundId}, ${earlier.amount} refunded), not ${show(now)}; use a new request id for another refund`
  );
}

/**
 * `<workflow id>/refund/r<n>`, n counting deliberate refund requests from 1: an activity retry or a
 * replay reuses the key, only a new request from an operator gets a new one.
 */
export function refundIdempotencyKey(workflowId: string, request: number): string {
  return `${workflowId}/refund/r${request}`;
}

/** Metadata on every refund, so it can be found by order and checkout. */
export interface RefundMetadata {
  readonly order_id: string;
  readonly checkout_workflow_id: string;
  readonly refund_request: string;
  /** Digest of the caller's request id, when it gave one: a later run finds the refund by it. */
  readonly refund_request_digest?: string;
  /** What that request asked for: minor units, or `rest` (everything left). */
  readonly refund_request_amount?: string;
}

export interface CreateRefundParams {
  readonly payment_intent: string;
  readonly amount: number;
  readonly metadata: RefundMetadata;
}

export interface RefundSnapshot {
  readonly id: string;
  readonly paymentIntentId: string;
  readonly amount: number;
  readonly status: string;
}

/** A refund as `GET /v1/refunds` lists it: what an order has already had back, from Stripe. */
export interface ListedRefund extends RefundSnapshot {
  /** Unix seconds. */
  readonly created: number;
  readonly metadata: Readonly<Record<string, string>>;
}

export interface RefundList {
  readonly refunds: readonly ListedRefund[];
}

/** Refunds that did not fail or get canceled count against what is left (Stripe's own rule). */
export function refundCounts(status: string): boolean {
  return status !== 'failed' && status !== 'canceled';
}

/** The request number of a refund made under `…/refund/r<n>`, from its `refund_request` metadata. */
export function refundRequestNumber(metadata: Readonly<Record<string, string>>): number | undefined {
  const m = /^r([1-9][0-9]{0,8})$/.exec(metadata.refund_request ?? '');
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** One refund made for an order, with who asked, when and why. */
export interface RefundEntry {
  readonly refundId: string;
  readonly amount: number;
  /** The key it was made under; absent for one found in Stripe that this run did not make. */
  readonly idempotencyKey?: string;
  readonly actor: string;
  readonly reason: string;
  readonly at: string;
  /** True when it left nothing of the payment, so the entitlement was revoked. */
  readonly full: boolean;
  /** The request id (as its digest) and terms it was made for, when the caller gave one. */
  readonly requested?: RefundRequested;
}

/** A listed refund's request digest and terms, from its metadata; undefined when it has none. */
export function refundRequestedOf(metadata: Readonly<Record<string, string>>): RefundRequested | undefined {
  const digest = metadata.refund_request_digest;
  if (digest === undefined || !REFUND_REQUEST_DIGEST_RE.test(digest)) return undefined;
  const raw = metadata.refund_request_amount;
  const amount = raw === undefined || raw === 'rest' || !/^[1-9][0-9]{0,11}$/.test(raw) ? null : Number(raw);
  return { digest, amount };
}

/** What a `refund` update answers, from the open checkout or from the refunds workflow. */
export interface RefundResult {
  readonly orderId: string;
  /** The workflow that made the refund: the checkout while open, else `refunds-<orderId>`. */
  readonly workflowId: string;
  readonly paymentIntentId: string;
  readonly currency: string;
  /** What was paid. */
  readonly amount: number;
  readonly refundedAmount: number;
  readonly remainingAmount: number;
  /** The refund this request made (or, when `replayed`, the one its request id made before). */
  readonly refund: RefundEntry;
  readonly refunds: readonly RefundEntry[];
  /**
   * True when the request id was already used with the same terms: nothing new was refunded and
   * `refund` is the earlier request's refund (the totals are as of now).
   */
  readonly replayed?: boolean;
}

/** After provisioning failed for good: the refund the workflow will make unless told otherwise. */
export type AutomaticRefund =
  | { readonly status: 'scheduled'; readonly dueAt: string }
  | { readonly status: 'stopped'; readonly actor: string; readonly reason: string; readonly at: string }
  | { readonly status: 'done'; readonly at: string; readonly refundId: string };

export interface RetryProvisioningRequest {
  readonly actor: string;
  readonly reason: string;
}

export function validateRetryProvisioningRequest(input: unknown): Validation<RetryProvisioningRequest> {
  if (!isRecord(input)) return { ok: false, problems: ['request: must be an object'] };
  const problems: string[] = [];
  for (const k of Object.keys(input)) {
    if (k !== 'actor' && k !== 'reason') problems.push(`${k}: unknown field`);
  }
  checkActorReason(problems, input);
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: input as unknown as RetryProvisioningRequest };
}

// ---------------------------------------------------------------------------------------------
// Refunds of a completed checkout: one entity workflow per order (src/workflows/refunds.ts)

export const REFUNDS_WORKFLOW_ID_PREFIX = 'refunds-';

/** The refunds workflow of an order; its refund keys are `refunds-<order id>/refund/r<n>`. */
export function refundsWorkflowId(orderId: string): string {
  return `${REFUNDS_WORKFLOW_ID_PREFIX}${orderId}`;
}

export const refundsWorkflowType = 'checkoutRefunds';

export interface RefundsOptions {
  /** The run closes after this long without a request; the next request starts a new run. Default 10 min. */
  readonly idleTimeoutMs?: number;
  /** Start-to-close of one Stripe call. Default 30 s. */
  readonly stripeCallTimeoutMs?: number;
  /** Continue-as-new once the history is this long (or the server suggests it). Default 10 000. */
  readonly maxHistoryEvents?: number;
}

const REFUNDS_OPTION_LIMITS: Readonly<Record<keyof RefundsOptions, readonly [number, number]>> = {
  idleTimeoutMs: [1, DURATION_MAX_MS],
  stripeCallTimeoutMs: [1, 10 * 60 * 1000],
  maxHistoryEvents: [50, 50_000],
};

/** What a refunds run carries into the next one (continue-as-new): who asked for what, and why. */
export interface RefundsCarried {
  readonly refunds: readonly RefundEntry[];
  readonly audit: readonly AuditEntry[];
  readonly nextRequest: number;
}

export interface RefundsInput {
  readonly orderId: string;
  /** The completed checkout's PaymentIntent; the run verifies it in Stripe before refunding. */
  readonly paymentIntentId: string;
  readonly amount: number;
  readonly currency: string;
  readonly options?: RefundsOptions;
  readonly carried?: RefundsCarried;
}

export function validateRefundsInput(input: unknown): Validation<RefundsInput> {
  if (!isRecord(input)) return { ok: false, problems: ['input: must be an object'] };
  const problems: string[] = [];
  for (const k of Object.keys(input)) {
    if (!['orderId', 'paymentIntentId', 'amount', 'currency', 'options', 'carried'].includes(k)) {
      problems.push(`${k}: unknown field`);
    }
  }
  checkString(
    problems,
    'orderId',
    input.orderId,
    ORDER_ID_RE,
    'letters, digits, "_" or "-"',
    ORDER_ID_MAX_LENGTH,
  );
  checkString(
    problems,
    'paymentIntentId',
    input.paymentIntentId,
    PAYMENT_INTENT_ID_RE,
    'a PaymentIntent id (pi_…)',
    253,
  );
  checkInt(problems, 'amount', input.amount, 1, AMOUNT_MAX);
  checkString(problems, 'currency', input.currency, CURRENCY_RE, 'a lowercase ISO 4217 code', 3);
  if (input.options !== undefined) {
    if (!isRecord(input.options)) {
      problems.push('options: must be an object');
    } else {
      for (const [k, v] of Object.entries(input.options)) {
        if (v === undefined) continue;
        if (!Object.prototype.hasOwnProperty.call(REFUNDS_OPTION_LIMITS, k)) {
          problems.push(`options.${k}: unknown option`);
          continue;
        }
        const [min, max] = REFUNDS_OPTION_LIMITS[k as keyof RefundsOptions];
        checkInt(problems, `options.${k}`, v, min, max);
      }
    }
  }
  if (input.carried !== undefined && !isRecord(input.carried)) problems.push('carried: must be an object');
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: input as unknown as RefundsInput };
}

export type RefundsState = 'verifying' | 'open' | 'refused';

export interface RefundsStatus {
  readonly workflowId: string;
  readonly orderId: string;
  readonly state: RefundsState;
  /** Why the run refuses to refund (the PaymentIntent is not this order's, or not paid). */
  readonly refusedBecause: string | undefined;
  readonly paymentIntentId: string;
  readonly amount: number;
  readonly currency: string;
  readonly refundedAmount: number;
  readonly remainingAmount: number;
  /** Every refund of the payment, oldest first: those this workflow made with who, when and why. */
  readonly refunds: readonly RefundEntry[];
  readonly audit: readonly AuditEntry[];
}

export type RefundsResult =
  | { readonly outcome: 'idle'; readonly refundedAmount: number; readonly remainingAmount: number }
  | { readonly outcome: 'refused'; readonly reason: string };

/** An open checkout's refusal once it completed: the caller routes to the refunds workflow. */
export const REFUND_AFTER_COMPLETION =
  'the checkout has completed and is closing: refund through its refunds workflow';

/**
 * Refund (part of) a paid order: the open checkout's update while it runs, the refunds workflow's
 * once it completed. The validator checks the request and that the amount is at most what is left.
 */
export const refundUpdate = defineUpdate<RefundResult, [RefundUpdateRequest]>('refund');
/** After provisioning failed for good: try again (a new bounded effort). */
export const retryProvisioningUpdate = defineUpdate<CheckoutStatus, [RetryProvisioningRequest]>(
  'retryProvisioning',
);
export const refundsStatusQuery = defineQuery<RefundsStatus>('status');

// ---------------------------------------------------------------------------------------------
// The reconciler (src/workflows/reconciler.ts, docs/reconciler.md): compares what Stripe shows for
// recent PaymentIntents carrying checkout metadata with the checkouts and the provisioning store.

export const reconcileWorkflowType = 'reconcile';
export const reconciliationCaseWorkflowType = 'reconciliationCase';
/** The Temporal Schedule that runs `reconcile`; its runs get ids `reconcile-<scheduled time>`. */
export const RECONCILER_SCHEDULE_ID = 'checkout-reconciler';
export const RECONCILE_WORKFLOW_ID_PREFIX = 'reconcile';

/**
 * `reconcile/<PaymentIntent id>/cancel`: one key per PaymentIntent for every reconciler run, retry
 * and replay, so however many runs find the same orphan (overlapping, retried, replayed), Stripe
 * executes one cancel. No run id, clock, attempt or customer data.
 */
export function reconcileCancelIdempotencyKey(paymentIntentId: string): string {
  return `reconcile/${paymentIntentId}/cancel`;
}

/** One case per PaymentIntent: `case-<PaymentIntent id>`, started at most once (REJECT_DUPLICATE). */
export function reconciliationCaseWorkflowId(paymentIntentId: string): string {
  return `case-${paymentIntentId}`;
}

export const RECONCILER_FINDING_KINDS = [
  /** Unconfirmed, older than the grace, and no open checkout follows it: canceled at Stripe. */
  'orphan',
  /** Succeeded, its checkout closed, nothing provisioned, not fully refunded: a case for an operator. */
  'paid_not_provisioned',
  /** Succeeded with checkout metadata, but no such checkout exists and nothing was provisioned. */
  'charged_without_checkout',
  /** Succeeded, but its closed checkout provisioned a different PaymentIntent: charged twice. */
  'duplicate_payment',
] as const;
export type ReconcilerFindingKind = (typeof RECONCILER_FINDING_KINDS)[number];
/** Kinds an operator must act on: each opens a `reconciliationCase`. */
export const CASE_FINDING_KINDS: readonly ReconcilerFindingKind[] = [
  'paid_not_provisioned',
  'charged_without_checkout',
  'duplicate_payment',
];

export interface ReconcilerFinding {
  readonly kind: ReconcilerFindingKind;
  readonly paymentIntentId: string;
  readonly paymentIntentStatus: PaymentIntentStatus;
  readonly orderId: string;
  readonly checkoutWorkflowId: string;
  readonly amount: number;
  readonly currency: string;
  /** When Stripe created the PaymentIntent (ISO 8601, Stripe's clock). */
  readonly createdAt: string;
  /** What the reconciler found of the checkout: its workflow status, or `absent`. */
  readonly checkout: string;
  /** Minor units refunded so far (succeeded and pending refunds). */
  readonly refunded: number;
  readonly detail: string;
}

export type ReconcilerFixOutcome =
  /** The orphan is canceled at Stripe (by this run, or by an earlier one under the same key). */
  | 'canceled'
  /** Stripe refused the cancel because the PaymentIntent moved on meanwhile (e.g. was confirmed). */
  | 'not_canceled'
  /** This run opened the case workflow. */
  | 'case_opened'
  /** A case for this PaymentIntent is already open. */
  | 'case_open'
  /** An operator resolved the case for this PaymentIntent earlier; it is not reopened. */
  | 'case_resolved'
  /** A dry run: found, nothing changed. */
  | 'reported'
  /** The fix failed after its retries; the next run tries again. */
  | 'failed';

export interface ReconciledFinding extends ReconcilerFinding {
  readonly outcome: ReconcilerFixOutcome;
  /** The case workflow's id, for findings an operator must act on. */
  readonly caseWorkflowId?: string;
  /** Why a fix failed, or what Stripe showed instead. */
  readonly note?: string;
}

export type ReconcilerCounts = Readonly<Record<ReconcilerFindingKind, number>>;

/** Production defaults in src/workflows/reconciler.ts; every one may be shortened (tests). */
export interface ReconcileOptions {
  /** PaymentIntents created this long before the run are read. Default 48 h. */
  readonly lookbackMs?: number;
  /** An unconfirmed PaymentIntent younger than this is never an orphan. Default 1 h. */
  readonly orphanGraceMs?: number;
  /** PaymentIntents per list page (Stripe allows 1 to 100). Default 100. */
  readonly pageSize?: number;
  /** Find and report, change nothing (no cancel, no case). Default false. */
  readonly dryRun?: boolean;
}

/** Where a run that continued as new picks up; never set by callers. */
export interface ReconcileProgress {
  /** The run's reference time (ms since the epoch): the window and the grace are measured from it. */
  readonly nowMs: number;
  readonly startedAt: string;
  /** The last PaymentIntent id read (`starting_after` of the next page). */
  readonly cursor: string;
  readonly scanned: number;
  readonly withCheckoutMetadata: number;
  readonly findings: readonly ReconciledFinding[];
  readonly findingsNotListed: number;
  readonly counts: ReconcilerCounts;
  readonly fixes: ReconcilerCounts;
}

export interface ReconcileInput {
  readonly options?: ReconcileOptions;
  readonly progress?: ReconcileProgress;
}

export interface ReconcileResult {
  readonly startedAt: string;
  readonly finishedAt: string;
  /** PaymentIntents created at or after this (unix seconds, Stripe's `created[gte]`) were read. */
  readonly createdGte: number;
  readonly dryRun: boolean;
  readonly scanned: number;
  readonly withCheckoutMetadata: number;
  /** Findings by kind, this run. */
  readonly counts: ReconcilerCounts;
  /** Findings this run fixed by kind: orphans canceled, cases opened. */
  readonly fixes: ReconcilerCounts;
  /** The findings, at most `RECONCILE_FINDINGS_LISTED`; the rest are only counted. */
  readonly findings: readonly ReconciledFinding[];
  readonly findingsNotListed: number;
}

export const RECONCILE_FINDINGS_LISTED = 200;

const RECONCILE_OPTION_LIMITS = {
  lookbackMs: [60 * 1000, 90 * 24 * 60 * 60 * 1000],
  orphanGraceMs: [0, DURATION_MAX_MS],
  pageSize: [1, 100],
} as const;

export function validateReconcileOptions(input: unknown): Validation<ReconcileOptions> {
  if (input === undefined) return { ok: true, value: {} };
  if (!isRecord(input)) return { ok: false, problems: ['options: must be an object'] };
  const problems: string[] = [];
  const out: { -readonly [K in keyof ReconcileOptions]: ReconcileOptions[K] } = {};
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined) continue;
    if (k === 'dryRun') {
      if (typeof v !== 'boolean') problems.push('options.dryRun: must be true or false');
      else out.dryRun = v;
      continue;
    }
    if (k !== 'lookbackMs' && k !== 'orphanGraceMs' && k !== 'pageSize') {
      problems.push(`options.${k}: unknown option`);
      continue;
    }
    const [min, max] = RECONCILE_OPTION_LIMITS[k];
    out[k] = checkInt(problems, `options.${k}`, v, min, max);
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: out };
}

export const CASE_STATES = ['needs_attention', 'resolved'] as const;
export type CaseState = (typeof CASE_STATES)[number];

export const CASE_RESOLUTIONS = [
  /** The operator refunded the payment by hand. */
  'refunded',
  /** The operator provisioned the order by hand. */
  'provisioned',
  /** Looked into; nothing to do (e.g. a payment taken outside this product). */
  'no_action',
] as const;
export type CaseResolution = (typeof CASE_RESOLUTIONS)[number];

export interface ReconciliationCaseInput {
  readonly finding: ReconcilerFinding;
  /** When the reconciler found it (ISO 8601). */
  readonly openedAt: string;
  /** The reconcile run that opened the case (`<workflow id>/<run id>`). */
  readonly openedBy: string;
}

export interface CaseResolveRequest {
  readonly actor: string;
  readonly reason: string;
  readonly outcome: CaseResolution;
}

export interface ReconciliationCaseStatus {
  readonly caseWorkflowId: string;
  readonly state: CaseState;
  readonly finding: ReconcilerFinding;
  readonly openedAt: string;
  readonly openedBy: string;
  readonly resolution: (CaseResolveRequest & { readonly at: string }) | undefined;
  readonly audit: readonly AuditEntry[];
}

export interface ReconciliationCaseResult {
  readonly caseWorkflowId: string;
  readonly finding: ReconcilerFinding;
  readonly resolution: CaseResolveRequest & { readonly at: string };
}

export function validateCaseResolveRequest(input: unknown): Validation<CaseResolveRequest> {
  if (!isRecord(input)) return { ok: false, problems: ['request: must be an object'] };
  const problems: string[] = [];
  for (const k of Object.keys(input)) {
    if (k !== 'actor' && k !== 'reason' && k !== 'outcome') problems.push(`${k}: unknown field`);
  }
  checkActorReason(problems, input);
  if (!CASE_RESOLUTIONS.some((o) => o === input.outcome)) {
    problems.push(`outcome: must be ${CASE_RESOLUTIONS.map((o) => `"${o}"`).join(', ')}`);
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: input as unknown as CaseResolveRequest };
}

/** A case's state, finding, resolution and audit trail. */
export const caseStatusQuery = defineQuery<ReconciliationCaseStatus>('status');
/** An operator closes the case after acting (refund, provision by hand), saying who and why. */
export const caseResolveUpdate = defineUpdate<ReconciliationCaseStatus, [CaseResolveRequest]>('resolve');

export const checkoutWorkflowType = 'checkout';

export const statusQuery = defineQuery<CheckoutStatus>('status');
/** A new card after a decline (or after an inconclusive attempt Stripe shows uncharged). */
export const retryPaymentUpdate = defineUpdate<CheckoutStatus, [RetryPaymentRequest]>('retryPayment');
export const cancelUpdate = defineUpdate<CheckoutStatus, [CancelRequest]>('cancel');
export const resolveUpdate = defineUpdate<CheckoutStatus, [ResolveRequest]>('resolve');
/**
 * Something says a PaymentIntent changed: wake the wait and read it now. Superseded by
 * `stripeEventSignal` (which the webhook intake sends); still handled for any sender that has not
 * moved. The signal carries no authority; the workflow always reads Stripe itself.
 */
export const paymentIntentChangedSignal =
  defineSignal<[{ readonly paymentIntentId: string }]>('paymentIntentChanged');

/** A verified Stripe webhook event, as the intake hands it to the checkout it names. */
export interface StripeEventNotice {
  /** `evt_…`: Stripe delivers at least once, so the workflow ignores an id it has seen. */
  readonly eventId: string;
  /** `payment_intent.succeeded`, `charge.refunded`, … */
  readonly type: string;
  /** The id of the event's `data.object`. */
  readonly objectId: string;
  /** The PaymentIntent the object is or refers to, when it has one. */
  readonly paymentIntentId?: string;
}

/** How many event ids a checkout remembers for deduplication (oldest forgotten first). */
export const SEEN_STRIPE_EVENTS_MAX = 200;

const EVENT_ID_RE = /^evt_[A-Za-z0-9_]{1,250}$/;
const EVENT_TYPE_RE = /^[a-z_]+(\.[a-z_]+)+$/;
const OBJECT_ID_RE = /^[A-Za-z0-9_]{1,255}$/;
const PAYMENT_INTENT_ID_RE = /^pi_[A-Za-z0-9_]{1,250}$/;

export function validateStripeEventNotice(input: unknown): Validation<StripeEventNotice> {
  if (!isRecord(input)) return { ok: false, problems: ['notice: must be an object'] };
  const problems: string[] = [];
  for (const k of Object.keys(input)) {
    if (!['eventId', 'type', 'objectId', 'paymentIntentId'].includes(k)) problems.push(`${k}: unknown field`);
  }
  checkString(problems, 'eventId', input.eventId, EVENT_ID_RE, 'a Stripe event id (evt_…)', 254);
  checkString(
    problems,
    'type',
    input.type,
    EVENT_TYPE_RE,
    'a Stripe event type such as "charge.refunded"',
    100,
  );
  checkString(problems, 'objectId', input.objectId, OBJECT_ID_RE, 'a Stripe object id', 255);
  if (input.paymentIntentId !== undefined) {
    checkString(
      problems,
      'paymentIntentId',
      input.paymentIntentId,
      PAYMENT_INTENT_ID_RE,
      'a PaymentIntent id (pi_…)',
      253,
    );
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: input as unknown as StripeEventNotice };
}

/**
 * A Stripe webhook event for this checkout: recorded once per event id in the audit trail, then it
 * only wakes the wait. The workflow reads the PaymentIntent back before acting and only moves
 * forward, so a duplicate, a reordered or a late event (a `payment_failed` after `succeeded`)
 * changes nothing.
 */
export const stripeEventSignal = defineSignal<[StripeEventNotice]>('stripeEvent');

// ---------------------------------------------------------------------------------------------
// Hosted checkout: the customer pays on Stripe's Checkout page (src/workflows/hosted-checkout.ts)

/** Durations a caller (or a test) may shorten for a hosted checkout. */
export interface HostedCheckoutOptions {
  /**
   * How long the customer has to pay on the hosted page. At the deadline the workflow expires the
   * Checkout Session (keyed) so a late payment cannot land. Default 1 h, at most 24 h (Stripe's own
   * longest session); from 1 h to 23 h it is also sent as the session's `expires_at`.
   */
  readonly sessionTimeoutMs?: number;
  /** How long a completed session may wait for an async method (bank debit) to settle. Default 7 days. */
  readonly asyncPaymentTimeoutMs?: number;
  /** First interval between reads of Stripe while waiting; doubles up to 1 min. Default 5 s. */
  readonly paymentPollIntervalMs?: number;
  /** As `CheckoutOptions.stripeKeyBudgetMs`. Default 20 h. */
  readonly stripeKeyBudgetMs?: number;
  /** As `CheckoutOptions.stripeCallTimeoutMs`. Default 30 s. */
  readonly stripeCallTimeoutMs?: number;
  /** How often a needs-attention checkout re-reads Stripe on its own. Default 5 min. */
  readonly reconcileIntervalMs?: number;
  /** As `CheckoutOptions.provisioningTimeoutMs`: the bounded provisioning effort. Default 1 h. */
  readonly provisioningTimeoutMs?: number;
  /** As `CheckoutOptions.provisioningGraceMs`: the wait before the automatic refund. Default 24 h. */
  readonly provisioningGraceMs?: number;
}

export interface HostedCheckoutInput {
  readonly orderId: string;
  /** Positive integer in the currency's minor unit: the session's one line item. */
  readonly amount: number;
  readonly currency: string;
  /** Optional Stripe customer id (`cus_…`); without it Stripe Checkout asks for an email. */
  readonly customerId?: string;
  readonly provision: ProvisionItem;
  /** Where the hosted page sends the customer after paying (`{CHECKOUT_SESSION_ID}` is filled in). */
  readonly successUrl: string;
  /** Where the hosted page's cancel link leads. */
  readonly cancelUrl: string;
  /** Payment methods offered on the page. Default `['card']`. */
  readonly paymentMethodTypes?: readonly HostedPaymentMethodType[];
  readonly options?: HostedCheckoutOptions;
}

export const HOSTED_PAYMENT_METHOD_TYPES = ['card', 'us_bank_account'] as const;
export type HostedPaymentMethodType = (typeof HOSTED_PAYMENT_METHOD_TYPES)[number];

/** Stripe accepts `success_url` up to 5 000 characters; a return URL has no business being longer. */
export const RETURN_URL_MAX_LENGTH = 2_000;
const SESSION_TIMEOUT_MAX_MS = 24 * 60 * 60 * 1000;

const HOSTED_OPTION_LIMITS: Readonly<Record<keyof HostedCheckoutOptions, readonly [number, number]>> = {
  sessionTimeoutMs: [1_000, SESSION_TIMEOUT_MAX_MS],
  asyncPaymentTimeoutMs: [1, DURATION_MAX_MS],
  paymentPollIntervalMs: [1, DURATION_MAX_MS],
  stripeKeyBudgetMs: [1, KEY_BUDGET_MAX_MS],
  stripeCallTimeoutMs: [1, 10 * 60 * 1000],
  reconcileIntervalMs: [1, DURATION_MAX_MS],
  provisioningTimeoutMs: [1, DURATION_MAX_MS],
  provisioningGraceMs: [0, DURATION_MAX_MS],
};

function isHostedOptionName(k: string): k is keyof HostedCheckoutOptions {
  return Object.prototype.hasOwnProperty.call(HOSTED_OPTION_LIMITS, k);
}

/**
 * An absolute http(s) URL without credentials, by shape: scheme, then a host of letters, digits,
 * dots, hyphens or a bracketed IPv6 address, an optional port, then anything printable without
 * spaces. At a start the shape is then parsed with the WHATWG `URL` class (`checkReturnUrl`).
 */
const RETURN_URL_RE =
  /^https?:\/\/(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::(\d{1,5}))?(?:[/?#][\x21-\x7e]*)?$/;

/**
 * The workflow id `checkout-<order id>` is the session's `client_reference_id`, which Stripe takes
 * up to 200 characters: a hosted order id is at most 191.
 */
export const HOSTED_ORDER_ID_MAX_LENGTH = 200 - WORKFLOW_ID_PREFIX.length;

/**
 * Where a hosted input is validated. `start`: the client, the HTTP intake and the CLI, before
 * anything starts. `workflow`: the running workflow's own check of its input, which leaves out the
 * checks added after checkouts were already running (the WHATWG parse of the return URLs, the
 * hosted order id length): refusing an input its run was started with would fail that run's replay.
 */
export type HostedValidationAt = 'start' | 'workflow';

function checkReturnUrl(problems: string[], field: string, v: unknown, at: HostedValidationAt): string {
  if (typeof v !== 'string') {
    problems.push(`${field}: must be a string (an absolute http:// or https:// URL)`);
    return '';
  }
  const shape = v.length > 0 && v.length <= RETURN_URL_MAX_LENGTH ? RETURN_URL_RE.exec(v) : null;
  if (!shape) {
    problems.push(
      `${field}: must be an absolute http:// or https:// URL without spaces or user info, at most ${RETURN_URL_MAX_LENGTH} characters`,
    );
    return v;
  }
  if (at === 'workflow') return v;
  // What Stripe refuses after the checkout started would leave it parked: refuse it here.
  const port = shape[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535)) {
    problems.push(`${field}: port ${port} is out of range (1 to 65535)`);
    return v;
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(v);
  } catch {
    parsed = undefined;
  }
  if (
    parsed === undefined ||
    (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') ||
    parsed.hostname === '' ||
    parsed.username !== '' ||
    parsed.password !== ''
  ) {
    problems.push(`${field}: not a valid URL (the host must be a domain name or an IP address)`);
  }
  return v;
}

function checkProvision(problems: string[], v: unknown): ProvisionItem {
  if (!isRecord(v)) {
    problems.push('provision: must be an object { sku, quantity }');
    return { sku: '', quantity: 0 };
  }
  for (const k of Object.keys(v)) {
    if (k !== 'sku' && k !== 'quantity') problems.push(`provision.${k}: unknown field`);
  }
  return {
    sku: checkString(problems, 'provision.sku', v.sku, SKU_RE, 'letters, digits, ".", "_" or "-"', 64),
    quantity: checkInt(problems, 'provision.quantity', v.quantity, 1, QUANTITY_MAX),
  };
}

/**
 * Validates a hosted checkout's input (client, HTTP intake, CLI and the workflow itself), naming
 * every bad field. Unknown fields are rejected, and so is `paymentMethodId`: on a hosted checkout
 * the customer chooses the method on Stripe's page.
 */
export function validateHostedCheckoutInput(
  input: unknown,
  at: HostedValidationAt = 'start',
): Validation<HostedCheckoutInput> {
  if (!isRecord(input)) return { ok: false, problems: ['input: must be an object'] };
  const problems: string[] = [];
  const known = [
    'orderId',
    'amount',
    'currency',
    'customerId',
    'provision',
    'successUrl',
    'cancelUrl',
    'paymentMethodTypes',
    'options',
  ];
  for (const k of Object.keys(input)) {
    if (k === 'paymentMethodId') {
      problems.push('paymentMethodId: not used by a hosted checkout (the customer pays on the hosted page)');
    } else if (!known.includes(k)) {
      problems.push(`${k}: unknown field`);
    }
  }
  const orderId = checkString(
    problems,
    'orderId',
    input.orderId,
    ORDER_ID_RE,
    'letters, digits, "_" or "-"',
    at === 'start' ? HOSTED_ORDER_ID_MAX_LENGTH : ORDER_ID_MAX_LENGTH,
  );
  const amount = checkInt(problems, 'amount', input.amount, 1, AMOUNT_MAX);
  const currency = checkString(
    problems,
    'currency',
    input.currency,
    CURRENCY_RE,
    'a lowercase ISO 4217 code such as "usd"',
    3,
  );
  const customerId =
    input.customerId === undefined
      ? undefined
      : checkString(
          problems,
          'customerId',
          input.customerId,
          CUSTOMER_ID_RE,
          'a Stripe customer id (cus_…)',
          204,
        );
  const provision = checkProvision(problems, input.provision);
  const successUrl = checkReturnUrl(problems, 'successUrl', input.successUrl, at);
  const cancelUrl = checkReturnUrl(problems, 'cancelUrl', input.cancelUrl, at);
  let paymentMethodTypes: HostedPaymentMethodType[] | undefined;
  if (input.paymentMethodTypes !== undefined) {
    const raw = input.paymentMethodTypes;
    const allowed: readonly string[] = HOSTED_PAYMENT_METHOD_TYPES;
    if (
      !Array.isArray(raw) ||
      raw.length === 0 ||
      raw.some((t) => typeof t !== 'string' || !allowed.includes(t)) ||
      new Set(raw).size !== raw.length
    ) {
      problems.push(
        `paymentMethodTypes: must be a non-empty list without repeats of ${HOSTED_PAYMENT_METHOD_TYPES.map((t) => `"${t}"`).join(', ')}`,
      );
    } else {
      paymentMethodTypes = raw as HostedPaymentMethodType[];
    }
  }
  const options: Record<string, number> = {};
  if (input.options !== undefined) {
    if (!isRecord(input.options)) {
      problems.push('options: must be an object');
    } else {
      for (const [k, v] of Object.entries(input.options)) {
        if (v === undefined) continue;
        if (!isHostedOptionName(k)) {
          problems.push(`options.${k}: unknown option`);
          continue;
        }
        const [min, max] = HOSTED_OPTION_LIMITS[k];
        options[k] = checkInt(problems, `options.${k}`, v, min, max);
      }
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    value: {
      orderId,
      amount,
      currency,
      ...(customerId === undefined ? {} : { customerId }),
      provision,
      successUrl,
      cancelUrl,
      ...(paymentMethodTypes === undefined ? {} : { paymentMethodTypes }),
      options,
    },
  };
}

export type CheckoutSessionWriteStep = 'create' | 'expire';

/**
 * `<workflow id>/session/g1/<step>`: one Checkout Session per hosted checkout (generation 1; the
 * `g` keeps the scheme parallel to the card checkout's should a second session ever be allowed).
 */
export function checkoutSessionIdempotencyKey(workflowId: string, step: CheckoutSessionWriteStep): string {
  return `${workflowId}/session/g1/${step}`;
}

/** What the workflow sends for `checkout.sessions.create`; built deterministically from its input. */
export interface CreateCheckoutSessionParams {
  readonly mode: 'payment';
  readonly line_items: readonly [
    {
      readonly price_data: {
        readonly currency: string;
        readonly unit_amount: number;
        readonly product_data: { readonly name: string };
      };
      readonly quantity: 1;
    },
  ];
  readonly success_url: string;
  readonly cancel_url: string;
  /** The workflow id, so every `checkout.session.*` event names its checkout. */
  readonly client_reference_id: string;
  readonly customer?: string;
  readonly allowed_payment_method_types: readonly HostedPaymentMethodType[];
  readonly expires_at?: number;
  readonly metadata: CheckoutMetadata;
  /** The same metadata on the PaymentIntent, so it is found exactly as a card checkout's is. */
  readonly payment_intent_data: { readonly description: string; readonly metadata: CheckoutMetadata };
}

export type CheckoutSessionStatus = 'open' | 'complete' | 'expired';
export type CheckoutSessionPaymentStatus = 'paid' | 'unpaid' | 'no_payment_required';

export interface CheckoutSessionSnapshot {
  readonly id: string;
  readonly status: CheckoutSessionStatus;
  readonly paymentStatus: CheckoutSessionPaymentStatus;
  /** Set once the customer paid or started paying (Stripe creates it lazily). */
  readonly paymentIntentId: string | undefined;
  /** The hosted page; null once the session is complete or expired. */
  readonly url: string | null;
  readonly amountTotal: number | null;
  readonly currency: string | null;
  readonly clientReferenceId: string | null;
  readonly metadata: Readonly<Record<string, string>>;
  /** Unix seconds. */
  readonly expiresAt: number;
}

/** The Checkout Session part of a hosted checkout's status (`CheckoutStatus.checkoutSession`). */
export interface CheckoutSessionInfo {
  readonly id: string;
  /** The hosted page while the session is open; null after it completed or expired. */
  readonly url: string | null;
  readonly status: CheckoutSessionStatus;
  readonly paymentStatus: CheckoutSessionPaymentStatus;
  readonly expiresAt: string;
}

/** What `checkoutSessionUpdate` answers as soon as the session exists. */
export interface CheckoutSessionLink {
  readonly workflowId: string;
  readonly sessionId: string;
  /** Null once the session is no longer open (paid, expired): there is nothing left to pay. */
  readonly url: string | null;
  readonly state: CheckoutState;
}

export const hostedCheckoutWorkflowType = 'hostedCheckout';
/** Every workflow type that is a checkout (listing, the CLI, the HTTP intake). */
export const CHECKOUT_WORKFLOW_TYPES: readonly string[] = [checkoutWorkflowType, hostedCheckoutWorkflowType];

/**
 * Answers the Checkout Session's id and URL as soon as the session exists (or at once, if it
 * already does). Sent with update-with-start, so the caller gets the URL from the same call that
 * started the checkout. Fails when the session could not be created (the checkout parked). The
 * argument is the caller's terms (`HostedCheckoutTerms`, src/workflows/hosted-terms.ts): the
 * validator refuses the update when they differ from the checkout's own; without it nothing is
 * compared (a client from before terms were sent).
 */
export const checkoutSessionUpdate = defineUpdate<CheckoutSessionLink, [terms?: object]>('checkoutSession');
