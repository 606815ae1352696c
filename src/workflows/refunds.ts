/**
 * Refunds of a completed checkout: one entity workflow per order, id `refunds-<order id>`, type
 * `checkoutRefunds`. The checkout itself has ended (its result is its record), so refunds after
 * completion live here. The client starts it with update-with-start (`USE_EXISTING`), carrying the
 * `refund` update, so a request finds the running entity or starts one.
 *
 * How it works:
 * - Before any refund it reads Stripe: the PaymentIntent must have succeeded, belong to this
 *   order's checkout (`metadata.checkout_workflow_id` = `checkout-<order id>`) and match the amount
 *   and currency it was started with; otherwise the run refuses every request and ends.
 * - It lists the PaymentIntent's refunds in Stripe (`GET /v1/refunds`) to learn what was already
 *   refunded (by the checkout while it was open, by earlier runs of this id, in the dashboard) and
 *   moves its request counter past every `refund_request` number seen, so a later run never reuses
 *   an earlier run's key `refunds-<order id>/refund/r<n>`.
 * - Requests run one at a time (refund-ledger.ts): the validator refuses a malformed request or one
 *   for more than is left, as far as the run knows; the handler checks again once it is its turn.
 *   A full refund revokes the entitlement in the provisioning store.
 * - A request with a request id (its digest) that this run knows, from its own refunds, from the
 *   carried ones or from Stripe's metadata, is answered with that refund (`replayed`) and refunds
 *   nothing; with another amount it is refused (`RefundRequestConflict`, naming `amount`), by the
 *   validator once the run has read Stripe and by the handler in any case.
 * - It closes after `idleTimeoutMs` (default 10 min) without requests, and continues as new when
 *   its history grows (`maxHistoryEvents`, or the server's suggestion), carrying who asked for which
 *   refund and why. A refund made by an earlier, closed run shows here as found in Stripe; that
 *   run's own status query still holds its who and why.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { CheckoutActivities } from '../activities';
import {
  FailureType,
  checkoutWorkflowId,
  refundUpdate,
  refundsStatusQuery,
  refundsWorkflowId,
  validateRefundUpdateRequest,
  validateRefundsInput,
  type AuditEntry,
  type RefundEntry,
  type RefundUpdateRequest,
  type RefundResult,
  type RefundsInput,
  type RefundsResult,
  type RefundsState,
  type RefundsStatus,
} from './definitions';
import { MINUTE, SECOND, errorMessage } from './common';
import { RefundLedger } from './refund-ledger';

const DEFAULTS = {
  idleTimeoutMs: 10 * MINUTE,
  stripeCallTimeoutMs: 30 * SECOND,
  maxHistoryEvents: 10_000,
} as const;

/** Audit entries carried into the next run; older ones stay in the earlier run's history. */
const CARRIED_AUDIT_MAX = 200;

export async function checkoutRefunds(rawInput: RefundsInput): Promise<RefundsResult> {
  const v = validateRefundsInput(rawInput);
  if (!v.ok) {
    throw ApplicationFailure.create({
      message: `Invalid refunds input: ${v.problems.join('; ')}`,
      type: FailureType.InvalidCheckoutInput,
      nonRetryable: true,
    });
  }
  const input = v.value;
  if (workflowInfo().workflowId !== refundsWorkflowId(input.orderId)) {
    // Keys derive from the workflow id; another id would not dedupe by order.
    throw ApplicationFailure.create({
      message: `Invalid refunds input: workflow id must be "${refundsWorkflowId(input.orderId)}"`,
      type: FailureType.InvalidCheckoutInput,
      nonRetryable: true,
    });
  }
  return new Refunds(input).run();
}

class Refunds {
  private readonly workflowId = workflowInfo().workflowId;
  private readonly opts: { readonly [K in keyof typeof DEFAULTS]: number };
  private readonly ledger: RefundLedger;
  private readonly audit: AuditEntry[];
  private state: RefundsState = 'verifying';
  private refusedBecause: string | undefined;
  /** Requests seen by this run; the idle timer restarts whenever it changes. */
  private requests = 0;

  constructor(private readonly input: RefundsInput) {
    this.opts = { ...DEFAULTS, ...input.options };
    this.audit = [...(input.carried?.audit ?? [])];
    this.ledger = new RefundLedger(
      {
        keyWorkflowId: this.workflowId,
        checkoutWorkflowId: checkoutWorkflowId(input.orderId),
        orderId: input.orderId,
        paymentIntentId: input.paymentIntentId,
        amount: input.amount,
        currency: input.currency,
      },
      (actor, action, reason) => this.record(actor, action, reason),
      this.opts.stripeCallTimeoutMs,
      input.carried,
    );
  }

  async run(): Promise<RefundsResult> {
    // Registered before the first await: the update that started this run is delivered at once.
    setHandler(refundsStatusQuery, () => this.status());
    setHandler(refundUpdate, (request) => this.onRefund(request), {
      validator: (request: RefundUpdateRequest) => this.validate(request),
    });

    await this.verify();
    if (this.state === 'refused') {
      await condition(allHandlersFinished);
      return { outcome: 'refused', reason: this.refusedBecause ?? 'refused' };
    }

    for (;;) {
      const seen = this.requests;
      const active = await condition(
        () => this.requests !== seen || this.ledger.inFlight,
        this.opts.idleTimeoutMs,
      );
      await condition(() => !this.ledger.inFlight);
      const info = workflowInfo();
      if (info.continueAsNewSuggested || info.historyLength >= this.opts.maxHistoryEvents) {
        await condition(allHandlersFinished);
        this.record('workflow', 'continue_as_new', `history at ${info.historyLength} events`);
        await continueAsNew<typeof checkoutRefunds>({
          ...this.input,
          carried: {
            refunds: this.ledger.refunds,
            audit: this.audit.slice(-CARRIED_AUDIT_MAX),
            nextRequest: this.ledger.nextRequest,
          },
        });
      }
      if (!active && allHandlersFinished()) break;
    }
    this.record('workflow', 'idle', `no request for ${this.opts.idleTimeoutMs} ms`);
    await condition(allHandlersFinished);
    return {
      outcome: 'idle',
      refundedAmount: this.ledger.refunded,
      remainingAmount: this.ledger.remaining,
    };
  }

  /** Stripe decides whether this order's payment can be refunded here, and how much already was. */
  private async verify(): Promise<void> {
    const { orderId, paymentIntentId, amount, currency } = this.input;
    const expected = checkoutWorkflowId(orderId);
    try {
      const pi = await proxyActivities<CheckoutActivities>({
        startToCloseTimeout: this.opts.stripeCallTimeoutMs,
        scheduleToCloseTimeout: 10 * MINUTE,
        retry: { initialInterval: SECOND, backoffCoefficient: 2, maximumInterval: MINUTE },
        summary: `Read PaymentIntent ${paymentIntentId}`,
      }).getPaymentIntent({ paymentIntentId });
      const problems: string[] = [];
      if (pi.metadata.checkout_workflow_id !== expected) {
        problems.push(`${pi.id} does not belong to ${expected}`);
      }
      if (pi.status !== 'succeeded') problems.push(`${pi.id} is ${pi.status}, not succeeded`);
      if (pi.amount !== amount || pi.currency !== currency) {
        problems.push(`${pi.id} is ${pi.amount} ${pi.currency}, not ${amount} ${currency}`);
      }
      if (problems.length > 0) return this.refuse(problems.join('; '));
      await this.ledger.learnFromStripe();
    } catch (err) {
      return this.refuse(`could not read Stripe: ${errorMessage(err)}`);
    }
    this.state = 'open';
    this.record(
      'workflow',
      'state:open',
      `${paymentIntentId} verified; ${this.ledger.refunded} of ${amount} ${currency} already refunded`,
    );
  }

  private refuse(why: string): void {
    this.state = 'refused';
    this.refusedBecause = why;
    this.record('workflow', 'state:refused', why);
  }

  private validate(request: RefundUpdateRequest): void {
    const v = validateRefundUpdateRequest(request);
    if (!v.ok) throw new Error(`invalid request: ${v.problems.join('; ')}`);
    if (this.state === 'refused') throw new Error(`refunds refused: ${this.refusedBecause ?? ''}`);
    // A repeat of a known request is answered by the handler with its refund, whatever is left.
    if (this.state === 'open' && this.ledger.earlierRefundFor(v.value) !== undefined) return;
    const { amount, currency } = this.input;
    // Before verification the run knows only what was paid; the handler checks again.
    const left = this.state === 'open' ? this.ledger.remaining : amount;
    if (left <= 0) throw new Error(`nothing left to refund: ${amount} ${currency} was refunded in full`);
    if (v.value.amount !== undefined && v.value.amount > left) {
      throw new Error(
        `amount: ${v.value.amount} is more than the ${left} ${currency} left to refund ` +
          `(paid ${amount}, refunded ${this.ledger.refunded})`,
      );
    }
  }

  private async onRefund(request: RefundUpdateRequest): Promise<RefundResult> {
    this.requests += 1;
    this.record(request.actor, 'request:refund', request.reason);
    await condition(() => this.state !== 'verifying');
    // One at a time: each request sees what the previous one left (and a repeat, its refund).
    const release = await this.ledger.turn();
    try {
      return await this.refundInTurn(request);
    } finally {
      release();
    }
  }

  private async refundInTurn(request: RefundUpdateRequest): Promise<RefundResult> {
    const refuse = (message: string): never => {
      throw ApplicationFailure.create({ message, type: 'RefundRefused', nonRetryable: true });
    };
    if (this.state === 'refused') refuse(`refunds refused: ${this.refusedBecause ?? ''}`);
    const earlier = this.ledger.earlierRefundFor(request);
    if (earlier) {
      this.record(request.actor, 'refund_replayed', `request id already refunded as ${earlier.refundId}`);
      return this.result(earlier, true);
    }
    const { amount, currency } = this.input;
    const left = this.ledger.remaining;
    if (left <= 0) refuse(`nothing left to refund: ${amount} ${currency} was refunded in full`);
    if (request.amount !== undefined && request.amount > left) {
      refuse(
        `amount: ${request.amount} is more than the ${left} ${currency} left to refund ` +
          `(paid ${amount}, refunded ${this.ledger.refunded})`,
      );
    }
    const entry = await this.ledger.refund(
      request.actor,
      request.reason,
      request.amount ?? left,
      request.requestDigest === undefined
        ? undefined
        : { digest: request.requestDigest, amount: request.amount ?? null },
    );
    return this.result(entry, false);
  }

  private result(entry: RefundEntry, replayed: boolean): RefundResult {
    return {
      orderId: this.input.orderId,
      workflowId: this.workflowId,
      paymentIntentId: this.input.paymentIntentId,
      currency: this.input.currency,
      amount: this.input.amount,
      refundedAmount: this.ledger.refunded,
      remainingAmount: this.ledger.remaining,
      refund: entry,
      refunds: this.ledger.refunds,
      ...(replayed ? { replayed: true } : {}),
    };
  }

  private record(actor: string, action: string, reason: string): void {
    this.audit.push({ at: new Date().toISOString(), actor, action, reason });
  }

  private status(): RefundsStatus {
    return {
      workflowId: this.workflowId,
      orderId: this.input.orderId,
      state: this.state,
      refusedBecause: this.refusedBecause,
      paymentIntentId: this.input.paymentIntentId,
      amount: this.input.amount,
      currency: this.input.currency,
      refundedAmount: this.ledger.refunded,
      remainingAmount: this.ledger.remaining,
      refunds: this.ledger.refunds,
      audit: [...this.audit],
    };
  }
}
