import assert from 'node:assert/strict';
import { Client } from '@temporalio/client';
import {
  InvalidCheckoutInputError,
  cancelCheckout,
  checkoutListQuery,
  retryPayment,
  startCheckout,
} from '../../src/client';
import {
  ORDER_ID_MAX_LENGTH,
  checkoutWorkflowId,
  paymentIdempotencyKey,
  validateCheckoutInput,
  type CheckoutInput,
} from '../../src/workflows/definitions';

const good: CheckoutInput = {
  orderId: 'order_1-A',
  amount: 1_999,
  currency: 'eur',
  customerId: 'cus_123',
  paymentMethodId: 'pm_card_visa',
  provision: { sku: 'plan.pro', quantity: 1 },
};

/** A client whose connection is never used: validation must fail before any call. */
function offlineClient(): Client {
  return new Client({ connection: undefined });
}

describe('checkout input and client validation', () => {
  it('accepts a well-formed input', () => {
    assert.deepEqual(validateCheckoutInput(good), { ok: true, value: { ...good, options: {} } });
  });

  it('names every bad field at once', () => {
    const result = validateCheckoutInput({
      ...good,
      orderId: 'bad id!',
      amount: 10.5,
      currency: 'EUR',
      customerId: 'alice@example.com',
      paymentMethodId: '4242424242424242',
      provision: { sku: '', quantity: 0 },
      options: { paymentRetryWindowMs: -1, surprise: 1 },
      extra: true,
    });
    assert.equal(result.ok, false);
    if (result.ok) return;
    const fields = result.problems.map((p) => p.split(':')[0]);
    assert.deepEqual(fields.sort(), [
      'amount',
      'currency',
      'customerId',
      'extra',
      'options.paymentRetryWindowMs',
      'options.surprise',
      'orderId',
      'paymentMethodId',
      'provision.quantity',
      'provision.sku',
    ]);
  });

  it('keeps the longest idempotency key under Stripe’s 255 characters', () => {
    const orderId = 'x'.repeat(ORDER_ID_MAX_LENGTH);
    assert.equal(validateCheckoutInput({ ...good, orderId }).ok, true);
    assert.equal(validateCheckoutInput({ ...good, orderId: `${orderId}x` }).ok, false);
    const key = paymentIdempotencyKey(checkoutWorkflowId(orderId), 10, 'confirm');
    assert.ok(key.length <= 255, `${key.length} characters`);
    assert.equal(key, `checkout-${orderId}/payment/g10/confirm`);
  });

  it('rejects a bad start or message before contacting Temporal', async () => {
    const client = offlineClient();
    await assert.rejects(
      startCheckout(client, { ...good, amount: 0 }),
      (err: unknown) => err instanceof InvalidCheckoutInputError && /^amount:/.test(err.problems[0] ?? ''),
    );
    await assert.rejects(
      retryPayment(client, 'o1', { paymentMethodId: 'card', actor: 'ops', reason: 'x' }),
      InvalidCheckoutInputError,
    );
    await assert.rejects(cancelCheckout(client, 'o1', { actor: 'ops', reason: '' }), /reason:/);
  });

  it('builds visibility queries from checked values only', () => {
    assert.equal(
      checkoutListQuery({ state: 'needs_attention', needsAttention: true }),
      "WorkflowType IN ('checkout', 'hostedCheckout') AND CheckoutState = 'needs_attention' AND NeedsAttentionSince IS NOT NULL",
    );
    assert.throws(() => checkoutListQuery({ orderId: "x' OR '1'='1" }), InvalidCheckoutInputError);
  });
});
