import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { createStripeClient } from '../../src/stripe/client';
import { classifyStripeError, RATE_LIMIT_RETRY_DELAY_MS } from '../../src/stripe/errors';
import { FailureType } from '../../src/workflows/definitions';

interface Canned {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** Drop the connection instead of answering. */
  readonly drop?: boolean;
}

/** A real HTTP server at the SDK's boundary, answering every request with one canned response. */
async function cannedStripe(): Promise<{
  port: number;
  set(c: Canned): void;
  requests(): number;
  close(): Promise<void>;
}> {
  let canned: Canned = { status: 200, body: {} };
  let count = 0;
  const server = http.createServer((req, res) => {
    count += 1;
    req.resume();
    req.on('end', () => {
      if (canned.drop) {
        req.socket.destroy();
        return;
      }
      res.writeHead(canned.status, { 'content-type': 'application/json', ...canned.headers });
      res.end(JSON.stringify(canned.body ?? {}));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    set(c) {
      canned = c;
      count = 0;
    },
    requests: () => count,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function stripeError(type: string, extra: Record<string, unknown> = {}): unknown {
  return { error: { type, message: `a ${type}`, ...extra } };
}

describe('classifyStripeError', () => {
  let server: Awaited<ReturnType<typeof cannedStripe>>;
  before(async () => {
    server = await cannedStripe();
  });
  after(async () => {
    await server.close();
  });

  async function classify(c: Canned): Promise<ReturnType<typeof classifyStripeError>> {
    server.set(c);
    const stripe = createStripeClient({
      secretKey: 'sk_test_errors0000',
      timeoutMs: 2_000,
      apiBase: { host: '127.0.0.1', port: server.port, protocol: 'http' },
    });
    try {
      await stripe.paymentIntents.create(
        { amount: 100, currency: 'usd' },
        { idempotencyKey: 'checkout-o1/payment/g1/create' },
      );
    } catch (err) {
      return classifyStripeError(err);
    }
    assert.fail('the call should have thrown');
  }

  async function failure(c: Canned): Promise<ApplicationFailure> {
    const result = await classify(c);
    assert.equal(result.kind, 'failure');
    assert.ok(result.failure instanceof ApplicationFailure);
    return result.failure;
  }

  it('returns a card decline as a result carrying code, decline code and PaymentIntent', async () => {
    const result = await classify({
      status: 402,
      body: stripeError('card_error', {
        code: 'card_declined',
        decline_code: 'insufficient_funds',
        payment_intent: { id: 'pi_123', object: 'payment_intent', status: 'requires_payment_method' },
      }),
    });
    assert.equal(result.kind, 'declined');
    assert.equal(result.decline.code, 'card_declined');
    assert.equal(result.decline.declineCode, 'insufficient_funds');
    assert.equal(result.decline.paymentIntentId, 'pi_123');
  });

  it('retries a 409 idempotency_key_in_use with the same key', async () => {
    const f = await failure({
      status: 409,
      body: stripeError('invalid_request_error', { code: 'idempotency_key_in_use' }),
    });
    assert.equal(f.type, FailureType.StripeIdempotencyKeyInUse);
    assert.equal(f.nonRetryable, false);
  });

  it('does not retry a stored 500 (Stripe-Should-Retry: false): the outcome is unknown', async () => {
    const f = await failure({
      status: 500,
      body: stripeError('api_error'),
      headers: { 'stripe-should-retry': 'false' },
    });
    assert.equal(f.type, FailureType.StripeOutcomeUnknown);
    assert.equal(f.nonRetryable, true);
  });

  it('retries a transient 5xx, and the SDK itself does not (only Temporal retries)', async () => {
    const f = await failure({ status: 503, body: stripeError('api_error') });
    assert.equal(f.type, FailureType.StripeTransient);
    assert.equal(f.nonRetryable, false);
    assert.equal(server.requests(), 1);
  });

  it('retries a lock_timeout 429', async () => {
    const f = await failure({
      status: 429,
      body: stripeError('invalid_request_error', { code: 'lock_timeout' }),
      headers: { 'stripe-should-retry': 'true' },
    });
    assert.equal(f.type, FailureType.StripeLockTimeout);
    assert.equal(f.nonRetryable, false);
  });

  it('retries a rate_limit 429 only after a delay', async () => {
    const f = await failure({
      status: 429,
      body: stripeError('invalid_request_error', { code: 'rate_limit' }),
    });
    assert.equal(f.type, FailureType.StripeRateLimited);
    assert.equal(f.nonRetryable, false);
    assert.equal(f.nextRetryDelay, RATE_LIMIT_RETRY_DELAY_MS);
  });

  it('never retries an idempotency mismatch (same key, other parameters)', async () => {
    const f = await failure({ status: 400, body: stripeError('idempotency_error') });
    assert.equal(f.type, FailureType.IdempotencyMismatch);
    assert.equal(f.nonRetryable, true);
  });

  it('does not retry an invalid request or an authentication error', async () => {
    const invalid = await failure({
      status: 400,
      body: stripeError('invalid_request_error', { code: 'parameter_missing' }),
    });
    assert.equal(invalid.type, FailureType.StripeInvalidRequest);
    assert.equal(invalid.nonRetryable, true);
    const auth = await failure({ status: 401, body: stripeError('invalid_request_error') });
    assert.equal(auth.type, FailureType.StripeAuthentication);
    assert.equal(auth.nonRetryable, true);
  });

  it('retries a connection dropped before any answer', async () => {
    const f = await failure({ status: 0, drop: true });
    assert.equal(f.type, FailureType.StripeConnection);
    assert.equal(f.nonRetryable, false);
  });

  it('does not retry an error that is not Stripe’s (a bug)', () => {
    const result = classifyStripeError(new TypeError('boom'));
    assert.equal(result.kind, 'failure');
    assert.equal(result.failure.type, FailureType.StripeUnexpected);
    assert.equal(result.failure.nonRetryable, true);
  });
});
