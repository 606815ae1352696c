/**
 * PaymentIntents as the activities read them: Stripe's object narrowed to the snapshot workflows
 * see (an unknown status stops with `StripeUnexpected`, never guessed as paid or unpaid), and the
 * `payment_intent_unexpected_state` refusal that means "read it back". Shared by the checkout and
 * reconciler activities.
 */
import { ApplicationFailure } from '@temporalio/common';
import type Stripe from 'stripe';
import { FailureType, type PaymentIntentSnapshot, type PaymentIntentStatus } from '../workflows/definitions';

export function snapshotOf(pi: Stripe.PaymentIntent): PaymentIntentSnapshot {
  const err = pi.last_payment_error;
  return {
    id: pi.id,
    status: paymentIntentStatus(pi.status),
    amount: pi.amount,
    currency: pi.currency,
    metadata: { ...pi.metadata },
    lastPaymentError: err
      ? {
          code: err.code ?? undefined,
          declineCode: err.decline_code ?? undefined,
          ...(typeof err.charge === 'string' ? { chargeId: err.charge } : {}),
        }
      : undefined,
  };
}

const KNOWN_STATUSES: readonly PaymentIntentStatus[] = [
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'processing',
  'requires_capture',
  'canceled',
  'succeeded',
];

function paymentIntentStatus(status: string): PaymentIntentStatus {
  const known = KNOWN_STATUSES.find((s) => s === status);
  if (known) return known;
  // A status this code does not know cannot be treated as paid or unpaid: stop and say so.
  throw ApplicationFailure.create({
    message: `Stripe returned an unknown PaymentIntent status "${status}"`,
    type: FailureType.StripeUnexpected,
    nonRetryable: true,
  });
}

export function isUnexpectedState(err: unknown): boolean {
  return (
    typeof err === 'object' &&
    err !== null &&
    'code' in err &&
    (err as { code?: unknown }).code === 'payment_intent_unexpected_state'
  );
}
