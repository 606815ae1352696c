/**
 * `GET /v1/payment_intents`: the read the reconciler relies on because, unlike search, it has no
 * indexing lag. Runs against real Stripe test mode too (STRIPE_SECRET_KEY=sk_test_…), skipping only
 * what needs the emulator's control API.
 */
import assert from 'node:assert/strict';
import type Stripe from 'stripe';
import { type StripeTarget, captureError, control, emulatorOnly, startTarget } from './target';

describe('Stripe emulator PaymentIntent list', function () {
  this.timeout(120_000);
  let target: StripeTarget;
  let stripe: Stripe;
  let customer: string;
  const created: string[] = [];

  before(async () => {
    target = await startTarget();
    stripe = target.client();
    customer = (await stripe.customers.create({ description: 'list tests' })).id;
    for (let i = 0; i < 5; i++) {
      const pi = await stripe.paymentIntents.create({
        amount: 1000 + i,
        currency: 'usd',
        customer,
        automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
        metadata: { list_test: String(i) },
      });
      created.push(pi.id);
    }
  });

  after(async () => {
    await target.emulator?.stop();
  });

  it('lists newest first and pages with starting_after until has_more is false', async () => {
    const seen: string[] = [];
    let startingAfter: string | undefined;
    for (;;) {
      const page = await stripe.paymentIntents.list({
        customer,
        limit: 2,
        ...(startingAfter === undefined ? {} : { starting_after: startingAfter }),
      });
      assert.equal(page.object, 'list');
      assert.ok(page.data.length <= 2);
      seen.push(...page.data.map((pi) => pi.id));
      if (!page.has_more) break;
      startingAfter = page.data.at(-1)?.id;
    }
    assert.deepEqual(seen, [...created].reverse());
  });

  it('pages backwards with ending_before', async () => {
    const oldest = created[0] ?? '';
    const page = await stripe.paymentIntents.list({ customer, limit: 2, ending_before: oldest });
    assert.deepEqual(
      page.data.map((pi) => pi.id),
      [created[2], created[1]],
    );
    assert.equal(page.has_more, true);
  });

  it('filters by created[gte] on the clock PaymentIntents were created by', async function () {
    const emulator = emulatorOnly(this, target);
    await control(emulator, 'POST', '/_emulator/clock/advance', { seconds: 3600 });
    const later = await stripe.paymentIntents.create({
      amount: 2000,
      currency: 'usd',
      customer,
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
    });
    const page = await stripe.paymentIntents.list({
      customer,
      created: { gte: later.created - 60 },
      limit: 100,
    });
    assert.deepEqual(
      page.data.map((pi) => pi.id),
      [later.id],
    );
    const older = await stripe.paymentIntents.list({ customer, created: { lt: later.created - 60 } });
    assert.deepEqual(
      older.data.map((pi) => pi.id),
      [...created].reverse(),
    );
  });

  it('sees a PaymentIntent at once while search still lags behind it', async function () {
    const emulator = emulatorOnly(this, target);
    await control(emulator, 'POST', '/_emulator/config', { searchLagSeconds: 600 });
    try {
      const pi = await stripe.paymentIntents.create({
        amount: 3000,
        currency: 'usd',
        customer,
        automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
        metadata: { lagged: 'yes' },
      });
      const listed = await stripe.paymentIntents.list({ customer, limit: 1 });
      assert.equal(listed.data[0]?.id, pi.id);
      const searched = await stripe.paymentIntents.search({ query: "metadata['lagged']:'yes'" });
      assert.equal(searched.data.length, 0);
    } finally {
      await control(emulator, 'POST', '/_emulator/config', { searchLagSeconds: 0 });
    }
  });

  it('refuses an unknown cursor, both cursors at once, and a limit out of range, naming the parameter', async () => {
    const unknown = await captureError(() =>
      stripe.paymentIntents.list({ starting_after: 'pi_doesnotexist000000000' }),
    );
    assert.equal(unknown.statusCode, 400);
    assert.equal(unknown.code, 'resource_missing');
    assert.equal(unknown.param, 'starting_after');
    const both = await captureError(() =>
      stripe.paymentIntents.list({ starting_after: created[0] ?? '', ending_before: created[1] ?? '' }),
    );
    assert.equal(both.statusCode, 400);
    const limit = await captureError(() => stripe.paymentIntents.list({ limit: 101 }));
    assert.equal(limit.statusCode, 400);
    assert.equal(limit.param, 'limit');
  });
});
