/**
 * Checkout Session activities for the hosted checkout: create (keyed), read, expire (keyed). Like
 * every other activity they receive the idempotency key and the parameters from the workflow and
 * derive nothing themselves, and every Stripe error leaves through `toActivityFailure` (the table
 * in src/stripe/errors.ts) as an `ApplicationFailure` with a string `type`.
 *
 * One answer is turned into a result rather than a failure: an expire refused because the session
 * is no longer open (Stripe's 400 "Only Checkout Sessions with a status in ["open"] can be
 * expired"). The customer paid, or the session expired on its own, a moment before; the activity
 * reads the session and returns it, so the workflow decides on what Stripe shows.
 */
import { ApplicationFailure } from '@temporalio/common';
import type Stripe from 'stripe';
import { classifyStripeError, toActivityFailure } from '../stripe/errors';
import {
  FailureType,
  type CheckoutSessionPaymentStatus,
  type CheckoutSessionSnapshot,
  type CheckoutSessionStatus,
  type CreateCheckoutSessionParams,
} from '../workflows/definitions';

export interface CheckoutSessionActivityDependencies {
  readonly stripe: Stripe;
}

export interface CreateCheckoutSessionInput {
  readonly idempotencyKey: string;
  readonly params: CreateCheckoutSessionParams;
}

export interface ExpireCheckoutSessionInput {
  readonly idempotencyKey: string;
  readonly checkoutSessionId: string;
}

const SESSION_STATUSES: readonly CheckoutSessionStatus[] = ['open', 'complete', 'expired'];
const PAYMENT_STATUSES: readonly CheckoutSessionPaymentStatus[] = ['paid', 'unpaid', 'no_payment_required'];

function known<T extends string>(values: readonly T[], value: string | null, what: string): T {
  const found = values.find((v) => v === value);
  if (found !== undefined) return found;
  // A status this code does not know can be read neither as paid nor as unpaid: stop and say so.
  throw ApplicationFailure.create({
    message: `Stripe returned an unknown Checkout Session ${what} "${String(value)}"`,
    type: FailureType.StripeUnexpected,
    nonRetryable: true,
  });
}

export function checkoutSessionSnapshotOf(session: Stripe.Checkout.Session): CheckoutSessionSnapshot {
  const pi = session.payment_intent;
  return {
    id: session.id,
    status: known(SESSION_STATUSES, session.status, 'status'),
    paymentStatus: known(PAYMENT_STATUSES, session.payment_status, 'payment_status'),
    paymentIntentId: typeof pi === 'string' ? pi : (pi?.id ?? undefined),
    url: session.url ?? null,
    amountTotal: session.amount_total ?? null,
    currency: session.currency ?? null,
    clientReferenceId: session.client_reference_id ?? null,
    metadata: { ...session.metadata },
    expiresAt: session.expires_at,
  };
}

// The workflow's params are narrow and readonly; the SDK wants its own mutable shape.
function createParams(p: CreateCheckoutSessionParams): Stripe.Checkout.SessionCreateParams {
  const [item] = p.line_items;
  return {
    mode: p.mode,
    line_items: [
      {
        price_data: {
          currency: item.price_data.currency,
          unit_amount: item.price_data.unit_amount,
          product_data: { name: item.price_data.product_data.name },
        },
        quantity: item.quantity,
      },
    ],
    success_url: p.success_url,
    cancel_url: p.cancel_url,
    client_reference_id: p.client_reference_id,
    ...(p.customer === undefined ? {} : { customer: p.customer }),
    allowed_payment_method_types: [...p.allowed_payment_method_types],
    ...(p.expires_at === undefined ? {} : { expires_at: p.expires_at }),
    metadata: { ...p.metadata },
    payment_intent_data: {
      description: p.payment_intent_data.description,
      metadata: { ...p.payment_intent_data.metadata },
    },
  };
}

export function createCheckoutSessionActivities(deps: CheckoutSessionActivityDependencies) {
  const { stripe } = deps;

  async function retrieve(checkoutSessionId: string): Promise<CheckoutSessionSnapshot> {
    try {
      return checkoutSessionSnapshotOf(await stripe.checkout.sessions.retrieve(checkoutSessionId));
    } catch (err) {
      throw toActivityFailure(err);
    }
  }

  return {
    /** Creates the hosted checkout's one Checkout Session. No money moves until the customer pays. */
    async createCheckoutSession(input: CreateCheckoutSessionInput): Promise<CheckoutSessionSnapshot> {
      try {
        const session = await stripe.checkout.sessions.create(createParams(input.params), {
          idempotencyKey: input.idempotencyKey,
        });
        return checkoutSessionSnapshotOf(session);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** Reads a Checkout Session by id: with its PaymentIntent, the source of truth for "paid". */
    async getCheckoutSession(input: {
      readonly checkoutSessionId: string;
    }): Promise<CheckoutSessionSnapshot> {
      return retrieve(input.checkoutSessionId);
    },

    /**
     * Expires an open session so nothing can be paid on it any more (Stripe also cancels its
     * unfinished PaymentIntent). A session that is no longer open is read and returned as it is.
     */
    async expireCheckoutSession(input: ExpireCheckoutSessionInput): Promise<CheckoutSessionSnapshot> {
      try {
        const session = await stripe.checkout.sessions.expire(
          input.checkoutSessionId,
          {},
          { idempotencyKey: input.idempotencyKey },
        );
        return checkoutSessionSnapshotOf(session);
      } catch (err) {
        const c = classifyStripeError(err);
        if (c.kind === 'failure' && c.failure.type === FailureType.StripeInvalidRequest) {
          const now = await retrieve(input.checkoutSessionId);
          if (now.status !== 'open') return now;
        }
        throw toActivityFailure(err);
      }
    },
  };
}

export type CheckoutSessionActivities = ReturnType<typeof createCheckoutSessionActivities>;
