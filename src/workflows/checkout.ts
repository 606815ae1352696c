/**
 * The checkout workflow: one run per order (workflow id `checkout-<order id>`), charging at most
 * once and provisioning only after Stripe itself shows the payment `succeeded`.
 *
 * How it charges. Each attempt makes two Stripe writes, each with a key this workflow derives
 * (`<workflow id>/payment/g<generation>/<step>`) and parameters it builds deterministically:
 *   1. create the PaymentIntent unconfirmed (`…/create`). No money moves, so a lost or unknown
 *      create can at worst leave an unconfirmed orphan. Its id is recorded in workflow state.
 *   2. confirm that PaymentIntent by id (`…/confirm`). A PaymentIntent succeeds at most once, so once
 *      the id is known no number of confirms (retries, replays after the key is pruned, resets) can
 *      charge twice. A new card after a decline (`retryPayment`, generation + 1) confirms the SAME
 *      PaymentIntent again with a new key, so the whole checkout has one PaymentIntent to pay.
 *
 * How it fails, and what happens then:
 * - connection errors, 409 key in use, transient 5xx, 429: retried by Temporal with the same key,
 *   inside the key's budget (`stripeKeyBudgetMs`, default 20 h, measured in workflow time from the
 *   key's first use, below Stripe's 24 h key retention). Past the budget the workflow never posts
 *   again with that key: it reads Stripe back.
 * - a stored 500 (`StripeOutcomeUnknown`) or an exhausted budget: read back by id when the
 *   PaymentIntent is known, by metadata search when not (a miss is inconclusive). Stripe decides:
 *   succeeded means paid; anything uncharged parks the checkout as `needs_attention` where it
 *   re-reads Stripe periodically and an operator may retry with a new card, recheck or abandon.
 * - same key, other parameters (`IdempotencyMismatch`): `needs_attention`, never compensated.
 * - a decline (402) is a result: `declined`, waiting `paymentRetryWindowMs` for `retryPayment`.
 * - `requires_action` / `processing`: wait, polling the PaymentIntent (a webhook's `stripeEvent`
 *   signal wakes the wait early; it is deduplicated by event id and never acted on unread) until `paymentActionTimeoutMs`; then cancel it (keyed) so a late
 *   payment cannot land, read it once more and end `expired` unless it succeeded.
 * - a reset or continued run first searches Stripe by metadata for this checkout's PaymentIntents,
 *   adopting a succeeded or pending one instead of starting over; within 24 h the same keys would
 *   replay anyway. If that search fails it writes nothing until one succeeds, and it reads a decline
 *   back by id before believing it (docs/checkout.md, reset safety).
 * - operator requests are taken one at a time, and every one is answered, also when the flow can no
 *   longer take it (the payment succeeded, the checkout ended).
 *
 * Provisioning runs only from `paid` and is idempotent itself (unique per workflow id), so a
 * repeated activity cannot grant twice. Its effort is bounded (`provisioningTimeoutMs`); when it
 * fails for good the checkout parks and refunds in full after `provisioningGraceMs` unless an
 * operator retries provisioning, refunds, or keeps the payment (provisioning-flow.ts). While the
 * checkout is open after payment, `refund` refunds (keyed `<workflow id>/refund/r<n>`); once it has
 * completed, refunds go through the order's refunds workflow (refunds.ts).
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
import {
  FailureType,
  MAX_GENERATIONS,
  MONEY_TAKEN_STATES,
  NeedsAttentionSinceAttr,
  TERMINAL_STATES,
  cancelUpdate,
  checkoutWorkflowId,
  paymentIdempotencyKey,
  paymentIntentChangedSignal,
  resolveUpdate,
  retryPaymentUpdate,
  statusQuery,
  stripeEventSignal,
  validateCancelRequest,
  validateCheckoutInput,
  validateResolveRequest,
  validateRetryPaymentRequest,
  validateStripeEventNotice,
  type AuditEntry,
  type CancelRequest,
  type CheckoutInput,
  type CheckoutResult,
  type CheckoutState,
  type CheckoutStatus,
  type CreatePaymentIntentParams,
  type Decline,
  type Entitlement,
  type NeedsAttention,
  type NeedsAttentionReason,
  type PaymentIntentSnapshot,
  type ResolveRequest,
  type RetryPaymentRequest,
  type StripeEventNotice,
  type StripeWriteStep,
} from './definitions';

/**
 * Patch (docs/changing-workflows.md): the 3-D Secure and asynchronous-payment wait's deadline is a
 * timer (common.ts, `Deadline`), not a comparison of the clock with it.
 */
const PAYMENT_DEADLINE_TIMER = 'payment-deadline-timer';

/**
 * Patch (docs/changing-workflows.md, "A wake counts from the request"): a webhook wakes a wait if it
 * came after the checkout last asked Stripe, wherever in the workflow task it is handled. Before, the
 * wake was cleared as the wait began, so a webhook handled in the same task as Stripe's answer was
 * lost, or not, depending on the order the SDK ran them in: not the same live and on replay.
 */
const WAKE_SINCE_REQUEST = 'wake-since-request';

const DEFAULTS = {
  paymentActionTimeoutMs: 1 * HOUR,
  paymentPollIntervalMs: 5 * SECOND,
  paymentRetryWindowMs: 15 * MINUTE,
  stripeKeyBudgetMs: 20 * HOUR,
  stripeCallTimeoutMs: 30 * SECOND,
  reconcileIntervalMs: 5 * MINUTE,
  ...PROVISIONING_DEFAULTS,
} as const;

type Outcome = 'paid' | 'declined' | 'expired' | 'canceled' | 'needs_attention';

export async function checkout(rawInput: CheckoutInput): Promise<CheckoutResult> {
  const validation = validateCheckoutInput(rawInput);
  if (!validation.ok) {
    throw ApplicationFailure.create({
      message: `Invalid checkout input: ${validation.problems.join('; ')}`,
      type: FailureType.InvalidCheckoutInput,
      nonRetryable: true,
      details: [validation.problems],
    });
  }
  const input = validation.value;
  const info = workflowInfo();
  if (info.workflowId !== checkoutWorkflowId(input.orderId)) {
    // Keys derive from the workflow id; a run under another id would not dedupe by order.
    throw ApplicationFailure.create({
      message: `Invalid checkout input: workflow id must be "${checkoutWorkflowId(input.orderId)}"`,
      type: FailureType.InvalidCheckoutInput,
      nonRetryable: true,
    });
  }
  return new Checkout(input).run();
}

class Checkout {
  private readonly workflowId = workflowInfo().workflowId;
  private readonly opts: { readonly [K in keyof typeof DEFAULTS]: number };

  private state: CheckoutState = 'validating';
  /** State counters and the search index (written where the checkout rests: `CheckoutSearchIndex`). */
  private readonly changes = new CheckoutStateChanges();
  private generation = 1;
  private paymentMethodId: string;
  private paymentIntent: PaymentIntentSnapshot | undefined;
  private readonly paymentIntentIds: string[] = [];
  private decline: Decline | undefined;
  private needsAttention: NeedsAttention | undefined;
  private entitlement: Entitlement | undefined;
  private readonly audit: AuditEntry[] = [];
  /** Workflow time of each key's first use: the start of its 24 h life at Stripe. */
  private readonly keyFirstUsedAt = new Map<string, number>();
  /** The failed charges of the declines this run has seen (a read-back may show an old one). */
  private readonly declinedCharges: string[] = [];

  /**
   * A webhook (or `paymentIntentChanged`) for this checkout's PaymentIntent came in since the wake
   * was last cleared: before each wait (runs recorded without `WAKE_SINCE_REQUEST`) or when the
   * checkout last asked Stripe (runs with it).
   */
  private woken = false;
  /** True while a declined checkout still waits for a new card, so a cancel can still be taken. */
  private awaitingRetry = false;
  /** Recent Stripe event ids, oldest first, at most `SEEN_STRIPE_EVENTS_MAX`. */
  private readonly seenStripeEvents: string[] = [];
  private stripeEventsReceived = 0;
  private stripeEventDuplicates = 0;
  private pendingRetry: RetryPaymentRequest | undefined;
  private pendingCancel: CancelRequest | undefined;
  private pendingResolve: ResolveRequest | undefined;
  /** Decided once, at the top of the run: whether it may follow earlier attempts it cannot see. */
  private mayFollowEarlier = false;
  /**
   * Such a run could not search Stripe for those attempts: it writes nothing until a search
   * succeeds (the keys may be past their 24 h, so a write could charge again).
   */
  private searchBeforeWriting = false;
  /** Parked with re-reads of a payment that may still move and wakes on webhooks (patched). */
  private parkedRereads = false;
  /** While a cancel or an abandon is being carried out (operator requests wait for its end). */
  private canceling = false;
  /** How an operator's cancel or abandon ended the checkout, for the result. */
  private canceledBy: { actor: string; reason: string } | undefined;
  /** Everything after "paid": bounded provisioning, the grace period, refunds. */
  private readonly flow: PaidOrderFlow;

  constructor(private readonly input: CheckoutInput) {
    this.paymentMethodId = input.paymentMethodId;
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
    this.setState('validating', 'input valid');

    let outcome: Outcome | undefined;
    this.mayFollowEarlier = mayFollowEarlierAttempts();
    if (this.mayFollowEarlier) {
      // A reset or continued run knows nothing of what earlier runs did after the reset point.
      this.setState('reconciling', 'reset or continued run: reading Stripe before any write');
      outcome = await this.adoptFromSearch();
    }

    for (;;) {
      outcome ??= await this.attempt();
      switch (outcome) {
        case 'paid':
          this.refusePending(`the payment succeeded (${this.paymentIntent?.id ?? 'PaymentIntent'})`);
          return this.provision();
        case 'expired':
          return this.finish({ outcome: 'expired', ...this.ids() });
        case 'canceled':
          return this.finishCanceled();
        case 'declined': {
          const replayed = await this.readBackReplayedDecline();
          if (replayed) {
            outcome = replayed;
            break;
          }
          const next = await this.afterDecline();
          if (next === 'declined' && this.decline) {
            return this.finish({
              outcome: 'declined',
              orderId: this.input.orderId,
              generation: this.generation,
              decline: this.decline,
            });
          }
          outcome = next;
          break;
        }
        case 'needs_attention':
          outcome = await this.awaitOperator();
          break;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Paying

  /** One attempt with the current generation: make sure a PaymentIntent exists, confirm, follow. */
  private async attempt(): Promise<Outcome> {
    if (this.pendingCancel) return this.cancelUnpaid();
    let pi = this.paymentIntent;
    if (!pi || pi.status === 'canceled') {
      const created = await this.createPaymentIntent();
      if (typeof created === 'string') return created;
      pi = created;
      // A cancel taken while the create was in flight: nothing is charged yet, so it is honoured
      // before the confirm (older runs went on to confirm, hence the patch).
      if (this.pendingCancel && patched('cancel-before-confirm')) return this.cancelUnpaid();
    }
    if (pi.status === 'requires_payment_method' || pi.status === 'requires_confirmation') {
      return this.confirm(pi);
    }
    return this.follow(pi);
  }

  private async createPaymentIntent(): Promise<PaymentIntentSnapshot | Outcome> {
    this.setState('creating_payment', `generation ${this.generation}`);
    const params: CreatePaymentIntentParams = {
      amount: this.input.amount,
      currency: this.input.currency,
      customer: this.input.customerId,
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      description: `Order ${this.input.orderId}`,
      metadata: {
        order_id: this.input.orderId,
        checkout_workflow_id: this.workflowId,
        generation: String(this.generation),
      },
    };
    const key = this.key('create');
    const budget = this.writeBudget(key);
    if (budget === undefined) return this.reconcileUnknownCreate('key budget spent before create');
    try {
      const pi = await this.stripeWrite(budget, 'Create PaymentIntent (unconfirmed)').createPaymentIntent({
        idempotencyKey: key,
        params,
      });
      this.adopt(pi);
      return pi;
    } catch (err) {
      const type = failureType(err);
      if (type === FailureType.IdempotencyMismatch) {
        return this.park('idempotency_mismatch', `create: ${errorMessage(err)}`, false);
      }
      if (type === FailureType.StripeInvalidRequest) {
        // A definite 400: nothing was created, so a corrected attempt is safe.
        return this.park('stripe_rejected_request', `create: ${errorMessage(err)}`, true);
      }
      return this.reconcileUnknownCreate(`create ${type ?? 'failed'}: ${errorMessage(err)}`);
    }
  }

  /** The create's outcome is unknown and its id with it: look for it by metadata. */
  private async reconcileUnknownCreate(why: string): Promise<PaymentIntentSnapshot | Outcome> {
    const found = await this.searchThisCheckout();
    const mine = found?.filter((p) => p.metadata.generation === String(this.generation)) ?? [];
    const usable = mine.find((p) => p.status !== 'canceled');
    if (usable) {
      this.adopt(usable);
      this.record('workflow', 'adopted_payment_intent', `${why}; search found ${usable.id}`);
      return usable;
    }
    // An unconfirmed create moves no money, so a new card (new generation) stays safe.
    return this.park('payment_outcome_unknown', `${why}; search found no PaymentIntent (inconclusive)`, true);
  }

  private async confirm(pi: PaymentIntentSnapshot): Promise<Outcome> {
    this.setState('confirming_payment', `${pi.id}, generation ${this.generation}`);
    const key = this.key('confirm');
    const budget = this.writeBudget(key);
    if (budget === undefined) return this.readBackAfterConfirm(pi.id, 'key budget spent before confirm');
    // Webhooks from here on may say what the confirm did (3-D Secure, a settling debit).
    this.woken = false;
    try {
      const result = await this.stripeWrite(budget, 'Confirm PaymentIntent').confirmPaymentIntent({
        idempotencyKey: key,
        paymentIntentId: pi.id,
        params: { payment_method: this.paymentMethodId },
      });
      if (result.outcome === 'declined') {
        const { outcome: _declined, ...decline } = result;
        return this.declined(decline);
      }
      this.adopt(result.paymentIntent);
      return this.follow(result.paymentIntent);
    } catch (err) {
      const type = failureType(err);
      if (type === FailureType.IdempotencyMismatch) {
        return this.park('idempotency_mismatch', `confirm: ${errorMessage(err)}`, false);
      }
      return this.readBackAfterConfirm(pi.id, `confirm ${type ?? 'failed'}: ${errorMessage(err)}`);
    }
  }

  /** The confirm's answer is unknown, but the PaymentIntent id is not: Stripe says what happened. */
  private async readBackAfterConfirm(paymentIntentId: string, why: string): Promise<Outcome> {
    this.setState('reconciling', why);
    const pi = await this.read(paymentIntentId);
    if (!pi) return this.park('payment_outcome_unknown', `${why}; reading ${paymentIntentId} failed`, false);
    this.adopt(pi);
    if (pi.status === 'requires_payment_method' || pi.status === 'requires_confirmation') {
      // After a new card, the PaymentIntent still carries the earlier card's decline until this
      // confirm replaces it: that one says nothing about this confirm (older runs took it for this
      // confirm's decline, hence the patch).
      const chargeId = pi.lastPaymentError?.chargeId;
      const earlier = chargeId !== undefined && this.declinedCharges.includes(chargeId);
      if (pi.status === 'requires_payment_method' && pi.lastPaymentError) {
        if (!earlier || !patched('earlier-decline-is-not-this-one'))
          return this.declined(this.declineFrom(pi));
      }
      // Read back and not charged: the PaymentIntent can still succeed only once, so a new card is safe.
      return this.park(
        'payment_outcome_unknown',
        `${why}; Stripe shows ${pi.id} ${pi.status}, not charged${earlier ? " (its last error is an earlier card's decline)" : ''}`,
        true,
      );
    }
    return this.follow(pi);
  }

  /**
   * Follows a confirmed PaymentIntent until Stripe says succeeded, failed, or time is up. A status
   * that decides the outcome returns it at once, without a promise (a card paid at once, the usual
   * case: the sandbox records a stack trace for every promise a workflow creates).
   */
  private follow(initial: PaymentIntentSnapshot): Outcome | Promise<Outcome> {
    return this.settled(initial) ?? this.waitForPayment(initial);
  }

  /** The outcome this PaymentIntent's status decides, or undefined while it is still on its way. */
  private settled(pi: PaymentIntentSnapshot): Outcome | undefined {
    switch (pi.status) {
      case 'succeeded':
        this.setState('paid', `Stripe shows ${pi.id} succeeded`);
        return 'paid';
      case 'requires_payment_method':
        if (pi.lastPaymentError) return this.declined(this.declineFrom(pi));
        return this.park('unexpected_payment_state', `${pi.id} needs a payment method again`, true);
      case 'requires_confirmation':
        return this.park('unexpected_payment_state', `${pi.id} is unconfirmed`, true);
      case 'canceled':
        return this.park('unexpected_payment_state', `${pi.id} was canceled outside this checkout`, true);
      case 'requires_capture':
        return this.park('unexpected_payment_state', `${pi.id} awaits a manual capture`, false);
      default:
        return undefined;
    }
  }

  /** 3-D Secure or an asynchronous method: waits (polling, or woken by a webhook) until it settles. */
  private async waitForPayment(initial: PaymentIntentSnapshot): Promise<Outcome> {
    let pi = initial;
    // A timer decides the deadline (common.ts, `Deadline`); runs recorded before it keep the clock.
    const deadline = new Deadline(this.opts.paymentActionTimeoutMs, patched(PAYMENT_DEADLINE_TIMER));
    const wakeSinceRequest = patched(WAKE_SINCE_REQUEST);
    let interval = this.opts.paymentPollIntervalMs;
    for (;;) {
      switch (pi.status) {
        case 'requires_action':
          this.setState('awaiting_customer_action', pi.id);
          break;
        case 'processing':
          this.setState('awaiting_async_payment', pi.id);
          break;
      }
      const wait = deadline.pollMs(interval);
      if (wait !== undefined) {
        if (!wakeSinceRequest) this.woken = false;
        await condition(() => this.woken || this.pendingCancel !== undefined || deadline.timerFired, wait);
        interval = Math.min(interval * 2, MAX_POLL_INTERVAL_MS);
      }
      if (this.pendingCancel) {
        deadline.stop();
        return this.cancelUnpaid();
      }
      if (deadline.passed) return this.expire(pi.id);
      // The read answers every webhook so far; one handled from here on wakes the next wait.
      if (wakeSinceRequest) this.woken = false;
      pi = (await this.read(pi.id)) ?? pi;
      this.adopt(pi);
      const outcome = this.settled(pi);
      if (outcome !== undefined) {
        deadline.stop();
        return outcome;
      }
    }
  }

  /** Past the deadline: cancel (keyed) so a late payment cannot land, then believe only Stripe. */
  private async expire(paymentIntentId: string): Promise<Outcome> {
    const pi = await this.cancelPaymentIntent(paymentIntentId, 'payment deadline passed');
    if (pi?.status === 'succeeded') {
      this.setState('paid', `${pi.id} succeeded before it could be canceled`);
      return 'paid';
    }
    if (!pi || pi.status !== 'canceled') {
      return this.park(
        'unexpected_payment_state',
        `deadline passed; could not cancel ${paymentIntentId}`,
        false,
      );
    }
    this.setState('expired', `${paymentIntentId} canceled at the payment deadline`);
    return 'expired';
  }

  private declined(decline: Decline): Outcome {
    this.decline = decline;
    if (decline.chargeId !== undefined) this.declinedCharges.push(decline.chargeId);
    if (this.paymentIntent && this.paymentIntent.id === decline.paymentIntentId) {
      // After a decline Stripe returns the PaymentIntent to requires_payment_method (contract).
      this.paymentIntent = { ...this.paymentIntent, status: 'requires_payment_method' };
    }
    this.setState('declined', `${decline.code}${decline.declineCode ? `/${decline.declineCode}` : ''}`);
    return 'declined';
  }

  private declineFrom(pi: PaymentIntentSnapshot): Decline {
    const chargeId = pi.lastPaymentError?.chargeId;
    return {
      code: pi.lastPaymentError?.code ?? 'payment_failed',
      declineCode: pi.lastPaymentError?.declineCode,
      paymentIntentId: pi.id,
      message: `Stripe shows ${pi.id} failed`,
      ...(chargeId === undefined ? {} : { chargeId }),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Waiting for people

  /** A decline waits for a new card (`retryPayment`) or a cancel, then ends declined. */
  private async afterDecline(): Promise<Outcome | undefined> {
    this.awaitingRetry = true;
    try {
      await condition(
        () => this.pendingRetry !== undefined || this.pendingCancel !== undefined,
        this.opts.paymentRetryWindowMs,
      );
    } finally {
      this.awaitingRetry = false;
    }
    if (this.pendingCancel) return this.cancelUnpaid();
    if (this.takeRetry()) return undefined;
    return 'declined';
  }

  /**
   * Needs attention: re-read Stripe now and then, and act on what an operator decides. Stripe is
   * re-read every `reconcileIntervalMs` while the outcome is unknown, and while the payment may
   * still move on its own (a bank debit still processing at the deadline); a webhook for this
   * checkout's PaymentIntent re-reads at once. (Older runs re-read only an unknown outcome, on the
   * interval: `parked-rereads` keeps them replaying as they ran.)
   */
  private async awaitOperator(): Promise<Outcome | undefined> {
    this.parkedRereads ||= patched('parked-rereads');
    const wakeSinceRequest = patched(WAKE_SINCE_REQUEST);
    // A recheck asks Stripe: with the patch, a webhook from here on wakes the next wait.
    const recheck = (): Promise<Outcome | undefined> => {
      if (wakeSinceRequest) this.woken = false;
      return this.recheck();
    };
    let interval = this.opts.reconcileIntervalMs;
    for (;;) {
      if (!wakeSinceRequest) this.woken = false;
      const decided = await condition(
        () =>
          this.pendingRetry !== undefined ||
          this.pendingCancel !== undefined ||
          this.pendingResolve !== undefined ||
          (this.parkedRereads && this.woken && this.mayStillMove()),
        interval,
      );
      if (this.pendingCancel) return this.cancelUnpaid();
      if (this.takeRetry()) return undefined;
      const resolve = this.pendingResolve;
      if (resolve) {
        this.pendingResolve = undefined;
        if (resolve.outcome === 'abandon') {
          this.canceledBy = { actor: resolve.actor, reason: resolve.reason };
          return this.cancelUnpaid();
        }
        const found = await recheck();
        if (found) return found;
        continue;
      }
      const unknown = this.needsAttention?.reason === 'payment_outcome_unknown';
      if ((!decided && (unknown || this.mayStillMove())) || (decided && this.parkedRereads && this.woken)) {
        const found = await recheck();
        if (found) return found;
        if (!unknown && !decided)
          interval = nextParkedRereadInterval(interval, this.opts.reconcileIntervalMs);
      }
    }
  }

  /** Parked while Stripe may still settle the payment without us: worth re-reading (patched). */
  private mayStillMove(): boolean {
    if (!this.parkedRereads) return false;
    const status = this.paymentIntent?.status;
    return status === 'processing' || status === 'requires_action';
  }

  /** Reads Stripe; returns an outcome only when Stripe shows something to act on. */
  private async recheck(): Promise<Outcome | undefined> {
    if (this.searchBeforeWriting) return this.searchAgainBeforeWriting();
    if (this.paymentIntent) {
      const before = this.paymentIntent.status;
      const pi = await this.read(this.paymentIntent.id);
      if (!pi) return undefined;
      this.adopt(pi);
      if (
        this.parkedRereads &&
        before === 'processing' &&
        this.needsAttention?.reason === 'unexpected_payment_state'
      ) {
        // Parked at the deadline with a debit still processing (it cannot be canceled): only its end
        // moves the checkout; following it again would only meet the same deadline.
        if (pi.status === 'processing') return undefined;
        if (pi.status === 'requires_payment_method' && pi.lastPaymentError) {
          this.clearAttention();
          return this.declined(this.declineFrom(pi));
        }
      }
      if (pi.status === 'succeeded' || pi.status === 'processing' || pi.status === 'requires_action') {
        this.clearAttention();
        return this.follow(pi);
      }
      return undefined;
    }
    const found = await this.searchThisCheckout();
    const succeeded = found?.filter((p) => p.status === 'succeeded') ?? [];
    const pending = found?.find((p) => p.status === 'processing' || p.status === 'requires_action');
    const hit = succeeded[0] ?? pending;
    if (succeeded.length > 1) {
      return this.park('multiple_successful_payments', succeeded.map((p) => p.id).join(', '), false);
    }
    if (!hit) return undefined;
    this.adopt(hit);
    this.clearAttention();
    return this.follow(hit);
  }

  /**
   * Reset or continued run: adopt what Stripe already has for this checkout, if anything. When the
   * search fails, nothing is written: past 24 h the keys no longer replay, and a create and confirm
   * would charge again. The checkout parks and searches again every `reconcileIntervalMs` (older
   * runs went on to write, hence the patch).
   */
  private async adoptFromSearch(): Promise<Outcome | undefined> {
    const found = await this.searchThisCheckout();
    if (!found) {
      if (!patched('search-before-write')) return undefined;
      this.searchBeforeWriting = true;
      return this.park(
        'payment_outcome_unknown',
        'this run may follow earlier attempts and searching Stripe for them failed: nothing is written until a search succeeds',
        false,
      );
    }
    return this.adoptFound(found);
  }

  /** The search works again: adopt what it found, or write as a fresh run would. */
  private async searchAgainBeforeWriting(): Promise<Outcome | undefined> {
    const found = await this.searchThisCheckout();
    if (!found) return undefined;
    this.searchBeforeWriting = false;
    this.clearAttention();
    this.record('workflow', 'searched_before_writing', `search found ${found.length} PaymentIntent(s)`);
    return (await this.adoptFound(found)) ?? this.attempt();
  }

  /**
   * A decline in a run that may follow earlier attempts can be a replayed one: the same key returns
   * the first confirm's stored 402 even when a later confirm of the same PaymentIntent, with a new
   * card, succeeded. So it is read back by id (consistent, unlike search) before it counts.
   */
  private async readBackReplayedDecline(): Promise<Outcome | undefined> {
    const paymentIntentId = this.decline?.paymentIntentId ?? this.paymentIntent?.id;
    if (!this.mayFollowEarlier || !paymentIntentId || !patched('read-back-replayed-decline'))
      return undefined;
    const pi = await this.read(paymentIntentId);
    if (!pi || pi.status === 'requires_payment_method') return undefined;
    this.adopt(pi);
    this.decline = undefined;
    this.record('workflow', 'decline_superseded', `Stripe shows ${pi.id} ${pi.status}`);
    return this.follow(pi);
  }

  private adoptFound(found: readonly PaymentIntentSnapshot[]): Outcome | Promise<Outcome> | undefined {
    const succeeded = found.filter((p) => p.status === 'succeeded');
    if (succeeded.length > 1) {
      return this.park('multiple_successful_payments', succeeded.map((p) => p.id).join(', '), false);
    }
    const pick =
      succeeded[0] ??
      found.find((p) => p.status === 'processing' || p.status === 'requires_action') ??
      found.find((p) => p.status !== 'canceled');
    if (!pick) return undefined;
    this.adopt(pick);
    this.record('workflow', 'adopted_payment_intent', `reset run found ${pick.id} (${pick.status})`);
    if (pick.status === 'requires_payment_method' || pick.status === 'requires_confirmation')
      return undefined;
    return this.follow(pick);
  }

  private takeRetry(): boolean {
    const retry = this.pendingRetry;
    if (!retry) return false;
    this.pendingRetry = undefined;
    this.generation += 1;
    this.paymentMethodId = retry.paymentMethodId;
    this.decline = undefined;
    this.clearAttention();
    this.record(retry.actor, 'retry_payment', `${retry.reason} (generation ${this.generation})`);
    return true;
  }

  /** Ends without charging: cancels an open PaymentIntent (keyed); if Stripe shows it paid, it is paid. */
  private async cancelUnpaid(): Promise<Outcome> {
    const request = this.pendingCancel;
    this.canceling = true;
    try {
      if (request) this.canceledBy = { actor: request.actor, reason: request.reason };
      return await this.cancelOpenPaymentIntent();
    } finally {
      this.canceling = false;
      // Cleared only now, so the cancel update returns the state this cancel produced.
      if (this.pendingCancel === request) this.pendingCancel = undefined;
    }
  }

  private async cancelOpenPaymentIntent(): Promise<Outcome> {
    const pi = this.paymentIntent;
    if (pi && pi.status !== 'canceled') {
      const after = await this.cancelPaymentIntent(pi.id, this.canceledBy?.reason ?? 'canceled');
      if (after?.status === 'succeeded') {
        this.record('workflow', 'cancel_refused', `${pi.id} had already succeeded: provisioning`);
        this.canceledBy = undefined;
        this.setState('paid', `Stripe shows ${pi.id} succeeded`);
        return 'paid';
      }
      if (after?.status !== 'canceled') {
        this.canceledBy = undefined;
        return this.park('unexpected_payment_state', `cancel of ${pi.id} did not take effect`, false);
      }
    }
    // Ended: no longer waiting for an operator (older runs kept the attribute, hence the patch).
    if (this.needsAttention && patched('clear-attention-on-cancel')) this.clearAttention();
    this.setState('canceled', this.canceledBy?.reason ?? 'canceled');
    return 'canceled';
  }

  // -------------------------------------------------------------------------------------------
  // Provisioning and ending

  private async provision(): Promise<CheckoutResult> {
    const pi = this.paymentIntent;
    if (!pi || pi.status !== 'succeeded') {
      throw ApplicationFailure.create({
        message: 'provision reached without a succeeded PaymentIntent',
        nonRetryable: true,
      });
    }
    // Bounded provisioning, then a grace period and a full refund if it fails for good. The
    // provisioner is idempotent, so Temporal's retries inside the bound never grant twice.
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
        generation: this.generation,
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
      generation: this.generation,
      entitlement: provisioned.entitlement,
      ...(refunds.length > 0 ? { refunds } : {}),
    });
  }

  private finishCanceled(): CheckoutResult | Promise<CheckoutResult> {
    return this.finish({
      outcome: 'canceled',
      ...this.ids(),
      actor: this.canceledBy?.actor ?? 'workflow',
      reason: this.canceledBy?.reason ?? 'canceled',
    });
  }

  private ids(): { orderId: string; generation: number; paymentIntentId: string | undefined } {
    return {
      orderId: this.input.orderId,
      generation: this.generation,
      paymentIntentId: this.paymentIntent?.id,
    };
  }

  private finish(result: CheckoutResult): CheckoutResult | Promise<CheckoutResult> {
    this.refusePending(`the checkout ended ${this.state}`);
    return whenHandlersFinished(result);
  }

  /**
   * Answers the operator requests the flow can no longer take (a cancel that reached the confirm
   * too late, a new card after the payment succeeded, one request of two sent together): each is
   * recorded as refused with why, and its update returns the status that shows what happened
   * instead. Without this the update waited forever and, with it, the workflow's end. Older runs
   * left them waiting, hence the patch.
   */
  private refusePending(why: string): void {
    const pending = [
      ['cancel', this.pendingCancel],
      ['retry_payment', this.pendingRetry],
      ['resolve', this.pendingResolve],
    ] as const;
    if (!pending.some(([, request]) => request !== undefined) || !patched('answer-pending-requests')) return;
    for (const [kind, request] of pending) {
      if (request) this.record('workflow', `${kind}_refused`, `${request.actor}: ${why}`);
    }
    this.pendingCancel = undefined;
    this.pendingRetry = undefined;
    this.pendingResolve = undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Stripe calls

  private key(step: StripeWriteStep): string {
    return paymentIdempotencyKey(this.workflowId, this.generation, step);
  }

  /** Time this key may still be retried, or undefined when it is spent (read Stripe instead). */
  private writeBudget(key: string): number | undefined {
    return writeBudgetLeft(this.keyFirstUsedAt, key, this.opts.stripeKeyBudgetMs);
  }

  private stripeWrite(budgetMs: number, summary: string): CheckoutActivities {
    return stripeWriteActivities(this.opts.stripeCallTimeoutMs, budgetMs, summary);
  }

  private reads(summary: string): CheckoutActivities {
    return stripeReadActivities(this.opts.stripeCallTimeoutMs, summary);
  }

  /** Reads a PaymentIntent; undefined when Stripe could not be read (the caller stays cautious). */
  private async read(paymentIntentId: string): Promise<PaymentIntentSnapshot | undefined> {
    try {
      return await this.reads(`Read PaymentIntent ${paymentIntentId}`).getPaymentIntent({ paymentIntentId });
    } catch (err) {
      log.warn('reading a PaymentIntent failed', { paymentIntentId, error: errorMessage(err) });
      return undefined;
    }
  }

  private async searchThisCheckout(): Promise<readonly PaymentIntentSnapshot[] | undefined> {
    try {
      const res = await this.reads('Search PaymentIntents by checkout metadata').findCheckoutPaymentIntents({
        workflowId: this.workflowId,
      });
      for (const p of res.paymentIntents) this.remember(p.id);
      return res.paymentIntents;
    } catch (err) {
      log.warn('searching PaymentIntents failed', { error: errorMessage(err) });
      return undefined;
    }
  }

  private async cancelPaymentIntent(
    paymentIntentId: string,
    why: string,
  ): Promise<PaymentIntentSnapshot | undefined> {
    const key = this.key('cancel');
    const budget = this.writeBudget(key);
    if (budget !== undefined) {
      try {
        const pi = await this.stripeWrite(budget, 'Cancel PaymentIntent').cancelPaymentIntent({
          idempotencyKey: key,
          paymentIntentId,
        });
        this.adopt(pi);
        this.record('workflow', 'cancel_payment_intent', why);
        return pi;
      } catch (err) {
        log.warn('canceling a PaymentIntent failed', { paymentIntentId, error: errorMessage(err) });
      }
    }
    const pi = await this.read(paymentIntentId);
    if (pi) this.adopt(pi);
    return pi;
  }

  // -------------------------------------------------------------------------------------------
  // State

  private adopt(pi: PaymentIntentSnapshot): void {
    this.paymentIntent = pi;
    this.remember(pi.id);
    this.changes.index.adopted(pi.id);
  }

  private remember(id: string): void {
    if (!this.paymentIntentIds.includes(id)) this.paymentIntentIds.push(id);
  }

  private park(reason: NeedsAttentionReason, detail: string, retryAllowed: boolean): Outcome {
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
    const previous = this.state;
    this.state = state;
    this.changes.changed(previous, state, this.paymentIntent?.id);
    this.record('workflow', `state:${state}`, reason);
  }

  private record(actor: string, action: string, reason: string): void {
    this.audit.push({ at: new Date().toISOString(), actor, action, reason });
  }

  private status(): CheckoutStatus {
    return {
      workflowId: this.workflowId,
      orderId: this.input.orderId,
      state: this.state,
      generation: this.generation,
      amount: this.input.amount,
      currency: this.input.currency,
      paymentIntentId: this.paymentIntent?.id,
      paymentIntentIds: [...this.paymentIntentIds],
      decline: this.decline,
      needsAttention: this.needsAttention,
      entitlement: this.entitlement,
      audit: [...this.audit],
      stripeEvents: { received: this.stripeEventsReceived, duplicates: this.stripeEventDuplicates },
      refundedAmount: this.flow.refundedAmount,
      refunds: this.flow.refunds,
      ...(this.flow.automaticRefund ? { automaticRefund: this.flow.automaticRefund } : {}),
    };
  }

  /**
   * A webhook event only wakes the wait: whatever it says, the flow reads the PaymentIntent back and
   * moves forward only (a late `payment_failed` after `succeeded` changes nothing). A signal cannot
   * be refused, so a malformed one is logged and dropped.
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
    const pi = paymentIntentId ?? objectId;
    if (this.paymentIntentIds.includes(pi)) this.woken = true;
  }

  private registerHandlers(): void {
    setHandler(statusQuery, () => this.status());
    setHandler(paymentIntentChangedSignal, ({ paymentIntentId }) => {
      if (this.paymentIntentIds.includes(paymentIntentId)) this.woken = true;
    });
    setHandler(stripeEventSignal, (notice) => this.onStripeEvent(notice));

    setHandler(
      retryPaymentUpdate,
      async (request) => {
        this.record(request.actor, 'request:retry_payment', request.reason);
        this.pendingRetry = request;
        await condition(() => this.pendingRetry !== request);
        return this.status();
      },
      {
        validator: (request) => {
          rejectInvalid(validateRetryPaymentRequest(request));
          const allowed =
            this.state === 'declined' ||
            (this.state === 'needs_attention' && this.needsAttention?.retryAllowed === true);
          if (!allowed) {
            throw new Error(`retryPayment is not allowed in state ${this.state}`);
          }
          this.refuseWhilePending();
          if (this.generation >= MAX_GENERATIONS) throw new Error(`at most ${MAX_GENERATIONS} attempts`);
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
          if (MONEY_TAKEN_STATES.includes(this.state) || this.flow.paid)
            throw new Error('the payment succeeded: refund instead');
          if (this.needsAttention?.reason === 'multiple_successful_payments') {
            // Ending canceled would leave both charges behind a checkout that says nothing was paid.
            throw new Error(
              `more than one payment succeeded for this order (${this.needsAttention.detail}): a cancel cannot undo them; ` +
                "refund them through the reconciler's cases, then close the checkout with resolve abandon",
            );
          }
          // `declined` is terminal only once the retry window is over; inside it nothing is charged.
          const waitingAfterDecline = this.state === 'declined' && this.awaitingRetry;
          if (TERMINAL_STATES.includes(this.state) && !waitingAfterDecline)
            throw new Error(`the checkout already ended (${this.state})`);
          this.refuseWhilePending();
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
          this.refuseWhilePending();
        },
      },
    );

    this.flow.registerHandlers(() => this.status());
  }

  /**
   * One operator request at a time: the flow takes one and the others could never be taken (a
   * retry and a cancel sent together would leave one of them, and the workflow, waiting forever).
   */
  private refuseWhilePending(): void {
    if (this.canceling) throw new Error('the checkout is being canceled');
    const pending =
      (this.pendingCancel && ['a cancel', this.pendingCancel.actor]) ||
      (this.pendingRetry && ['a retryPayment', this.pendingRetry.actor]) ||
      (this.pendingResolve && [`a resolve ${this.pendingResolve.outcome}`, this.pendingResolve.actor]);
    if (pending) throw new Error(`${pending[0]} by ${pending[1]} is already pending`);
  }
}
