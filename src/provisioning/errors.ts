/**
 * Errors a provisioner throws when the outcome is known to be "not granted yet", classified at the
 * boundary the way Stripe errors are (src/stripe/errors.ts): one base class, a subclass per cause,
 * and `retryable` telling the activity whether Temporal should try again with the same key.
 *
 * - `ProvisioningUnavailableError`: the backend could not be reached, timed out, answered 5xx, 409
 *   (a request with this key is still in flight) or 429 (`retryAfterMs` when it said how long).
 *   Retried: the key makes a repeat safe even when the first request did take effect.
 * - `ProvisioningResponseError`: a 2xx whose body is not an entitlement for this checkout. Retried
 *   too: the grant may have happened and a repeat under the same key returns it once the endpoint
 *   is fixed.
 * - `ProvisioningRejectedError`: any other 4xx (or a redirect): the endpoint refused the request as
 *   built, so repeating it cannot help. Not retried; the activity fails with `ProvisioningRejected`.
 *
 * Messages name the endpoint by origin and path only (no query string) and never carry the token.
 */
export class ProvisioningError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    /** How long the backend asked us to wait before the next attempt (a 429's Retry-After). */
    readonly retryAfterMs: number | undefined = undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProvisioningError';
  }
}

export class ProvisioningUnavailableError extends ProvisioningError {
  constructor(
    message: string,
    readonly status: number | undefined,
    retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, true, retryAfterMs, options);
    this.name = 'ProvisioningUnavailableError';
  }
}

export class ProvisioningResponseError extends ProvisioningError {
  constructor(message: string) {
    super(message, true);
    this.name = 'ProvisioningResponseError';
  }
}

export class ProvisioningRejectedError extends ProvisioningError {
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message, false);
    this.name = 'ProvisioningRejectedError';
  }
}
