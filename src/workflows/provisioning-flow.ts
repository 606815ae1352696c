/**
 * What happens to an order once Stripe shows it paid: provisioning with a bounded effort, a grace
 * period when it fails for good, and refunds. Shared by every checkout workflow that takes money
 * (the card checkout in checkout.ts, the hosted checkout); the workflow owns its state, search
 * attributes and audit trail and hands them in as a `ProvisioningHost`.
 *
 * How it works, and how it fails:
 * - `provision(order)` runs the provision activity with a schedule-to-close of
 *   `provisioningTimeoutMs` (default 1 h): Temporal retries it with backoff until then. The store is
 *   idempotent per workflow id, so retries never grant twice.
 * - Failed for good (the effort ran out, or the store said a retry cannot help): the checkout parks
 *   as `needs_attention` / `provisioning_failed` and schedules a full refund at now +
 *   `provisioningGraceMs` (default 24 h). During the grace an operator may `retryProvisioning` (a
 *   new bounded effort; if it fails again, a new grace starts), `refund` now (in full or in part),
 *   or stop the automatic refund (`resolve` with `keep_payment`); the checkout then waits for a
 *   retry or a refund, however long. At the deadline with no decision the workflow refunds what is
 *   left, tells the store (a full refund revokes the entitlement) and the checkout ends `refunded`.
 * - `refund(request)` refunds through a `RefundLedger` (refund-ledger.ts): key
 *   `<workflow id>/refund/r<n>`, one refund at a time, unclear outcomes settled by listing Stripe's
 *   refunds, every refund recorded in the provisioning store (the last one revokes the entitlement).
 * - A refund request with a request id this checkout already refunded for is answered with that
 *   refund (`replayed`); with another amount it is refused (`RefundRequestConflict`).
 * - A full refund while provisioning is still running waits for that attempt to end, then records
 *   the refund again, so an entitlement granted in the meantime is revoked too.
 * - Requests that cannot both be taken are refused by the validators, naming why: a retry while a
 *   refund is in progress or waiting for its turn, a refund of everything left while a retry is
 *   pending, `keep_payment` once the automatic refund is being made (its Stripe request may land
 *   whatever the answer says), while another refund or a retry is pending, or once the flow is
 *   ending. Should one still be left when the flow ends, it is refused there, in the audit trail
 *   (`retry_provisioning_refused`), and its update answers with the checkout's end status: a
 *   handler left waiting would keep the workflow from ever closing.
 */
import {
  ApplicationFailure,
  TimeoutFailure,
  condition,
  patched,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import type { CheckoutActivities } from '../activities';
import {
  REFUND_AFTER_COMPLETION,
  refundUpdate,
  retryProvisioningUpdate,
  validateRefundUpdateRequest,
  validateRetryProvisioningRequest,
  type AutomaticRefund,
  type CheckoutState,
  type CheckoutStatus,
  type Entitlement,
  type ProvisionItem,
  type RefundEntry,
  type RefundUpdateRequest,
  type RefundResult,
  type ResolveRequest,
  type RetryProvisioningRequest,
} from './definitions';
import { ACTIVITY_RETRY as RETRY, Deadline, HOUR, errorMessage } from './common';
import { RefundLedger } from './refund-ledger';

/**
 * Patch (docs/changing-workflows.md): the grace's deadline is a timer, not a comparison of the clock
 * with it (common.ts, `Deadline`).
 */
const GRACE_DEADLINE_TIMER = 'grace-deadline-timer';

/** Production defaults of the options this flow reads. */
export const PROVISIONING_DEFAULTS = {
  provisioningTimeoutMs: 1 * HOUR,
  provisioningGraceMs: 24 * HOUR,
} as const;

export interface PaidOrder {
  readonly workflowId: string;
  readonly orderId: string;
  readonly paymentIntentId: string;
  readonly amount: number;
  readonly currency: string;
  readonly item: ProvisionItem;
}

export interface ProvisioningFlowOptions {
  readonly provisioningTimeoutMs: number;
  readonly provisioningGraceMs: number;
  /** Start-to-close of one activity call. */
  readonly stripeCallTimeoutMs: number;
}

/** What the flow needs from the workflow that owns the state and the audit trail. */
export interface ProvisioningHost {
  /** The workflow's current state, for messages. */
  state(): CheckoutState;
  setState(state: CheckoutState, reason: string): void;
  /** Parks in `needs_attention` with reason `provisioning_failed` (and its search attribute). */
  parkProvisioningFailed(detail: string): void;
  clearAttention(): void;
  record(actor: string, action: string, reason: string): void;
}

export type ProvisioningOutcome =
  | { readonly outcome: 'provisioned'; readonly entitlement: Entitlement }
  /** Refunded in full; the entitlement (revoked) if one was ever granted. */
  | { readonly outcome: 'refunded'; readonly entitlement: Entitlement | undefined };

type Phase = 'unpaid' | 'provisioning' | 'failed' | 'provisioned' | 'refunded';

function isTimeout(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof TimeoutFailure) return true;
  return false;
}

export class PaidOrderFlow {
  private order: PaidOrder | undefined;
  private ledger: RefundLedger | undefined;
  private phase: Phase = 'unpaid';
  private pendingRetry: RetryProvisioningRequest | undefined;
  /** `refund` updates accepted and not yet answered (some may still wait for their turn). */
  private pendingRefunds = 0;
  /** The automatic refund at the end of the grace is being made (its Stripe request may be out). */
  private automaticInFlight = false;
  /** The flow is ending refunded: no decision can be taken any more. */
  private ending = false;
  private automatic: AutomaticRefund | undefined;
  private entitlement: Entitlement | undefined;

  constructor(
    private readonly host: ProvisioningHost,
    private readonly opts: ProvisioningFlowOptions,
  ) {}

  // -------------------------------------------------------------------------------------------
  // What the workflow shows

  get refundedAmount(): number {
    return this.ledger?.refunded ?? 0;
  }

  get refunds(): readonly RefundEntry[] {
    return this.ledger?.refunds ?? [];
  }

  get automaticRefund(): AutomaticRefund | undefined {
    return this.automatic;
  }

  /** True once the order is paid: cancel and a new card no longer apply, refunds do. */
  get paid(): boolean {
    return this.phase !== 'unpaid';
  }

  /** True while provisioning has failed for good (recheck, abandon and a new card do not apply). */
  get provisioningFailed(): boolean {
    return this.phase === 'failed';
  }

  // -------------------------------------------------------------------------------------------
  // The main flow

  /**
   * Provisions a paid order; when that fails for good, waits out the grace period (or an
   * operator's decision) and refunds in full. Sets `provisioning` itself (with `reason`); returns
   * once provisioned or once the payment is refunded in full, and the caller sets the end state.
   */
  async provision(order: PaidOrder, reason: string): Promise<ProvisioningOutcome> {
    this.order = order;
    const ledger = new RefundLedger(
      {
        keyWorkflowId: order.workflowId,
        checkoutWorkflowId: order.workflowId,
        orderId: order.orderId,
        paymentIntentId: order.paymentIntentId,
        amount: order.amount,
        currency: order.currency,
      },
      (actor, action, why) => this.host.record(actor, action, why),
      this.opts.stripeCallTimeoutMs,
    );
    this.ledger = ledger;
    this.phase = 'provisioning';
    this.host.setState('provisioning', reason);
    const { provision } = proxyActivities<CheckoutActivities>({
      startToCloseTimeout: this.opts.stripeCallTimeoutMs,
      // Bounded: past this the order has failed for good and the grace period starts.
      scheduleToCloseTimeout: this.opts.provisioningTimeoutMs,
      retry: RETRY,
      summary: 'Provision the order (idempotent per workflow id)',
    });
    for (;;) {
      let failure: unknown;
      try {
        this.entitlement = await provision({
          workflowId: order.workflowId,
          orderId: order.orderId,
          paymentIntentId: order.paymentIntentId,
          item: order.item,
        });
      } catch (err) {
        failure = err;
      }
      // A refund still in flight decides whether this ends completed or refunded. (Only waited on
      // when there is one, so paths without refunds issue exactly the commands they always did.)
      if (ledger.inFlight) await condition(() => !ledger.inFlight);
      if (ledger.full) return this.endRefunded(ledger);
      if (failure === undefined && this.entitlement) {
        this.phase = 'provisioned';
        this.refusePending('provisioning succeeded');
        return { outcome: 'provisioned', entitlement: this.entitlement };
      }
      const why = isTimeout(failure)
        ? `provisioning did not succeed within ${this.opts.provisioningTimeoutMs} ms: ${errorMessage(failure)}`
        : `provisioning failed: ${errorMessage(failure)}`;
      const next = await this.graceAfterFailure(ledger, why);
      if (next === 'refunded') return this.endRefunded(ledger);
      // retryProvisioning: a new bounded effort.
    }
  }

  /** Parks, waits out the grace (or an operator's decision), and refunds at the deadline. */
  private async graceAfterFailure(ledger: RefundLedger, why: string): Promise<'retry' | 'refunded'> {
    this.phase = 'failed';
    // A timer decides the deadline (common.ts, `Deadline`); runs recorded before it keep the clock.
    const due = new Deadline(this.opts.provisioningGraceMs, patched(GRACE_DEADLINE_TIMER));
    const dueAt = new Date(due.atMs).toISOString();
    this.automatic = { status: 'scheduled', dueAt };
    this.host.parkProvisioningFailed(
      `${why}; refunding in full at ${dueAt} unless an operator decides otherwise`,
    );
    this.host.record('workflow', 'automatic_refund_scheduled', `due at ${dueAt}`);
    try {
      for (;;) {
        const before = this.automatic;
        const decided = (): boolean =>
          this.pendingRetry !== undefined || ledger.full || this.automatic !== before;
        if (this.automatic?.status !== 'scheduled') {
          // Stopped (or done): no deadline any more, and the timer is canceled, not left to fire.
          due.stop();
          await condition(decided);
        } else if (due.timed) {
          await condition(() => decided() || due.timerFired);
        } else {
          const left = due.pollMs(this.opts.provisioningGraceMs);
          if (left !== undefined) await condition(decided, left);
        }
        // A refund in progress settles first: it decides what is left.
        await condition(() => !ledger.inFlight);
        if (ledger.full) return 'refunded';
        const retry = this.pendingRetry;
        if (retry) {
          this.pendingRetry = undefined;
          this.automatic = undefined;
          this.phase = 'provisioning';
          this.host.clearAttention();
          this.host.record(retry.actor, 'retry_provisioning', retry.reason);
          this.host.setState('provisioning', `retry by ${retry.actor}`);
          return 'retry';
        }
        if (this.automatic?.status === 'scheduled' && due.passed) {
          await this.refundAtDeadline(ledger);
          if (ledger.full) return 'refunded';
        }
      }
    } finally {
      due.stop();
    }
  }

  /** The grace is over with no decision: refund what is left. */
  private async refundAtDeadline(ledger: RefundLedger): Promise<void> {
    const reason = 'provisioning failed for good and the grace period ended with no operator decision';
    // From here `keep_payment` is refused: the refund may reach Stripe before the answer would.
    this.automaticInFlight = true;
    try {
      const entry = await ledger.refund('workflow', reason, ledger.remaining);
      this.automatic = { status: 'done', at: entry.at, refundId: entry.refundId };
    } catch (err) {
      // Stripe refused, and its list of refunds did not show it done: an operator decides.
      this.automatic = {
        status: 'stopped',
        actor: 'workflow',
        reason: `automatic refund failed: ${errorMessage(err)}`,
        at: new Date().toISOString(),
      };
      this.host.record('workflow', 'automatic_refund_failed', errorMessage(err));
    } finally {
      this.automaticInFlight = false;
    }
  }

  private async endRefunded(ledger: RefundLedger): Promise<ProvisioningOutcome> {
    // Validators refuse decisions from here (the phase stays `failed` meanwhile, for the host's).
    this.ending = true;
    // Provisioning may have granted after the full refund was recorded: record it again.
    await ledger.revokeAgain();
    this.entitlement = ledger.entitlement ?? this.entitlement;
    this.phase = 'refunded';
    this.host.clearAttention();
    const order = this.order;
    this.refusePending(
      `the payment was refunded in full (${ledger.refunded} ${order?.currency ?? ''}) before the retry was taken`,
    );
    return { outcome: 'refunded', entitlement: this.entitlement };
  }

  /**
   * Every exit answers the requests it did not take: a `retryProvisioning` accepted together with
   * the refund that ended the flow is refused here, in the audit trail with why, and its update
   * returns the checkout's status (its end state) instead of waiting forever, which would also keep
   * the workflow from closing (it waits for every handler). No commands: only state changes.
   */
  private refusePending(why: string): void {
    const retry = this.pendingRetry;
    if (retry === undefined) return;
    this.pendingRetry = undefined;
    this.host.record(retry.actor, 'retry_provisioning_refused', why);
  }

  /**
   * Registers the after-payment updates every checkout type answers the same way: `refund` (answers
   * with the refund) and `retryProvisioning` (answers with the checkout's status). Call it from the
   * workflow's own handler registration, before the first await.
   */
  registerHandlers(status: () => CheckoutStatus): void {
    setHandler(refundUpdate, (request) => this.refund(request), {
      validator: (request) => this.validateRefund(request),
    });
    setHandler(
      retryProvisioningUpdate,
      async (request) => {
        await this.retryProvisioning(request);
        return status();
      },
      { validator: (request) => this.validateRetryProvisioning(request) },
    );
  }

  // -------------------------------------------------------------------------------------------
  // Refunds

  /** Update validator: the request's shape, then whether this checkout can refund that much now. */
  validateRefund(request: unknown): void {
    const v = validateRefundUpdateRequest(request);
    if (!v.ok) throw new Error(`invalid request: ${v.problems.join('; ')}`);
    const order = this.order;
    const ledger = this.ledger;
    if (!order || !ledger || this.phase === 'unpaid') {
      throw new Error(`nothing to refund: no payment has succeeded (state ${this.host.state()})`);
    }
    if (this.phase === 'provisioned') throw new Error(REFUND_AFTER_COMPLETION);
    // A repeat of a known request is answered by the handler with its refund, whatever is left.
    if (ledger.earlierRefundFor(v.value) !== undefined) return;
    if (this.phase === 'refunded' || ledger.remaining <= 0) {
      throw new Error(`nothing left to refund: ${order.amount} ${order.currency} was refunded in full`);
    }
    if (ledger.inFlight) throw new Error('another refund is in progress; try again once it finished');
    if (v.value.amount !== undefined && v.value.amount > ledger.remaining) {
      throw new Error(
        `amount: ${v.value.amount} is more than the ${ledger.remaining} ${order.currency} left to refund ` +
          `(paid ${order.amount}, refunded ${ledger.refunded})`,
      );
    }
    const retry = this.pendingRetry;
    if (retry && (v.value.amount === undefined || v.value.amount >= ledger.remaining)) {
      throw new Error(
        `a retryProvisioning by ${retry.actor} is pending: a refund of everything left would end the checkout ` +
          'before it is taken; try again once the retry has started, or refund part of the payment',
      );
    }
  }

  /** Update handler: refunds now (everything left when no amount is given). */
  async refund(request: RefundUpdateRequest): Promise<RefundResult> {
    this.pendingRefunds += 1;
    try {
      return await this.refundNow(request);
    } finally {
      this.pendingRefunds -= 1;
    }
  }

  private async refundNow(request: RefundUpdateRequest): Promise<RefundResult> {
    const order = this.order;
    const ledger = this.ledger;
    if (!order || !ledger) {
      throw ApplicationFailure.create({ message: 'no payment to refund', nonRetryable: true });
    }
    this.host.record(request.actor, 'request:refund', request.reason);
    if (request.requestDigest !== undefined) {
      // Its turn: a request with the same id may have finished while this one waited.
      const release = await ledger.turn();
      try {
        const earlier = ledger.earlierRefundFor(request);
        if (earlier) {
          this.host.record(
            request.actor,
            'refund_replayed',
            `request id already refunded as ${earlier.refundId}`,
          );
          return { ...this.resultOf(order, ledger, earlier), replayed: true };
        }
        if (ledger.remaining <= 0 || (request.amount !== undefined && request.amount > ledger.remaining)) {
          throw ApplicationFailure.create({
            message:
              ledger.remaining <= 0
                ? `nothing left to refund: ${order.amount} ${order.currency} was refunded in full`
                : `amount: ${request.amount} is more than the ${ledger.remaining} ${order.currency} left to refund`,
            type: 'RefundRefused',
            nonRetryable: true,
          });
        }
        const made = await ledger.refund(request.actor, request.reason, request.amount ?? ledger.remaining, {
          digest: request.requestDigest,
          amount: request.amount ?? null,
        });
        return this.resultOf(order, ledger, made);
      } finally {
        release();
      }
    }
    const entry = await ledger.refund(request.actor, request.reason, request.amount ?? ledger.remaining);
    return this.resultOf(order, ledger, entry);
  }

  private resultOf(order: PaidOrder, ledger: RefundLedger, entry: RefundEntry): RefundResult {
    return {
      orderId: order.orderId,
      workflowId: order.workflowId,
      paymentIntentId: order.paymentIntentId,
      currency: order.currency,
      amount: order.amount,
      refundedAmount: ledger.refunded,
      remainingAmount: ledger.remaining,
      refund: entry,
      refunds: ledger.refunds,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Operator decisions after provisioning failed

  validateRetryProvisioning(request: unknown): void {
    const v = validateRetryProvisioningRequest(request);
    if (!v.ok) throw new Error(`invalid request: ${v.problems.join('; ')}`);
    if (this.phase !== 'failed') {
      throw new Error(
        `retryProvisioning is only allowed after provisioning failed for good (state ${this.host.state()})`,
      );
    }
    if (this.ending) throw new Error('retryProvisioning is too late: the payment was refunded in full');
    if (this.pendingRetry) throw new Error('a retryProvisioning is already pending');
    // A refund still waiting for its turn counts too: if it refunds everything, no retry is taken.
    if (this.ledger?.inFlight || this.pendingRefunds > 0) {
      throw new Error('a refund is in progress; try again once it finished');
    }
  }

  /** Update handler: resolves once the main flow has taken the retry. */
  async retryProvisioning(request: RetryProvisioningRequest): Promise<void> {
    this.host.record(request.actor, 'request:retry_provisioning', request.reason);
    this.pendingRetry = request;
    await condition(() => this.pendingRetry !== request);
  }

  /**
   * `resolve` with `keep_payment`: only while an automatic refund is scheduled and not yet being
   * made, and no other request would change what it answers.
   */
  validateKeepPayment(): void {
    if (this.phase !== 'failed' || this.automatic?.status !== 'scheduled') {
      throw new Error(
        `keep_payment only applies while an automatic refund is scheduled after provisioning failed (state ${this.host.state()})`,
      );
    }
    if (this.ending) throw new Error('keep_payment is too late: the payment was refunded in full');
    if (this.automaticInFlight) {
      throw new Error(
        'keep_payment is too late: the automatic refund is already being made (its request to Stripe is in flight); ' +
          'if Stripe refuses it, the automatic refund stops and the checkout waits for a decision',
      );
    }
    if (this.ledger?.inFlight || this.pendingRefunds > 0) {
      throw new Error('a refund is in progress; try again once it finished');
    }
    if (this.pendingRetry) {
      throw new Error('a retryProvisioning is pending: it replaces the automatic refund with a new attempt');
    }
  }

  /** Stops the automatic refund; the checkout keeps waiting for a retry or a deliberate refund. */
  keepPayment(request: ResolveRequest): void {
    this.automatic = {
      status: 'stopped',
      actor: request.actor,
      reason: request.reason,
      at: new Date().toISOString(),
    };
    this.host.record(request.actor, 'keep_payment', `${request.reason} (automatic refund stopped)`);
  }
}
