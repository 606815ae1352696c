import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import type Stripe from 'stripe';
import { createActivities } from '../../src/activities';
import { SqliteProvisioner } from '../../src/provisioning';
import { createStripeClient } from '../../src/stripe/client';
import { startStripeEmulator, type StripeEmulator } from '../../src/stripe-emulator';
import {
  FailureType,
  checkoutWorkflowId,
  refundIdempotencyKey,
  validateRefundRequest,
  type CreateRefundParams,
} from '../../src/workflows/definitions';

describe('createRefund activity', function () {
  this.timeout(60_000);
  let emulator: StripeEmulator;
  let stripe: Stripe;
  let provisioner: SqliteProvisioner;
  let activities: ReturnType<typeof createActivities>;

  before(async () => {
    emulator = await startStripeEmulator({ quiet: true });
    stripe = createStripeClient({
      secretKey: 'sk_test_refundactivity',
      timeoutMs: 5_000,
      apiBase: { host: emulator.host, port: emulator.port, protocol: 'http' },
    });
    provisioner = new SqliteProvisioner(':memory:');
    activities = createActivities({ stripe, provisioner });
  });
  after(async () => {
    await provisioner?.close();
    await emulator?.stop();
  });
  afterEach(() => emulator.control.clearFaults());

  async function paid(
    orderId: string,
  ): Promise<{ params: (amount: number, n: number) => CreateRefundParams }> {
    const pi = await stripe.paymentIntents.create({
      amount: 4_200,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
    });
    assert.equal(pi.status, 'succeeded');
    return {
      params: (amount, n) => ({
        payment_intent: pi.id,
        amount,
        metadata: {
          order_id: orderId,
          checkout_workflow_id: checkoutWorkflowId(orderId),
          refund_request: `r${n}`,
        },
      }),
    };
  }

  const refundsOf = (orderId: string) =>
    emulator.control.ledger().refunds.filter((r) => r.metadata.order_id === orderId);

  it('refunds once when the response is lost after Stripe committed it and the call is retried', async () => {
    const orderId = 'refund-lost';
    const { params } = await paid(orderId);
    const key = refundIdempotencyKey(checkoutWorkflowId(orderId), 1);
    emulator.control.addFault({
      fault: 'lose_response_after_commit',
      method: 'POST',
      path: '/v1/refunds',
      idempotencyKey: key,
      times: 1,
    });
    // Whichever layer resends (the SDK on the dropped connection, or Temporal retrying the
    // activity), it resends under the same key and gets the stored refund back.
    const first = await activities.createRefund({ idempotencyKey: key, params: params(4_200, 1) });
    assert.equal(emulator.control.faults()[0]?.hits, 1, 'the response was lost after commit');
    const replayed = await activities.createRefund({ idempotencyKey: key, params: params(4_200, 1) });
    assert.equal(replayed.amount, 4_200);
    assert.equal(replayed.id, first.id);
    assert.deepEqual(
      refundsOf(orderId).map((r) => r.id),
      [replayed.id],
    );
  });

  it('refunds in parts under one key per request and refuses an over-refund as a non-retryable invalid request', async () => {
    const orderId = 'refund-parts';
    const { params } = await paid(orderId);
    const wf = checkoutWorkflowId(orderId);
    const first = await activities.createRefund({
      idempotencyKey: refundIdempotencyKey(wf, 1),
      params: params(1_000, 1),
    });
    const second = await activities.createRefund({
      idempotencyKey: refundIdempotencyKey(wf, 2),
      params: params(3_000, 2),
    });
    assert.notEqual(first.id, second.id);
    await assert.rejects(
      activities.createRefund({ idempotencyKey: refundIdempotencyKey(wf, 3), params: params(500, 3) }),
      (err) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.type, FailureType.StripeInvalidRequest);
        assert.equal(err.nonRetryable, true);
        assert.match(err.message, /charge_already_refunded/);
        return true;
      },
    );
    assert.deepEqual(
      refundsOf(orderId).map((r) => r.amount),
      [1_000, 3_000],
    );
  });
});

describe('validateRefundRequest', () => {
  it('accepts a full refund (no amount) and a positive integer amount', () => {
    assert.equal(validateRefundRequest({ actor: 'ops:dee', reason: 'customer asked' }).ok, true);
    assert.equal(validateRefundRequest({ actor: 'ops:dee', reason: 'damaged', amount: 100 }).ok, true);
  });

  it('names every bad field: zero, fractional or string amounts, missing actor and reason, unknown fields', () => {
    for (const amount of [0, -5, 12.5, '100']) {
      const v = validateRefundRequest({ actor: 'ops:dee', reason: 'why', amount });
      assert.equal(v.ok, false);
      if (!v.ok) assert.match(v.problems.join('; '), /amount/);
    }
    const v = validateRefundRequest({ amount: 1, note: 'x' });
    assert.equal(v.ok, false);
    if (!v.ok) {
      const all = v.problems.join('; ');
      assert.match(all, /actor/);
      assert.match(all, /reason/);
      assert.match(all, /note: unknown field/);
    }
  });

  it('keys refunds by request number under the workflow id', () => {
    assert.equal(refundIdempotencyKey('checkout-o1', 2), 'checkout-o1/refund/r2');
  });
});
