/**
 * Stripe-shaped API errors. A handler throws `StripeApiError`; the server turns it into
 * `{ error: { type, code, decline_code, message, param, payment_intent, … } }` with the status.
 *
 * `storable` separates the two kinds that idempotency treats differently (contract I6, I7):
 * parameter-validation errors are raised before anything executes and are never stored under the
 * idempotency key (a corrected retry with the same key may succeed), while errors that arise once the
 * endpoint runs (declines, wrong state, missing objects) are stored and replayed.
 */
export type StripeErrorType =
  'api_error' | 'card_error' | 'idempotency_error' | 'invalid_request_error' | 'rate_limit_error';

export interface StripeErrorBody {
  type: StripeErrorType;
  message: string;
  code?: string;
  decline_code?: string;
  param?: string;
  doc_url?: string;
  request_log_url?: string;
  charge?: string;
  payment_intent?: Record<string, unknown>;
  payment_method?: Record<string, unknown>;
}

export interface StripeApiErrorInit extends Omit<StripeErrorBody, 'type' | 'message'> {
  readonly headers?: Readonly<Record<string, string>>;
  /** False for parameter validation: not stored under the idempotency key. Default true. */
  readonly storable?: boolean;
}

export class StripeApiError extends Error {
  override readonly name = 'StripeApiError';
  readonly storable: boolean;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: StripeErrorBody;

  constructor(
    readonly status: number,
    type: StripeErrorType,
    message: string,
    init: StripeApiErrorInit = {},
  ) {
    super(message);
    const { headers, storable, ...fields } = init;
    this.storable = storable ?? true;
    this.headers = headers ?? {};
    const body: StripeErrorBody = { type, message, ...fields };
    if (fields.code !== undefined && body.doc_url === undefined) {
      body.doc_url = `https://stripe.com/docs/error-codes/${fields.code.replace(/_/g, '-')}`;
    }
    this.body = body;
  }
}

/** A 400 for a malformed or invalid parameter: never stored under the idempotency key. */
export function paramError(message: string, param: string | undefined, code?: string): StripeApiError {
  return new StripeApiError(400, 'invalid_request_error', message, {
    ...(code === undefined ? {} : { code }),
    ...(param === undefined ? {} : { param }),
    storable: false,
  });
}

export function unknownParameter(name: string): StripeApiError {
  return paramError(`Received unknown parameter: ${name}`, name, 'parameter_unknown');
}

export function missingParameter(name: string): StripeApiError {
  return paramError(`Missing required param: ${name}.`, name, 'parameter_missing');
}

/** `No such payment_intent: 'pi_…'`: raised while executing, so stored like any business error. */
export function resourceMissing(kind: string, id: string, param: string): StripeApiError {
  return new StripeApiError(404, 'invalid_request_error', `No such ${kind}: '${id}'`, {
    code: 'resource_missing',
    param,
  });
}

export function unrecognizedUrl(method: string, path: string): StripeApiError {
  return new StripeApiError(
    404,
    'invalid_request_error',
    `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
    { storable: false },
  );
}

export function internalError(): StripeApiError {
  return new StripeApiError(500, 'api_error', 'An unknown error occurred', {
    headers: { 'Stripe-Should-Retry': 'false' },
  });
}
