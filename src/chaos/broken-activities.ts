/**
 * Deliberately broken Stripe activities, for proving the chaos checker can fail. Test-only: they
 * are registered under the real activity names by `broken-worker.ts`, which only the chaos harness
 * starts, and nothing in the product imports this file.
 *
 * Both variants make the classic mistake a checkout without derived keys makes: the confirm step
 * charges by creating a confirmed PaymentIntent (`paymentIntents.create({ confirm: true })`) instead
 * of confirming the one the workflow created by id, and it keys that write per attempt:
 *
 * - `random-key`: the workflow's key plus a random suffix per activity attempt. The SDK's own
 *   retry of a closed connection reuses it, but every Temporal retry is a new request to Stripe.
 * - `no-key`: no key of ours and the SDK's default retries (`maxNetworkRetries: 2`); the SDK makes
 *   up one key per call, which again does not survive a Temporal retry.
 *
 * A lost, truncated or slow answer after Stripe charged then makes the retry charge again. Writes
 * carry `metadata.chaos_step` so the harness can aim faults at them when there is no key to match.
 *
 * With the real workflow's create-then-confirm-by-id shape a random key alone cannot double
 * charge (a PaymentIntent succeeds at most once); it only leaves uncharged orphans, which the
 * checker reports as warnings. That is why the broken variant also changes the shape.
 */
import { randomUUID } from 'node:crypto';
import type Stripe from 'stripe';
import {
  createActivities,
  snapshotOf,
  type ActivityDependencies,
  type CheckoutActivities,
} from '../activities';
import { classifyStripeError, toActivityFailure } from '../stripe/errors';

export const BROKEN_VARIANTS = ['random-key', 'no-key'] as const;
export type BrokenVariant = (typeof BROKEN_VARIANTS)[number];

function requestOptions(variant: BrokenVariant, key: string): Stripe.RequestOptions {
  return variant === 'random-key' ? { idempotencyKey: `${key}/attempt-${randomUUID()}` } : {};
}

export function createBrokenActivities(
  deps: ActivityDependencies,
  variant: BrokenVariant,
): CheckoutActivities {
  const correct = createActivities(deps);
  const { stripe } = deps;
  return {
    ...correct,

    async createPaymentIntent(input) {
      try {
        const p = input.params;
        const pi = await stripe.paymentIntents.create(
          {
            amount: p.amount,
            currency: p.currency,
            customer: p.customer,
            automatic_payment_methods: { ...p.automatic_payment_methods },
            description: p.description,
            metadata: { ...p.metadata, chaos_step: 'create' },
          },
          requestOptions(variant, input.idempotencyKey),
        );
        return snapshotOf(pi);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    async confirmPaymentIntent(input) {
      let original: Stripe.PaymentIntent;
      try {
        original = await stripe.paymentIntents.retrieve(input.paymentIntentId);
      } catch (err) {
        throw toActivityFailure(err);
      }
      try {
        const customer = typeof original.customer === 'string' ? original.customer : original.customer?.id;
        const pi = await stripe.paymentIntents.create(
          {
            amount: original.amount,
            currency: original.currency,
            ...(customer ? { customer } : {}),
            payment_method: input.params.payment_method,
            confirm: true,
            automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
            metadata: { ...original.metadata, chaos_step: 'confirm' },
          },
          requestOptions(variant, input.idempotencyKey),
        );
        return { outcome: 'payment_intent', paymentIntent: snapshotOf(pi) };
      } catch (err) {
        const c = classifyStripeError(err);
        if (c.kind === 'declined') {
          return {
            outcome: 'declined',
            ...c.decline,
            paymentIntentId: c.decline.paymentIntentId ?? input.paymentIntentId,
          };
        }
        throw c.failure;
      }
    },
  };
}
