/**
 * The benchmark's floor: what Temporal alone costs for a workflow shaped like the checkout's card
 * happy path. Three ordinary (not local) activities in sequence, with the checkout's own timeouts and
 * retry policy, and nothing else: no Stripe, no SQLite, no search attributes, no handlers.
 *
 * Fails only if an activity does, which a no-op activity cannot; the benchmark treats any other
 * outcome as an error.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { FloorActivities } from './floor-activities';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** The checkout's defaults for a Stripe write (src/workflows/checkout.ts), so the server does the same. */
const STRIPE_CALL_TIMEOUT_MS = 30 * SECOND;
const STRIPE_KEY_BUDGET_MS = 20 * HOUR;
const STRIPE_RETRY = { initialInterval: 1 * SECOND, backoffCoefficient: 2, maximumInterval: 1 * MINUTE };

const writes = proxyActivities<FloorActivities>({
  startToCloseTimeout: STRIPE_CALL_TIMEOUT_MS,
  scheduleToCloseTimeout: STRIPE_KEY_BUDGET_MS,
  retry: STRIPE_RETRY,
});

/** Provisioning retries without an attempt limit, as the checkout's does. */
const provisioning = proxyActivities<FloorActivities>({
  startToCloseTimeout: STRIPE_CALL_TIMEOUT_MS,
  retry: STRIPE_RETRY,
});

export async function checkoutFloor(orderId: string): Promise<{ readonly outcome: 'completed' }> {
  await writes.floorCreatePaymentIntent({ step: 'create', orderId });
  await writes.floorConfirmPaymentIntent({ step: 'confirm', orderId });
  await provisioning.floorProvision({ step: 'provision', orderId });
  return { outcome: 'completed' };
}
