/**
 * The checkout's card happy path and nothing else: create the PaymentIntent unconfirmed, confirm
 * it, grant the entitlement, with the checkout's keys and parameters (generation 1). Shared by the
 * direct loop (the activity functions called in-process) and the working floor (the same functions
 * as workflow activities), so both send exactly what the checkout sends.
 *
 * Workflow-safe: it imports only the checkout's definitions and does its work through `activities`.
 */
import type { CheckoutActivities } from '../src/activities';
import { paymentIdempotencyKey, type CheckoutInput } from '../src/workflows/definitions';

type CardActivities = Pick<CheckoutActivities, 'createPaymentIntent' | 'confirmPaymentIntent' | 'provision'>;

/** Runs the path; a confirm that does not succeed ends in `fail`'s error (the callers' own kind). */
export async function payByCard(
  activities: CardActivities,
  workflowId: string,
  input: CheckoutInput,
  fail: (message: string) => Error,
): Promise<void> {
  const created = await activities.createPaymentIntent({
    idempotencyKey: paymentIdempotencyKey(workflowId, 1, 'create'),
    params: {
      amount: input.amount,
      currency: input.currency,
      customer: input.customerId,
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      description: `Order ${input.orderId}`,
      metadata: { order_id: input.orderId, checkout_workflow_id: workflowId, generation: '1' },
    },
  });
  const confirmed = await activities.confirmPaymentIntent({
    idempotencyKey: paymentIdempotencyKey(workflowId, 1, 'confirm'),
    paymentIntentId: created.id,
    params: { payment_method: input.paymentMethodId },
  });
  if (confirmed.outcome !== 'payment_intent' || confirmed.paymentIntent.status !== 'succeeded') {
    throw fail(`${input.orderId}: confirm answered ${confirmed.outcome}`);
  }
  await activities.provision({
    workflowId,
    orderId: input.orderId,
    paymentIntentId: created.id,
    item: { sku: input.provision.sku, quantity: input.provision.quantity },
  });
}
