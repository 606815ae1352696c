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
  refundRequestConflict,
  refundRequestedOf,
  refundUpdateId,
  validateRefundRequest,
  validateRefundUpdateRequest,
  type CreateRefundParams,
  type RefundEntry,
} from '../../src/workflows/definitions';
import { refundRequestDigest } from '../../src/client';

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

describe('refund request ids', () => {
  it('accepts printable ASCII of 1 to 255 characters and names requestId otherwise', () => {
    for (const requestId of [
      'a',
      'k'.repeat(255),
      ' ~!"#$%&()*+,-./:;<=>?@[\\]^_`{|}',
      '3f1c2d0e-7b9a-4c51-9e0f-1d2c3b4a5e6f',
    ]) {
      assert.equal(validateRefundRequest({ actor: 'a', reason: 'r', requestId }).ok, true, requestId);
    }
    for (const requestId of ['', 'k'.repeat(256), 'caf\u00e9', 'tab\there', 'new\nline', 42, null]) {
      const v = validateRefundRequest({ actor: 'a', reason: 'r', requestId });
      assert.equal(v.ok, false, String(requestId));
      if (!v.ok) assert.match(v.problems.join('; '), /^requestId: must be 1 to 255 printable ASCII/);
    }
  });

  it('digests the id with the order to 32 hex characters, the same for the same pair and never the raw id', () => {
    const d = refundRequestDigest('order-1', 'jane@example.com');
    assert.match(d, /^[0-9a-f]{32}$/);
    assert.equal(refundRequestDigest('order-1', 'jane@example.com'), d);
    assert.notEqual(refundRequestDigest('order-2', 'jane@example.com'), d, 'scoped to the order');
    assert.notEqual(refundRequestDigest('order-1', 'jane@example.co'), d);
    assert.equal(refundUpdateId(d, 100), `refund-${d}-100`);
    assert.equal(refundUpdateId(d, undefined), `refund-${d}-rest`);
  });

  it('the update argument carries a digest only, validated', () => {
    const d = refundRequestDigest('o', 'x');
    assert.equal(validateRefundUpdateRequest({ actor: 'a', reason: 'r', requestDigest: d }).ok, true);
    for (const bad of [{ requestDigest: 'x' }, { requestDigest: d.toUpperCase() }, { requestId: 'x' }]) {
      const v = validateRefundUpdateRequest({ actor: 'a', reason: 'r', ...bad });
      assert.equal(v.ok, false, JSON.stringify(bad));
    }
  });

  it('finds a conflict only when the amount asked for differs, naming amount', () => {
    const entry = (amount: number | null): RefundEntry => ({
      refundId: 're_1',
      amount: amount ?? 4_200,
      actor: 'a',
      reason: 'r',
      at: '2026-01-01T00:00:00.000Z',
      full: amount === null,
      requested: { digest: 'a'.repeat(32), amount },
    });
    assert.equal(refundRequestConflict(entry(100), { actor: 'b', reason: 'other', amount: 100 }), undefined);
    assert.equal(refundRequestConflict(entry(null), { actor: 'a', reason: 'r' }), undefined);
    assert.match(
      refundRequestConflict(entry(100), { actor: 'a', reason: 'r', amount: 101 }) ?? '',
      /^amount: .* of 100 .*not 101/,
    );
    assert.match(
      refundRequestConflict(entry(100), { actor: 'a', reason: 'r' }) ?? '',
      /^amount: .*not everything left/,
    );
    assert.match(
      refundRequestConflict(entry(null), { actor: 'a', reason: 'r', amount: 5 }) ?? '',
      /^amount: .*everything left/,
    );
  });

  it('reads a request back from Stripe metadata', () => {
    const digest = 'b'.repeat(32);
    assert.deepEqual(refundRequestedOf({ refund_request_digest: digest, refund_request_amount: '300' }), {
      digest,
      amount: 300,
    });
    assert.deepEqual(refundRequestedOf({ refund_request_digest: digest, refund_request_amount: 'rest' }), {
      digest,
      amount: null,
    });
    assert.equal(refundRequestedOf({ refund_request: 'r1' }), undefined);
    assert.equal(refundRequestedOf({ refund_request_digest: 'not-a-digest' }), undefined);
  });
});
