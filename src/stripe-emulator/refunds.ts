/**
 * Refunds against a PaymentIntent's succeeded charge (or the charge directly): full or partial,
 * with `reason` and `metadata`. Asking for more than is left unrefunded, or refunding a fully
 * refunded charge, is `charge_already_refunded`, as the contract states.
 *
 * `GET /v1/refunds` lists them as Stripe does: newest first, filtered by `payment_intent` or
 * `charge`, `limit` 1..100 (default 10), paged with `starting_after` or `ending_before` (a refund id;
 * an unknown one is `resource_missing`), and `created` as a timestamp or a `gt`/`gte`/`lt`/`lte` range.
 * The list is read from the same state as creation, so it is never stale (unlike search).
 */
import { type ChargeObject, type Charges } from './charges';
import { type Clock } from './clock';
import { StripeApiError, paramError, resourceMissing } from './errors';
import { type EventLog, type EventRequest } from './events';
import { newId } from './ids';
import { type ListPage, type ListPaging, listPage } from './list';
import { type Metadata, ParamReader } from './params';
import { type PaymentIntents } from './payment-intents';
import { type FormParams } from './router';

export type RefundReason = 'duplicate' | 'fraudulent' | 'requested_by_customer';

export interface RefundObject {
  id: string;
  object: 'refund';
  amount: number;
  charge: string;
  created: number;
  currency: string;
  metadata: Metadata;
  payment_intent: string;
  reason: RefundReason | null;
  status: 'succeeded';
}

export interface LedgerRefund {
  readonly id: string;
  readonly payment_intent: string;
  readonly charge: string;
  readonly amount: number;
  readonly status: string;
  readonly metadata: Metadata;
}

export interface RefundListOptions extends ListPaging {
  readonly paymentIntent?: string;
  readonly charge?: string;
}

export type RefundListPage = ListPage<RefundObject>;

export class Refunds {
  private readonly refunds = new Map<string, RefundObject>();

  constructor(
    private readonly clock: Clock,
    private readonly events: EventLog,
    private readonly charges: Charges,
    private readonly paymentIntents: PaymentIntents,
  ) {}

  create(params: FormParams, request: EventRequest): RefundObject {
    const p = new ParamReader(params).allowOnly(['amount', 'charge', 'metadata', 'payment_intent', 'reason']);
    const paymentIntentId = p.optionalString('payment_intent');
    const chargeId = p.optionalString('charge');
    const amount = p.optionalInteger('amount');
    const reason = p.optionalEnum('reason', ['duplicate', 'fraudulent', 'requested_by_customer'] as const);
    const metadata = p.optionalMetadata() ?? {};
    if (paymentIntentId === undefined && chargeId === undefined) {
      throw paramError(
        'One of the following params should be provided for this request: payment_intent or charge.',
        'payment_intent',
      );
    }
    if (amount !== undefined && amount <= 0) {
      throw paramError('Invalid positive integer', 'amount', 'parameter_invalid_integer');
    }

    const charge = this.findCharge(paymentIntentId, chargeId);
    const captured = charge.amount_captured;
    const remaining = captured - (charge.amount_refunded - (charge.amount - captured));
    if (remaining <= 0) {
      throw new StripeApiError(
        400,
        'invalid_request_error',
        `Charge ${charge.id} has already been refunded.`,
        {
          code: 'charge_already_refunded',
        },
      );
    }
    const refundAmount = amount ?? remaining;
    if (refundAmount > remaining) {
      throw new StripeApiError(
        400,
        'invalid_request_error',
        `Refund amount (${formatAmount(refundAmount, charge.currency)}) is greater than unrefunded amount on charge (${formatAmount(remaining, charge.currency)})`,
        { code: 'charge_already_refunded', param: 'amount' },
      );
    }

    const refund: RefundObject = {
      id: newId('re'),
      object: 'refund',
      amount: refundAmount,
      charge: charge.id,
      created: this.clock.unix(),
      currency: charge.currency,
      metadata,
      payment_intent: charge.payment_intent,
      reason: reason ?? null,
      status: 'succeeded',
    };
    this.refunds.set(refund.id, refund);
    charge.amount_refunded += refundAmount;
    charge.refunded = charge.amount_refunded >= charge.amount;
    this.events.emit('refund.created', refund, request);
    this.events.emit('charge.refunded', charge, request);
    return refund;
  }

  retrieve(id: string): RefundObject {
    const refund = this.refunds.get(id);
    if (!refund) throw resourceMissing('refund', id, 'id');
    return refund;
  }

  /** Newest first, as Stripe lists; refunds created in the same second keep creation order. */
  list(options: RefundListOptions = {}): RefundListPage {
    const all = [...this.refunds.values()].reverse();
    return listPage(
      all,
      (r) =>
        (options.paymentIntent === undefined || r.payment_intent === options.paymentIntent) &&
        (options.charge === undefined || r.charge === options.charge),
      options,
      'refund',
    );
  }

  ledger(): LedgerRefund[] {
    return [...this.refunds.values()].map((refund) => ({
      id: refund.id,
      payment_intent: refund.payment_intent,
      charge: refund.charge,
      amount: refund.amount,
      status: refund.status,
      metadata: { ...refund.metadata },
    }));
  }

  clear(): void {
    this.refunds.clear();
  }

  private findCharge(paymentIntentId: string | undefined, chargeId: string | undefined): ChargeObject {
    if (chargeId !== undefined) {
      const charge = this.charges.get(chargeId);
      if (!charge) throw resourceMissing('charge', chargeId, 'charge');
      if (paymentIntentId !== undefined && charge.payment_intent !== paymentIntentId) {
        throw new StripeApiError(
          400,
          'invalid_request_error',
          `Charge ${chargeId} does not belong to PaymentIntent ${paymentIntentId}.`,
          { param: 'charge' },
        );
      }
      if (charge.status !== 'succeeded' || !charge.captured) {
        throw new StripeApiError(
          400,
          'invalid_request_error',
          `Charge ${chargeId} has not succeeded and cannot be refunded.`,
          { param: 'charge' },
        );
      }
      return charge;
    }
    return this.paymentIntents.refundableCharge(paymentIntentId ?? '');
  }
}

function formatAmount(amount: number, currency: string): string {
  return currency === 'usd' ? `$${(amount / 100).toFixed(2)}` : `${amount} ${currency}`;
}
