/**
 * Starting and talking to checkouts. The HTTP intake, the demo and the tests go through here, so the
 * rules live in one place:
 *
 * - Input is validated before anything starts; a bad field is named in `InvalidCheckoutInputError`.
 * - The workflow id is `checkoutWorkflowId(orderId)`: the order is the dedupe key. A second start
 *   for the same order, concurrent or after completion, returns the existing checkout and never
 *   charges again:
 *     `workflowIdConflictPolicy: FAIL`: while a run is open, a second start is refused with
 *       `WorkflowExecutionAlreadyStartedError`, which we turn into a handle to that run (so five
 *       concurrent submits all get the one run). A start that created the run returns at once: the
 *       terms are its own, so only a duplicate pays for the `describe` that compares them;
 *     `workflowIdReusePolicy: REJECT_DUPLICATE`: once the run has closed, in any way, the id can
 *       never start again, so a completed (or declined) order cannot be re-charged by a replayed
 *       submit. The server answers `WorkflowExecutionAlreadyStartedError`, which we turn into a
 *       handle to the existing run.
 *   A duplicate whose terms differ (amount, currency, customer, what to provision) is refused with
 *   `CheckoutConflictError` rather than silently answered with another order's checkout.
 * - Operator messages (`retryPayment`, `cancel`, `resolve`) are updates: the caller learns whether
 *   the workflow accepted them, and each lands in the workflow's audit trail with actor and reason.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  ApplicationFailure,
  Client,
  Connection,
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateStage,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
  type WorkflowUpdateHandle,
} from '@temporalio/client';
import { tracingExports } from './observability/tracing';
import { closeSafeInterceptors } from './temporal/connection-guard';
import type { TemporalConfig } from './config';
import {
  CHECKOUT_WORKFLOW_TYPES,
  CheckoutStateAttr,
  NeedsAttentionSinceAttr,
  OrderIdAttr,
  PROCESSING,
  TRACED_MEMO,
  StripePaymentIntentIdAttr,
  TASK_QUEUE,
  cancelUpdate,
  checkoutSessionUpdate,
  checkoutWorkflowId,
  checkoutWorkflowType,
  hostedCheckoutWorkflowType,
  orderIdProblems,
  resolveUpdate,
  retryPaymentUpdate,
  statusQuery,
  validateCancelRequest,
  validateCheckoutInput,
  validateHostedCheckoutInput,
  validateResolveRequest,
  validateRetryPaymentRequest,
  type CancelRequest,
  type CheckoutInput,
  type CheckoutResult,
  type CheckoutSessionLink,
  type CheckoutState,
  type CheckoutStatus,
  type HostedCheckoutInput,
  type ResolveRequest,
  type RetryPaymentRequest,
  type Validation,
} from './workflows/definitions';
import {
  REFUND_AFTER_COMPLETION,
  REFUND_REQUEST_CONFLICT,
  refundRequestConflict,
  refundUpdate,
  refundUpdateId,
  refundsStatusQuery,
  refundsWorkflowId,
  refundsWorkflowType,
  retryProvisioningUpdate,
  validateRefundRequest,
  validateRetryProvisioningRequest,
  type RefundRequest,
  type RefundResult,
  type RefundUpdateRequest,
  type RefundsInput,
  type RefundsOptions,
  type RefundsStatus,
  type RetryProvisioningRequest,
} from './workflows/definitions';
import type { checkoutRefunds } from './workflows/refunds';
import type { checkout } from './workflows/checkout';
import type { hostedCheckout } from './workflows/hosted-checkout';
import {
  HOSTED_TERMS_CONFLICT,
  hostedTermsDifferences,
  hostedTermsOf,
  type HostedCheckoutTerms,
} from './workflows/hosted-terms';

export type CheckoutHandle = WorkflowHandle<typeof checkout>;

export class InvalidCheckoutInputError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid checkout request: ${problems.join('; ')}`);
    this.name = 'InvalidCheckoutInputError';
  }
}

/** The order already has a checkout with other terms: the caller must use a new order id. */
export class CheckoutConflictError extends Error {
  constructor(
    readonly orderId: string,
    readonly differences: readonly string[],
  ) {
    super(`Order ${orderId} already has a checkout with other terms (${differences.join(', ')})`);
    this.name = 'CheckoutConflictError';
  }
}

/**
 * A client connection from validated config: through envconfig when Temporal is external, else to
 * the embedded dev server on its configured port (started by the stack, not here).
 */
export async function createTemporalConnection(config: TemporalConfig): Promise<Connection> {
  const options =
    config.mode === 'external' && config.connect
      ? config.connect.connectionOptions
      : { address: `127.0.0.1:${config.embedded.port}` };
  // The client's own retrying, plus a guard that makes closing under a retrying call safe.
  return Connection.connect({ ...options, interceptors: closeSafeInterceptors() });
}

/** A Temporal client for checkouts in the configured namespace. Close `client.connection` when done. */
export async function createCheckoutClient(config: TemporalConfig): Promise<Client> {
  return new Client({ connection: await createTemporalConnection(config), namespace: config.namespace });
}

export interface StartCheckoutOptions {
  /** Default: the shared `TASK_QUEUE`. */
  readonly taskQueue?: string;
  /**
   * Start a traced run: its workflow carries OpenTelemetry's workflow interceptors on every worker
   * (workflow spans, trace context into activities; src/observability/workflow-tracing.ts). Fixed for
   * the life of the run. Default: whether this process exports spans (`tracingExports()`); pass
   * `true` when only the workers export.
   */
  readonly traced?: boolean;
}

export interface StartedCheckout {
  readonly workflowId: string;
  readonly handle: CheckoutHandle;
}

/** Memo the client compares on a duplicate start; it never holds the payment method or secrets. */
interface CheckoutTerms {
  readonly amount: number;
  readonly currency: string;
  readonly customerId: string;
  readonly sku: string;
  readonly quantity: number;
}

function termsOf(input: CheckoutInput): CheckoutTerms {
  return {
    amount: input.amount,
    currency: input.currency,
    customerId: input.customerId,
    sku: input.provision.sku,
    quantity: input.provision.quantity,
  };
}

/** A checkout's memo: its terms (compared on a duplicate start) and whether the run is traced. */
function startMemo(terms: object, opts: StartCheckoutOptions): Record<string, unknown> {
  return { terms, ...((opts.traced ?? tracingExports()) ? { [TRACED_MEMO]: true } : {}) };
}

function valid<T>(v: Validation<T>): T {
  if (!v.ok) throw new InvalidCheckoutInputError(v.problems);
  return v.value;
}

/**
 * Starts the checkout for `input.orderId`, or returns the one that already exists for it. Never
 * starts a second run for an order and never charges twice.
 */
export async function startCheckout(
  client: Client,
  input: CheckoutInput,
  opts: StartCheckoutOptions = {},
): Promise<StartedCheckout> {
  const checked = valid(validateCheckoutInput(input));
  const workflowId = checkoutWorkflowId(checked.orderId);
  const terms = termsOf(checked);
  let handle: CheckoutHandle;
  try {
    handle = await client.workflow.start<typeof checkout>(checkoutWorkflowType, {
      workflowId,
      taskQueue: opts.taskQueue ?? TASK_QUEUE,
      args: [checked],
      workflowIdConflictPolicy: 'FAIL',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      memo: startMemo(terms, opts),
      typedSearchAttributes: [
        { key: OrderIdAttr, value: checked.orderId },
        { key: CheckoutStateAttr, value: PROCESSING },
      ],
      staticSummary: `Checkout for order ${checked.orderId}: ${checked.amount} ${checked.currency}`,
      staticDetails:
        `Charges at most once (PaymentIntent created, then confirmed by id, keys ` +
        `\`${workflowId}/payment/g{n}/{step}\`) and provisions ${checked.provision.quantity} x ` +
        `${checked.provision.sku} only after Stripe shows it succeeded.`,
    });
    // This call created the run, with these terms in its memo: there is nothing to compare.
    return { workflowId, handle };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    handle = client.workflow.getHandle<typeof checkout>(workflowId);
  }
  const existing = await handle.describe();
  const differences = compareTerms(existing, terms);
  if (differences.length > 0) throw new CheckoutConflictError(checked.orderId, differences);
  return { workflowId, handle };
}

function compareTerms(description: WorkflowExecutionDescription, ours: CheckoutTerms): string[] {
  const raw = description.memo?.terms;
  if (typeof raw !== 'object' || raw === null) return ['terms missing on the existing checkout'];
  const theirs = raw as Partial<Record<keyof CheckoutTerms, unknown>>;
  return (Object.keys(ours) as (keyof CheckoutTerms)[]).filter((k) => theirs[k] !== ours[k]);
}

/**
 * Memo of a hosted checkout: the card checkout's terms (so a card start for the order compares
 * alike), payment method types and options (src/workflows/hosted-terms.ts), and the mode. Never the
 * return URLs.
 */
interface HostedCheckoutMemoTerms extends HostedCheckoutTerms {
  readonly mode: 'hosted';
}

function hostedMemoTermsOf(input: HostedCheckoutInput): HostedCheckoutMemoTerms {
  return { ...hostedTermsOf(input), mode: 'hosted' };
}

/** The fields in which an existing checkout's memo differs from a hosted start's terms. */
function hostedMemoDifferences(
  description: WorkflowExecutionDescription,
  ours: HostedCheckoutTerms,
): string[] {
  const raw = description.memo?.terms;
  const differences = hostedTermsDifferences(ours, raw);
  if (typeof raw === 'object' && raw !== null && (raw as { mode?: unknown }).mode !== 'hosted') {
    differences.push('mode');
  }
  return differences;
}

/**
 * How long `startHostedCheckout` waits for the Checkout Session by default. Creating one takes well
 * under a second; past this Stripe is slow or down, and the caller is told to poll instead.
 */
export const HOSTED_SESSION_WAIT_MS = 15_000;

export interface StartHostedCheckoutOptions extends StartCheckoutOptions {
  /**
   * How long to wait for the Checkout Session before answering without it (`sessionPending`); the
   * checkout keeps creating it. Default `HOSTED_SESSION_WAIT_MS`.
   */
  readonly sessionWaitMs?: number;
}

export interface StartedHostedCheckout {
  readonly workflowId: string;
  /** True when this call started the checkout; false when it found the existing one. */
  readonly created: boolean;
  readonly sessionId: string | undefined;
  /** The hosted payment page while the session is open; null once paid, expired or canceled. */
  readonly url: string | null;
  readonly state: CheckoutState;
  /**
   * True when the session did not exist within `sessionWaitMs` (Stripe slow or down): the checkout
   * exists and is still creating it; its status shows the URL once there. `sessionId` is then
   * undefined and `url` null.
   */
  readonly sessionPending: boolean;
}

async function describeIfExists(
  client: Client,
  workflowId: string,
): Promise<WorkflowExecutionDescription | undefined> {
  try {
    return await client.workflow.getHandle(workflowId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/**
 * Starts the hosted checkout for `input.orderId` (or finds the existing one) and answers the
 * Checkout Session's URL as soon as the session exists, in one call: update-with-start, conflict
 * policy `USE_EXISTING` (a duplicate start reaches the running checkout and gets the same URL) and
 * reuse policy `REJECT_DUPLICATE` (a closed checkout is never started again; its status is answered
 * instead). An order that already has a checkout with other terms, a card checkout included, is
 * refused with `CheckoutConflictError`: compared with the memo when the checkout is there before the
 * start, and by the workflow's update validator (the update carries this start's terms) when two
 * first starts race, in one process or several, so the one whose terms differ is refused.
 *
 * The session is awaited for at most `sessionWaitMs`; past it the answer says `sessionPending` and
 * the checkout carries on. `created` comes from looking before starting: two concurrent first
 * starts with the same terms may both say true, and still share the one checkout and its session.
 */
export async function startHostedCheckout(
  client: Client,
  input: HostedCheckoutInput,
  opts: StartHostedCheckoutOptions = {},
): Promise<StartedHostedCheckout> {
  const checked = valid(validateHostedCheckoutInput(input));
  const workflowId = checkoutWorkflowId(checked.orderId);
  const terms = hostedMemoTermsOf(checked);
  const before = await describeIfExists(client, workflowId);
  if (before) {
    const differences = hostedMemoDifferences(before, terms);
    if (differences.length > 0) throw new CheckoutConflictError(checked.orderId, differences);
    if (before.status.name !== 'RUNNING') return closedHostedCheckout(client, workflowId);
  }
  const startWorkflowOperation = new WithStartWorkflowOperation<typeof hostedCheckout>(
    hostedCheckoutWorkflowType,
    {
      workflowId,
      taskQueue: opts.taskQueue ?? TASK_QUEUE,
      args: [checked],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      memo: startMemo(terms, opts),
      typedSearchAttributes: [
        { key: OrderIdAttr, value: checked.orderId },
        { key: CheckoutStateAttr, value: PROCESSING },
      ],
      staticSummary: `Hosted checkout for order ${checked.orderId}: ${checked.amount} ${checked.currency}`,
      staticDetails:
        `One Checkout Session (keys \`${workflowId}/session/g1/{step}\`); provisions ` +
        `${checked.provision.quantity} x ${checked.provision.sku} only after Stripe shows the ` +
        `PaymentIntent succeeded; at the deadline the session is expired so a late payment cannot land.`,
    },
  );
  const created = before === undefined;
  let update: WorkflowUpdateHandle<CheckoutSessionLink>;
  try {
    // Accepted means the workflow's validator compared the terms; the session may take longer.
    update = await client.workflow.startUpdateWithStart(checkoutSessionUpdate, {
      args: [terms],
      startWorkflowOperation,
      waitForStage: WorkflowUpdateStage.ACCEPTED,
    });
  } catch (err) {
    // Closed between the look and the start: the id cannot start again; answer what it became.
    if (err instanceof WorkflowExecutionAlreadyStartedError) return closedHostedCheckout(client, workflowId);
    throw await hostedUpdateRefusal(client, checked.orderId, workflowId, err);
  }
  const waited = new AbortController();
  const timer = setTimeout(() => waited.abort(), opts.sessionWaitMs ?? HOSTED_SESSION_WAIT_MS);
  try {
    const link = await client.withAbortSignal(waited.signal, () => update.result());
    return {
      workflowId,
      created,
      sessionId: link.sessionId,
      url: link.url,
      state: link.state,
      sessionPending: false,
    };
  } catch (err) {
    if (waited.signal.aborted && !(err instanceof WorkflowUpdateFailedError)) {
      // Stripe is slow or down: the checkout exists and keeps creating the session (its own budget).
      return {
        workflowId,
        created,
        sessionId: undefined,
        url: null,
        state: 'creating_payment',
        sessionPending: true,
      };
    }
    throw await hostedUpdateRefusal(client, checked.orderId, workflowId, err);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The `checkoutSession` update refused: for other terms (the validator names them), or because the
 * order's checkout is a card checkout (which has no such update). Anything else is returned as is.
 */
async function hostedUpdateRefusal(
  client: Client,
  orderId: string,
  workflowId: string,
  err: unknown,
): Promise<unknown> {
  if (!(err instanceof WorkflowUpdateFailedError)) return err;
  const cause = err.cause;
  if (cause instanceof ApplicationFailure && cause.type === HOSTED_TERMS_CONFLICT) {
    const [differences] = cause.details ?? [];
    return new CheckoutConflictError(
      orderId,
      Array.isArray(differences) ? differences.map(String) : ['terms'],
    );
  }
  const existing = await describeIfExists(client, workflowId);
  if (existing !== undefined && existing.type !== hostedCheckoutWorkflowType) {
    return new CheckoutConflictError(orderId, ['mode']);
  }
  return err;
}

async function closedHostedCheckout(client: Client, workflowId: string): Promise<StartedHostedCheckout> {
  const status = await client.workflow.getHandle(workflowId).query(statusQuery);
  if (status.mode !== 'hosted') throw new CheckoutConflictError(status.orderId, ['mode']);
  return {
    workflowId,
    created: false,
    sessionId: status.checkoutSession?.id,
    url: null,
    state: status.state,
    sessionPending: false,
  };
}

export function getCheckoutHandle(client: Client, orderId: string): CheckoutHandle {
  return client.workflow.getHandle<typeof checkout>(checkoutWorkflowId(orderId));
}

/** The full status: state, generation, PaymentIntents, decline, needs-attention, audit trail. */
export async function getCheckoutStatus(client: Client, orderId: string): Promise<CheckoutStatus> {
  return getCheckoutHandle(client, orderId).query(statusQuery);
}

/** Waits for the checkout to end. A checkout in needs-attention does not end until resolved. */
export async function waitForCheckoutResult(client: Client, orderId: string): Promise<CheckoutResult> {
  return getCheckoutHandle(client, orderId).result();
}

/** A new card after a decline (or an attempt Stripe shows uncharged). Rejected in any other state. */
export async function retryPayment(
  client: Client,
  orderId: string,
  request: RetryPaymentRequest,
): Promise<CheckoutStatus> {
  const checked = valid(validateRetryPaymentRequest(request));
  return getCheckoutHandle(client, orderId).executeUpdate(retryPaymentUpdate, { args: [checked] });
}

/** Cancels an unpaid checkout (its PaymentIntent too). Rejected once paid: refund instead. */
export async function cancelCheckout(
  client: Client,
  orderId: string,
  request: CancelRequest,
): Promise<CheckoutStatus> {
  const checked = valid(validateCancelRequest(request));
  return getCheckoutHandle(client, orderId).executeUpdate(cancelUpdate, { args: [checked] });
}

/** An operator's decision for a checkout in needs-attention: `recheck` Stripe or `abandon`. */
export async function resolveCheckout(
  client: Client,
  orderId: string,
  request: ResolveRequest,
): Promise<CheckoutStatus> {
  const checked = valid(validateResolveRequest(request));
  return getCheckoutHandle(client, orderId).executeUpdate(resolveUpdate, { args: [checked] });
}

export interface CheckoutListFilter {
  /** The `CheckoutState` search attribute: `processing` or a state a checkout rests in (`SEARCHABLE_STATES`). */
  readonly state?: string;
  readonly orderId?: string;
  /** Only checkouts parked for an operator (they carry `NeedsAttentionSince`). */
  readonly needsAttention?: boolean;
  readonly paymentIntentId?: string;
  /** Default 100. */
  readonly limit?: number;
}

export interface CheckoutListEntry {
  readonly workflowId: string;
  readonly runId: string;
  readonly orderId: string | undefined;
  readonly state: string | undefined;
  readonly paymentIntentId: string | undefined;
  readonly needsAttentionSince: Date | undefined;
  readonly workflowStatus: string;
  readonly startTime: Date;
}

const SAFE_VALUE = /^[A-Za-z0-9_-]+$/;

/** The visibility query `listCheckouts` sends; values are checked, never spliced in raw. */
export function checkoutListQuery(filter: CheckoutListFilter): string {
  const types = CHECKOUT_WORKFLOW_TYPES.map((t) => `'${t}'`).join(', ');
  const clauses = [`WorkflowType IN (${types})`];
  const add = (attr: string, value: string | undefined): void => {
    if (value === undefined) return;
    if (!SAFE_VALUE.test(value)) throw new InvalidCheckoutInputError([`${attr}: unsupported characters`]);
    clauses.push(`${attr} = '${value}'`);
  };
  add(CheckoutStateAttr.name, filter.state);
  add(OrderIdAttr.name, filter.orderId);
  add(StripePaymentIntentIdAttr.name, filter.paymentIntentId);
  if (filter.needsAttention === true) clauses.push(`${NeedsAttentionSinceAttr.name} IS NOT NULL`);
  if (filter.needsAttention === false) clauses.push(`${NeedsAttentionSinceAttr.name} IS NULL`);
  return clauses.join(' AND ');
}

/** Lists checkouts through Temporal visibility (eventually consistent, usually within a second). */
export async function listCheckouts(
  client: Client,
  filter: CheckoutListFilter = {},
): Promise<CheckoutListEntry[]> {
  const limit = filter.limit ?? 100;
  const out: CheckoutListEntry[] = [];
  for await (const wf of client.workflow.list({
    query: checkoutListQuery(filter),
    pageSize: Math.min(limit, 1000),
  })) {
    const sa = wf.typedSearchAttributes;
    out.push({
      workflowId: wf.workflowId,
      runId: wf.runId,
      orderId: sa.get(OrderIdAttr),
      state: sa.get(CheckoutStateAttr),
      paymentIntentId: sa.get(StripePaymentIntentIdAttr),
      needsAttentionSince: sa.get(NeedsAttentionSinceAttr),
      workflowStatus: wf.status.name,
      startTime: wf.startTime,
    });
    if (out.length >= limit) break;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Refunds and provisioning remediation

/** The order cannot be refunded (no payment taken, already refunded in full, the checkout failed). */
export class RefundNotAllowedError extends Error {
  constructor(
    readonly orderId: string,
    readonly reason: string,
  ) {
    super(`Cannot refund order ${orderId}: ${reason}`);
    this.name = 'RefundNotAllowedError';
  }
}

/**
 * The request id was used before for a refund with other terms (the fields named): nothing was
 * refunded. Use a new request id for a different refund.
 */
export class RefundRequestConflictError extends Error {
  constructor(
    readonly orderId: string,
    readonly fields: readonly string[],
    detail: string,
  ) {
    super(`Refund request conflict for order ${orderId}: ${detail}`);
    this.name = 'RefundRequestConflictError';
  }
}

/**
 * The fixed-length digest that stands for a caller's refund request id everywhere past the client
 * (update ids, the workflow's history, Stripe's metadata): SHA-256 of the order id and the request
 * id, 32 hex characters. Scoped to the order, so one id used for two orders names two requests.
 */
export function refundRequestDigest(orderId: string, requestId: string): string {
  return createHash('sha256')
    .update(`checkout-refund-request\u0000${orderId}\u0000${requestId}`)
    .digest('hex')
    .slice(0, 32);
}

/** A workflow's refusal of a request id reused with other terms, as the client's error. */
function asRequestConflict(err: unknown, orderId: string): unknown {
  if (!(err instanceof WorkflowUpdateFailedError)) return err;
  const cause = err.cause;
  if (!(cause instanceof ApplicationFailure) || cause.type !== REFUND_REQUEST_CONFLICT) return err;
  return new RefundRequestConflictError(orderId, ['amount'], cause.message);
}

export interface RefundCheckoutOptions {
  /** Task queue for starting the refunds workflow. Default: the shared `TASK_QUEUE`. */
  readonly taskQueue?: string;
  /** Options for a refunds workflow this call starts (tests shorten the idle period). */
  readonly refundsOptions?: RefundsOptions;
}

/** Refuses an order id no checkout can have (`InvalidCheckoutInputError`), before anything is sent. */
export function checkOrderId(orderId: string): void {
  const problems = orderIdProblems(orderId);
  if (problems.length > 0) throw new InvalidCheckoutInputError(problems);
}

/** An update that could not reach the open checkout because it is completing or has completed. */
function checkoutClosing(err: unknown): boolean {
  if (err instanceof WorkflowNotFoundError) return true;
  return (
    err instanceof WorkflowUpdateFailedError && (err.cause?.message ?? '').includes(REFUND_AFTER_COMPLETION)
  );
}

/**
 * Refunds (part of) an order's payment; without `amount`, everything left. While the checkout is
 * open (paid, provisioning, or parked after provisioning failed) this is its `refund` update. Once
 * it completed, the order's refunds workflow (`refunds-<orderId>`) takes it, started if needed by
 * update-with-start (`USE_EXISTING`). Either way the validator refuses a request for more than is
 * left, naming the amount left; the refund is keyed by request number, so a lost response inside
 * the workflow never refunds twice.
 *
 * `requestId` makes the call itself safe to repeat (a lost response, a retried HTTP request): the
 * same id with the same terms answers the first request's refund (`replayed: true`, same refund
 * id, nothing new sent to Stripe), within one run (the update id derives from it, and the workflow
 * remembers it), across runs of the refunds workflow (it is found in Stripe's metadata) and once
 * the checkout ended `refunded` (found in its result). The same id with another amount is refused
 * with `RefundRequestConflictError`. Without a `requestId` every call is a new request.
 *
 * Errors: `InvalidCheckoutInputError` (bad request, nothing sent), `WorkflowNotFoundError` (no such
 * order), `RefundNotAllowedError` (nothing was paid, or it is refunded already),
 * `RefundRequestConflictError` (request id reused with other terms), `WorkflowUpdateFailedError`
 * (the workflow refused: over-refund, another refund in progress).
 */
export async function refundCheckout(
  client: Client,
  orderId: string,
  request: RefundRequest,
  opts: RefundCheckoutOptions = {},
): Promise<RefundResult> {
  const checked = valid(validateRefundRequest(request));
  checkOrderId(orderId);
  const { requestId, ...terms } = checked;
  const digest = requestId === undefined ? undefined : refundRequestDigest(orderId, requestId);
  const update: RefundUpdateRequest = digest === undefined ? terms : { ...terms, requestDigest: digest };
  // With a request id, one update id per request and terms: Temporal answers a repeat in the same
  // run once. Without, one per call (the retries below are this call's own).
  const updateId = digest === undefined ? randomUUID() : refundUpdateId(digest, update.amount);
  const handle = client.workflow.getHandle(checkoutWorkflowId(orderId));
  const description = await handle.describe();
  if (description.status.name === 'RUNNING') {
    try {
      return await handle.executeUpdate(refundUpdate, { args: [update], updateId });
    } catch (err) {
      if (!checkoutClosing(err)) throw asRequestConflict(err, orderId);
    }
  }
  let result: CheckoutResult;
  try {
    result = (await handle.result()) as CheckoutResult;
  } catch (err) {
    throw new RefundNotAllowedError(
      orderId,
      `the checkout did not complete (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  if (result.outcome === 'refunded') {
    // A repeat of a request that refunded what was left (and so ended the checkout) gets its refund.
    const earlier =
      digest === undefined ? undefined : result.refunds.find((r) => r.requested?.digest === digest);
    if (earlier) {
      const conflict = refundRequestConflict(earlier, update);
      if (conflict !== undefined) throw new RefundRequestConflictError(orderId, ['amount'], conflict);
      return {
        orderId,
        workflowId: checkoutWorkflowId(orderId),
        paymentIntentId: result.paymentIntentId,
        currency: result.currency,
        amount: result.amount,
        refundedAmount: result.refundedAmount,
        remainingAmount: Math.max(0, result.amount - result.refundedAmount),
        refund: earlier,
        refunds: result.refunds,
        replayed: true,
      };
    }
    throw new RefundNotAllowedError(
      orderId,
      `already refunded in full (${result.refundedAmount} ${result.currency})`,
    );
  }
  if (result.outcome !== 'completed') {
    throw new RefundNotAllowedError(orderId, `no payment was taken (the checkout ended ${result.outcome})`);
  }
  try {
    return await refundCompletedCheckout(client, result, update, updateId, opts);
  } catch (err) {
    throw asRequestConflict(err, orderId);
  }
}

async function refundCompletedCheckout(
  client: Client,
  paid: Extract<CheckoutResult, { outcome: 'completed' }>,
  request: RefundUpdateRequest,
  updateId: string,
  opts: RefundCheckoutOptions,
): Promise<RefundResult> {
  const workflowId = refundsWorkflowId(paid.orderId);
  const input: RefundsInput = {
    orderId: paid.orderId,
    paymentIntentId: paid.paymentIntentId,
    amount: paid.amount,
    currency: paid.currency,
    ...(opts.refundsOptions ? { options: opts.refundsOptions } : {}),
  };
  // One update id for this request: if a run was closing when it arrived, the retry starts a new
  // run; if the same run answers twice, Temporal deduplicates by the id.
  for (let attempt = 1; ; attempt++) {
    const startWorkflowOperation = new WithStartWorkflowOperation<typeof checkoutRefunds>(
      refundsWorkflowType,
      {
        workflowId,
        taskQueue: opts.taskQueue ?? TASK_QUEUE,
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        // Each run closes when idle; the next request starts a new one, which reads Stripe first.
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        typedSearchAttributes: [{ key: OrderIdAttr, value: paid.orderId }],
        staticSummary: `Refunds of order ${paid.orderId}: ${paid.amount} ${paid.currency}`,
        staticDetails:
          `Refunds ${paid.paymentIntentId} of the completed checkout \`${checkoutWorkflowId(paid.orderId)}\`, ` +
          `keys \`${workflowId}/refund/r{n}\`, never more than was paid.`,
      },
    );
    try {
      return await client.workflow.executeUpdateWithStart(refundUpdate, {
        args: [request],
        updateId,
        startWorkflowOperation,
      });
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError) || attempt >= 3) throw err;
    }
  }
}

/** After provisioning failed for good: try again (a new bounded effort; the grace restarts if it fails). */
export async function retryProvisioning(
  client: Client,
  orderId: string,
  request: RetryProvisioningRequest,
): Promise<CheckoutStatus> {
  const checked = valid(validateRetryProvisioningRequest(request));
  checkOrderId(orderId);
  return getCheckoutHandle(client, orderId).executeUpdate(retryProvisioningUpdate, { args: [checked] });
}

/** The refunds workflow's status (its latest run), or undefined when the order has none. */
export async function getRefundsStatus(client: Client, orderId: string): Promise<RefundsStatus | undefined> {
  try {
    return await client.workflow.getHandle(refundsWorkflowId(orderId)).query(refundsStatusQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/**
 * The checkout's status with every refund of the order: those the checkout made while open, and,
 * once it completed, those of its refunds workflow (which learns earlier ones from Stripe).
 */
export async function getCheckoutStatusWithRefunds(client: Client, orderId: string): Promise<CheckoutStatus> {
  const status = await getCheckoutStatus(client, orderId);
  if (status.state !== 'completed') return status;
  const later = await getRefundsStatus(client, orderId);
  if (!later) return status;
  const own = status.refunds ?? [];
  const seen = new Set(own.map((r) => r.refundId));
  return {
    ...status,
    refundedAmount: later.refundedAmount,
    refunds: [...own, ...later.refunds.filter((r) => !seen.has(r.refundId))],
  };
}
