/**
 * PaymentIntent, refund, search and event behaviour as the real SDK sees it. Like the conformance
 * suite, it runs against real Stripe test mode when STRIPE_SECRET_KEY holds an `sk_test_` key and
 * skips there only what needs the emulator's control API or clock.
 */
import assert from 'node:assert/strict';
import Stripe from 'stripe';
import {
  type StripeTarget,
  captureError,
  cardPayment,
  control,
  emulatorOnly,
  eventually,
  freshKey,
  rawRequest,
  startTarget,
} from './target';

const DECLINES: readonly { readonly suffix: string; readonly code: string; readonly declineCode: string }[] =
  [
    { suffix: 'chargeDeclined', code: 'card_declined', declineCode: 'generic_decline' },
    { suffix: 'chargeDeclinedInsufficientFunds', code: 'card_declined', declineCode: 'insufficient_funds' },
    { suffix: 'chargeDeclinedLostCard', code: 'card_declined', declineCode: 'lost_card' },
    { suffix: 'chargeDeclinedStolenCard', code: 'card_declined', declineCode: 'stolen_card' },
    { suffix: 'chargeDeclinedExpiredCard', code: 'expired_card', declineCode: 'expired_card' },
    { suffix: 'chargeDeclinedIncorrectCvc', code: 'incorrect_cvc', declineCode: 'incorrect_cvc' },
    { suffix: 'chargeDeclinedProcessingError', code: 'processing_error', declineCode: 'processing_error' },
  ];

/** `latest_charge` is an id unless expanded, which these tests never do. */
function chargeId(pi: Stripe.PaymentIntent): string {
  const charge = pi.latest_charge;
  return typeof charge === 'string' ? charge : (charge?.id ?? '');
}

describe('Stripe emulator payments', function () {
  this.timeout(120_000);
  let target: StripeTarget;
  let stripe: Stripe;

  before(async () => {
    target = await startTarget();
    stripe = target.client();
  });

  after(async () => {
    await target.emulator?.stop();
  });

  function eventsFor(objectId: string): string[] {
    return (target.emulator?.events.all() ?? [])
      .filter((event) => event.data.object['id'] === objectId)
      .map((event) => event.type);
  }

  describe('payment method outcomes', () => {
    for (const paymentMethod of ['pm_card_visa', 'pm_card_mastercard']) {
      it(`${paymentMethod} succeeds with one charge, and latest_charge names it`, async () => {
        const pi = await stripe.paymentIntents.create(cardPayment(paymentMethod));
        assert.equal(pi.status, 'succeeded');
        assert.equal(pi.amount_received, 2000);
        assert.equal(pi.livemode, false);
        assert.match(chargeId(pi), /^ch_/);
        const charge = await stripe.charges.retrieve(chargeId(pi));
        assert.equal(charge.status, 'succeeded');
        assert.equal(charge.payment_intent, pi.id);
      });
    }

    for (const decline of DECLINES) {
      for (const name of [`pm_card_${decline.suffix}`, `pm_card_visa_${decline.suffix}`]) {
        it(`${name} is a 402 card_error ${decline.code}/${decline.declineCode} with the PaymentIntent back in requires_payment_method`, async () => {
          const key = freshKey(name);
          const error = await captureError(() =>
            stripe.paymentIntents.create(cardPayment(name), { idempotencyKey: key }),
          );
          assert.ok(error instanceof Stripe.errors.StripeCardError);
          assert.equal(error.statusCode, 402);
          assert.equal(error.code, decline.code);
          assert.equal(error.decline_code, decline.declineCode);
          assert.equal(error.payment_intent?.status, 'requires_payment_method');
          assert.equal(error.payment_intent?.last_payment_error?.decline_code, decline.declineCode);
          const replay = await captureError(() =>
            stripe.paymentIntents.create(cardPayment(name), { idempotencyKey: key }),
          );
          assert.equal(replay.headers?.['idempotent-replayed'], 'true');
          assert.equal(replay.payment_intent?.id, error.payment_intent?.id);
        });
      }
    }

    it('a declined PaymentIntent can be confirmed again with a good card and then succeeds once', async function () {
      const error = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_chargeDeclined')),
      );
      const id = error.payment_intent?.id ?? '';
      const retried = await stripe.paymentIntents.confirm(id, { payment_method: 'pm_card_visa' });
      assert.equal(retried.status, 'succeeded');
      if (target.emulator) {
        const entry = target.emulator.control.ledger().payment_intents.find((pi) => pi.id === id);
        assert.equal(entry?.successful_charges, 1);
      }
    });

    it('create without confirm, then confirm: requires_confirmation → succeeded; a second confirm is refused', async () => {
      const created = await stripe.paymentIntents.create(cardPayment('pm_card_visa', { confirm: false }));
      assert.equal(created.status, 'requires_confirmation');
      const confirmed = await stripe.paymentIntents.confirm(created.id);
      assert.equal(confirmed.status, 'succeeded');
      const again = await captureError(() => stripe.paymentIntents.confirm(created.id));
      assert.equal(again.statusCode, 400);
      assert.equal(again.code, 'payment_intent_unexpected_state');
    });

    it('automatic payment methods without return_url fail confirm with a 400; allow_redirects=never succeeds', async () => {
      const error = await captureError(() =>
        stripe.paymentIntents.create({
          amount: 2000,
          currency: 'usd',
          payment_method: 'pm_card_visa',
          confirm: true,
        }),
      );
      assert.ok(error instanceof Stripe.errors.StripeInvalidRequestError);
      assert.equal(error.statusCode, 400);
      assert.match(error.message, /return_url/);
      const ok = await stripe.paymentIntents.create({
        amount: 2000,
        currency: 'usd',
        payment_method: 'pm_card_visa',
        confirm: true,
        automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      });
      assert.equal(ok.status, 'succeeded');
    });

    it('accepts the older payment_method_types parameter as well', async function () {
      const emulator = emulatorOnly(this, target);
      const response = await rawRequest(emulator, {
        method: 'POST',
        path: '/v1/payment_intents',
        headers: {
          Authorization: `Bearer ${target.secretKey}`,
          'Content-Type': 'application/x-www-form-urlencoded',
        },
        body: 'amount=1500&currency=usd&payment_method_types[0]=card&payment_method=pm_card_visa&confirm=true',
      });
      assert.equal(response.status, 200);
      assert.equal((JSON.parse(response.body) as { status: string }).status, 'succeeded');
    });

    it('a missing PaymentIntent is a 404 resource_missing', async () => {
      const error = await captureError(() => stripe.paymentIntents.retrieve('pi_doesnotexist000000000000'));
      assert.ok(error instanceof Stripe.errors.StripeInvalidRequestError);
      assert.equal(error.statusCode, 404);
      assert.equal(error.code, 'resource_missing');
    });
  });

  describe('3-D Secure', () => {
    it('on-session: requires_action with a redirect_to_url next_action carrying the return_url', async () => {
      const pi = await stripe.paymentIntents.create(
        cardPayment('pm_card_authenticationRequired', { return_url: 'https://shop.example/return' }),
      );
      assert.equal(pi.status, 'requires_action');
      assert.equal(pi.next_action?.type, 'redirect_to_url');
      assert.equal(pi.next_action?.redirect_to_url?.return_url, 'https://shop.example/return');
      if (target.emulator) {
        assert.equal(pi.next_action?.redirect_to_url?.url, `${target.emulator.url}/_emulator/3ds/${pi.id}`);
      }
    });

    it('on-session without return_url: requires_action with use_stripe_sdk', async () => {
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_threeDSecure2Required'));
      assert.equal(pi.status, 'requires_action');
      assert.equal(pi.next_action?.type, 'use_stripe_sdk');
    });

    it('off-session: 402 authentication_required', async () => {
      const error = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_authenticationRequired', { off_session: true })),
      );
      assert.ok(error instanceof Stripe.errors.StripeCardError);
      assert.equal(error.code, 'authentication_required');
      assert.equal(error.payment_intent?.status, 'requires_payment_method');
    });

    it('completing authentication succeeds the PaymentIntent with one charge', async function () {
      const emulator = emulatorOnly(this, target);
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_threeDSecure2Required'));
      const response = await control(emulator, 'POST', `/_emulator/payment_intents/${pi.id}/authenticate`, {
        outcome: 'succeed',
      });
      assert.equal(response.status, 200);
      const after = await stripe.paymentIntents.retrieve(pi.id);
      assert.equal(after.status, 'succeeded');
      assert.deepEqual(eventsFor(pi.id), [
        'payment_intent.created',
        'payment_intent.requires_action',
        'payment_intent.succeeded',
      ]);
      assert.equal(
        emulator.control.ledger().payment_intents.find((p) => p.id === pi.id)?.successful_charges,
        1,
      );
    });

    it('failing authentication returns it to requires_payment_method with last_payment_error', async function () {
      const emulator = emulatorOnly(this, target);
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_authenticationRequired'));
      emulator.control.authenticate(pi.id, 'fail');
      const after = await stripe.paymentIntents.retrieve(pi.id);
      assert.equal(after.status, 'requires_payment_method');
      assert.equal(after.last_payment_error?.code, 'payment_intent_authentication_failure');
      assert.equal(
        emulator.control.ledger().payment_intents.find((p) => p.id === pi.id)?.successful_charges,
        0,
      );
    });

    it('authenticating a canceled PaymentIntent is refused and charges nothing', async function () {
      const emulator = emulatorOnly(this, target);
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_authenticationRequired'));
      await stripe.paymentIntents.cancel(pi.id);
      const response = await control(emulator, 'POST', `/_emulator/payment_intents/${pi.id}/authenticate`, {
        outcome: 'succeed',
      });
      assert.equal(response.status, 400);
      assert.equal((await stripe.paymentIntents.retrieve(pi.id)).status, 'canceled');
      assert.equal(
        emulator.control.ledger().payment_intents.find((p) => p.id === pi.id)?.successful_charges,
        0,
      );
    });

    it('the next_action page offers both outcomes, and its form redirects to the return_url', async function () {
      const emulator = emulatorOnly(this, target);
      const pi = await stripe.paymentIntents.create(
        cardPayment('pm_card_authenticationRequired', { return_url: 'https://shop.example/return?order=1' }),
      );
      const page = await rawRequest(emulator, { method: 'GET', path: `/_emulator/3ds/${pi.id}` });
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-type']), /text\/html/);
      assert.match(page.body, /value="succeed"/);
      assert.match(page.body, /value="fail"/);
      const posted = await rawRequest(emulator, {
        method: 'POST',
        path: `/_emulator/payment_intents/${pi.id}/authenticate`,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'outcome=succeed',
      });
      assert.equal(posted.status, 303);
      const location = new URL(String(posted.headers.location));
      assert.equal(location.origin + location.pathname, 'https://shop.example/return');
      assert.equal(location.searchParams.get('order'), '1');
      assert.equal(location.searchParams.get('payment_intent'), pi.id);
      assert.equal(location.searchParams.get('redirect_status'), 'succeeded');
    });
  });

  describe('asynchronous payment methods', () => {
    function bankPayment(paymentMethod: string, orderId: string): Stripe.PaymentIntentCreateParams {
      return {
        amount: 5000,
        currency: 'usd',
        allowed_payment_method_types: ['us_bank_account'],
        payment_method: paymentMethod,
        confirm: true,
        metadata: { order_id: orderId },
      };
    }

    it('pm_usBankAccount_success is processing, then succeeded once the settle time passes on the clock', async function () {
      const emulator = emulatorOnly(this, target);
      const pi = await stripe.paymentIntents.create(bankPayment('pm_usBankAccount_success', freshKey('ach')));
      assert.equal(pi.status, 'processing');
      emulator.control.advanceClock(1);
      assert.equal((await stripe.paymentIntents.retrieve(pi.id)).status, 'processing');
      emulator.control.advanceClock(emulator.control.settings().asyncSettleSeconds);
      assert.equal((await stripe.paymentIntents.retrieve(pi.id)).status, 'succeeded');
      assert.deepEqual(eventsFor(pi.id), [
        'payment_intent.created',
        'payment_intent.processing',
        'payment_intent.succeeded',
      ]);
    });

    it('pm_usBankAccount_accountClosed is processing, then payment_failed back to requires_payment_method', async function () {
      const emulator = emulatorOnly(this, target);
      const pi = await stripe.paymentIntents.create(
        bankPayment('pm_usBankAccount_accountClosed', freshKey('ach')),
      );
      assert.equal(pi.status, 'processing');
      emulator.control.advanceClock(emulator.control.settings().asyncSettleSeconds);
      const failed = await stripe.paymentIntents.retrieve(pi.id);
      assert.equal(failed.status, 'requires_payment_method');
      assert.equal(failed.last_payment_error?.code, 'account_closed');
      assert.ok(eventsFor(pi.id).includes('payment_intent.payment_failed'));
      assert.equal(
        emulator.control.ledger().payment_intents.find((p) => p.id === pi.id)?.successful_charges,
        0,
      );
    });

    it('real time passes on the clock too: a short settle time settles without advancing', async function () {
      const emulator = emulatorOnly(this, target);
      emulator.control.configure({ asyncSettleSeconds: 0.3 });
      try {
        const pi = await stripe.paymentIntents.create(
          bankPayment('pm_usBankAccount_success', freshKey('ach')),
        );
        const settled = await eventually(
          () => stripe.paymentIntents.retrieve(pi.id),
          (current) => current.status === 'succeeded',
          5_000,
        );
        assert.equal(settled.status, 'succeeded');
      } finally {
        emulator.control.configure({ asyncSettleSeconds: 3 });
      }
    });

    it('POST /_emulator/payment_intents/:id/settle settles now, with an optional outcome', async function () {
      const emulator = emulatorOnly(this, target);
      const pi = await stripe.paymentIntents.create(bankPayment('pm_usBankAccount_success', freshKey('ach')));
      const settled = await control(emulator, 'POST', `/_emulator/payment_intents/${pi.id}/settle`, {
        outcome: 'fail',
      });
      assert.equal(settled.status, 200);
      assert.equal((settled.json as { status: string }).status, 'requires_payment_method');
      const again = await control(emulator, 'POST', `/_emulator/payment_intents/${pi.id}/settle`);
      assert.equal(again.status, 400);
    });
  });

  describe('capture and cancel', () => {
    it('manual capture: requires_capture, then capture succeeds; capturing twice is charge_already_captured', async () => {
      const pi = await stripe.paymentIntents.create(
        cardPayment('pm_card_visa', { capture_method: 'manual' }),
      );
      assert.equal(pi.status, 'requires_capture');
      assert.equal(pi.amount_capturable, 2000);
      const captured = await stripe.paymentIntents.capture(pi.id);
      assert.equal(captured.status, 'succeeded');
      assert.equal(captured.amount_received, 2000);
      const twice = await captureError(() => stripe.paymentIntents.capture(pi.id));
      assert.ok(twice instanceof Stripe.errors.StripeInvalidRequestError);
      assert.equal(twice.code, 'charge_already_captured');
    });

    it('partial capture receives only amount_to_capture', async () => {
      const pi = await stripe.paymentIntents.create(
        cardPayment('pm_card_visa', { capture_method: 'manual' }),
      );
      const captured = await stripe.paymentIntents.capture(pi.id, { amount_to_capture: 1500 });
      assert.equal(captured.amount_received, 1500);
    });

    it('capturing a PaymentIntent that is not requires_capture is payment_intent_unexpected_state', async () => {
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_visa', { confirm: false }));
      const error = await captureError(() => stripe.paymentIntents.capture(pi.id));
      assert.equal(error.statusCode, 400);
      assert.equal(error.code, 'payment_intent_unexpected_state');
    });

    it('cancel: canceled with the reason; canceling again or a succeeded one is payment_intent_unexpected_state', async () => {
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_visa', { confirm: false }));
      const canceled = await stripe.paymentIntents.cancel(pi.id, { cancellation_reason: 'abandoned' });
      assert.equal(canceled.status, 'canceled');
      assert.equal(canceled.cancellation_reason, 'abandoned');
      const again = await captureError(() => stripe.paymentIntents.cancel(pi.id));
      assert.equal(again.code, 'payment_intent_unexpected_state');
      const succeeded = await stripe.paymentIntents.create(cardPayment('pm_card_visa'));
      const late = await captureError(() => stripe.paymentIntents.cancel(succeeded.id));
      assert.equal(late.code, 'payment_intent_unexpected_state');
    });

    it('canceling an uncaptured PaymentIntent releases the authorization: no successful charge in the ledger', async function () {
      const emulator = emulatorOnly(this, target);
      const pi = await stripe.paymentIntents.create(
        cardPayment('pm_card_visa', { capture_method: 'manual' }),
      );
      assert.ok(eventsFor(pi.id).includes('payment_intent.amount_capturable_updated'));
      await stripe.paymentIntents.cancel(pi.id);
      const entry = emulator.control.ledger().payment_intents.find((p) => p.id === pi.id);
      assert.equal(entry?.status, 'canceled');
      assert.equal(entry?.successful_charges, 0);
    });
  });

  describe('refunds', () => {
    it('a full refund by payment_intent succeeds, references the charge, and a second is charge_already_refunded', async () => {
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_visa'));
      const key = freshKey('refund');
      const refund = await stripe.refunds.create(
        { payment_intent: pi.id, reason: 'requested_by_customer', metadata: { order_id: 'r-1' } },
        { idempotencyKey: key },
      );
      assert.equal(refund.status, 'succeeded');
      assert.equal(refund.amount, 2000);
      assert.equal(refund.charge, pi.latest_charge);
      assert.equal(refund.reason, 'requested_by_customer');
      assert.equal(refund.metadata?.['order_id'], 'r-1');
      const replay = await stripe.refunds.create(
        { payment_intent: pi.id, reason: 'requested_by_customer', metadata: { order_id: 'r-1' } },
        { idempotencyKey: key },
      );
      assert.equal(replay.id, refund.id);
      const retrieved = await stripe.refunds.retrieve(refund.id);
      assert.equal(retrieved.amount, 2000);
      const second = await captureError(() => stripe.refunds.create({ payment_intent: pi.id }));
      assert.equal(second.code, 'charge_already_refunded');
    });

    it('partial refunds by charge add up; asking for more than is left is charge_already_refunded', async () => {
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_visa'));
      const charge = chargeId(pi);
      await stripe.refunds.create({ charge, amount: 500 });
      await stripe.refunds.create({ charge, amount: 1000 });
      const over = await captureError(() => stripe.refunds.create({ charge, amount: 600 }));
      assert.equal(over.statusCode, 400);
      assert.equal(over.code, 'charge_already_refunded');
      const rest = await stripe.refunds.create({ charge, amount: 500 });
      assert.equal(rest.amount, 500);
      const refundedCharge = await stripe.charges.retrieve(charge);
      assert.equal(refundedCharge.amount_refunded, 2000);
      assert.equal(refundedCharge.refunded, true);
    });

    it('refund events carry the request and its idempotency key; the ledger lists the refund', async function () {
      const emulator = emulatorOnly(this, target);
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_visa'));
      const key = freshKey('refund-events');
      const refund = await stripe.refunds.create(
        { payment_intent: pi.id, amount: 700 },
        { idempotencyKey: key },
      );
      const refundEvent = emulator.events
        .all()
        .find((event) => event.type === 'refund.created' && event.data.object['id'] === refund.id);
      assert.equal(refundEvent?.request.idempotency_key, key);
      assert.ok(eventsFor(chargeId(pi)).includes('charge.refunded'));
      const ledger = emulator.control.ledger();
      assert.deepEqual(
        ledger.refunds.find((entry) => entry.id === refund.id),
        {
          id: refund.id,
          payment_intent: pi.id,
          charge: pi.latest_charge,
          amount: 700,
          status: 'succeeded',
          metadata: {},
        },
      );
      assert.equal(ledger.payment_intents.find((entry) => entry.id === pi.id)?.amount_refunded, 700);
    });
  });

  describe('search, events and customers', () => {
    it('search finds PaymentIntents by metadata AND status', async () => {
      const orderId = freshKey('search');
      const pi = await stripe.paymentIntents.create(
        cardPayment('pm_card_visa', { metadata: { order_id: orderId } }),
      );
      await stripe.paymentIntents.create(
        cardPayment('pm_card_visa', { confirm: false, metadata: { order_id: orderId } }),
      );
      const result = await eventually(
        () =>
          stripe.paymentIntents.search({ query: `metadata['order_id']:'${orderId}' AND status:'succeeded'` }),
        (page) => page.data.length > 0,
      );
      assert.equal(result.object, 'search_result');
      assert.deepEqual(
        result.data.map((found) => found.id),
        [pi.id],
      );
    });

    it('search sees metadata added at capture, and clauses without metadata scan everything', async function () {
      emulatorOnly(this, target);
      const orderId = freshKey('search-capture');
      const pi = await stripe.paymentIntents.create(
        cardPayment('pm_card_visa', { capture_method: 'manual' }),
      );
      await stripe.paymentIntents.capture(pi.id, { metadata: { order_id: orderId } });
      const byMetadata = await stripe.paymentIntents.search({ query: `metadata["order_id"]:"${orderId}"` });
      assert.deepEqual(
        byMetadata.data.map((found) => found.id),
        [pi.id],
      );
      const canceled = await stripe.paymentIntents.create(cardPayment('pm_card_visa', { confirm: false }));
      await stripe.paymentIntents.cancel(canceled.id);
      const byStatus = await stripe.paymentIntents.search({
        query: `status:'canceled' AND currency:'usd'`,
        limit: 100,
      });
      assert.ok(byStatus.data.some((found) => found.id === canceled.id));
      assert.ok(byStatus.data.every((found) => found.status === 'canceled'));
    });

    it('an unparseable search query is a 400 naming the query parameter', async function () {
      emulatorOnly(this, target);
      const error = await captureError(() => stripe.paymentIntents.search({ query: 'metadata[order_id]=x' }));
      assert.equal(error.statusCode, 400);
      assert.equal(error.param, 'query');
    });

    it('every state change emits its events in order', async function () {
      emulatorOnly(this, target);
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_visa'));
      assert.deepEqual(eventsFor(pi.id), ['payment_intent.created', 'payment_intent.succeeded']);
      assert.deepEqual(eventsFor(chargeId(pi)), ['charge.succeeded']);
      const declined = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_chargeDeclined')),
      );
      assert.deepEqual(eventsFor(declined.payment_intent?.id ?? ''), [
        'payment_intent.created',
        'payment_intent.payment_failed',
      ]);
    });

    it('events list filters by type and pages with limit and starting_after', async () => {
      for (let i = 0; i < 3; i++) await stripe.customers.create({ email: `page${i}@example.com` });
      const first = await stripe.events.list({ type: 'customer.created', limit: 2 });
      assert.equal(first.data.length, 2);
      assert.equal(first.has_more, true);
      assert.ok(first.data.every((event) => event.type === 'customer.created'));
      const last = first.data[1];
      assert.ok(last);
      const second = await stripe.events.list({
        type: 'customer.created',
        limit: 2,
        starting_after: last.id,
      });
      assert.ok(second.data.length >= 1);
      assert.ok(second.data.every((event) => !first.data.some((seen) => seen.id === event.id)));
      const one = await stripe.events.retrieve(last.id);
      assert.equal(one.id, last.id);
      assert.equal(one.livemode, false);
    });

    it("expand[] replaces latest_charge and a refund's charge with the objects; an unknown path is a 400", async () => {
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_visa'));
      const withCharge = await stripe.paymentIntents.retrieve(pi.id, { expand: ['latest_charge'] });
      const charge = withCharge.latest_charge as Stripe.Charge;
      assert.equal(charge.object, 'charge');
      assert.equal(charge.id, chargeId(pi));
      const refund = await stripe.refunds.create({ payment_intent: pi.id, expand: ['charge'] });
      assert.equal((refund.charge as Stripe.Charge).amount_refunded, 2000);
      const error = await captureError(() =>
        stripe.paymentIntents.retrieve(pi.id, { expand: ['no_such_field'] }),
      );
      assert.equal(error.statusCode, 400);
      assert.equal(error.param, 'expand');
    });

    it('customers are created and retrieved; a missing one is a 404', async () => {
      const customer = await stripe.customers.create({
        email: 'c@example.com',
        name: 'C',
        metadata: { tier: 'gold' },
      });
      const retrieved = await stripe.customers.retrieve(customer.id);
      assert.equal((retrieved as Stripe.Customer).email, 'c@example.com');
      assert.equal((retrieved as Stripe.Customer).metadata['tier'], 'gold');
      const missing = await captureError(() => stripe.customers.retrieve('cus_doesnotexist0000000000'));
      assert.equal(missing.statusCode, 404);
      assert.equal(missing.code, 'resource_missing');
    });
  });
});
