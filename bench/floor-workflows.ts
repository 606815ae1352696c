/**
 * The benchmark's floor: what Temporal alone costs for a workflow shaped like the checkout's card
 * happy path. Three activities in sequence, of the same kind as the checkout's (ordinary or local:
 * the benchmark reads the kind from a checkout's history and checks the floor's history matches),
 * with the checkout's own timeouts and retry policy, and nothing else: no Stripe, no SQLite, no
 * search attributes, no handlers.
 *
 * Fails only if an activity does, which a no-op activity cannot; the benchmark treats any other
 * outcome as an error.
 */
import {
  ApplicationFailure,
  proxyActivities,
  proxyLocalActivities,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CheckoutActivities } from '../src/activities';
import {
  CheckoutStateAttr,
  StripePaymentIntentIdAttr,
  type CheckoutInput,
} from '../src/workflows/definitions';
import { payByCard } from './card-path';
import type { FloorActivities, FloorActivityKind } from './floor-activities';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** The checkout's defaults for a Stripe write (src/workflows/checkout.ts), so the server does the same. */
const STRIPE_CALL_TIMEOUT_MS = 30 * SECOND;
const STRIPE_KEY_BUDGET_MS = 20 * HOUR;
const STRIPE_RETRY = { initialInterval: 1 * SECOND, backoffCoefficient: 2, maximumInterval: 1 * MINUTE };

const WRITE_OPTIONS = {
  startToCloseTimeout: STRIPE_CALL_TIMEOUT_MS,
  scheduleToCloseTimeout: STRIPE_KEY_BUDGET_MS,
  retry: STRIPE_RETRY,
} as const;
/** Provisioning retries without an attempt limit, as the checkout's does. */
const PROVISIONING_OPTIONS = { startToCloseTimeout: STRIPE_CALL_TIMEOUT_MS, retry: STRIPE_RETRY } as const;

const writes = proxyActivities<FloorActivities>(WRITE_OPTIONS);
const provisioning = proxyActivities<FloorActivities>(PROVISIONING_OPTIONS);

export async function checkoutFloor(
  orderId: string,
  kind: FloorActivityKind = 'activity',
): Promise<{ readonly outcome: 'completed' }> {
  if (kind === 'local') return checkoutLocalFloor(orderId);
  await writes.floorCreatePaymentIntent({ step: 'create', orderId });
  await writes.floorConfirmPaymentIntent({ step: 'confirm', orderId });
  await provisioning.floorProvision({ step: 'provision', orderId });
  return { outcome: 'completed' };
}

/**
 * The floor plus the checkout's own Temporal bookkeeping on its card happy path, with no Stripe and
 * no SQLite: started the way `startCheckout` starts a checkout (runs.ts), and making the one
 * search-attribute upsert the checkout makes when it is paid at once (src/workflows/checkout.ts,
 * "indexed where it rests"): `CheckoutState` and `StripePaymentIntentId`, in the last workflow
 * task, with the completion.
 */
export async function checkoutShapedFloor(input: CheckoutInput): Promise<{ readonly outcome: 'completed' }> {
  const orderId = input.orderId;
  await writes.floorCreatePaymentIntent({ step: 'create', orderId });
  await writes.floorConfirmPaymentIntent({ step: 'confirm', orderId });
  await provisioning.floorProvision({ step: 'provision', orderId });
  upsertSearchAttributes([
    { key: CheckoutStateAttr, value: 'completed' },
    { key: StripePaymentIntentIdAttr, value: `pi_floor_${orderId}` },
  ]);
  return { outcome: 'completed' };
}

/** The checkout's own activities, with the floor's (the checkout's) options. */
const realWrites = proxyActivities<CheckoutActivities>(WRITE_OPTIONS);
const realActivities = {
  createPaymentIntent: realWrites.createPaymentIntent,
  confirmPaymentIntent: realWrites.confirmPaymentIntent,
  provision: proxyActivities<CheckoutActivities>(PROVISIONING_OPTIONS).provision,
};

/**
 * The floor plus the checkout's unavoidable work and nothing else: the same three activity calls,
 * but to the checkout's own activity functions with the requests its card happy path sends (the
 * PaymentIntent create and confirm under its keys and parameters, the SQLite grant). Started with a
 * plain start, no search attributes, memo or summaries, and no workflow logic beyond the three
 * calls. What it costs beyond the floor is the work any checkout must do here; what the checkout
 * costs beyond it is the product's bookkeeping and logic.
 */
export async function checkoutWorkingFloor(input: CheckoutInput): Promise<{ readonly outcome: 'completed' }> {
  await payByCard(realActivities, workflowInfo().workflowId, input, (message) =>
    ApplicationFailure.nonRetryable(`working floor ${message}`),
  );
  return { outcome: 'completed' };
}

/**
 * The checkout's local attempts (src/workflows/checkout.ts, `localFirst`): one attempt of at most
 * one call's time, for the writes and provisioning alike (retries would be ordinary activities).
 */
const local = proxyLocalActivities<FloorActivities>({
  startToCloseTimeout: STRIPE_CALL_TIMEOUT_MS,
  scheduleToCloseTimeout: STRIPE_CALL_TIMEOUT_MS,
  retry: { ...STRIPE_RETRY, maximumAttempts: 1 },
});

/**
 * The floor with local activities: the same three no-op calls, run inside the workflow task instead
 * of through the activity task queue, with the options the checkout's local attempts use.
 */
export async function checkoutLocalFloor(orderId: string): Promise<{ readonly outcome: 'completed' }> {
  await local.floorCreatePaymentIntent({ step: 'create', orderId });
  await local.floorConfirmPaymentIntent({ step: 'confirm', orderId });
  await local.floorProvision({ step: 'provision', orderId });
  return { outcome: 'completed' };
}
