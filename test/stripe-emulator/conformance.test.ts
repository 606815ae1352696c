/**
 * The contract, row by row, as the real `stripe` SDK sees it: idempotency rows I1–I20 and one test
 * per row of the fault table. The same tests run against real Stripe test mode when
 * STRIPE_SECRET_KEY holds an `sk_test_` key; rows that need fault injection or the emulator clock
 * are skipped there, and nothing is skipped against the emulator.
 */
import assert from 'node:assert/strict';
import Stripe from 'stripe';
import { type StripeEmulator } from '../../src/stripe-emulator';
import { IdempotencyStore } from '../../src/stripe-emulator/idempotency';
import {
  type StripeTarget,
  captureError,
  cardPayment,
  emulatorClient,
  emulatorOnly,
  freshKey,
  rawRequest,
  sleep,
  startTarget,
  eventually,
} from './target';

const PARAMS_MESSAGE = (key: string): string =>
  `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`;

describe('Stripe contract conformance', function () {
  this.timeout(120_000);
  let target: StripeTarget;
  let stripe: Stripe;

  before(async () => {
    target = await startTarget();
    stripe = target.client();
  });

  afterEach(() => {
    target.emulator?.control.clearFaults();
  });

  after(async () => {
    await target.emulator?.stop();
  });

  /** Waits until the slow rule has caught the first request, so the lock is certainly held. */
  async function untilFaultHit(emulator: StripeEmulator): Promise<void> {
    while (!emulator.control.faults().some((rule) => rule.fault === 'slow' && rule.hits > 0)) await sleep(10);
  }

  /** Waits until the slow request has stored its answer (its key is no longer locked). */
  async function untilFaultReleased(emulator: StripeEmulator, key: string): Promise<void> {
    while (emulator.state.idempotency.isLocked(IdempotencyStore.namespace('', key))) await sleep(20);
  }

  function statCount(route: string): number {
    return target.emulator?.control.stats().by_route[route] ?? 0;
  }

  describe('idempotency', () => {
    it('I1: an Idempotency-Key on GET is ignored: nothing is stored or replayed', async () => {
      const created = await stripe.paymentIntents.create(cardPayment('pm_card_visa'));
      const key = freshKey('i1');
      const first = await stripe.paymentIntents.retrieve(created.id, {}, { idempotencyKey: key });
      const second = await stripe.paymentIntents.retrieve(created.id, {}, { idempotencyKey: key });
      assert.equal(first.lastResponse.headers['idempotent-replayed'], undefined);
      assert.equal(second.lastResponse.headers['idempotent-replayed'], undefined);
      const afterGet = await stripe.customers.create({ email: 'i1@example.com' }, { idempotencyKey: key });
      assert.match(afterGet.id, /^cus_/);
      assert.equal(afterGet.lastResponse.headers['idempotent-replayed'], undefined);
    });

    it('I2: the SDK sends idempotencyKey as the Idempotency-Key header and reads it back', async () => {
      const key = freshKey('i2');
      const customer = await stripe.customers.create({ email: 'i2@example.com' }, { idempotencyKey: key });
      assert.equal(customer.lastResponse.idempotencyKey, key);
      const replay = await stripe.customers.create({ email: 'i2@example.com' }, { idempotencyKey: key });
      assert.equal(replay.id, customer.id);
    });

    it('I3: a 255-character key is accepted, a 256-character key is a 400 invalid_request_error', async () => {
      const ok = await stripe.customers.create({}, { idempotencyKey: freshKey('i3').padEnd(255, 'x') });
      assert.match(ok.id, /^cus_/);
      const error = await captureError(() =>
        stripe.customers.create({}, { idempotencyKey: freshKey('i3').padEnd(256, 'x') }),
      );
      assert.ok(error instanceof Stripe.errors.StripeInvalidRequestError);
      assert.equal(error.statusCode, 400);
      assert.equal(error.type, 'StripeInvalidRequestError');
      assert.equal(error.raw && (error.raw as { type?: string }).type, 'invalid_request_error');
    });

    it('I4: a Stripe-Account header is a separate key namespace', async function () {
      // Real Stripe needs a connected account for this header, which a plain test account lacks.
      const emulator = emulatorOnly(this, target);
      const client = emulatorClient(emulator);
      const key = freshKey('i4');
      const platform = await client.customers.create({ email: 'a@example.com' }, { idempotencyKey: key });
      const connected = await client.customers.create(
        { email: 'a@example.com' },
        { idempotencyKey: key, stripeAccount: 'acct_1EmulatorTest' },
      );
      assert.notEqual(connected.id, platform.id);
      assert.equal(connected.lastResponse.headers['idempotent-replayed'], undefined);
      const connectedAgain = await client.customers.create(
        { email: 'a@example.com' },
        { idempotencyKey: key, stripeAccount: 'acct_1EmulatorTest' },
      );
      assert.equal(connectedAgain.id, connected.id);
      assert.equal(connectedAgain.lastResponse.headers['idempotent-replayed'], 'true');
    });

    it('I5: a key older than the TTL is pruned and the request runs as a new one', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('i5');
      const params = cardPayment('pm_card_visa');
      const first = await stripe.paymentIntents.create(params, { idempotencyKey: key });
      emulator.control.advanceClock(24 * 60 * 60 - 60);
      const withinDay = await stripe.paymentIntents.create(params, { idempotencyKey: key });
      assert.equal(withinDay.id, first.id);
      emulator.control.advanceClock(61);
      const afterDay = await stripe.paymentIntents.create(params, { idempotencyKey: key });
      assert.notEqual(afterDay.id, first.id);
      assert.equal(afterDay.lastResponse.headers['idempotent-replayed'], undefined);
    });

    it('I6: once execution starts the outcome is stored: 2xx, 402 declines and business 4xx', async () => {
      const okKey = freshKey('i6-ok');
      const ok = await stripe.paymentIntents.create(cardPayment('pm_card_visa'), { idempotencyKey: okKey });
      assert.equal(
        (await stripe.paymentIntents.create(cardPayment('pm_card_visa'), { idempotencyKey: okKey })).id,
        ok.id,
      );

      const declineKey = freshKey('i6-402');
      const declined = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_chargeDeclined'), { idempotencyKey: declineKey }),
      );
      const declinedAgain = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_chargeDeclined'), { idempotencyKey: declineKey }),
      );
      assert.equal(declined.statusCode, 402);
      assert.equal(declinedAgain.statusCode, 402);
      assert.equal(declinedAgain.headers?.['idempotent-replayed'], 'true');
      assert.equal(declinedAgain.payment_intent?.id, declined.payment_intent?.id);

      const captureKey = freshKey('i6-4xx');
      const notCapturable = await captureError(() =>
        stripe.paymentIntents.capture(ok.id, {}, { idempotencyKey: captureKey }),
      );
      assert.equal(notCapturable.statusCode, 400);
      const replayed = await captureError(() =>
        stripe.paymentIntents.capture(ok.id, {}, { idempotencyKey: captureKey }),
      );
      assert.equal(replayed.headers?.['idempotent-replayed'], 'true');
      assert.equal(replayed.message, notCapturable.message);
    });

    it('I7: parameter-validation 400s and 401s are not stored: a corrected retry with the same key runs', async () => {
      const key = freshKey('i7');
      const invalid = await captureError(() =>
        stripe.paymentIntents.create({ amount: 2000 } as Stripe.PaymentIntentCreateParams, {
          idempotencyKey: key,
        }),
      );
      assert.equal(invalid.statusCode, 400);
      assert.equal(invalid.code, 'parameter_missing');
      const fixed = await stripe.paymentIntents.create(cardPayment('pm_card_visa'), { idempotencyKey: key });
      assert.equal(fixed.status, 'succeeded');
      assert.equal(fixed.lastResponse.headers['idempotent-replayed'], undefined);

      const authKey = freshKey('i7-401');
      const wrongKeyClient =
        target.emulator === undefined
          ? new Stripe('sk_test_not_a_real_key_000000000000', { maxNetworkRetries: 0 })
          : emulatorClient(target.emulator, {}, 'rk_live_wrong');
      const unauthorized = await captureError(() =>
        wrongKeyClient.customers.create({}, { idempotencyKey: authKey }),
      );
      assert.ok(unauthorized instanceof Stripe.errors.StripeAuthenticationError);
      const authorized = await stripe.customers.create({}, { idempotencyKey: authKey });
      assert.equal(authorized.lastResponse.headers['idempotent-replayed'], undefined);
    });

    it('I7: a 429 is not stored', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('i7-429');
      emulator.control.addFault({ fault: 'rate_limit_429', idempotencyKey: key, times: 1 });
      const limited = await captureError(() => stripe.customers.create({}, { idempotencyKey: key }));
      assert.equal(limited.statusCode, 429);
      const next = await stripe.customers.create({}, { idempotencyKey: key });
      assert.equal(next.lastResponse.headers['idempotent-replayed'], undefined);
    });

    it('I8: a replay has the same status and byte-identical body, Idempotent-Replayed, Original-Request and a new Request-Id', async () => {
      const key = freshKey('i8');
      const first = await stripe.paymentIntents.create(cardPayment('pm_card_visa'), { idempotencyKey: key });
      const second = await stripe.paymentIntents.create(cardPayment('pm_card_visa'), { idempotencyKey: key });
      assert.equal(second.lastResponse.statusCode, first.lastResponse.statusCode);
      assert.deepEqual({ ...second, lastResponse: undefined }, { ...first, lastResponse: undefined });
      assert.equal(second.lastResponse.headers['idempotent-replayed'], 'true');
      assert.equal(second.lastResponse.headers['original-request'], first.lastResponse.requestId);
      assert.notEqual(second.lastResponse.requestId, first.lastResponse.requestId);
      assert.match(second.lastResponse.requestId, /^req_[A-Za-z0-9]{14}$/);
      assert.equal(second.lastResponse.headers['idempotency-key'], key);
    });

    it('I8: replayed bytes are identical on the wire', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('i8-raw');
      const request = {
        method: 'POST',
        path: '/v1/customers',
        headers: {
          Authorization: `Bearer ${target.secretKey}`,
          'Content-Type': 'application/x-www-form-urlencoded',
          'Idempotency-Key': key,
        },
        body: 'email=raw%40example.com&metadata[order_id]=o-1',
      };
      const first = await rawRequest(emulator, request);
      const second = await rawRequest(emulator, request);
      assert.equal(second.status, first.status);
      assert.equal(second.body, first.body);
      assert.equal(second.headers['idempotent-replayed'], 'true');
    });

    it('I9: a first response echoes Idempotency-Key, Original-Request equals Request-Id, no Idempotent-Replayed', async () => {
      const key = freshKey('i9');
      const customer = await stripe.customers.create({ email: 'i9@example.com' }, { idempotencyKey: key });
      const headers = customer.lastResponse.headers;
      assert.equal(headers['idempotency-key'], key);
      assert.equal(headers['original-request'], customer.lastResponse.requestId);
      assert.equal(headers['idempotent-replayed'], undefined);
      assert.match(customer.lastResponse.requestId, /^req_[A-Za-z0-9]{14}$/);
    });

    it('I10: the same key with other parameters is a 400 idempotency_error with no code, not stored', async () => {
      const key = freshKey('i10');
      const original = await stripe.paymentIntents.create(
        cardPayment('pm_card_visa', { metadata: { order_id: 'a' } }),
        { idempotencyKey: key },
      );
      const error = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_visa', { metadata: { order_id: 'b' } }), {
          idempotencyKey: key,
        }),
      );
      assert.ok(error instanceof Stripe.errors.StripeIdempotencyError);
      assert.equal(error.statusCode, 400);
      assert.equal(error.code, undefined);
      assert.equal(error.message, PARAMS_MESSAGE(key));
      const replay = await stripe.paymentIntents.create(
        cardPayment('pm_card_visa', { metadata: { order_id: 'a' } }),
        { idempotencyKey: key },
      );
      assert.equal(replay.id, original.id);
      assert.equal(replay.lastResponse.headers['idempotent-replayed'], 'true');
    });

    it('I11: the same key on another endpoint is a 400 idempotency_error naming both endpoints', async () => {
      const key = freshKey('i11');
      await stripe.customers.create({ email: 'i11@example.com' }, { idempotencyKey: key });
      const error = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_visa'), { idempotencyKey: key }),
      );
      assert.ok(error instanceof Stripe.errors.StripeIdempotencyError);
      assert.equal(error.statusCode, 400);
      assert.ok(
        error.message.startsWith(
          'Keys for idempotent requests can only be used for the same endpoint they were first used for (',
        ),
        error.message,
      );
      assert.ok(error.message.includes('/v1/customers'), error.message);
      assert.ok(error.message.includes('/v1/payment_intents'), error.message);
    });

    it('I12: same key while the first request still runs gets 409 idempotency_key_in_use, not stored', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('i12');
      emulator.control.addFault({ fault: 'slow', idempotencyKey: key, delayMs: 1500, times: 1 });
      const params = cardPayment('pm_card_visa');
      const first = stripe.paymentIntents.create(params, { idempotencyKey: key });
      await untilFaultHit(emulator);
      const conflict = await captureError(() =>
        stripe.paymentIntents.create(params, { idempotencyKey: key }),
      );
      assert.ok(conflict instanceof Stripe.errors.StripeAPIError);
      assert.ok(!(conflict instanceof Stripe.errors.StripeIdempotencyError));
      assert.equal(conflict.statusCode, 409);
      assert.equal(conflict.code, 'idempotency_key_in_use');
      assert.equal((conflict.raw as { type?: string }).type, 'invalid_request_error');
      const original = await first;
      const replay = await stripe.paymentIntents.create(params, { idempotencyKey: key });
      assert.equal(replay.id, original.id);
      assert.equal(replay.lastResponse.headers['idempotent-replayed'], 'true');
    });

    it('I13: a 500 is stored and replayed with Stripe-Should-Retry: false', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('i13');
      emulator.control.addFault({ fault: 'stored_500', idempotencyKey: key, times: 1 });
      const first = await captureError(() => stripe.customers.create({}, { idempotencyKey: key }));
      assert.ok(first instanceof Stripe.errors.StripeAPIError);
      assert.equal(first.statusCode, 500);
      assert.equal(first.headers?.['stripe-should-retry'], 'false');
      const replay = await captureError(() => stripe.customers.create({}, { idempotencyKey: key }));
      assert.equal(replay.statusCode, 500);
      assert.equal(replay.headers?.['idempotent-replayed'], 'true');
      assert.equal(replay.headers?.['stripe-should-retry'], 'false');
    });

    it('I14: Stripe-Should-Retry is true for lock timeouts, false for stored 500s, absent on a decline', async function () {
      const emulator = emulatorOnly(this, target);
      emulator.control.addFault({ fault: 'lock_timeout_429', path: '/v1/customers', times: 1 });
      const locked = await captureError(() => stripe.customers.create({}));
      assert.equal(locked.headers?.['stripe-should-retry'], 'true');
      emulator.control.addFault({ fault: 'stored_500', path: '/v1/customers', times: 1 });
      const failed = await captureError(() => stripe.customers.create({}));
      assert.equal(failed.headers?.['stripe-should-retry'], 'false');
      const declined = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_chargeDeclined')),
      );
      assert.equal(declined.headers?.['stripe-should-retry'], undefined);
    });

    it('I15: after a network error, retrying with the same key and parameters gives the definite answer', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('i15');
      emulator.control.addFault({ fault: 'lose_response_after_commit', idempotencyKey: key, times: 2 });
      const params = cardPayment('pm_card_visa', { metadata: { order_id: key } });
      const lost = await captureError(() => stripe.paymentIntents.create(params, { idempotencyKey: key }));
      assert.ok(lost instanceof Stripe.errors.StripeConnectionError);
      const definite = await stripe.paymentIntents.create(params, { idempotencyKey: key });
      assert.equal(definite.status, 'succeeded');
      assert.equal(definite.lastResponse.headers['idempotent-replayed'], 'true');
      const charges = emulator.control
        .ledger()
        .payment_intents.filter((pi) => pi.metadata['order_id'] === key);
      assert.deepEqual(
        charges.map((pi) => pi.successful_charges),
        [1],
      );
    });

    it('I16: after a 4xx the same key keeps answering the same; a fixed request needs a new key', async () => {
      const key = freshKey('i16');
      const declined = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_visa_chargeDeclinedInsufficientFunds'), {
          idempotencyKey: key,
        }),
      );
      assert.equal(declined.decline_code, 'insufficient_funds');
      const sameKey = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_visa_chargeDeclinedInsufficientFunds'), {
          idempotencyKey: key,
        }),
      );
      assert.equal(sameKey.headers?.['idempotent-replayed'], 'true');
      const fixed = await stripe.paymentIntents.create(cardPayment('pm_card_visa'), {
        idempotencyKey: freshKey('i16-new'),
      });
      assert.equal(fixed.status, 'succeeded');
    });

    it('I17: a rate_limit 429 is not retried by the SDK; a lock_timeout 429 is', async function () {
      const emulator = emulatorOnly(this, target);
      const retrying = emulatorClient(emulator, { maxNetworkRetries: 2 });
      const before = statCount('POST /v1/customers');
      emulator.control.addFault({ fault: 'rate_limit_429', path: '/v1/customers', times: 1 });
      const limited = await captureError(() => retrying.customers.create({}));
      assert.ok(limited instanceof Stripe.errors.StripeRateLimitError);
      assert.equal(limited.code, 'rate_limit');
      assert.equal(limited.headers?.['stripe-should-retry'], undefined);
      assert.equal(statCount('POST /v1/customers') - before, 1);

      emulator.control.addFault({ fault: 'lock_timeout_429', path: '/v1/customers', times: 1 });
      const middle = statCount('POST /v1/customers');
      const customer = await retrying.customers.create({});
      assert.match(customer.id, /^cus_/);
      assert.equal(statCount('POST /v1/customers') - middle, 2);
    });

    it('I18: events carry request.id and request.idempotency_key', async () => {
      const key = freshKey('i18');
      const pi = await stripe.paymentIntents.create(cardPayment('pm_card_visa'), { idempotencyKey: key });
      const events = await eventually(
        () => stripe.events.list({ type: 'payment_intent.succeeded', limit: 20 }),
        (page) => page.data.some((event) => (event.data.object as { id?: string }).id === pi.id),
      );
      const event = events.data.find((candidate) => (candidate.data.object as { id?: string }).id === pi.id);
      assert.ok(event);
      assert.equal(event.request?.id, pi.lastResponse.requestId);
      assert.equal(event.request?.idempotency_key, key);
    });

    it('I19: parameters compare canonically: key order is free, any value change is a mismatch', async () => {
      const key = freshKey('i19');
      const first = await stripe.customers.create(
        { email: 'i19@example.com', metadata: { a: '1', b: '2' } },
        { idempotencyKey: key },
      );
      const reordered = await stripe.customers.create(
        { metadata: { b: '2', a: '1' }, email: 'i19@example.com' },
        { idempotencyKey: key },
      );
      assert.equal(reordered.id, first.id);
      assert.equal(reordered.lastResponse.headers['idempotent-replayed'], 'true');
      const changed = await captureError(() =>
        stripe.customers.create(
          { email: 'i19@example.com', metadata: { a: '1', b: '3' } },
          { idempotencyKey: key },
        ),
      );
      assert.ok(changed instanceof Stripe.errors.StripeIdempotencyError);
    });

    it('I20: same key with other parameters while the first still runs gets 409 (the lock is checked first)', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('i20');
      emulator.control.addFault({ fault: 'slow', idempotencyKey: key, delayMs: 1500, times: 1 });
      const first = stripe.customers.create({ email: 'first@example.com' }, { idempotencyKey: key });
      await untilFaultHit(emulator);
      const conflict = await captureError(() =>
        stripe.customers.create({ email: 'other@example.com' }, { idempotencyKey: key }),
      );
      assert.equal(conflict.statusCode, 409);
      assert.equal(conflict.code, 'idempotency_key_in_use');
      await first;
      const mismatch = await captureError(() =>
        stripe.customers.create({ email: 'other@example.com' }, { idempotencyKey: key }),
      );
      assert.ok(mismatch instanceof Stripe.errors.StripeIdempotencyError);
    });
  });

  describe('faults', () => {
    it('lose response after commit: StripeConnectionError although the charge happened (the ghost transaction)', async function () {
      const emulator = emulatorOnly(this, target);
      const orderId = freshKey('ghost');
      emulator.control.addFault({ fault: 'lose_response_after_commit', metadata: { order_id: orderId } });
      const error = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_visa', { metadata: { order_id: orderId } })),
      );
      assert.ok(error instanceof Stripe.errors.StripeConnectionError);
      const ledger = emulator.control
        .ledger()
        .payment_intents.filter((pi) => pi.metadata['order_id'] === orderId);
      // The SDK retries a closed connection once with the same key: one execution, one charge.
      assert.equal(ledger.length, 1);
      assert.equal(ledger[0]?.status, 'succeeded');
      assert.equal(ledger[0]?.successful_charges, 1);
    });

    it('reset before execution: a connection error with nothing executed; the SDK retries once even at 0', async function () {
      const emulator = emulatorOnly(this, target);
      const orderId = freshKey('reset');
      const before = statCount('POST /v1/payment_intents');
      emulator.control.addFault({ fault: 'reset_before_execution', metadata: { order_id: orderId }, nth: 1 });
      const pi = await stripe.paymentIntents.create(
        cardPayment('pm_card_visa', { metadata: { order_id: orderId } }),
      );
      assert.equal(pi.status, 'succeeded');
      assert.equal(statCount('POST /v1/payment_intents') - before, 2);

      const alwaysId = freshKey('reset-always');
      emulator.control.addFault({ fault: 'reset_before_execution', metadata: { order_id: alwaysId } });
      const error = await captureError(() =>
        stripe.paymentIntents.create(cardPayment('pm_card_visa', { metadata: { order_id: alwaysId } })),
      );
      assert.ok(error instanceof Stripe.errors.StripeConnectionError);
      assert.equal(
        emulator.control.ledger().payment_intents.filter((p) => p.metadata['order_id'] === alwaysId).length,
        0,
      );
    });

    it('slow: the client times out; a quick retry meets 409, a later one the replay', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('slow');
      emulator.control.addFault({ fault: 'slow', idempotencyKey: key, delayMs: 2000 });
      const impatient = emulatorClient(emulator, { timeout: 300 });
      const params = cardPayment('pm_card_visa');
      const timedOut = await captureError(() =>
        impatient.paymentIntents.create(params, { idempotencyKey: key }),
      );
      assert.ok(timedOut instanceof Stripe.errors.StripeConnectionError);
      const quick = await captureError(() => stripe.paymentIntents.create(params, { idempotencyKey: key }));
      assert.equal(quick.statusCode, 409);
      assert.equal(quick.code, 'idempotency_key_in_use');
      await untilFaultReleased(emulator, key);
      const later = await stripe.paymentIntents.create(params, { idempotencyKey: key });
      assert.equal(later.status, 'succeeded');
      assert.equal(later.lastResponse.headers['idempotent-replayed'], 'true');
    });

    it('truncated body: StripeConnectionError and no SDK retry', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('truncated');
      emulator.control.addFault({ fault: 'truncated_body', idempotencyKey: key });
      const retrying = emulatorClient(emulator, { maxNetworkRetries: 2 });
      const before = statCount('POST /v1/payment_intents');
      const error = await captureError(() =>
        retrying.paymentIntents.create(cardPayment('pm_card_visa'), { idempotencyKey: key }),
      );
      assert.ok(error instanceof Stripe.errors.StripeConnectionError);
      assert.equal(statCount('POST /v1/payment_intents') - before, 1);
      emulator.control.clearFaults();
      const replay = await stripe.paymentIntents.create(cardPayment('pm_card_visa'), { idempotencyKey: key });
      assert.equal(replay.lastResponse.headers['idempotent-replayed'], 'true');
    });

    it('stored 500: nothing executes, and every retry with that key gets the 500 with Stripe-Should-Retry: false', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('stored500');
      const orderId = freshKey('stored500-order');
      emulator.control.addFault({ fault: 'stored_500', idempotencyKey: key, times: 1 });
      const retrying = emulatorClient(emulator, { maxNetworkRetries: 2 });
      const params = cardPayment('pm_card_visa', { metadata: { order_id: orderId } });
      const first = await captureError(() => retrying.paymentIntents.create(params, { idempotencyKey: key }));
      assert.ok(first instanceof Stripe.errors.StripeAPIError);
      assert.equal(first.statusCode, 500);
      assert.equal(first.headers?.['stripe-should-retry'], 'false');
      const again = await captureError(() => retrying.paymentIntents.create(params, { idempotencyKey: key }));
      assert.equal(again.statusCode, 500);
      assert.equal(again.headers?.['idempotent-replayed'], 'true');
      assert.equal(
        emulator.control.ledger().payment_intents.filter((p) => p.metadata['order_id'] === orderId).length,
        0,
      );
    });

    it('transient 500: not stored, so the SDK retry succeeds', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('transient');
      emulator.control.addFault({ fault: 'transient_500', idempotencyKey: key, times: 1 });
      const once = await captureError(() => stripe.customers.create({}, { idempotencyKey: key }));
      assert.ok(once instanceof Stripe.errors.StripeAPIError);
      assert.equal(once.statusCode, 500);
      assert.equal(once.headers?.['stripe-should-retry'], undefined);

      const retryKey = freshKey('transient-retry');
      emulator.control.addFault({ fault: 'transient_500', idempotencyKey: retryKey, times: 1 });
      const retrying = emulatorClient(emulator, { maxNetworkRetries: 1 });
      const customer = await retrying.customers.create({}, { idempotencyKey: retryKey });
      assert.equal(customer.lastResponse.headers['idempotent-replayed'], undefined);
    });

    it('429 rate_limit: StripeRateLimitError without Stripe-Should-Retry, not retried', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('ratelimit');
      emulator.control.addFault({ fault: 'rate_limit_429', idempotencyKey: key });
      const retrying = emulatorClient(emulator, { maxNetworkRetries: 2 });
      const before = statCount('POST /v1/customers');
      const error = await captureError(() => retrying.customers.create({}, { idempotencyKey: key }));
      assert.ok(error instanceof Stripe.errors.StripeRateLimitError);
      assert.equal(error.statusCode, 429);
      assert.equal(error.code, 'rate_limit');
      assert.equal(error.headers?.['stripe-should-retry'], undefined);
      assert.equal(statCount('POST /v1/customers') - before, 1);
    });

    it('429 lock_timeout: Stripe-Should-Retry: true, and the SDK retries it', async function () {
      const emulator = emulatorOnly(this, target);
      const key = freshKey('locktimeout');
      emulator.control.addFault({ fault: 'lock_timeout_429', idempotencyKey: key });
      const error = await captureError(() => stripe.customers.create({}, { idempotencyKey: key }));
      assert.ok(error instanceof Stripe.errors.StripeRateLimitError);
      assert.equal(error.code, 'lock_timeout');
      assert.equal(error.headers?.['stripe-should-retry'], 'true');
      emulator.control.clearFaults();
      emulator.control.addFault({ fault: 'lock_timeout_429', idempotencyKey: key, times: 1 });
      const retrying = emulatorClient(emulator, { maxNetworkRetries: 1 });
      const customer = await retrying.customers.create({}, { idempotencyKey: key });
      assert.match(customer.id, /^cus_/);
    });

    it('search lag: a new object appears in search only after the configured lag', async function () {
      const emulator = emulatorOnly(this, target);
      emulator.control.configure({ searchLagSeconds: 30 });
      try {
        const orderId = freshKey('lag');
        await stripe.paymentIntents.create(cardPayment('pm_card_visa', { metadata: { order_id: orderId } }));
        const query = `metadata['order_id']:'${orderId}'`;
        const miss = await stripe.paymentIntents.search({ query });
        assert.equal(miss.data.length, 0);
        emulator.control.advanceClock(31);
        const hit = await stripe.paymentIntents.search({ query });
        assert.equal(hit.data.length, 1);
        assert.equal(hit.data[0]?.status, 'succeeded');
      } finally {
        emulator.control.configure({ searchLagSeconds: 0 });
      }
    });
  });
});
