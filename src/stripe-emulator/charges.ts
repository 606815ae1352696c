/**
 * Charges: one per payment attempt, as Stripe records them. A PaymentIntent's `latest_charge`
 * points at the newest; refunds reference the charge. The ledger counts the successful ones, which
 * is how tests prove "exactly one successful charge per order".
 */
import { type Clock } from './clock';
import { resourceMissing } from './errors';
import { newId } from './ids';

export type ChargeStatus = 'succeeded' | 'pending' | 'failed';

export interface ChargeObject {
  id: string;
  object: 'charge';
  amount: number;
  amount_captured: number;
  amount_refunded: number;
  captured: boolean;
  created: number;
  currency: string;
  customer: string | null;
  description: string | null;
  failure_code: string | null;
  failure_message: string | null;
  livemode: false;
  metadata: Record<string, string>;
  paid: boolean;
  payment_intent: string;
  payment_method: string;
  refunded: boolean;
  status: ChargeStatus;
}

export interface NewCharge {
  readonly amount: number;
  readonly currency: string;
  readonly customer: string | null;
  readonly description: string | null;
  readonly metadata: Record<string, string>;
  readonly paymentIntent: string;
  readonly paymentMethod: string;
  readonly status: ChargeStatus;
  readonly captured: boolean;
  readonly failure?: { readonly code: string; readonly message: string };
}

export class Charges {
  private readonly charges = new Map<string, ChargeObject>();

  constructor(private readonly clock: Clock) {}

  create(input: NewCharge): ChargeObject {
    const charge: ChargeObject = {
      id: newId('ch'),
      object: 'charge',
      amount: input.amount,
      amount_captured: input.status === 'succeeded' && input.captured ? input.amount : 0,
      amount_refunded: 0,
      captured: input.status === 'succeeded' && input.captured,
      created: this.clock.unix(),
      currency: input.currency,
      customer: input.customer,
      description: input.description,
      failure_code: input.failure?.code ?? null,
      failure_message: input.failure?.message ?? null,
      livemode: false,
      metadata: { ...input.metadata },
      paid: input.status === 'succeeded',
      payment_intent: input.paymentIntent,
      payment_method: input.paymentMethod,
      refunded: false,
      status: input.status,
    };
    this.charges.set(charge.id, charge);
    return charge;
  }

  get(id: string): ChargeObject | undefined {
    return this.charges.get(id);
  }

  retrieve(id: string): ChargeObject {
    const charge = this.charges.get(id);
    if (!charge) throw resourceMissing('charge', id, 'id');
    return charge;
  }

  all(): IterableIterator<ChargeObject> {
    return this.charges.values();
  }

  clear(): void {
    this.charges.clear();
  }
}

/** A charge that moved (or holds) money: succeeded and not released by canceling an authorization. */
export function isSuccessfulCharge(charge: ChargeObject): boolean {
  return charge.status === 'succeeded' && (charge.captured || !charge.refunded);
}
