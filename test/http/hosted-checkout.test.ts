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
