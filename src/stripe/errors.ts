/**
 * The one table that turns a Stripe error into what Temporal should do with it, applied at the
 * boundary (inside the activity, right where the SDK throws). Only `ApplicationFailure` with a
 * string `type` leaves this module: custom classes do not survive serialization into the workflow,
 * which branches on `failure.type`.
 *
 * | Stripe says                                   | Temporal does                            | type                       |
 * |-----------------------------------------------|------------------------------------------|----------------------------|
 * | no response / truncated body / timeout        | retry, same key                          | StripeConnection           |
 * | 409 idempotency_key_in_use                    | retry, same key (first request runs)     | StripeIdempotencyKeyInUse  |
 * | 5xx with Stripe-Should-Retry: false (stored)  | do not retry: outcome unknown, read back | StripeOutcomeUnknown       |
 * | other 5xx                                     | retry, same key                          | StripeTransient            |
 * | 429 lock_timeout                              | retry                                    | StripeLockTimeout          |
 * | 429 rate_limit                                | retry after a delay (nextRetryDelay)     | StripeRateLimited          |
 * | 400 idempotency_error (other params/endpoint) | do not retry, never compensate           | IdempotencyMismatch        |
 * | other 400 / 404                               | do not retry                             | StripeInvalidRequest       |
 * | 401                                           | do not retry                             | StripeAuthentication       |
 * | 403                                           | do not retry                             | StripePermission           |
 * | 402 card_error                                | a returned decline, not a failure        | (result)                   |
 * | anything else                                 | do not retry                             | StripeUnexpected           |
 *
 * `Stripe-Should-Retry: true` on an error the table would not retry makes it retryable (contract I14).
 */
import { ApplicationFailure } from '@temporalio/common';
import Stripe from 'stripe';
import { FailureType, type Decline } from '../workflows/definitions';

/** How long to back off after a `rate_limit` 429 when Stripe gives no Retry-After. */
export const RATE_LIMIT_RETRY_DELAY_MS = 2_000;

export type Classified =
  | { readonly kind: 'declined'; readonly decline: Decline }
  | { readonly kind: 'failure'; readonly failure: ApplicationFailure };

interface Row {
  readonly type: FailureType;
  readonly retryable: boolean;
  readonly nextRetryDelayMs?: number;
}

function row(err: Stripe.errors.StripeError): Row {
  const status = err.statusCode;
  const shouldRetry = err.headers?.['stripe-should-retry'];
  if (err instanceof Stripe.errors.StripeConnectionError || status === undefined) {
    return { type: FailureType.StripeConnection, retryable: true };
  }
  if (err instanceof Stripe.errors.StripeIdempotencyError || err.type === 'idempotency_error') {
    return { type: FailureType.IdempotencyMismatch, retryable: false };
  }
  if (status === 409 && err.code === 'idempotency_key_in_use') {
    return { type: FailureType.StripeIdempotencyKeyInUse, retryable: true };
  }
  if (status >= 500) {
    if (shouldRetry === 'false') return { type: FailureType.StripeOutcomeUnknown, retryable: false };
    return { type: FailureType.StripeTransient, retryable: true };
  }
  if (status === 429) {
    if (err.code === 'lock_timeout' || shouldRetry === 'true') {
      return { type: FailureType.StripeLockTimeout, retryable: true };
    }
    const retryAfter = Number(err.headers?.['retry-after']);
    const delay =
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : RATE_LIMIT_RETRY_DELAY_MS;
    return { type: FailureType.StripeRateLimited, retryable: true, nextRetryDelayMs: delay };
  }
  if (status === 409) return { type: FailureType.StripeTransient, retryable: true };
  if (status === 401) return { type: FailureType.StripeAuthentication, retryable: false };
  if (status === 403) return { type: FailureType.StripePermission, retryable: false };
  if (status === 400 || status === 404) {
    return { type: FailureType.StripeInvalidRequest, retryable: shouldRetry === 'true' };
  }
  return { type: FailureType.StripeUnexpected, retryable: shouldRetry === 'true' };
}

function declineOf(err: Stripe.errors.StripeError): Decline {
  return {
    code: err.code ?? 'card_declined',
    declineCode: err.decline_code,
    paymentIntentId: err.payment_intent?.id,
    message: err.message,
    ...(typeof err.charge === 'string' ? { chargeId: err.charge } : {}),
  };
}

/** Classifies anything an SDK call threw. Non-Stripe errors are bugs: not retried. */
export function classifyStripeError(err: unknown): Classified {
  if (!(err instanceof Stripe.errors.StripeError)) {
    const message = err instanceof Error ? err.message : String(err);
    return {
      kind: 'failure',
      failure: ApplicationFailure.create({
        message: `Unexpected error calling Stripe: ${message}`,
        type: FailureType.StripeUnexpected,
        nonRetryable: true,
        cause: err instanceof Error ? err : undefined,
      }),
    };
  }
  if (err instanceof Stripe.errors.StripeCardError || err.statusCode === 402) {
    return { kind: 'declined', decline: declineOf(err) };
  }
  const r = row(err);
  return {
    kind: 'failure',
    failure: ApplicationFailure.create({
      message: `Stripe ${String(err.statusCode ?? 'connection')} ${err.type}${err.code ? `/${err.code}` : ''}: ${err.message}`,
      type: r.type,
      nonRetryable: !r.retryable,
      details: [{ statusCode: err.statusCode, code: err.code, requestId: err.requestId }],
      ...(r.nextRetryDelayMs !== undefined ? { nextRetryDelay: r.nextRetryDelayMs } : {}),
    }),
  };
}

/** For calls where a decline cannot happen (or must not be swallowed): always a failure. */
export function toActivityFailure(err: unknown): ApplicationFailure {
  const c = classifyStripeError(err);
  if (c.kind === 'failure') return c.failure;
  return ApplicationFailure.create({
    message: `Stripe declined a call that cannot decline: ${c.decline.message}`,
    type: FailureType.StripeUnexpected,
    nonRetryable: true,
  });
}
