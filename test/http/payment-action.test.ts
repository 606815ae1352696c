import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { type FastifyInstance } from 'fastify';
import type Stripe from 'stripe';
import { getCheckoutHandle, getCheckoutStatus } from '../../src/client';
import { buildHttpIntake } from '../../src/http/server';
import { type PaymentAction } from '../../src/payment-action';
import { createStripeClient } from '../../src/stripe/client';
import { uniqueName } from '../support/temporal';
import { authenticateLikeStripeJs } from './stripe-js';
import {
  FAST,
  orderInput,
  startIntakeFixture,
  successfulCharges,
  waitForStatus,
  type IntakeFixture,
} from './fixture';

interface ErrorJson {
  error: { code: string; message: string; fields?: { field: string; message: string }[] };
}

const THREE_D_SECURE = 'pm_card_threeDSecure2Required';

/** Every line the intake logs, kept for the "the secret is never logged" assertions. */
class LogLines {
  readonly lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  text(): string {
    return this.lines.join('');
  }
}

/** A port nothing listens on: a Stripe client pointed there gets a connection error. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

describe('HTTP intake: GET /v1/checkouts/{orderId}/payment-action', function () {
  this.timeout(90_000);
  let f: IntakeFixture;
  let stripe: Stripe;
  let app: FastifyInstance;
  const log = new LogLines();

  before(async function () {
    this.timeout(180_000);
    f = await startIntakeFixture('http payment action');
    stripe = createStripeClient({
      secretKey: 'sk_test_paymentAction',
      timeoutMs: 5_000,
      apiBase: { host: f.emulator.host, port: f.emulator.port, protocol: 'http' },
    });
    app = buildHttpIntake({
      client: f.client,
      taskQueue: f.taskQueue,
      webhookSecrets: [],
      stripe,
      logLevel: 'info',
      logDestination: log,
    });
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await f?.close();
  });

  const title = (ctx: Mocha.Context): string => ctx.test?.title ?? 'test';
  const paymentAction = (orderId: string, on: FastifyInstance = app) =>
    on.inject({ method: 'GET', url: `/v1/checkouts/${encodeURIComponent(orderId)}/payment-action` });

  it("hands over the PaymentIntent's client secret and next action, and the checkout completes once the customer authenticates with them", async function () {
    const input = orderInput(f, title(this), THREE_D_SECURE);
    const started = await app.inject({ method: 'POST', url: '/v1/checkouts', payload: input });
    assert.equal(started.statusCode, 201, started.body);
    const waiting = await waitForStatus(f, input.orderId, (s) => s.state === 'awaiting_customer_action');
    const piId = waiting.paymentIntentId;
    assert.ok(piId);

    const res = await paymentAction(input.orderId);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    const action = res.json<PaymentAction>();
    const pi = await stripe.paymentIntents.retrieve(piId);
    assert.deepEqual(action, {
      orderId: input.orderId,
      paymentIntentId: piId,
      status: 'requires_action',
      clientSecret: pi.client_secret,
      nextAction: { type: 'use_stripe_sdk' },
    });
    const secret = action.clientSecret;

    await authenticateLikeStripeJs(stripe, secret);
    await waitForStatus(f, input.orderId, (s) => s.state === 'completed');
    assert.equal(successfulCharges(f, input.orderId), 1);

    const after = await paymentAction(input.orderId);
    assert.equal(after.statusCode, 409, after.body);
    assert.equal(after.json<ErrorJson>().error.code, 'not_allowed_in_current_state');
    assert.match(after.json<ErrorJson>().error.message, /is completed, not awaiting_customer_action/);

    // The secret went to the caller and nowhere else: not the intake's log (which did record the
    // requests), not the workflow's history or its status query.
    assert.ok(
      log.lines.some((l) => l.includes(`/v1/checkouts/${input.orderId}/payment-action`)),
      'the request lines were logged',
    );
    assert.ok(!log.text().includes(secret), 'the client secret is not in the intake log');
    const history = await getCheckoutHandle(f.client, input.orderId).fetchHistory();
    assert.ok(!JSON.stringify(history).includes(secret), 'the client secret is not in the history');
    const status = await getCheckoutStatus(f.client, input.orderId);
    assert.ok(!JSON.stringify(status).includes(secret), 'the client secret is not in the status');
  });

  it('answers 409 naming the PaymentIntent status once it has moved on, 503 when Stripe cannot be read, and passes on a redirect URL', async function () {
    // Polling once a minute and no webhooks: the checkout keeps waiting after the PaymentIntent moved.
    const input = orderInput(f, title(this), THREE_D_SECURE, { ...FAST, paymentPollIntervalMs: 60_000 });
    await app.inject({ method: 'POST', url: '/v1/checkouts', payload: input });
    const waiting = await waitForStatus(f, input.orderId, (s) => s.state === 'awaiting_customer_action');
    const piId = waiting.paymentIntentId;
    assert.ok(piId);

    const unreachable = buildHttpIntake({
      client: f.client,
      taskQueue: f.taskQueue,
      webhookSecrets: [],
      stripe: createStripeClient({
        secretKey: 'sk_test_paymentAction',
        timeoutMs: 2_000,
        apiBase: { host: '127.0.0.1', port: await closedPort(), protocol: 'http' },
      }),
    });
    // A redirect-based next action (a confirmation with a return_url) names where to send the customer.
    const redirecting = buildHttpIntake({
      client: f.client,
      taskQueue: f.taskQueue,
      webhookSecrets: [],
      stripe: {
        paymentIntents: {
          retrieve: async (id: string) => ({
            ...(await stripe.paymentIntents.retrieve(id)),
            next_action: {
              type: 'redirect_to_url',
              redirect_to_url: {
                url: 'https://hooks.example.com/3ds',
                return_url: 'https://shop.example.com',
              },
            },
          }),
        },
      } as unknown as Stripe,
    });
    try {
      const down = await paymentAction(input.orderId, unreachable);
      assert.equal(down.statusCode, 503, down.body);
      assert.equal(down.json<ErrorJson>().error.code, 'stripe_unavailable');
      assert.match(down.json<ErrorJson>().error.message, /StripeConnectionError/);

      const redirect = await paymentAction(input.orderId, redirecting);
      assert.equal(redirect.statusCode, 200, redirect.body);
      assert.deepEqual(redirect.json<PaymentAction>().nextAction, {
        type: 'redirect_to_url',
        redirectToUrl: 'https://hooks.example.com/3ds',
      });
    } finally {
      await unreachable.close();
      await redirecting.close();
    }

    f.emulator.control.authenticate(piId, 'succeed');
    assert.equal((await getCheckoutStatus(f.client, input.orderId)).state, 'awaiting_customer_action');
    const moved = await paymentAction(input.orderId);
    assert.equal(moved.statusCode, 409, moved.body);
    const error = moved.json<ErrorJson>().error;
    assert.equal(error.code, 'not_allowed_in_current_state');
    assert.match(error.message, new RegExp(`PaymentIntent ${piId} .* is succeeded, not requires_action`));
    assert.equal(successfulCharges(f, input.orderId), 1);
  });

  it('answers 409 naming the state for a checkout that is not waiting for the customer, and for a hosted one', async function () {
    const paid = orderInput(f, `${title(this)}-paid`);
    await app.inject({ method: 'POST', url: '/v1/checkouts', payload: paid });
    await waitForStatus(f, paid.orderId, (s) => s.state === 'completed');
    const declined = orderInput(f, `${title(this)}-declined`, 'pm_card_chargeDeclined');
    await app.inject({ method: 'POST', url: '/v1/checkouts', payload: declined });
    await waitForStatus(f, declined.orderId, (s) => s.state === 'declined');
    for (const [orderId, state] of [
      [paid.orderId, 'completed'],
      [declined.orderId, 'declined'],
    ] as const) {
      const res = await paymentAction(orderId);
      assert.equal(res.statusCode, 409, res.body);
      assert.equal(res.json<ErrorJson>().error.code, 'not_allowed_in_current_state');
      assert.match(
        res.json<ErrorJson>().error.message,
        new RegExp(`is ${state}, not awaiting_customer_action`),
      );
    }

    const hostedOrder = uniqueName(`${title(this)}-hosted`)
      .slice(-60)
      .replace(/^-+/, '');
    const hosted = await app.inject({
      method: 'POST',
      url: '/v1/checkouts',
      payload: {
        mode: 'hosted',
        orderId: hostedOrder,
        amount: 4200,
        currency: 'usd',
        provision: { sku: 'pro-plan', quantity: 1 },
        successUrl: 'https://shop.example.com/thanks',
        cancelUrl: 'https://shop.example.com/cart',
      },
    });
    assert.equal(hosted.statusCode, 201, hosted.body);
    const res = await paymentAction(hostedOrder);
    assert.equal(res.statusCode, 409, res.body);
    assert.match(res.json<ErrorJson>().error.message, /hosted checkout/);
  });

  it('answers 404 for an unknown order and 400 naming orderId for a malformed one', async function () {
    const unknown = await paymentAction(uniqueName(title(this)).slice(-60).replace(/^-+/, ''));
    assert.equal(unknown.statusCode, 404, unknown.body);
    assert.equal(unknown.json<ErrorJson>().error.code, 'not_found');
    for (const bad of ['has spaces', 'x'.repeat(201), 'caf\u00e9']) {
      const res = await paymentAction(bad);
      assert.equal(res.statusCode, 400, `${bad}: ${res.body}`);
      const error = res.json<ErrorJson>().error;
      assert.equal(error.code, 'invalid_request');
      assert.deepEqual(
        error.fields?.map((x) => x.field),
        ['orderId'],
      );
    }
  });

  it('answers 503 not_configured when the intake was given no Stripe client', async function () {
    const bare = buildHttpIntake({ client: f.client, taskQueue: f.taskQueue, webhookSecrets: [] });
    try {
      const res = await paymentAction('order-1', bare);
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json<ErrorJson>().error.code, 'not_configured');
    } finally {
      await bare.close();
    }
  });
});
