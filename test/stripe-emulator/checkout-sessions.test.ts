import assert from 'node:assert/strict';
import http from 'node:http';
import { type AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { type StripeEmulator, startStripeEmulator } from '../../src/stripe-emulator';
import { webhooksAndCheckoutOf } from '../../src/stripe-emulator/webhooks-and-checkout';

const SUCCESS_URL = 'https://shop.example/done?session_id={CHECKOUT_SESSION_ID}';
const CANCEL_URL = 'https://shop.example/cart';

interface PageResponse {
  readonly status: number;
  readonly location: string | null;
  readonly text: string;
}

/** Submits one of the hosted page's forms the way a browser would, without following redirects. */
async function submitForm(url: string, fields: Record<string, string>): Promise<PageResponse> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
    redirect: 'manual',
  });
  return { status: response.status, location: response.headers.get('location'), text: await response.text() };
}

async function getPage(url: string): Promise<PageResponse> {
  const response = await fetch(url, { redirect: 'manual' });
  return { status: response.status, location: response.headers.get('location'), text: await response.text() };
}

describe('Checkout Sessions', () => {
  let emulator: StripeEmulator;
  let stripe: Stripe;

  before(async () => {
    emulator = await startStripeEmulator({ quiet: true, asyncSettleSeconds: 3 });
    stripe = new Stripe('sk_test_checkout', {
      host: emulator.host,
      port: emulator.port,
      protocol: 'http',
      maxNetworkRetries: 0,
    });
  });

  after(async () => {
    await emulator.stop();
  });

  beforeEach(() => {
    emulator.control.reset();
  });

  function createSession(
    overrides: Partial<Stripe.Checkout.SessionCreateParams> = {},
    options: Stripe.RequestOptions = {},
  ): Promise<Stripe.Response<Stripe.Checkout.Session>> {
    return stripe.checkout.sessions.create(
      {
        mode: 'payment',
        line_items: [
          {
            price_data: { currency: 'usd', unit_amount: 1500, product_data: { name: 'Enamel mug' } },
            quantity: 2,
          },
          {
            price_data: { currency: 'usd', unit_amount: 700, product_data: { name: 'Coffee beans' } },
            quantity: 1,
          },
        ],
        success_url: SUCCESS_URL,
        cancel_url: CANCEL_URL,
        client_reference_id: 'order_42',
        metadata: { order_id: 'order_42' },
        payment_intent_data: { metadata: { order_id: 'order_42', source: 'checkout' } },
        ...overrides,
      },
      options,
    );
  }

  function pay(session: Stripe.Checkout.Session, paymentMethod: string): Promise<PageResponse> {
    return submitForm(`${emulator.url}/checkout/pay/${session.id}`, { payment_method: paymentMethod });
  }

  function authenticate(
    session: Stripe.Checkout.Session,
    outcome: 'complete' | 'fail',
  ): Promise<PageResponse> {
    return submitForm(`${emulator.url}/checkout/pay/${session.id}/authenticate`, { outcome });
  }

  function eventsOfType(
    type: string,
    objectId: string,
  ): Array<{ data: { object: Record<string, unknown> } }> {
    return emulator.events.all().filter((event) => event.type === type && event.data.object.id === objectId);
  }

  function successfulCharges(): number {
    return emulator.control.ledger().payment_intents.reduce((sum, pi) => sum + pi.successful_charges, 0);
  }

  describe('the API', () => {
    it('creates an open, unpaid session whose url is the hosted page, and retrieves it', async () => {
      const before = Math.floor(emulator.clock.now());
      const session = await createSession();
      assert.match(session.id, /^cs_test_[A-Za-z0-9]{40,}$/);
      assert.equal(session.object, 'checkout.session');
      assert.equal(session.status, 'open');
      assert.equal(session.payment_status, 'unpaid');
      assert.equal(session.mode, 'payment');
      assert.equal(session.amount_total, 3700);
      assert.equal(session.amount_subtotal, 3700);
      assert.equal(session.currency, 'usd');
      assert.equal(session.payment_intent, null);
      assert.equal(session.client_reference_id, 'order_42');
      assert.deepEqual(session.metadata, { order_id: 'order_42' });
      assert.equal(session.success_url, SUCCESS_URL);
      assert.equal(session.url, `${emulator.url}/checkout/pay/${session.id}`);
      assert.ok(Math.abs(session.expires_at - (before + 24 * 3600)) <= 2, 'expires 24 h ahead by default');
      const retrieved = await stripe.checkout.sessions.retrieve(session.id);
      assert.equal(retrieved.id, session.id);
      assert.equal(retrieved.status, 'open');
      const items = await stripe.checkout.sessions.listLineItems(session.id);
      assert.deepEqual(
        items.data.map((item) => [item.description, item.quantity, item.amount_total]),
        [
          ['Enamel mug', 2, 3000],
          ['Coffee beans', 1, 700],
        ],
      );
      const expanded = await stripe.checkout.sessions.retrieve(session.id, { expand: ['line_items'] });
      assert.deepEqual(
        expanded.line_items?.data.map((item) => item.description),
        ['Enamel mug', 'Coffee beans'],
      );
      const page = await getPage(session.url ?? '');
      assert.equal(page.status, 200);
      assert.match(page.text, /Enamel mug/);
      assert.match(page.text, /37\.00 USD/);
      assert.match(page.text, /data-testid="pay-button"/);
    });

    it('replays a create with the same idempotency key and refuses the key with other parameters', async () => {
      const first = await createSession({}, { idempotencyKey: 'order_42:checkout' });
      const again = await createSession({}, { idempotencyKey: 'order_42:checkout' });
      assert.equal(again.id, first.id);
      assert.equal(again.lastResponse.headers['idempotent-replayed'], 'true');
      await assert.rejects(
        createSession({ client_reference_id: 'order_43' }, { idempotencyKey: 'order_42:checkout' }),
        Stripe.errors.StripeIdempotencyError,
      );
      const listed = await stripe.checkout.sessions.list({ limit: 10 });
      assert.deepEqual(
        listed.data.map((s) => s.id),
        [first.id],
      );
    });

    it('rejects invalid parameters with Stripe-shaped 400s that are not stored under the key', async () => {
      const now = Math.floor(emulator.clock.now());
      const cases: Array<[Partial<Stripe.Checkout.SessionCreateParams>, string, RegExp]> = [
        [{ line_items: [] }, 'line_items', /`line_items` is required in `payment` mode/],
        [
          { expires_at: now + 10 * 60 },
          'expires_at',
          /must be at least 30 minutes from Checkout Session creation/,
        ],
        [
          { expires_at: now + 25 * 3600 },
          'expires_at',
          /must be less than 24 hours from Checkout Session creation/,
        ],
        [{ mode: 'subscription' }, 'mode', /supports only `payment`/],
        [
          {
            line_items: [{ price_data: { currency: 'usd', unit_amount: 100, product_data: { name: 'x' } } }],
          },
          'line_items[0][quantity]',
          /Missing required param: line_items\[0\]\[quantity\]/,
        ],
        [{ customer: 'cus_missing', customer_email: 'a@b.example' }, 'customer_email', /only specify one/],
      ];
      for (const [overrides, param, message] of cases) {
        await assert.rejects(
          createSession(overrides, { idempotencyKey: `invalid-${param}` }),
          (error: unknown) => {
            assert.ok(error instanceof Stripe.errors.StripeInvalidRequestError, String(error));
            assert.equal(error.statusCode, 400);
            assert.equal(error.param, param);
            assert.match(error.message, message);
            return true;
          },
        );
      }
      const fixed = await createSession({}, { idempotencyKey: 'invalid-line_items' });
      assert.equal(fixed.status, 'open', 'a validation 400 is not stored: the corrected retry runs');
      await assert.rejects(
        createSession({ customer: 'cus_missing' }),
        (error: unknown) =>
          error instanceof Stripe.errors.StripeInvalidRequestError && error.statusCode === 404,
      );
      await assert.rejects(stripe.checkout.sessions.retrieve('cs_test_unknown'), /No such checkout.session/);
    });

    it('accepts expires_at between 30 minutes and 24 hours ahead', async () => {
      const now = Math.floor(emulator.clock.now());
      const soon = await createSession({ expires_at: now + 31 * 60 });
      assert.equal(soon.expires_at, now + 31 * 60);
      const late = await createSession({ expires_at: now + 24 * 3600 - 5 });
      assert.equal(late.expires_at, now + 24 * 3600 - 5);
    });

    it('expires an open session once, emitting checkout.session.expired, and refuses to expire it again', async () => {
      const session = await createSession();
      const expired = await stripe.checkout.sessions.expire(session.id, {}, { idempotencyKey: 'expire-1' });
      assert.equal(expired.status, 'expired');
      assert.equal(expired.url, null);
      assert.equal(eventsOfType('checkout.session.expired', session.id).length, 1);
      await assert.rejects(stripe.checkout.sessions.expire(session.id), (error: unknown) => {
        assert.ok(error instanceof Stripe.errors.StripeInvalidRequestError);
        assert.equal(
          error.message,
          'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of `expired`.',
        );
        return true;
      });
      const replayed = await stripe.checkout.sessions.expire(session.id, {}, { idempotencyKey: 'expire-1' });
      assert.equal(replayed.lastResponse.headers['idempotent-replayed'], 'true');
      assert.equal(replayed.status, 'expired');
      const late = await pay(session, 'pm_card_visa');
      assert.equal(late.status, 410);
      assert.match(late.text, /data-testid="checkout-expired"/);
      assert.equal(successfulCharges(), 0);
    });

    it('expires a session when the emulator clock passes expires_at', async () => {
      const now = Math.floor(emulator.clock.now());
      const session = await createSession({ expires_at: now + 30 * 60 + 10 });
      emulator.control.advanceClock(30 * 60);
      assert.equal(eventsOfType('checkout.session.expired', session.id).length, 0, 'not yet due');
      emulator.control.advanceClock(11);
      assert.equal(
        eventsOfType('checkout.session.expired', session.id).length,
        1,
        'expired as the clock passed',
      );
      const retrieved = await stripe.checkout.sessions.retrieve(session.id);
      assert.equal(retrieved.status, 'expired');
      assert.equal(eventsOfType('checkout.session.expired', session.id).length, 1, 'expired exactly once');
      assert.equal((await pay(session, 'pm_card_visa')).status, 410);
    });

    it('expires a session as real time passes expires_at, with nobody touching it', async () => {
      const now = Math.floor(emulator.clock.now());
      const session = await createSession({ expires_at: now + 30 * 60 + 1 });
      // Moving the emulator clock without its control (as real time would) leaves it to the sweep.
      emulator.clock.advance(30 * 60 + 2);
      const deadline = Date.now() + 3000;
      while (eventsOfType('checkout.session.expired', session.id).length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(eventsOfType('checkout.session.expired', session.id).length, 1);
    });
  });

  describe('paying on the hosted page', () => {
    it('pays with the success card, redirects to success_url and records exactly one charge', async () => {
      const session = await createSession();
      const response = await pay(session, 'pm_card_visa');
      assert.equal(response.status, 303);
      assert.equal(response.location, `https://shop.example/done?session_id=${session.id}`);
      const paid = await stripe.checkout.sessions.retrieve(session.id);
      assert.equal(paid.status, 'complete');
      assert.equal(paid.payment_status, 'paid');
      assert.equal(paid.url, null);
      assert.equal(typeof paid.payment_intent, 'string');
      const pi = await stripe.paymentIntents.retrieve(paid.payment_intent as string);
      assert.equal(pi.status, 'succeeded');
      assert.equal(pi.amount, 3700);
      assert.deepEqual(pi.metadata, { order_id: 'order_42', source: 'checkout' });
      const completed = eventsOfType('checkout.session.completed', session.id);
      assert.equal(completed.length, 1);
      assert.equal(completed[0]?.data.object.payment_status, 'paid');
      assert.equal(completed[0]?.data.object.payment_intent, pi.id);
      const ledger = emulator.control.ledger().payment_intents;
      assert.deepEqual(
        ledger.map((entry) => [entry.id, entry.successful_charges]),
        [[pi.id, 1]],
      );
      const again = await pay(session, 'pm_card_visa');
      assert.equal(again.status, 303, 'a second Pay finds the session complete and charges nothing');
      assert.equal(successfulCharges(), 1);
    });

    it('shows the decline and lets the payer succeed with another card on the same PaymentIntent', async () => {
      const session = await createSession();
      const declined = await pay(session, 'pm_card_chargeDeclined');
      assert.equal(declined.status, 402);
      assert.match(declined.text, /data-testid="payment-error"[^>]*>Your card was declined\./);
      assert.match(declined.text, /data-testid="pay-button"/);
      assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'open');
      const insufficient = await pay(session, 'pm_card_chargeDeclinedInsufficientFunds');
      assert.match(insufficient.text, /Your card has insufficient funds\./);
      const paid = await pay(session, 'pm_card_mastercard');
      assert.equal(paid.status, 303);
      const completed = await stripe.checkout.sessions.retrieve(session.id);
      assert.equal(completed.payment_status, 'paid');
      const ledger = emulator.control.ledger().payment_intents;
      assert.equal(ledger.length, 1, 'every attempt used one PaymentIntent');
      assert.equal(ledger[0]?.id, completed.payment_intent);
      assert.equal(ledger[0]?.successful_charges, 1);
      assert.equal(eventsOfType('checkout.session.completed', session.id).length, 1);
    });

    it('asks for 3-D Secure and completes the payment when the payer completes the challenge', async () => {
      const session = await createSession();
      const challenge = await pay(session, 'pm_card_threeDSecure2Required');
      assert.equal(challenge.status, 303);
      assert.equal(challenge.location, `/checkout/pay/${session.id}/authenticate`);
      const page = await getPage(`${emulator.url}${challenge.location}`);
      assert.equal(page.status, 200);
      assert.match(page.text, /id="authenticate-complete"/);
      assert.match(page.text, /id="authenticate-fail"/);
      const reload = await getPage(session.url ?? '');
      assert.equal(
        reload.location,
        `/checkout/pay/${session.id}/authenticate`,
        'the pending challenge is kept',
      );
      const done = await authenticate(session, 'complete');
      assert.equal(done.status, 303);
      assert.equal(done.location, `https://shop.example/done?session_id=${session.id}`);
      const paid = await stripe.checkout.sessions.retrieve(session.id);
      assert.equal(paid.payment_status, 'paid');
      assert.equal(successfulCharges(), 1);
    });

    it('shows the authentication failure and lets the payer pay with another card', async () => {
      const session = await createSession();
      await pay(session, 'pm_card_threeDSecure2Required');
      const failed = await authenticate(session, 'fail');
      assert.equal(failed.status, 402);
      assert.match(
        failed.text,
        /data-testid="payment-error"[^>]*>The provided PaymentMethod has failed authentication/,
      );
      assert.equal((await stripe.checkout.sessions.retrieve(session.id)).status, 'open');
      assert.equal(successfulCharges(), 0);
      const paid = await pay(session, 'pm_card_visa');
      assert.equal(paid.status, 303);
      assert.equal(successfulCharges(), 1);
    });

    it('cancels a pending 3-D Secure payment when the session expires, so a late completion cannot charge', async () => {
      const session = await createSession();
      await pay(session, 'pm_card_threeDSecure2Required');
      await stripe.checkout.sessions.expire(session.id);
      const late = await authenticate(session, 'complete');
      assert.equal(late.status, 410);
      assert.match(late.text, /checkout-expired/);
      const [entry] = emulator.control.ledger().payment_intents;
      assert.equal(entry?.status, 'canceled');
      assert.equal(successfulCharges(), 0);
    });

    it('charges once when Pay is submitted twice at the same time', async () => {
      const session = await createSession();
      const responses = await Promise.all([pay(session, 'pm_card_visa'), pay(session, 'pm_card_visa')]);
      assert.deepEqual(
        responses.map((r) => r.status),
        [303, 303],
      );
      assert.equal(emulator.control.ledger().payment_intents.length, 1);
      assert.equal(successfulCharges(), 1);
      assert.equal(eventsOfType('checkout.session.completed', session.id).length, 1);
    });

    it('refuses a payment method the page does not offer', async () => {
      const session = await createSession();
      const response = await pay(session, 'pm_usBankAccount_success');
      assert.equal(response.status, 400, 'bank debits are offered only when the session allows them');
      assert.equal(emulator.control.ledger().payment_intents.length, 0);
    });

    it('completes a bank debit as unpaid, then reports async_payment_succeeded when it settles', async () => {
      const session = await createSession({ allowed_payment_method_types: ['card', 'us_bank_account'] });
      const response = await pay(session, 'pm_usBankAccount_success');
      assert.equal(response.status, 303);
      const submitted = await stripe.checkout.sessions.retrieve(session.id);
      assert.equal(submitted.status, 'complete');
      assert.equal(submitted.payment_status, 'unpaid');
      assert.equal(
        eventsOfType('checkout.session.completed', session.id)[0]?.data.object.payment_status,
        'unpaid',
      );
      emulator.control.advanceClock(3);
      const settled = await stripe.checkout.sessions.retrieve(session.id);
      assert.equal(settled.payment_status, 'paid');
      assert.equal(eventsOfType('checkout.session.async_payment_succeeded', session.id).length, 1);
      assert.equal(successfulCharges(), 1);
    });

    it('reports checkout.session.async_payment_failed when the bank debit fails', async () => {
      const session = await createSession({ allowed_payment_method_types: ['card', 'us_bank_account'] });
      assert.equal((await pay(session, 'pm_usBankAccount_accountClosed')).status, 303);
      emulator.control.advanceClock(3);
      const failed = eventsOfType('checkout.session.async_payment_failed', session.id);
      assert.equal(failed.length, 1);
      assert.equal((await stripe.checkout.sessions.retrieve(session.id)).payment_status, 'unpaid');
      assert.equal(successfulCharges(), 0);
    });

    it('answers 404 for an unknown session and redirects to a confirmation page without success_url', async () => {
      assert.equal((await getPage(`${emulator.url}/checkout/pay/cs_test_nope`)).status, 404);
      const session = await createSession({ success_url: undefined });
      const response = await pay(session, 'pm_card_visa');
      assert.equal(response.location, `/checkout/pay/${session.id}/complete`);
      const page = await getPage(`${emulator.url}${response.location ?? ''}`);
      assert.match(page.text, /data-testid="checkout-complete"/);
    });
  });

  describe('webhooks through the emulator', () => {
    it('delivers signed checkout events that the real SDK verifies, and lists the deliveries', async () => {
      const received: Array<{ payload: string; signature: string }> = [];
      const receiver = http.createServer((request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          received.push({
            payload: Buffer.concat(chunks).toString('utf8'),
            signature: String(request.headers['stripe-signature']),
          });
          response.writeHead(received.length === 1 ? 500 : 200).end();
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      try {
        const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
        const created = await fetch(`${emulator.url}/_emulator/webhook_endpoints`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({
            url,
            enabled_events: ['checkout.session.completed'],
            retry_base_delay_ms: 10,
          }),
        });
        assert.equal(created.status, 200);
        const endpoint = (await created.json()) as { id: string; secret: string };
        const session = await createSession();
        await pay(session, 'pm_card_visa');
        await webhooksAndCheckoutOf(emulator.state).webhooks.whenIdle();
        assert.equal(received.length, 2, 'the first attempt failed and was retried');
        for (const delivery of received) {
          const event = stripe.webhooks.constructEvent(delivery.payload, delivery.signature, endpoint.secret);
          assert.equal(event.type, 'checkout.session.completed');
          assert.equal(event.data.object.id, session.id);
        }
        const listed = (await (
          await fetch(`${emulator.url}/_emulator/webhook_deliveries?endpoint=${endpoint.id}`)
        ).json()) as {
          data: Array<{ status: string; attempts: Array<{ status_code: number }> }>;
        };
        assert.deepEqual(
          listed.data.map((d) => [d.status, d.attempts.map((a) => a.status_code)]),
          [['succeeded', [500, 200]]],
        );
        const removed = await fetch(`${emulator.url}/_emulator/webhook_endpoints/${endpoint.id}`, {
          method: 'DELETE',
        });
        assert.deepEqual(await removed.json(), {
          id: endpoint.id,
          object: 'webhook_endpoint',
          deleted: true,
        });
        const invalid = await fetch(`${emulator.url}/_emulator/webhook_endpoints`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: 'url=http%3A%2F%2F127.0.0.1%2F&duplicate=3',
        });
        assert.equal(invalid.status, 400);
      } finally {
        receiver.closeAllConnections();
        await new Promise((resolve) => receiver.close(resolve));
      }
    });
  });
});
