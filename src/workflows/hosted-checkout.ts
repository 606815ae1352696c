/**
 * The hosted checkout workflow: the customer pays on Stripe's hosted Checkout page instead of the
 * caller handing over a card. Same identity as the card checkout (workflow id `checkout-<order id>`,
 * so a hosted and a card checkout for one order are one checkout), same status query, search
 * attributes and result shapes, so the HTTP intake, the CLI and the Temporal UI treat both alike.
 *
 * How it takes the money. One Stripe write creates one Checkout Session under the key
 * `<workflow id>/session/g1/create`, with parameters built only from the input and the chain's
 * start time (a retry, a replay or a reset posts the byte-identical request, which Stripe replays).
 * The session carries the workflow id as `client_reference_id` and in `metadata`, and the same
 * metadata goes onto the PaymentIntent through `payment_intent_data`, so every `checkout.session.*`
 * and `payment_intent.*` event names this checkout and the PaymentIntent is found by the same search
 * as a card checkout's. A Checkout Session can be paid at most once, so no number of page reloads,
 * double clicks or webhook redeliveries can charge twice.
 *
 * The caller gets the URL early: `checkoutSessionUpdate` (sent with update-with-start by the client)
 * answers as soon as the session exists. Then the workflow waits for Stripe:
 * - webhook events arrive as the `stripeEvent` signal; each event id counts once and an event only
 *   wakes the wait. The workflow then reads the session (and its PaymentIntent) back from Stripe and
 *   only moves forward; nothing in an event body is believed.
 * - without events it polls, from `paymentPollIntervalMs` doubling to one minute.
 * - complete and paid, with the PaymentIntent read back `succeeded`: provision.
 * - complete but unpaid (a bank debit), or complete with a PaymentIntent not settled yet
 *   (`requires_action`, unreadable): wait for it to settle, with a timer between reads, up to
 *   `asyncPaymentTimeoutMs`; it succeeds (provision) or fails (ends `declined`), else the checkout parks.
 * - the deadline (`sessionTimeoutMs`) passes, or an operator cancels: expire the session (key
 *   `<workflow id>/session/g1/expire`; Stripe also cancels its unfinished PaymentIntent, so a late
 *   3-D Secure cannot charge), read it back once more, and provision if it was paid after all;
 *   otherwise end `expired` (or `canceled`).
 *
 * How it fails: same key with other parameters, a rejected create, or an unknown create outcome park
 * the checkout in `needs_attention` (no session, nothing to pay, the URL update fails with the
 * reason); an operator rechecks (the create is re-posted under the same key inside the key's budget)
 * or abandons. While parked, a webhook naming the checkout (and, while money may still move, every
 * `reconcileIntervalMs`) re-reads Stripe: a payment that succeeded meanwhile is provisioned.
 * Provisioning runs only after a `succeeded` PaymentIntent was read; it is idempotent
 * per workflow id and retried a bounded number of times, then the checkout parks as
 * `provisioning_failed` (paid, not provisioned) until an operator rechecks.
 */
import {
  ApplicationFailure,
  condition,
  log,
  patched,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CheckoutActivities } from '../activities';
import {
  FailureType,
  MONEY_TAKEN_STATES,
  NeedsAttentionSinceAttr,
  TERMINAL_STATES,
  cancelUpdate,
  checkoutSessionIdempotencyKey,
  checkoutSessionUpdate,
  checkoutWorkflowId,
  resolveUpdate,
  statusQuery,
  stripeEventSignal,
  validateCancelRequest,
  validateHostedCheckoutInput,
  validateResolveRequest,
  validateStripeEventNotice,
  type AuditEntry,
  type CancelRequest,
  type CheckoutResult,
  type CheckoutSessionLink,
  type CheckoutSessionSnapshot,
  type CheckoutSessionWriteStep,
  type CheckoutState,
  type CheckoutStatus,
  type CreateCheckoutSessionParams,
  type Decline,
  type Entitlement,
  type HostedCheckoutInput,
  type NeedsAttention,
  type NeedsAttentionReason,
  type PaymentIntentSnapshot,
  type ResolveRequest,
  type StripeEventNotice,
} from './definitions';
import {
  DAY,
  HOUR,
  MAX_POLL_INTERVAL_MS,
  MINUTE,
  SECOND,
  errorMessage,
  failureType,
  firstSightingOfStripeEvent,
  mayFollowEarlierAttempts,
  nextParkedRereadInterval,
  stripeReadActivities,
  stripeWriteActivities,
  writeBudgetLeft,
  rejectInvalid,
  CheckoutStateChanges,
  Deadline,
  whenHandlersFinished,
} from './common';
import { PROVISIONING_DEFAULTS, PaidOrderFlow } from './provisioning-flow';
import { HOSTED_TERMS_CONFLICT, hostedTermsDifferences, hostedTermsOf } from './hosted-terms';

const DEFAULTS = {
  sessionTimeoutMs: 1 * HOUR,
  asyncPaymentTimeoutMs: 7 * DAY,
  paymentPollIntervalMs: 5 * SECOND,
  stripeKeyBudgetMs: 20 * HOUR,
  stripeCallTimeoutMs: 30 * SECOND,
  reconcileIntervalMs: 5 * MINUTE,
  ...PROVISIONING_DEFAULTS,
} as const;

/**
 * Stripe takes `expires_at` from 30 min to 24 h after the session's creation. The workflow sends it
 * only when its own deadline is at least an hour away (so a create retried minutes later is still
 * inside Stripe's window) and at most 23 h; otherwise Stripe's default (24 h) applies and the
 * workflow's own expire at the deadline is what closes the session.
 */
const EXPIRES_AT_MIN_MS = 1 * HOUR;
const EXPIRES_AT_MAX_MS = 23 * HOUR;

/**
 * Patches (docs/changing-workflows.md). `UNSETTLED_WAITS`: a complete session whose PaymentIntent
 * is not settled (requires_action, say a bank debit awaiting microdeposits, or unreadable) waits
 * like a settling bank debit, bounded by `asyncPaymentTimeoutMs`, instead of being read again at
 * once (which, past the deadline, looped without a timer). `PARKED_REREADS`: a parked checkout
 * re-reads Stripe when a webhook names it, and on its own every `reconcileIntervalMs` while money
 * may still move, so a payment that lands while parked is provisioned. `DEADLINE_TIMERS`: the
 * session's and the settling payment's deadlines are timers, not comparisons of the clock with them
 * (common.ts, `Deadline`). `WAKE_SINCE_REQUEST`: a webhook wakes the wait for payment if it came after
 * the checkout last asked Stripe, wherever in the workflow task it is handled (the card checkout's
 * patch of the same name, src/workflows/checkout.ts).
 */
const WAKE_SINCE_REQUEST = 'wake-since-request';
const UNSETTLED_WAITS = 'hosted-unsettled-waits';
const PARKED_REREADS = 'hosted-parked-rereads';
const DEADLINE_TIMERS = 'hosted-deadline-timers';
/** PaymentIntent statuses from which money may still move without anyone acting. */
const MAY_STILL_SETTLE: readonly string[] = ['processing', 'requires_action'];

type Outcome = 'paid' | 'declined' | 'expired' | 'canceled' | 'needs_attention';
/** What a read of the session says, before the flow decides. */
type Reading = Outcome | 'open' | 'async' | 'pending';

export async function hostedCheckout(rawInput: HostedCheckoutInput): Promise<CheckoutResult> {
  const validation = validateHostedCheckoutInput(rawInput, 'workflow');
  if (!validation.ok) {
    throw ApplicationFailure.create({
      message: `Invalid checkout input: ${validation.problems.join('; ')}`,
      type: FailureType.InvalidCheckoutInput,
      nonRetryable: true,
      details: [validation.problems],
    });
  }
  const input = validation.value;
  if (workflowInfo().workflowId !== checkoutWorkflowId(input.orderId)) {
    // Keys derive from the workflow id; a run under another id would not dedupe by order.
    throw ApplicationFailure.create({
      message: `Invalid checkout input: workflow id must be "${checkoutWorkflowId(input.orderId)}"`,
      type: FailureType.InvalidCheckoutInput,
      nonRetryable: true,
    });
  }
  return new HostedCheckout(input).run();
}

class HostedCheckout {
  private readonly workflowId = workflowInfo().workflowId;
  private readonly opts: { readonly [K in keyof typeof DEFAULTS]: number };

  private state: CheckoutState = 'validating';
  /** State counters and the search index (written where the checkout rests: `CheckoutSearchIndex`). */
  private readonly changes = new CheckoutStateChanges();
  private session: CheckoutSessionSnapshot | undefined;
  /** The hosted page's address as created; the session's own `url` turns null once it closes. */
  private sessionUrl: string | null = null;
  /** The open session's deadline, from its creation; undefined before (treated as passed). */
  private sessionDeadline: Deadline | undefined;
  /** The settling payment's deadline, from when it began settling; undefined before. */
  private asyncDeadline: Deadline | undefined;
  private paymentIntent: PaymentIntentSnapshot | undefined;
  private readonly paymentIntentIds: string[] = [];
  private decline: Decline | undefined;
  private needsAttention: NeedsAttention | undefined;
  private entitlement: Entitlement | undefined;
  /** Set once a `succeeded` PaymentIntent was read: from then on nothing may cancel. */
  private paid = false;
  private readonly audit: AuditEntry[] = [];
  private readonly keyFirstUsedAt = new Map<string, number>();

  private woken = false;
  private readonly seenStripeEvents: string[] = [];
  private stripeEventsReceived = 0;
  private stripeEventDuplicates = 0;
  private pendingCancel: CancelRequest | undefined;
  private pendingResolve: ResolveRequest | undefined;
  private canceledBy: { actor: string; reason: string } | undefined;
  /** Everything after "paid", shared with the card checkout: bounded provisioning, grace, refunds. */
  private readonly flow: PaidOrderFlow;

  constructor(private readonly input: HostedCheckoutInput) {
    this.opts = { ...DEFAULTS, ...input.options };
    this.flow = new PaidOrderFlow(
      {
        state: () => this.state,
        setState: (state, reason) => this.setState(state, reason),
        parkProvisioningFailed: (detail) => {
          this.park('provisioning_failed', detail, false);
        },
        clearAttention: () => this.clearAttention(),
        record: (actor, action, reason) => this.record(actor, action, reason),
      },
      this.opts,
    );
  }

  async run(): Promise<CheckoutResult> {
    this.registerHandlers();
    this.changes.index.begin(this.input.orderId);
    this.setState('validating', 'input valid (hosted checkout)');

    let outcome: Outcome | undefined;
    if (mayFollowEarlierAttempts()) {
      // A reset or continued run: past 24 h the create key no longer replays, so look for a payment first.
      this.setState('reconciling', 'reset or continued run: reading Stripe before any write');
      outcome = await this.adoptPaidFromSearch();
    }
    outcome ??= await this.createSession();
    for (;;) {
      outcome ??= await this.waitForPayment();
      if (outcome !== 'needs_attention') {
        // The wait is over for good: a deadline timer still pending would only wake the run.
        this.sessionDeadline?.stop();
        this.asyncDeadline?.stop();
      }
      switch (outcome) {
        case 'paid':
          return this.provision();
        case 'expired':
          return this.finish({ outcome: 'expired', ...this.ids() });
        case 'canceled':
          return this.finish({
            outcome: 'canceled',
            ...this.ids(),
            actor: this.canceledBy?.actor ?? 'workflow',
            reason: this.canceledBy?.reason ?? 'canceled',
          });
        case 'declined':
          return this.finish({
            outcome: 'declined',
            orderId: this.input.orderId,
            generation: 1,
            decline: this.decline ?? {
              code: 'payment_failed',
              declineCode: undefined,
              paymentIntentId: this.paymentIntent?.id,
              message: 'the payment failed',
            },
          });
        case 'needs_attention':
          outcome = await this.awaitOperator();
          break;
      }
    }
  }

  /** Paid if Stripe's search shows a succeeded PaymentIntent for this checkout; else undefined. */
  private async adoptPaidFromSearch(): Promise<Outcome | undefined> {
    try {
      const found = await this.reads('Search PaymentIntents by checkout metadata').findCheckoutPaymentIntents(
        {
          workflowId: this.workflowId,
        },
      );
      const succeeded = found.paymentIntents.filter((p) => p.status === 'succeeded');
      if (succeeded.length > 1) {
        return this.park('multiple_successful_payments', succeeded.map((p) => p.id).join(', '), false);
      }
      const pi = succeeded[0];
      if (!pi) return undefined;
      this.adoptPaymentIntent(pi);
      this.record('workflow', 'adopted_payment_intent', `reset run found ${pi.id} succeeded`);
      return this.markPaid(pi, 'found by search');
    } catch (err) {
      log.warn('searching PaymentIntents failed', { error: errorMessage(err) });
      return undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // The Checkout Session

  private sessionParams(): CreateCheckoutSessionParams {
    const metadata = {
      order_id: this.input.orderId,
      checkout_workflow_id: this.workflowId,
      generation: '1',
    };
    const timeout = this.opts.sessionTimeoutMs;
    // The chain's start time, not "now": a reset or retried run builds the identical request.
    const expiresAt =
      timeout >= EXPIRES_AT_MIN_MS && timeout <= EXPIRES_AT_MAX_MS
        ? Math.ceil((workflowInfo().startTime.getTime() + timeout) / 1000)
        : undefined;
    return {
      mode: 'payment',
      line_items: [
        {
          price_data: {
            currency: this.input.currency,
            unit_amount: this.input.amount,
            product_data: { name: `Order ${this.input.orderId}` },
          },
          quantity: 1,
        },
      ],
      success_url: this.input.successUrl,
      cancel_url: this.input.cancelUrl,
      client_reference_id: this.workflowId,
      ...(this.input.customerId === undefined ? {} : { customer: this.input.customerId }),
      allowed_payment_method_types: this.input.paymentMethodTypes ?? ['card'],
      ...(expiresAt === undefined ? {} : { expires_at: expiresAt }),
      metadata,
      payment_intent_data: { description: `Order ${this.input.orderId}`, metadata },
    };
  }

  /** Creates the session (keyed). Undefined when it is open and the flow should wait for payment. */
  private async createSession(): Promise<Outcome | undefined> {
    this.setState('creating_payment', 'creating the Checkout Session');
    const key = this.key('create');
    const budget = this.writeBudget(key);
    if (budget === undefined) {
      return this.park('payment_outcome_unknown', 'the create key budget is spent; no session known', false);
    }
    try {
      const session = await this.stripeWrite(budget, 'Create Checkout Session').createCheckoutSession({
        idempotencyKey: key,
        params: this.sessionParams(),
      });
      this.sessionUrl = session.url;
      this.sessionDeadline?.stop();
      this.sessionDeadline = this.deadline(this.opts.sessionTimeoutMs);
      this.adoptSession(session);
      this.clearAttention();
      const reading = await this.fromSession(session);
      return this.afterReading(reading);
    } catch (err) {
      const type = failureType(err);
      if (type === FailureType.IdempotencyMismatch) {
        return this.park('idempotency_mismatch', `create session: ${errorMessage(err)}`, false);
      }
      if (type === FailureType.StripeInvalidRequest) {
        return this.park('stripe_rejected_request', `create session: ${errorMessage(err)}`, false);
      }
      return this.park(
        'payment_outcome_unknown',
        `create session ${type ?? 'failed'}: ${errorMessage(err)}`,
        false,
      );
    }
  }

  /**
   * What the session (and, once it has one, its PaymentIntent) shows, read from Stripe. Sets the
   * state for what it decides, except `expired`, which the caller names (expired or canceled).
   */
  private async fromSession(session: CheckoutSessionSnapshot): Promise<Reading> {
    this.adoptSession(session);
    if (session.status === 'open') {
      this.setState('awaiting_customer_action', `Checkout Session ${session.id} is open`);
      return 'open';
    }
    const piId = session.paymentIntentId;
    if (session.status === 'expired') {
      if (piId !== undefined) {
        // Stripe cancels an expired session's unfinished PaymentIntent; believe only what it shows.
        const pi = await this.read(piId);
        if (pi?.status === 'succeeded') return this.markPaid(pi, 'succeeded although its session expired');
      }
      return 'expired';
    }
    if (piId === undefined) {
      return this.park(
        'unexpected_payment_state',
        `session ${session.id} is complete without a PaymentIntent`,
        false,
      );
    }
    const pi = await this.read(piId);
    if (!pi) return 'pending';
    switch (pi.status) {
      case 'succeeded':
        return this.markPaid(pi, `session ${session.id} complete`);
      case 'processing':
        return 'async';
      case 'requires_payment_method':
        if (session.paymentStatus === 'unpaid' && pi.lastPaymentError) {
          this.decline = {
            code: pi.lastPaymentError.code ?? 'payment_failed',
            declineCode: pi.lastPaymentError.declineCode,
            paymentIntentId: pi.id,
            message: `Stripe shows the async payment ${pi.id} failed`,
          };
          this.setState('declined', `${this.decline.code}: async payment failed`);
          return 'declined';
        }
        return 'pending';
      case 'requires_action':
      case 'requires_confirmation':
        return 'pending';
      case 'requires_capture':
      case 'canceled':
        return this.park('unexpected_payment_state', `session complete but ${pi.id} is ${pi.status}`, false);
    }
  }

  private markPaid(pi: PaymentIntentSnapshot, why: string): Outcome {
    this.paid = true;
    this.setState('paid', `Stripe shows ${pi.id} succeeded (${why})`);
    this.refusePendingCancel('the payment succeeded: refund instead');
    return 'paid';
  }

  /**
   * A cancel accepted while the session was open, overtaken by Stripe (the customer paid, or
   * started a bank debit, while the cancel waited for the flow): answer it with what happened, so
   * its caller is not left waiting and the workflow can finish.
   */
  private refusePendingCancel(why: string): void {
    if (!this.pendingCancel) return;
    this.record('workflow', 'cancel_refused', why);
    this.pendingCancel = undefined;
  }

  /** Turns a reading into the flow's next step: an outcome, or undefined to keep waiting. */
  private afterReading(reading: Reading): Outcome | undefined {
    switch (reading) {
      case 'open':
        return undefined;
      case 'pending':
        // Complete but not settled: a bounded wait with a timer, never a read straight after a read.
        if (patched(UNSETTLED_WAITS)) this.enterAsync();
        return undefined;
      case 'async':
        this.enterAsync();
        return undefined;
      case 'expired':
        this.setState('expired', `Checkout Session ${this.session?.id ?? ''} expired unpaid`);
        return 'expired';
      default:
        return reading;
    }
  }

  /**
   * A deadline the flow waits against: a timer (common.ts, `Deadline`) in runs that recorded
   * `DEADLINE_TIMERS`, the clock in runs from before it.
   */
  private deadline(ms: number): Deadline {
    return new Deadline(ms, patched(DEADLINE_TIMERS));
  }

  private enterAsync(): void {
    if (this.state === 'awaiting_async_payment') return;
    this.asyncDeadline?.stop();
    this.asyncDeadline = this.deadline(this.opts.asyncPaymentTimeoutMs);
    this.setState(
      'awaiting_async_payment',
      `${this.paymentIntent?.id ?? 'the PaymentIntent'} is ${this.paymentIntent?.status ?? 'unread'}`,
    );
    this.refusePendingCancel('the customer paid with a method that is still settling');
  }

  // -------------------------------------------------------------------------------------------
  // Waiting for Stripe

  /** Waits for the customer (session open) or the settlement (async), woken by events, polling. */
  private async waitForPayment(): Promise<Outcome> {
    const wakeSinceRequest = patched(WAKE_SINCE_REQUEST);
    let interval = this.opts.paymentPollIntervalMs;
    for (;;) {
      const session = this.session;
      if (!session) {
        return this.park('payment_outcome_unknown', 'no Checkout Session to wait on', false);
      }
      const settling = this.state === 'awaiting_async_payment';
      const deadline = settling ? this.asyncDeadline : this.sessionDeadline;
      const wait = deadline?.pollMs(interval);
      // Money may be in flight while a bank debit settles: only an open session can be canceled.
      const cancelable = (): boolean => !settling && this.pendingCancel !== undefined;
      if (wait !== undefined && !cancelable()) {
        if (!wakeSinceRequest) this.woken = false;
        await condition(() => this.woken || cancelable() || deadline?.timerFired === true, wait);
        interval = Math.min(interval * 2, MAX_POLL_INTERVAL_MS);
      }
      // What Stripe answers next covers every webhook so far; one handled from here on wakes the next wait.
      if (wakeSinceRequest) this.woken = false;
      if (cancelable()) {
        const next = await this.cancelOpen();
        if (next !== undefined) return next;
        continue;
      }
      if (deadline?.passed ?? true) {
        if (settling) {
          return this.park(
            'unexpected_payment_state',
            `${this.paymentIntent?.id ?? 'the PaymentIntent'} still ${this.paymentIntent?.status ?? 'unread'} after ${this.opts.asyncPaymentTimeoutMs} ms`,
            false,
          );
        }
        const next = await this.expireAt('payment deadline passed');
        if (next !== undefined) return next;
        continue;
      }
      const read = await this.readSession(session.id);
      if (!read) continue;
      const next = this.afterReading(await this.fromSession(read));
      if (next !== undefined) return next;
    }
  }

  /**
   * Expires the session (keyed) so nothing can be paid on it any more, then believes only what
   * Stripe shows: paid after all means paid. Undefined when the flow should keep waiting (an async
   * payment was started just before).
   */
  private async expireAt(why: string): Promise<Outcome | undefined> {
    return this.afterReading(await this.expireSession(why));
  }

  private async expireSession(why: string): Promise<Reading> {
    const session = this.session;
    if (!session) return 'expired';
    this.setState('reconciling', `${why}: expiring ${session.id}`);
    let after: CheckoutSessionSnapshot | undefined;
    const key = this.key('expire');
    const budget = this.writeBudget(key);
    if (budget !== undefined) {
      try {
        after = await this.stripeWrite(budget, 'Expire Checkout Session').expireCheckoutSession({
          idempotencyKey: key,
          checkoutSessionId: session.id,
        });
        this.record('workflow', 'expire_checkout_session', why);
      } catch (err) {
        log.warn('expiring a Checkout Session failed', { session: session.id, error: errorMessage(err) });
      }
    }
    // Read back once more whatever the expire said: a payment may have landed just before it.
    after = (await this.readSession(session.id)) ?? after;
    if (!after)
      return this.park('unexpected_payment_state', `${why}; could not expire or read ${session.id}`, false);
    const reading = await this.fromSession(after);
    if (reading === 'open') {
      return this.park('unexpected_payment_state', `${why}; ${session.id} is still open after expire`, false);
    }
    return reading;
  }

  /** An operator's cancel (or abandon): expire the open session; paid after all means paid. */
  private async cancelOpen(): Promise<Outcome | undefined> {
    const request = this.pendingCancel;
    try {
      if (request) this.canceledBy = { actor: request.actor, reason: request.reason };
      const reading = await this.expireSession(`canceled: ${this.canceledBy?.reason ?? 'canceled'}`);
      if (reading === 'expired') {
        this.setState('canceled', this.canceledBy?.reason ?? 'canceled');
        return 'canceled';
      }
      this.canceledBy = undefined;
      const next = this.afterReading(reading);
      // Paid or settling already answered the cancel (refusePendingCancel); say why otherwise.
      if (request !== undefined && this.pendingCancel === request) {
        this.record('workflow', 'cancel_refused', `Stripe shows the checkout ${this.state}`);
      }
      return next;
    } finally {
      if (this.pendingCancel === request) this.pendingCancel = undefined;
    }
  }

  /**
   * Needs attention: wait for an operator; a recheck reads Stripe (or re-posts the keyed create).
   * Meanwhile a webhook naming this checkout, or (while money may still move) every
   * `reconcileIntervalMs`, re-reads the session: a payment that succeeded is provisioned.
   */
  private async awaitOperator(): Promise<Outcome | undefined> {
    const rereads = patched(PARKED_REREADS);
    let interval = this.opts.reconcileIntervalMs;
    for (;;) {
      await condition(
        () =>
          this.pendingCancel !== undefined || this.pendingResolve !== undefined || (rereads && this.woken),
        interval,
      );
      const woken = this.woken;
      this.woken = false;
      const resolve = this.pendingResolve;
      if (resolve) this.pendingResolve = undefined;
      if (this.pendingCancel || resolve?.outcome === 'abandon') {
        if (resolve?.outcome === 'abandon')
          this.canceledBy = { actor: resolve.actor, reason: resolve.reason };
        if (!this.session) {
          const request = this.pendingCancel;
          if (request) this.canceledBy = { actor: request.actor, reason: request.reason };
          this.pendingCancel = undefined;
          this.setState('canceled', this.canceledBy?.reason ?? 'canceled');
          return 'canceled';
        }
        const next = await this.cancelOpen();
        if (next !== undefined) return next;
        return undefined;
      }
      if (!resolve && this.needsAttention?.reason !== 'payment_outcome_unknown') {
        if (rereads && (woken || this.moneyMayMove())) {
          const paid = await this.rereadWhileParked();
          if (paid !== undefined) return paid;
          if (!woken) interval = nextParkedRereadInterval(interval, this.opts.reconcileIntervalMs);
        }
        continue;
      }
      const next = await this.recheck();
      if (next !== 'still_parked') return next;
    }
  }

  /** Parked for a reason under which the customer's payment may still land or settle. */
  private moneyMayMove(): boolean {
    if (this.needsAttention?.reason !== 'unexpected_payment_state') return false;
    const pi = this.paymentIntent;
    return this.session?.status === 'open' || (pi !== undefined && MAY_STILL_SETTLE.includes(pi.status));
  }

  /**
   * A parked checkout's own read of Stripe: only a succeeded PaymentIntent ends the park (paid,
   * provision); anything else leaves it to the operator, without changing the state.
   */
  private async rereadWhileParked(): Promise<Outcome | undefined> {
    const session = this.session;
    if (!session) return undefined;
    const read = await this.readSession(session.id);
    if (!read) return undefined;
    this.adoptSession(read);
    if (read.status === 'open' || read.paymentIntentId === undefined) return undefined;
    const pi = await this.read(read.paymentIntentId);
    if (pi?.status !== 'succeeded') return undefined;
    const reason = this.needsAttention?.reason ?? 'needs_attention';
    this.clearAttention();
    this.record('workflow', 'parked_reread_paid', `${pi.id} succeeded while parked (${reason})`);
    return this.markPaid(pi, `read while parked (${reason})`);
  }

  private async recheck(): Promise<Outcome | undefined | 'still_parked'> {
    if (this.paid) {
      this.clearAttention();
      return 'paid';
    }
    if (!this.session) {
      const next = await this.createSession();
      return next === 'needs_attention' ? 'still_parked' : next;
    }
    const read = await this.readSession(this.session.id);
    if (!read) return 'still_parked';
    const reading = await this.fromSession(read);
    if (reading === 'needs_attention') return 'still_parked';
    this.clearAttention();
    return this.afterReading(reading);
  }

  // -------------------------------------------------------------------------------------------
  // Provisioning and ending

  /**
   * Provisions after a `succeeded` read, through the flow the card checkout uses: a bounded effort,
   * then `provisioning_failed` with a grace period an operator can use (retry provisioning, refund,
   * keep the payment) before the payment is refunded in full.
   */
  private async provision(): Promise<CheckoutResult> {
    const pi = this.paymentIntent;
    if (!this.paid || !pi || pi.status !== 'succeeded') {
      throw ApplicationFailure.create({
        message: 'provision reached without a succeeded PaymentIntent',
        nonRetryable: true,
      });
    }
    const provisioned = await this.flow.provision(
      {
        workflowId: this.workflowId,
        orderId: this.input.orderId,
        paymentIntentId: pi.id,
        amount: this.input.amount,
        currency: this.input.currency,
        item: this.input.provision,
      },
      pi.id,
    );
    this.entitlement = provisioned.entitlement;
    if (provisioned.outcome === 'refunded') {
      this.setState('refunded', `${this.flow.refundedAmount} ${this.input.currency} refunded in full`);
      return this.finish({
        outcome: 'refunded',
        orderId: this.input.orderId,
        paymentIntentId: pi.id,
        amount: this.input.amount,
        currency: this.input.currency,
        generation: 1,
        refundedAmount: this.flow.refundedAmount,
        refunds: this.flow.refunds,
        entitlement: this.entitlement,
      });
    }
    this.setState('completed', provisioned.entitlement.entitlementId);
    const refunds = this.flow.refunds;
    return this.finish({
      outcome: 'completed',
      orderId: this.input.orderId,
      paymentIntentId: pi.id,
      amount: this.input.amount,
      currency: this.input.currency,
      generation: 1,
      entitlement: provisioned.entitlement,
      ...(refunds.length > 0 ? { refunds } : {}),
    });
  }

  private ids(): { orderId: string; generation: number; paymentIntentId: string | undefined } {
    return { orderId: this.input.orderId, generation: 1, paymentIntentId: this.paymentIntent?.id };
  }

  private finish(result: CheckoutResult): CheckoutResult | Promise<CheckoutResult> {
    this.refusePendingCancel(`the checkout ended ${result.outcome}`);
    if (this.pendingResolve) {
      this.record('workflow', 'resolve_refused', `the checkout ended ${result.outcome}`);
      this.pendingResolve = undefined;
    }
    return whenHandlersFinished(result);
  }

  // -------------------------------------------------------------------------------------------
  // Stripe calls

  private key(step: CheckoutSessionWriteStep): string {
    return checkoutSessionIdempotencyKey(this.workflowId, step);
  }

  private writeBudget(key: string): number | undefined {
    return writeBudgetLeft(this.keyFirstUsedAt, key, this.opts.stripeKeyBudgetMs);
  }

  private stripeWrite(budgetMs: number, summary: string): CheckoutActivities {
    return stripeWriteActivities(this.opts.stripeCallTimeoutMs, budgetMs, summary);
  }

  private reads(summary: string): CheckoutActivities {
    return stripeReadActivities(this.opts.stripeCallTimeoutMs, summary);
  }

  private async readSession(checkoutSessionId: string): Promise<CheckoutSessionSnapshot | undefined> {
    try {
      return await this.reads(`Read Checkout Session ${checkoutSessionId}`).getCheckoutSession({
        checkoutSessionId,
      });
    } catch (err) {
      log.warn('reading a Checkout Session failed', { checkoutSessionId, error: errorMessage(err) });
      return undefined;
    }
  }

  private async read(paymentIntentId: string): Promise<PaymentIntentSnapshot | undefined> {
    try {
      const pi = await this.reads(`Read PaymentIntent ${paymentIntentId}`).getPaymentIntent({
        paymentIntentId,
      });
      this.adoptPaymentIntent(pi);
      return pi;
    } catch (err) {
      log.warn('reading a PaymentIntent failed', { paymentIntentId, error: errorMessage(err) });
      return undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // State

  private adoptSession(session: CheckoutSessionSnapshot): void {
    this.session = session;
    const pi = session.paymentIntentId;
    if (pi !== undefined && !this.paymentIntentIds.includes(pi)) {
      this.paymentIntentIds.push(pi);
      this.changes.index.adopted(pi);
    }
  }

  private adoptPaymentIntent(pi: PaymentIntentSnapshot): void {
    this.paymentIntent = pi;
    if (!this.paymentIntentIds.includes(pi.id)) this.paymentIntentIds.push(pi.id);
    this.changes.index.adopted(pi.id);
  }

  private park(reason: NeedsAttentionReason, detail: string, retryAllowed: boolean): 'needs_attention' {
    const since = this.needsAttention?.since ?? new Date().toISOString();
    this.needsAttention = { reason, detail, since, retryAllowed };
    upsertSearchAttributes([{ key: NeedsAttentionSinceAttr, value: new Date(since) }]);
    this.setState('needs_attention', `${reason}: ${detail}`);
    return 'needs_attention';
  }

  private clearAttention(): void {
    if (!this.needsAttention) return;
    this.needsAttention = undefined;
    upsertSearchAttributes([{ key: NeedsAttentionSinceAttr, value: null }]);
  }

  private setState(state: CheckoutState, reason: string): void {
    if (state === this.state && state !== 'needs_attention') return;
    const previous = this.state;
    this.state = state;
    this.changes.changed(previous, state, this.paymentIntent?.id ?? this.paymentIntentIds.at(-1));
    this.record('workflow', `state:${state}`, reason);
  }

  private record(actor: string, action: string, reason: string): void {
    this.audit.push({ at: new Date().toISOString(), actor, action, reason });
  }

  private status(): CheckoutStatus {
    const s = this.session;
    return {
      workflowId: this.workflowId,
      orderId: this.input.orderId,
      state: this.state,
      generation: 1,
      amount: this.input.amount,
      currency: this.input.currency,
      paymentIntentId: this.paymentIntent?.id ?? s?.paymentIntentId,
      paymentIntentIds: [...this.paymentIntentIds],
      decline: this.decline,
      needsAttention: this.needsAttention,
      entitlement: this.entitlement,
      audit: [...this.audit],
      stripeEvents: { received: this.stripeEventsReceived, duplicates: this.stripeEventDuplicates },
      refundedAmount: this.flow.refundedAmount,
      refunds: this.flow.refunds,
      ...(this.flow.automaticRefund ? { automaticRefund: this.flow.automaticRefund } : {}),
      mode: 'hosted',
      ...(s === undefined
        ? {}
        : {
            checkoutSession: {
              id: s.id,
              url: s.status === 'open' ? this.sessionUrl : null,
              status: s.status,
              paymentStatus: s.paymentStatus,
              expiresAt: new Date(s.expiresAt * 1000).toISOString(),
            },
          }),
    };
  }

  private sessionLink(): CheckoutSessionLink {
    const s = this.session;
    if (!s) {
      throw ApplicationFailure.create({
        message: `no Checkout Session: ${this.needsAttention ? `${this.needsAttention.reason}: ${this.needsAttention.detail}` : `checkout ${this.state}`}`,
        type: 'CheckoutSessionUnavailable',
        nonRetryable: true,
      });
    }
    return {
      workflowId: this.workflowId,
      sessionId: s.id,
      url: s.status === 'open' ? this.sessionUrl : null,
      state: this.state,
    };
  }

  /**
   * A webhook event only wakes the wait: whatever it says, the flow reads the session back and
   * moves forward only. A signal cannot be refused, so a malformed one is logged and dropped.
   */
  private onStripeEvent(notice: StripeEventNotice): void {
    const valid = validateStripeEventNotice(notice);
    if (!valid.ok) {
      log.warn('ignored a malformed stripeEvent signal', { problems: valid.problems });
      return;
    }
    const { eventId, type, objectId, paymentIntentId } = valid.value;
    if (!firstSightingOfStripeEvent(this.seenStripeEvents, eventId)) {
      this.stripeEventDuplicates += 1;
      return;
    }
    this.stripeEventsReceived += 1;
    this.record('stripe', `stripe_event:${type}`, `${eventId} for ${objectId}`);
    // A session's event may name a PaymentIntent this checkout has not read yet: the session id counts.
    const mine =
      objectId === this.session?.id ||
      this.paymentIntentIds.includes(objectId) ||
      (paymentIntentId !== undefined && this.paymentIntentIds.includes(paymentIntentId));
    if (mine) this.woken = true;
  }

  private registerHandlers(): void {
    setHandler(statusQuery, () => this.status());
    setHandler(stripeEventSignal, (notice) => this.onStripeEvent(notice));

    setHandler(
      checkoutSessionUpdate,
      async () => {
        await condition(
          () =>
            this.session !== undefined ||
            this.state === 'needs_attention' ||
            TERMINAL_STATES.includes(this.state),
        );
        return this.sessionLink();
      },
      {
        // Every start sends its terms: a start racing another with other terms is refused here, in
        // the one run both reached, whichever intake process it came from.
        validator: (terms?: object) => {
          if (terms === undefined) return;
          const differences = hostedTermsDifferences(hostedTermsOf(this.input), terms);
          if (differences.length === 0) return;
          throw ApplicationFailure.create({
            message: `Order ${this.input.orderId} already has a checkout with other terms (${differences.join(', ')})`,
            type: HOSTED_TERMS_CONFLICT,
            nonRetryable: true,
            details: [differences],
          });
        },
      },
    );

    setHandler(
      cancelUpdate,
      async (request) => {
        this.record(request.actor, 'request:cancel', request.reason);
        this.pendingCancel = request;
        await condition(() => this.pendingCancel !== request);
        return this.status();
      },
      {
        validator: (request) => {
          rejectInvalid(validateCancelRequest(request));
          if (this.paid || this.flow.paid || MONEY_TAKEN_STATES.includes(this.state))
            throw new Error('the payment succeeded: refund instead');
          if (this.state === 'awaiting_async_payment')
            throw new Error('the customer paid with a method that is still settling: wait for it');
          if (TERMINAL_STATES.includes(this.state))
            throw new Error(`the checkout already ended (${this.state})`);
          if (this.pendingCancel) throw new Error('a cancel is already pending');
        },
      },
    );

    setHandler(
      resolveUpdate,
      async (request) => {
        this.record(request.actor, `request:resolve:${request.outcome}`, request.reason);
        if (request.outcome === 'keep_payment') {
          // Only changes state: the grace wait sees the automatic refund stopped.
          this.flow.keepPayment(request);
          return this.status();
        }
        this.pendingResolve = request;
        await condition(() => this.pendingResolve !== request);
        return this.status();
      },
      {
        validator: (request: ResolveRequest) => {
          rejectInvalid(validateResolveRequest(request));
          const { outcome } = request;
          if (outcome === 'keep_payment') {
            this.flow.validateKeepPayment();
            return;
          }
          if (this.state !== 'needs_attention') throw new Error(`nothing to resolve in state ${this.state}`);
          if (this.flow.provisioningFailed) {
            throw new Error(
              `${outcome} does not apply once paid: use retryProvisioning, refund, or resolve keep_payment`,
            );
          }
          if (outcome === 'abandon' && this.paid) throw new Error('the payment succeeded: refund instead');
          if (this.pendingResolve) throw new Error('a resolve is already pending');
        },
      },
    );

    this.flow.registerHandlers(() => this.status());
  }
}
