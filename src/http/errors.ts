/**
 * The intake's one error shape, `{ error: { code, message, fields? } }`, and the mapping from the
 * client's and Temporal's errors to HTTP statuses. Every 4xx names what the caller must change;
 * `fields` lists each bad field with its own message, so a form can show them all at once.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import {
  CheckoutConflictError,
  InvalidCheckoutInputError,
  RefundNotAllowedError,
  RefundRequestConflictError,
} from '../client';
import { NoPaymentActionError, PaymentActionStripeError } from '../payment-action';

export interface FieldProblem {
  readonly field: string;
  readonly message: string;
}

export interface ErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly fields?: readonly FieldProblem[];
  };
}

export interface HttpError {
  readonly status: number;
  readonly body: ErrorBody;
}

/** The shared validation reports `"<field>: <what is wrong>"`; split it so each field stands alone. */
export function fieldProblems(problems: readonly string[]): FieldProblem[] {
  return problems.map((p) => {
    const at = p.indexOf(': ');
    return at < 0 ? { field: '(body)', message: p } : { field: p.slice(0, at), message: p.slice(at + 2) };
  });
}

export function invalidRequest(problems: readonly string[]): HttpError {
  const fields = fieldProblems(problems);
  return {
    status: 400,
    body: {
      error: {
        code: 'invalid_request',
        message: `Invalid request: ${fields.map((f) => f.field).join(', ')}`,
        fields,
      },
    },
  };
}

export function notFound(message: string): HttpError {
  return { status: 404, body: { error: { code: 'not_found', message } } };
}

/** Terms stored on a checkout, named as the request spells them. */
const TERM_FIELDS: Readonly<Record<string, string>> = {
  amount: 'amount',
  currency: 'currency',
  customerId: 'customerId',
  sku: 'provision.sku',
  quantity: 'provision.quantity',
};

/**
 * Known client and Temporal errors as HTTP answers; anything else is not the caller's fault and
 * is left to the server's 500 handler (returns undefined).
 */
export function httpErrorFor(err: unknown, orderId: string | undefined): HttpError | undefined {
  if (err instanceof InvalidCheckoutInputError) return invalidRequest(err.problems);
  if (err instanceof CheckoutConflictError) {
    return {
      status: 409,
      body: {
        error: {
          code: 'checkout_conflict',
          message: `${err.message}; use a new order id for a different purchase`,
          fields: err.differences.map((d) => ({
            field: TERM_FIELDS[d] ?? d,
            message: 'differs from the existing checkout for this order',
          })),
        },
      },
    };
  }
  if (err instanceof WorkflowNotFoundError) {
    return notFound(`No checkout for order ${orderId ?? err.workflowId}`);
  }
  if (err instanceof RefundRequestConflictError) {
    return {
      status: 409,
      body: {
        error: {
          code: 'idempotency_conflict',
          message: `${err.message} (Idempotency-Key)`,
          fields: err.fields.map((f) => ({
            field: f,
            message: 'differs from the first request with this Idempotency-Key',
          })),
        },
      },
    };
  }
  if (err instanceof RefundNotAllowedError) {
    return { status: 409, body: { error: { code: 'not_allowed_in_current_state', message: err.message } } };
  }
  if (err instanceof NoPaymentActionError) {
    return { status: 409, body: { error: { code: 'not_allowed_in_current_state', message: err.message } } };
  }
  if (err instanceof PaymentActionStripeError) {
    // Only Stripe's error type and code: nothing of Stripe's response reaches the caller.
    return {
      status: err.retryable ? 503 : 502,
      body: { error: { code: err.retryable ? 'stripe_unavailable' : 'stripe_error', message: err.message } },
    };
  }
  if (err instanceof WorkflowUpdateFailedError) {
    // The workflow's update validator refused: the request is well formed but not allowed now.
    const reason = err.cause?.message ?? err.message;
    return {
      status: 409,
      body: { error: { code: 'not_allowed_in_current_state', message: reason } },
    };
  }
  return undefined;
}
