/**
 * `GET /v1/refunds` as the real SDK sees it: newest first, filtered by PaymentIntent or charge,
 * paged with `limit` and `starting_after` / `ending_before`. Runs against real Stripe test mode when
 * STRIPE_SECRET_KEY holds an `sk_test_` key, like the rest of the conformance suites.
 */
import assert from 'node:assert/strict';
import type Stripe from 'stripe';
import { type StripeTarget, captureError, cardPayment, startTarget } from './target';

describe('Stripe emulator refund list', function () {
  this.timeout(60_000);
  let target: StripeTarget;
  let stripe: Stripe;

  before(async () => {
    target = await startTarget();
    stripe = target.client();
  });
  after(async () => {
    await target.emulator?.stop();
  });

  async function paidWithRefunds(amounts: readonly number[]): Promise<{ pi: string; refunds: string[] }> {
    const pi = await stripe.paymentIntents.create(cardPayment('pm_card_visa'));
    const refunds: string[] = [];
    for (const amount of amounts) {
      refunds.push((await stripe.refunds.create({ payment_intent: pi.id, amount })).id);
    }
    return { pi: pi.id, refunds };
  }

  it('lists the refunds of one PaymentIntent only, newest first', async () => {
    const a = await paidWithRefunds([100, 200, 300]);
    const b = await paidWithRefunds([400]);
    const list = await stripe.refunds.list({ payment_intent: a.pi });
    assert.equal(list.object, 'list');
    assert.equal(list.has_more, false);
    assert.deepEqual(
      list.data.map((r) => r.id),
      [...a.refunds].reverse(),
    );
    assert.deepEqual(
      list.data.map((r) => r.amount),
      [300, 200, 100],
    );
    assert.ok(list.data.every((r) => r.payment_intent === a.pi));
    const other = await stripe.refunds.list({ payment_intent: b.pi });
    assert.deepEqual(
      other.data.map((r) => r.id),
      b.refunds,
    );
  });

  it('pages with limit and starting_after, and back with ending_before', async () => {
    const a = await paidWithRefunds([10, 20, 30, 40, 50]);
    const newestFirst = [...a.refunds].reverse();
    const first = await stripe.refunds.list({ payment_intent: a.pi, limit: 2 });
    assert.deepEqual(
      first.data.map((r) => r.id),
      newestFirst.slice(0, 2),
    );
    assert.equal(first.has_more, true);
    const second = await stripe.refunds.list({
      payment_intent: a.pi,
      limit: 2,
      starting_after: first.data[1]?.id ?? '',
    });
    assert.deepEqual(
      second.data.map((r) => r.id),
      newestFirst.slice(2, 4),
    );
    assert.equal(second.has_more, true);
    const third = await stripe.refunds.list({
      payment_intent: a.pi,
      limit: 2,
      starting_after: second.data[1]?.id ?? '',
    });
    assert.deepEqual(
      third.data.map((r) => r.id),
      newestFirst.slice(4),
    );
    assert.equal(third.has_more, false);
    const back = await stripe.refunds.list({
      payment_intent: a.pi,
      limit: 2,
      ending_before: third.data[0]?.id ?? '',
    });
    assert.deepEqual(
      back.data.map((r) => r.id),
      newestFirst.slice(2, 4),
    );
    // The SDK's auto-pagination walks every page.
    const all: string[] = [];
    for await (const r of stripe.refunds.list({ payment_intent: a.pi, limit: 2 })) all.push(r.id);
    assert.deepEqual(all, newestFirst);
  });

  it('filters by charge and refuses a bad limit or an unknown cursor naming the parameter', async () => {
    const pi = await stripe.paymentIntents.create(cardPayment('pm_card_visa'));
    const charge = typeof pi.latest_charge === 'string' ? pi.latest_charge : (pi.latest_charge?.id ?? '');
    const refund = await stripe.refunds.create({ charge, amount: 123 });
    const byCharge = await stripe.refunds.list({ charge });
    assert.deepEqual(
      byCharge.data.map((r) => r.id),
      [refund.id],
    );
    const badLimit = await captureError(() => stripe.refunds.list({ payment_intent: pi.id, limit: 101 }));
    assert.equal(badLimit.statusCode, 400);
    assert.equal(badLimit.param, 'limit');
    const badCursor = await captureError(() =>
      stripe.refunds.list({ payment_intent: pi.id, starting_after: 're_doesNotExist123' }),
    );
    assert.equal(badCursor.statusCode, 400);
    assert.equal(badCursor.code, 'resource_missing');
    assert.equal(badCursor.param, 'starting_after');
  });
});
