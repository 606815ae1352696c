/**
 * Activities: the only code that talks to Stripe or provisions anything. They are built by a
 * factory that receives their dependencies, so the worker passes real ones and tests pass fakes.
 *
 * Every Stripe write receives its idempotency key and its parameters from the workflow; nothing in
 * here derives a key, reads a clock into parameters or adds randomness, so a retry of an activity is
 * byte-for-byte the request Stripe already saw. Errors are classified at this boundary by
 * `classifyStripeError` (src/stripe/errors.ts): only `ApplicationFailure` with a string `type` leaves.
 *
 * Two Stripe answers are turned into results rather than failures, because they are answers:
 * a card decline (402) on confirm, and a confirm or cancel refused because the PaymentIntent is
 * already past that point (`payment_intent_unexpected_state`, e.g. a confirm replayed after the key
 * was pruned finds the PaymentIntent already succeeded). For the latter the activity reads the
 * PaymentIntent and returns it, so the workflow decides on what Stripe shows.
 */
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type Stripe from 'stripe';
import { classifyStripeError, toActivityFailure } from '../stripe/errors';
import { ProvisioningError } from '../provisioning/errors';
import { createCheckoutSessionActivities } from './checkout-sessions';
import { createReconcilerActivities } from './reconciler';
import { isUnexpectedState, snapshotOf } from './payment-intents';
import type { Provisioner, RefundRecordRequest } from '../provisioning';
import {
  FailureType,
  type ConfirmOutcome,
  type ConfirmPaymentIntentParams,
  type CreatePaymentIntentParams,
  type CreateRefundParams,
  type Entitlement,
  type PaymentIntentSearchResult,
  type PaymentIntentSnapshot,
  type ProvisionRequest,
  type RefundSnapshot,
  type ListedRefund,
  type RefundList,
} from '../workflows/definitions';

export { snapshotOf } from './payment-intents';

export interface ActivityDependencies {
  readonly stripe: Stripe;
  readonly provisioner: Provisioner;
  /** The reconciler reads checkouts and opens cases through it (src/activities/reconciler.ts). */
  readonly temporal?: Client;
}

export interface CreatePaymentIntentInput {
  readonly idempotencyKey: string;
  readonly params: CreatePaymentIntentParams;
}

export interface ConfirmPaymentIntentInput {
  readonly idempotencyKey: string;
  readonly paymentIntentId: string;
  readonly params: ConfirmPaymentIntentParams;
}

export interface CancelPaymentIntentInput {
  readonly idempotencyKey: string;
  readonly paymentIntentId: string;
}

export interface CreateRefundInput {
  readonly idempotencyKey: string;
  readonly params: CreateRefundParams;
}

// The workflow builds the params from its own narrower, readonly types; the SDK wants its own.
function createParams(p: CreatePaymentIntentParams): Stripe.PaymentIntentCreateParams {
  return {
    amount: p.amount,
    currency: p.currency,
    customer: p.customer,
    automatic_payment_methods: { ...p.automatic_payment_methods },
    description: p.description,
    metadata: { ...p.metadata },
  };
}

export function createActivities(deps: ActivityDependencies) {
  const { stripe, provisioner } = deps;

  async function retrieve(paymentIntentId: string): Promise<PaymentIntentSnapshot> {
    try {
      return snapshotOf(await stripe.paymentIntents.retrieve(paymentIntentId));
    } catch (err) {
      throw toActivityFailure(err);
    }
  }

  return {
    /** The hosted checkout's Checkout Session calls (src/activities/checkout-sessions.ts). */
    ...createCheckoutSessionActivities({ stripe }),

    /** The reconciler's reads and fixes (src/activities/reconciler.ts). */
    ...createReconcilerActivities(deps),

    /** Creates an unconfirmed PaymentIntent: no money moves, whatever happens to the response. */
    async createPaymentIntent(input: CreatePaymentIntentInput): Promise<PaymentIntentSnapshot> {
      try {
        const pi = await stripe.paymentIntents.create(createParams(input.params), {
          idempotencyKey: input.idempotencyKey,
        });
        return snapshotOf(pi);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** Confirms a known PaymentIntent. It can succeed at most once, whatever the number of calls. */
    async confirmPaymentIntent(input: ConfirmPaymentIntentInput): Promise<ConfirmOutcome> {
      try {
        const pi = await stripe.paymentIntents.confirm(
          input.paymentIntentId,
          { payment_method: input.params.payment_method },
          { idempotencyKey: input.idempotencyKey },
        );
        return { outcome: 'payment_intent', paymentIntent: snapshotOf(pi) };
      } catch (err) {
        if (isUnexpectedState(err)) {
          return { outcome: 'payment_intent', paymentIntent: await retrieve(input.paymentIntentId) };
        }
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

    /** Cancels a PaymentIntent so a late payment cannot land; one already past cancel is returned as is. */
    async cancelPaymentIntent(input: CancelPaymentIntentInput): Promise<PaymentIntentSnapshot> {
      try {
        const pi = await stripe.paymentIntents.cancel(
          input.paymentIntentId,
          {},
          { idempotencyKey: input.idempotencyKey },
        );
        return snapshotOf(pi);
      } catch (err) {
        if (isUnexpectedState(err)) return retrieve(input.paymentIntentId);
        throw toActivityFailure(err);
      }
    },

    /** Reads a PaymentIntent by id: the source of truth for "paid". */
    async getPaymentIntent(input: { readonly paymentIntentId: string }): Promise<PaymentIntentSnapshot> {
      return retrieve(input.paymentIntentId);
    },

    /**
     * Every PaymentIntent Stripe's search shows for this checkout. Search is eventually consistent
     * (contract: usually under a minute, up to an hour), so an empty answer is inconclusive.
     */
    async findCheckoutPaymentIntents(input: {
      readonly workflowId: string;
    }): Promise<PaymentIntentSearchResult> {
      if (!/^[A-Za-z0-9_-]+$/.test(input.workflowId)) {
        throw ApplicationFailure.create({
          message: 'workflow id has characters a search query cannot carry',
          type: FailureType.StripeInvalidRequest,
          nonRetryable: true,
        });
      }
      const found: PaymentIntentSnapshot[] = [];
      try {
        let page: string | undefined;
        do {
          const res = await stripe.paymentIntents.search({
            query: `metadata['checkout_workflow_id']:'${input.workflowId}'`,
            limit: 100,
            ...(page ? { page } : {}),
          });
          found.push(...res.data.map(snapshotOf));
          page = res.has_more && res.next_page ? res.next_page : undefined;
        } while (page);
      } catch (err) {
        throw toActivityFailure(err);
      }
      return { paymentIntents: found };
    },

    /**
     * Refunds (part of) a PaymentIntent under the workflow's key: a retry after a lost response
     * replays the stored refund instead of refunding again. Errors go through the same table as
     * every other write; an over-refund is Stripe's `charge_already_refunded` (400, not retried).
     */
    async createRefund(input: CreateRefundInput): Promise<RefundSnapshot> {
      try {
        const refund = await stripe.refunds.create(
          {
            payment_intent: input.params.payment_intent,
            amount: input.params.amount,
            metadata: { ...input.params.metadata },
          },
          { idempotencyKey: input.idempotencyKey },
        );
        return {
          id: refund.id,
          paymentIntentId:
            typeof refund.payment_intent === 'string'
              ? refund.payment_intent
              : (refund.payment_intent?.id ?? input.params.payment_intent),
          amount: refund.amount,
          status: refund.status ?? 'unknown',
        };
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /**
     * Every refund Stripe has for a PaymentIntent, oldest first (`GET /v1/refunds`, all pages). The
     * list is read from Stripe's records, not an index, so it is current: the refunds workflow
     * learns from it what an order already had back and which request numbers are spent.
     */
    async listRefunds(input: { readonly paymentIntentId: string }): Promise<RefundList> {
      const refunds: ListedRefund[] = [];
      try {
        let startingAfter: string | undefined;
        for (;;) {
          const page = await stripe.refunds.list({
            payment_intent: input.paymentIntentId,
            limit: 100,
            ...(startingAfter === undefined ? {} : { starting_after: startingAfter }),
          });
          for (const r of page.data) {
            refunds.push({
              id: r.id,
              paymentIntentId:
                typeof r.payment_intent === 'string'
                  ? r.payment_intent
                  : (r.payment_intent?.id ?? input.paymentIntentId),
              amount: r.amount,
              status: r.status ?? 'unknown',
              created: r.created,
              metadata: { ...r.metadata },
            });
          }
          const last = page.data[page.data.length - 1];
          if (!page.has_more || last === undefined) break;
          startingAfter = last.id;
        }
      } catch (err) {
        throw toActivityFailure(err);
      }
      // Stripe lists newest first; the workflow reads history oldest first.
      return { refunds: refunds.reverse() };
    },

    /**
     * Tells the provisioning store about a refund: recorded once per refund id, and a full refund
     * revokes the entitlement (once). Safe to repeat, so it retries like `provision`.
     */
    async recordRefund(refund: RefundRecordRequest): Promise<Entitlement | undefined> {
      try {
        return await provisioner.recordRefund(refund);
      } catch (err) {
        throw ApplicationFailure.create({
          message: `Recording refund ${refund.refundId} failed: ${err instanceof Error ? err.message : String(err)}`,
          type: FailureType.ProvisioningFailed,
          cause: err instanceof Error ? err : undefined,
        });
      }
    },

    /** Grants what was bought. Idempotent: a repeat returns the first entitlement. */
    async provision(request: ProvisionRequest): Promise<Entitlement> {
      try {
        return await provisioner.provision(request);
      } catch (err) {
        throw toProvisioningFailure(err);
      }
    },
  };
}

/**
 * A provisioner's error as the activity failure Temporal sees. Retried (same request, same key)
 * unless the provisioner knows a retry cannot help (`ProvisioningError.retryable` false: the
 * user's endpoint refused the request with a 4xx); a 429's Retry-After becomes the next delay.
 */
export function toProvisioningFailure(err: unknown): ApplicationFailure {
  const known = err instanceof ProvisioningError ? err : undefined;
  return ApplicationFailure.create({
    message: `Provisioning failed: ${err instanceof Error ? err.message : String(err)}`,
    type: FailureType.ProvisioningFailed,
    cause: err instanceof Error ? err : undefined,
    nonRetryable: known !== undefined && !known.retryable,
    ...(known?.retryAfterMs !== undefined ? { nextRetryDelay: known.retryAfterMs } : {}),
  });
}

export type CheckoutActivities = ReturnType<typeof createActivities>;
