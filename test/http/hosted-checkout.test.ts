import assert from 'node:assert/strict';
import { type FastifyInstance } from 'fastify';
import { buildHttpIntake } from '../../src/http/server';
import { checkoutWorkflowId, type CheckoutStatus } from '../../src/workflows/definitions';
import { uniqueName } from '../support/temporal';
import { checkoutExists, orderInput, startIntakeFixture, type IntakeFixture } from './fixture';

interface ErrorJson {
  error: { code: string; message: string; fields?: { field: string; message: string }[] };
}

interface HostedJson {
  orderId: string;
  workflowId: string;
  mode: string;
  state: string;
  checkoutSession: { id: string; url: string | null };
  links: { status: string };
}

describe('HTTP intake: hosted checkouts', function () {
  this.timeout(90_000);
  let f: IntakeFixture;
  let app: FastifyInstance;

  before(async function () {
    this.timeout(180_000);
    f = await startIntakeFixture('http hosted');
    app = buildHttpIntake({ client: f.client, taskQueue: f.taskQueue, webhookSecrets: [] });
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await f?.close();
  });

  const post = (body: unknown) =>
    app.inject({ method: 'POST', url: '/v1/checkouts', payload: body as object });

  function hostedBody(title: string): Record<string, unknown> {
    return {
      mode: 'hosted',
      orderId: uniqueName(title).slice(-60).replace(/^-+/, ''),
      amount: 1999,
      currency: 'eur',
      customerId: f.customerId,
      provision: { sku: 'ebook-7', quantity: 2 },
      successUrl: 'https://shop.example.com/thanks?session_id={CHECKOUT_SESSION_ID}',
      cancelUrl: 'https://shop.example.com/cart',
      options: { paymentPollIntervalMs: 200 },
    };
  }

  it('answers 201 with the hosted page URL, then 200 with the same URL on a repeat', async function () {
    const body = hostedBody(this.test?.title ?? 'hosted 201');
    const first = await post(body);
    assert.equal(first.statusCode, 201, first.body);
    const created = first.json<HostedJson>();
    assert.equal(created.mode, 'hosted');
    assert.equal(created.workflowId, checkoutWorkflowId(String(body.orderId)));
    assert.equal(created.state, 'awaiting_customer_action');
    assert.match(created.checkoutSession.url ?? '', /\/checkout\/pay\/cs_test_/);
    assert.equal(first.headers.location, created.links.status);

    const again = await post(body);
    assert.equal(again.statusCode, 200, again.body);
    assert.equal(again.json<HostedJson>().checkoutSession.url, created.checkoutSession.url);

    const status = await app.inject({ method: 'GET', url: created.links.status });
    assert.equal(status.statusCode, 200);
    const s = status.json<CheckoutStatus>();
    assert.equal(s.mode, 'hosted');
    assert.equal(s.checkoutSession?.id, created.checkoutSession.id);
    assert.equal(s.checkoutSession?.url, created.checkoutSession.url);

    const cancel = await app.inject({
      method: 'POST',
      url: `${created.links.status}/cancel`,
      payload: { actor: 'test', reason: 'cleanup' },
    });
    assert.equal(cancel.statusCode, 200, cancel.body);
    assert.equal(cancel.json<CheckoutStatus>().state, 'canceled');
  });

  it('answers 409 naming the differences when the order already has a hosted checkout with other terms', async function () {
    const body = hostedBody(this.test?.title ?? 'hosted 409');
    assert.equal((await post(body)).statusCode, 201);
    const other = await post({ ...body, amount: 2999 });
    assert.equal(other.statusCode, 409, other.body);
    assert.match(other.body, /amount/);
    await app.inject({
      method: 'POST',
      url: `/v1/checkouts/${String(body.orderId)}/cancel`,
      payload: { actor: 'test', reason: 'cleanup' },
    });
  });

  it('answers 409 naming the mode when the order already has a card checkout, and leaves that checkout alone', async function () {
    const card = orderInput(f, this.test?.title ?? 'hosted after card', 'pm_card_threeDSecure2Required');
    assert.equal((await post(card)).statusCode, 201);
    const hosted = {
      ...hostedBody('unused'),
      orderId: card.orderId,
      amount: card.amount,
      currency: card.currency,
    };
    const answer = await post({ ...hosted, provision: card.provision });
    assert.equal(answer.statusCode, 409, answer.body);
    const json = answer.json<ErrorJson>();
    assert.ok(
      json.error.fields?.some((p) => p.field === 'mode'),
      answer.body,
    );
    const status = await app.inject({ method: 'GET', url: `/v1/checkouts/${card.orderId}` });
    assert.equal(status.json<CheckoutStatus>().mode, undefined);
    await app.inject({
      method: 'POST',
      url: `/v1/checkouts/${card.orderId}/cancel`,
      payload: { actor: 'test', reason: 'cleanup' },
    });
  });

  it('refuses the loser of two intake processes racing on one new order with other terms, naming the fields', async function () {
    const other = buildHttpIntake({ client: f.client, taskQueue: f.taskQueue, webhookSecrets: [] });
    await other.ready();
    try {
      for (let round = 0; round < 3; round++) {
        const body = hostedBody(`${this.test?.title ?? 'hosted race'} ${round}`);
        const [a, b] = await Promise.all([
          post({ ...body, amount: 1000 }),
          other.inject({
            method: 'POST',
            url: '/v1/checkouts',
            payload: { ...body, amount: 9000, currency: 'usd' },
          }),
        ]);
        const codes = [a.statusCode, b.statusCode].sort();
        assert.deepEqual(codes, [201, 409], `${a.body} / ${b.body}`);
        const [won, lost] = a.statusCode === 201 ? [a, b] : [b, a];
        const fields = lost
          .json<ErrorJson>()
          .error.fields?.map((x) => x.field)
          .sort();
        assert.deepEqual(fields, ['amount', 'currency'], lost.body);
        // The winner's checkout charges the winner's terms.
        const status = await app.inject({ method: 'GET', url: `/v1/checkouts/${String(body.orderId)}` });
        const s = status.json<CheckoutStatus>();
        const wonTerms = won.json<{ amount: number; currency: string }>();
        assert.equal(s.amount, wonTerms.amount);
        assert.equal(s.currency, wonTerms.currency);
        await app.inject({
          method: 'POST',
          url: `/v1/checkouts/${String(body.orderId)}/cancel`,
          payload: { actor: 'test', reason: 'cleanup' },
        });
      }
    } finally {
      await other.close();
    }
  });

  it('answers 202 with the status location when Stripe does not create the session in time, and the session URL once it does', async function () {
    const slow = buildHttpIntake({
      client: f.client,
      taskQueue: f.taskQueue,
      webhookSecrets: [],
      hostedSessionWaitMs: 1_500,
    });
    await slow.ready();
    const rule = f.emulator.control.addFault({
      fault: 'transient_500',
      method: 'POST',
      path: '/v1/checkout/sessions',
    });
    try {
      const body = hostedBody(this.test?.title ?? 'hosted 202');
      const started = Date.now();
      const first = await Promise.race([
        slow.inject({ method: 'POST', url: '/v1/checkouts', payload: body }),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('no answer within 15 s while Stripe is down')), 15_000),
        ),
      ]);
      assert.ok(Date.now() - started < 10_000);
      assert.equal(first.statusCode, 202, first.body);
      const json = first.json<HostedJson>();
      assert.equal(first.headers.location, json.links.status);
      assert.ok(Number(first.headers['retry-after']) > 0);
      assert.equal(json.checkoutSession.url, null);
      assert.equal(await checkoutExists(f, String(body.orderId)), true);

      f.emulator.control.clearFaults(rule.id);
      const status = await waitForSession(String(body.orderId));
      const again = await slow.inject({ method: 'POST', url: '/v1/checkouts', payload: body });
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(again.json<HostedJson>().checkoutSession.url, status.checkoutSession?.url);
      await app.inject({
        method: 'POST',
        url: `${json.links.status}/cancel`,
        payload: { actor: 'test', reason: 'cleanup' },
      });
    } finally {
      f.emulator.control.clearFaults(rule.id);
      await slow.close();
    }
  });

  async function waitForSession(orderId: string): Promise<CheckoutStatus> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const s = (await app.inject({ method: 'GET', url: `/v1/checkouts/${orderId}` })).json<CheckoutStatus>();
      if (s.checkoutSession?.url) return s;
      assert.ok(Date.now() < deadline, `no session for ${orderId}: ${JSON.stringify(s.state)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  const badValues: [string, (b: Record<string, unknown>) => Record<string, unknown>][] = [
    ['mode', (b) => ({ ...b, mode: 'popup' })],
    ['orderId', (b) => ({ ...b, orderId: 'has spaces' })],
    ['amount', (b) => ({ ...b, amount: -5 })],
    ['currency', (b) => ({ ...b, currency: 'EUR' })],
    ['customerId', (b) => ({ ...b, customerId: 'acct_123' })],
    ['provision.sku', (b) => ({ ...b, provision: { sku: '', quantity: 1 } })],
    ['provision.quantity', (b) => ({ ...b, provision: { sku: 'x', quantity: 0 } })],
    ['successUrl', (b) => ({ ...b, successUrl: 'ftp://shop.example.com/thanks' })],
    ['successUrl', (b) => ({ ...b, successUrl: 'https://user:pw@shop.example.com/' })],
    ['cancelUrl', (b) => ({ ...b, cancelUrl: '/cart' })],
    // Stripe refuses these after the start, which left a parked checkout and an unusable order id.
    ['successUrl', (b) => ({ ...b, successUrl: 'https://shop.example.com:99999/thanks' })],
    ['cancelUrl', (b) => ({ ...b, cancelUrl: 'https://256.1.1.1/cart' })],
    ['orderId', (b) => ({ ...b, orderId: `${String(b.orderId)}_`.padEnd(192, 'x') })],
    ['cancelUrl', (b) => ({ ...b, cancelUrl: undefined })],
    ['paymentMethodTypes', (b) => ({ ...b, paymentMethodTypes: ['paypal'] })],
    ['paymentMethodId', (b) => ({ ...b, paymentMethodId: 'pm_card_visa' })],
    ['options.sessionTimeoutMs', (b) => ({ ...b, options: { sessionTimeoutMs: 25 * 60 * 60 * 1000 } })],
    ['options.paymentActionTimeoutMs', (b) => ({ ...b, options: { paymentActionTimeoutMs: 1000 } })],
    ['colour', (b) => ({ ...b, colour: 'blue' })],
  ];
  for (const [field, mutate] of badValues) {
    it(`refuses a bad ${field} with a 400 naming it, and starts nothing`, async function () {
      const body = mutate(hostedBody(`${this.test?.title ?? field}`));
      const answer = await post(body);
      assert.equal(answer.statusCode, 400, answer.body);
      const json = answer.json<ErrorJson>();
      assert.equal(json.error.code, 'invalid_request');
      assert.ok(
        json.error.fields?.some((p) => p.field === field),
        `${field} named in ${answer.body}`,
      );
      if (typeof body.orderId === 'string' && /^[A-Za-z0-9_-]+$/.test(body.orderId)) {
        assert.equal(await checkoutExists(f, body.orderId), false);
      }
    });
  }
});
