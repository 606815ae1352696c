/**
 * The 3-D Secure handoff: what the customer's browser needs to finish a card payment that Stripe
 * holds in `requires_action`.
 *
 * The card checkout creates and confirms its PaymentIntent on the server. A card that needs 3-D
 * Secure then waits in `requires_action` (the checkout in `awaiting_customer_action`) until the
 * customer authenticates, which only the customer's browser can do: Stripe.js
 * `handleNextAction({ clientSecret })`, or a redirect when `next_action` is `redirect_to_url`. Both
 * need the PaymentIntent's client secret, which Stripe says must reach the customer and no one
 * else. So it is read from Stripe on demand, here, and handed back once; it never enters the
 * workflow (history, status query, search attributes, memo), a log line, a span or an error.
 *
 * Failure paths:
 * - a malformed order id: `InvalidCheckoutInputError` (400), before anything is read;
 * - no checkout for the order: Temporal's `WorkflowNotFoundError` (404);
 * - nothing for the customer to do (a hosted checkout, a checkout not waiting for the customer, or
 *   a PaymentIntent that has moved on, e.g. the customer authenticated a moment ago):
 *   `NoPaymentActionError` naming the state (409);
 * - Stripe could not be read: `PaymentActionStripeError` with Stripe's error type and code but
 *   never its body (503 when a retry may help, 502 otherwise).
 */
import type { Client } from '@temporalio/client';
import type Stripe from 'stripe';
import { checkOrderId, getCheckoutStatus } from './client';
import type { CheckoutState } from './workflows/definitions';

/** What the merchant's frontend hands to Stripe.js (or follows) so the customer can authenticate. */
export interface PaymentAction {
  readonly orderId: string;
  readonly paymentIntentId: string;
  /** Always `requires_action`: anything else is a `NoPaymentActionError`. */
  readonly status: 'requires_action';
  /** For the customer's browser only: never store, log or put it in a URL. */
  readonly clientSecret: string;
  readonly nextAction: {
    /** Stripe's `next_action.type`: `use_stripe_sdk` for a card confirmed on the server. */
    readonly type: string;
    /** Where to send the customer when `type` is `redirect_to_url`. */
    readonly redirectToUrl?: string;
  };
}

/** The checkout has no payment action for the customer now; `state` says what it is doing instead. */
export class NoPaymentActionError extends Error {
  constructor(
    readonly orderId: string,
    /** The checkout's state, or `payment_intent_<status>` when the PaymentIntent has moved on. */
    readonly state: string,
    message: string,
  ) {
    super(message);
    this.name = 'NoPaymentActionError';
  }
}

/** Reading the PaymentIntent from Stripe failed. Carries no part of Stripe's response body. */
export class PaymentActionStripeError extends Error {
  constructor(
    /** True for a connection error, a 429 or a 5xx: the same request may succeed later. */
    readonly retryable: boolean,
    readonly stripeType: string,
    readonly stripeCode: string | undefined,
    readonly statusCode: number | undefined,
    readonly requestId: string | undefined,
  ) {
    super(
      `Could not read the PaymentIntent from Stripe (${stripeType}${stripeCode === undefined ? '' : `, ${stripeCode}`})` +
        (retryable ? '; retry shortly' : ''),
    );
    this.name = 'PaymentActionStripeError';
  }
}

const WAITING_FOR_CUSTOMER: CheckoutState = 'awaiting_customer_action';

function stripeFailure(err: unknown): PaymentActionStripeError {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    type?: unknown;
    code?: unknown;
    statusCode?: unknown;
    requestId?: unknown;
  };
  const type = typeof e.type === 'string' ? e.type : 'unknown_error';
  const statusCode = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const retryable =
    type === 'StripeConnectionError' ||
    statusCode === undefined ||
    statusCode === 409 ||
    statusCode === 429 ||
    statusCode >= 500;
  return new PaymentActionStripeError(
    retryable,
    type,
    typeof e.code === 'string' ? e.code : undefined,
    statusCode,
    typeof e.requestId === 'string' ? e.requestId : undefined,
  );
}

/**
 * The customer's next step for the order's card checkout, read from Stripe now. Call it from the
 * merchant's backend and pass the answer to that customer's browser only.
 */
export async function getPaymentAction(
  client: Client,
  stripe: Stripe,
  orderId: string,
): Promise<PaymentAction> {
  checkOrderId(orderId);
  const status = await getCheckoutStatus(client, orderId);
  if (status.mode === 'hosted') {
    throw new NoPaymentActionError(
      orderId,
      status.state,
      `the checkout for order ${orderId} is a hosted checkout: the customer pays on the Checkout ` +
        "Session's page (checkoutSession.url), not through a payment action",
    );
  }
  const paymentIntentId = status.paymentIntentId;
  if (status.state !== WAITING_FOR_CUSTOMER || paymentIntentId === undefined) {
    throw new NoPaymentActionError(
      orderId,
      status.state,
      `the checkout for order ${orderId} is ${status.state}, not ${WAITING_FOR_CUSTOMER}: ` +
        'there is nothing for the customer to do',
    );
  }
  let pi: Stripe.PaymentIntent;
  try {
    pi = await stripe.paymentIntents.retrieve(paymentIntentId);
  } catch (err) {
    throw stripeFailure(err);
  }
  const next = pi.next_action;
  if (pi.status !== 'requires_action' || next === null || pi.client_secret === null) {
    // The customer finished (or the checkout moved on) since the workflow last looked; its next
    // poll or webhook catches up.
    throw new NoPaymentActionError(
      orderId,
      `payment_intent_${pi.status}`,
      `the PaymentIntent ${pi.id} of order ${orderId} is ${pi.status}, not requires_action: ` +
        'there is nothing for the customer to do',
    );
  }
  const redirectToUrl = next.type === 'redirect_to_url' ? next.redirect_to_url?.url : undefined;
  return {
    orderId,
    paymentIntentId: pi.id,
    status: 'requires_action',
    clientSecret: pi.client_secret,
    nextAction: {
      type: next.type,
      ...(typeof redirectToUrl === 'string' ? { redirectToUrl } : {}),
    },
  };
}
