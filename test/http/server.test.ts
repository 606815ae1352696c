import assert from 'node:assert/strict';
import { type FastifyInstance } from 'fastify';
import Stripe from 'stripe';
import { buildHttpIntake, STRIPE_WEBHOOK_PATH } from '../../src/http/server';
import { getRefundsStatus } from '../../src/client';
import {
  MONEY_TAKEN_STATES,
  checkoutWorkflowId,
  refundsWorkflowId,
  type CheckoutInput,
} from '../../src/workflows/definitions';
import {
  checkoutExists,
  orderInput,
  signalCount,
  startIntakeFixture,
  successfulCharges,
  waitForSignalCount,
  waitForStatus,
  type IntakeFixture,
} from './fixture';

const OLD_SECRET = 'whsec_oldSecretForRotation1';
const NEW_SECRET = 'whsec_newSecretForRotation2';

interface ErrorJson {
  error: { code: string; message: string; fields?: { field: string; message: string }[] };
}

describe('HTTP intake', function () {
  this.timeout(90_000);
  let f: IntakeFixture;
  let app: FastifyInstance;

  before(async function () {
    this.timeout(180_000);
    f = await startIntakeFixture('http intake');
    app = buildHttpIntake({
      client: f.client,
      taskQueue: f.taskQueue,
      webhookSecrets: [OLD_SECRET, NEW_SECRET],
    });
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await f?.close();
  });

  const post = (url: string, body: unknown) => app.inject({ method: 'POST', url, payload: body as object });
  const postKeyed = (url: string, key: string, body: unknown) =>
    app.inject({ method: 'POST', url, payload: body as object, headers: { 'idempotency-key': key } });
  const title = (ctx: Mocha.Context): string => ctx.test?.title ?? 'test';

  describe('POST /v1/checkouts', () => {
    it('answers 201 first and 200 with the same body on a repeat, and the order is charged once', async function () {
      const input = orderInput(f, title(this));
      const first = await post('/v1/checkouts', input);
      assert.equal(first.statusCode, 201, first.body);
      assert.equal(first.headers.location, `/v1/checkouts/${input.orderId}`);
      const again = await post('/v1/checkouts', input);
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(again.body, first.body);
      const body = first.json<{ workflowId: string; orderId: string }>();
      assert.equal(body.workflowId, checkoutWorkflowId(input.orderId));
      await waitForStatus(f, input.orderId, (s) => MONEY_TAKEN_STATES.includes(s.state));
      const third = await post('/v1/checkouts', input);
      assert.equal(third.statusCode, 200);
      assert.equal(third.body, first.body);
      assert.equal(successfulCharges(f, input.orderId), 1);
    });

    it('answers a concurrent double-fire with one 201 and one 200, the same body, and charges once', async function () {
      const input = orderInput(f, title(this));
      const answers = await Promise.all([post('/v1/checkouts', input), post('/v1/checkouts', input)]);
      assert.deepEqual(answers.map((a) => a.statusCode).sort(), [200, 201]);
      assert.equal(answers[0]?.body, answers[1]?.body);
      await waitForStatus(f, input.orderId, (s) => MONEY_TAKEN_STATES.includes(s.state));
      assert.equal(successfulCharges(f, input.orderId), 1);
    });

    const badValues: [string, (i: CheckoutInput) => unknown][] = [
      ['orderId', (i) => ({ ...i, orderId: 'has spaces' })],
      ['orderId', (i) => ({ ...i, orderId: 'x'.repeat(201) })],
      ['amount', (i) => ({ ...i, amount: 0 })],
      ['amount', (i) => ({ ...i, amount: 12.5 })],
      ['amount', (i) => ({ ...i, amount: '4200' })],
      ['currency', (i) => ({ ...i, currency: 'USD' })],
      ['customerId', (i) => ({ ...i, customerId: 'customer-1' })],
      ['paymentMethodId', (i) => ({ ...i, paymentMethodId: 'card_123' })],
      ['provision', (i) => ({ ...i, provision: 'pro-plan' })],
      ['provision.sku', (i) => ({ ...i, provision: { sku: 'no spaces!', quantity: 1 } })],
      ['provision.quantity', (i) => ({ ...i, provision: { sku: 'pro', quantity: 0 } })],
      ['options.paymentRetryWindowMs', (i) => ({ ...i, options: { paymentRetryWindowMs: -1 } })],
      ['surprise', (i) => ({ ...i, surprise: true })],
    ];
    for (const [field, mutate] of badValues) {
      it(`rejects a bad ${field} with a 400 naming it and starts nothing`, async function () {
        const input = orderInput(f, `${title(this)}-${field}`);
        const res = await post('/v1/checkouts', mutate(input));
        assert.equal(res.statusCode, 400, res.body);
        const body = res.json<ErrorJson>();
        assert.equal(body.error.code, 'invalid_request');
        assert.deepEqual(
          body.error.fields?.map((x) => x.field),
          [field],
        );
        assert.equal(await checkoutExists(f, input.orderId), false);
      });
    }

    it('names every missing field at once', async () => {
      const res = await post('/v1/checkouts', {});
      assert.equal(res.statusCode, 400);
      const fields = res.json<ErrorJson>().error.fields?.map((x) => x.field);
      assert.deepEqual(fields, [
        'orderId',
        'amount',
        'currency',
        'customerId',
        'paymentMethodId',
        'provision',
      ]);
    });

    it('rejects malformed JSON and other content types with a JSON error', async () => {
      const bad = await app.inject({
        method: 'POST',
        url: '/v1/checkouts',
        payload: '{"orderId": ',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(bad.statusCode, 400);
      assert.ok(bad.json<ErrorJson>().error.message.length > 0);
      const form = await app.inject({
        method: 'POST',
        url: '/v1/checkouts',
        payload: 'orderId=x',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(form.statusCode, 415);
    });

    it('refuses the same order with other terms (409 naming them) and charges nothing more', async function () {
      const input = orderInput(f, title(this));
      assert.equal((await post('/v1/checkouts', input)).statusCode, 201);
      const res = await post('/v1/checkouts', {
        ...input,
        amount: input.amount + 1,
        provision: { sku: input.provision.sku, quantity: 2 },
      });
      assert.equal(res.statusCode, 409, res.body);
      const body = res.json<ErrorJson>();
      assert.equal(body.error.code, 'checkout_conflict');
      assert.deepEqual(body.error.fields?.map((x) => x.field).sort(), ['amount', 'provision.quantity']);
      await waitForStatus(f, input.orderId, (s) => MONEY_TAKEN_STATES.includes(s.state));
      assert.equal(successfulCharges(f, input.orderId), 1);
    });
  });

  describe('GET /v1/checkouts', () => {
    it('answers 404 for an unknown order', async () => {
      const res = await app.inject({ method: 'GET', url: '/v1/checkouts/no-such-order-here' });
      assert.equal(res.statusCode, 404);
      assert.equal(res.json<ErrorJson>().error.code, 'not_found');
    });

    it("returns the workflow's status for a known order", async function () {
      const input = orderInput(f, title(this));
      await post('/v1/checkouts', input);
      await waitForStatus(f, input.orderId, (s) => MONEY_TAKEN_STATES.includes(s.state));
      const res = await app.inject({ method: 'GET', url: `/v1/checkouts/${input.orderId}` });
      assert.equal(res.statusCode, 200);
      const status = res.json<{ orderId: string; state: string; paymentIntentId: string }>();
      assert.equal(status.orderId, input.orderId);
      assert.ok(MONEY_TAKEN_STATES.some((s) => s === status.state));
      assert.match(status.paymentIntentId, /^pi_/);
    });

    it('lists checkouts and rejects bad filters naming them', async function () {
      const input = orderInput(f, title(this));
      await post('/v1/checkouts', input);
      const deadline = Date.now() + 20_000;
      let found = false;
      while (!found && Date.now() < deadline) {
        const res = await app.inject({ method: 'GET', url: '/v1/checkouts?limit=50' });
        assert.equal(res.statusCode, 200);
        found = res
          .json<{ checkouts: { orderId: string }[] }>()
          .checkouts.some((c) => c.orderId === input.orderId);
        if (!found) await new Promise((r) => setTimeout(r, 300));
      }
      assert.ok(found, 'the new checkout shows in the list');
      const bad = await app.inject({ method: 'GET', url: '/v1/checkouts?state=happy&limit=0&colour=red' });
      assert.equal(bad.statusCode, 400);
      assert.deepEqual(
        bad.json<ErrorJson>().error.fields?.map((x) => x.field),
        ['colour', 'state', 'limit'],
      );
    });
  });

  describe('remediation', () => {
    it('requires actor and reason, naming both, and changes nothing', async function () {
      const input = orderInput(f, title(this), 'pm_card_chargeDeclined', {
        paymentPollIntervalMs: 200,
        paymentRetryWindowMs: 60_000,
      });
      await post('/v1/checkouts', input);
      await waitForStatus(f, input.orderId, (s) => s.state === 'declined');
      for (const route of ['retry-payment', 'cancel', 'resolve']) {
        const res = await post(`/v1/checkouts/${input.orderId}/${route}`, {
          paymentMethodId: 'pm_card_visa',
        });
        assert.equal(res.statusCode, 400, `${route}: ${res.body}`);
        const fields = res.json<ErrorJson>().error.fields?.map((x) => x.field) ?? [];
        assert.ok(fields.includes('actor') && fields.includes('reason'), `${route}: ${fields.join(',')}`);
      }
      const status = await waitForStatus(f, input.orderId, () => true);
      assert.equal(status.state, 'declined');
      assert.equal(status.generation, 1);
    });

    it('retries a declined checkout with a new card, which then gets paid once', async function () {
      const input = orderInput(f, title(this), 'pm_card_chargeDeclinedInsufficientFunds', {
        paymentPollIntervalMs: 200,
        paymentRetryWindowMs: 60_000,
      });
      await post('/v1/checkouts', input);
      await waitForStatus(f, input.orderId, (s) => s.state === 'declined');
      const res = await post(`/v1/checkouts/${input.orderId}/retry-payment`, {
        paymentMethodId: 'pm_card_mastercard',
        actor: 'ops@example.com',
        reason: 'customer gave a new card',
      });
      assert.equal(res.statusCode, 200, res.body);
      await waitForStatus(f, input.orderId, (s) => MONEY_TAKEN_STATES.includes(s.state));
      assert.equal(successfulCharges(f, input.orderId), 1);
    });

    it('cancels an unpaid checkout and refuses to cancel a paid one (409)', async function () {
      const unpaid = orderInput(f, `${title(this)}-unpaid`, 'pm_card_threeDSecure2Required');
      await post('/v1/checkouts', unpaid);
      await waitForStatus(f, unpaid.orderId, (s) => s.state === 'awaiting_customer_action');
      const ok = await post(`/v1/checkouts/${unpaid.orderId}/cancel`, {
        actor: 'customer:web',
        reason: 'closed the 3-D Secure window',
      });
      assert.equal(ok.statusCode, 200, ok.body);
      assert.equal(ok.json<{ state: string }>().state, 'canceled');
      assert.equal(successfulCharges(f, unpaid.orderId), 0);

      const paid = orderInput(f, `${title(this)}-paid`);
      await post('/v1/checkouts', paid);
      await waitForStatus(f, paid.orderId, (s) => MONEY_TAKEN_STATES.includes(s.state));
      const refused = await post(`/v1/checkouts/${paid.orderId}/cancel`, { actor: 'ops', reason: 'oops' });
      assert.equal(refused.statusCode, 409, refused.body);
      assert.equal(refused.json<ErrorJson>().error.code, 'not_allowed_in_current_state');
    });

    it('refuses resolve outside needs_attention (409) and answers 404 for an unknown order', async function () {
      const input = orderInput(f, title(this), 'pm_card_chargeDeclined', {
        paymentPollIntervalMs: 200,
        paymentRetryWindowMs: 60_000,
      });
      await post('/v1/checkouts', input);
      await waitForStatus(f, input.orderId, (s) => s.state === 'declined');
      const body = { actor: 'ops', reason: 'checked the dashboard', outcome: 'recheck' };
      const refused = await post(`/v1/checkouts/${input.orderId}/resolve`, body);
      assert.equal(refused.statusCode, 409, refused.body);
      const unknown = await post('/v1/checkouts/never-started-order/resolve', body);
      assert.equal(unknown.statusCode, 404, unknown.body);
      const badOutcome = await post(`/v1/checkouts/${input.orderId}/resolve`, { ...body, outcome: 'maybe' });
      assert.equal(badOutcome.statusCode, 400);
      assert.deepEqual(
        badOutcome.json<ErrorJson>().error.fields?.map((x) => x.field),
        ['outcome'],
      );
    });
  });

  describe('refunds and retry-provisioning', () => {
    const refundsOf = (orderId: string) =>
      f.emulator.control.ledger().refunds.filter((r) => r.metadata.order_id === orderId);

    it('refunds a completed checkout in part, shows the refund in GET, refuses more than is left (409 naming it), then refunds the rest', async function () {
      const input = orderInput(f, title(this));
      await post('/v1/checkouts', input);
      await waitForStatus(f, input.orderId, (s) => s.state === 'completed');
      const part = await postKeyed(`/v1/checkouts/${input.orderId}/refund`, `${input.orderId}-part`, {
        amount: 1200,
        actor: 'ops@example.com',
        reason: 'one seat returned',
      });
      assert.equal(part.statusCode, 200, part.body);
      const body = part.json<{ workflowId: string; remainingAmount: number; refund: { amount: number } }>();
      assert.equal(body.workflowId, refundsWorkflowId(input.orderId));
      assert.equal(body.refund.amount, 1200);
      assert.equal(body.remainingAmount, 3000);

      const status = await app.inject({ method: 'GET', url: `/v1/checkouts/${input.orderId}` });
      assert.equal(status.statusCode, 200);
      const shown = status.json<{ refundedAmount: number; refunds: { amount: number; actor: string }[] }>();
      assert.equal(shown.refundedAmount, 1200);
      assert.deepEqual(
        shown.refunds.map((r) => [r.amount, r.actor]),
        [[1200, 'ops@example.com']],
      );

      const over = await postKeyed(`/v1/checkouts/${input.orderId}/refund`, `${input.orderId}-over`, {
        amount: 3001,
        actor: 'ops@example.com',
        reason: 'too much',
      });
      assert.equal(over.statusCode, 409, over.body);
      assert.match(over.json<ErrorJson>().error.message, /3000 usd left to refund/);

      const rest = await post(`/v1/checkouts/${input.orderId}/refund`, {
        actor: 'ops@example.com',
        reason: 'order canceled',
      });
      assert.equal(rest.statusCode, 200, rest.body);
      assert.equal(rest.json<{ refundedAmount: number }>().refundedAmount, 4200);
      assert.equal(successfulCharges(f, input.orderId), 1);
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [1200, 3000],
      );
    });

    it('answers a repeated Idempotency-Key with the first refund (sequentially and concurrently), 409 naming amount for other terms', async function () {
      const input = orderInput(f, title(this));
      await post('/v1/checkouts', input);
      await waitForStatus(f, input.orderId, (s) => s.state === 'completed');
      const url = `/v1/checkouts/${input.orderId}/refund`;
      const body = { amount: 700, actor: 'ops', reason: 'lost answer' };
      const first = await postKeyed(url, 'key-1', body);
      assert.equal(first.statusCode, 200, first.body);
      const answers = [
        first,
        ...(await Promise.all([postKeyed(url, 'key-1', body), postKeyed(url, 'key-1', body)])),
      ];
      for (const a of answers) assert.equal(a.statusCode, 200, a.body);
      const ids = new Set(answers.map((a) => a.json<{ refund: { refundId: string } }>().refund.refundId));
      assert.equal(ids.size, 1, 'every answer names the same refund');

      const conflict = await postKeyed(url, 'key-1', { ...body, amount: 701 });
      assert.equal(conflict.statusCode, 409, conflict.body);
      const err = conflict.json<ErrorJson>().error;
      assert.equal(err.code, 'idempotency_conflict');
      assert.deepEqual(
        err.fields?.map((x) => x.field),
        ['amount'],
      );
      assert.match(err.message, /Idempotency-Key/);
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [700],
      );
    });

    it('rejects a bad or missing Idempotency-Key with a 400 naming it, and starts nothing', async function () {
      const input = orderInput(f, title(this));
      await post('/v1/checkouts', input);
      await waitForStatus(f, input.orderId, (s) => s.state === 'completed');
      const url = `/v1/checkouts/${input.orderId}/refund`;
      const body = { amount: 100, actor: 'ops', reason: 'r' };
      const cases: [string, Record<string, string>][] = [
        ['missing for a partial refund', {}],
        ['empty', { 'idempotency-key': '' }],
        ['too long', { 'idempotency-key': 'k'.repeat(256) }],
        ['not printable ASCII', { 'idempotency-key': 'caf\u00e9' }],
      ];
      for (const [what, headers] of cases) {
        const res = await app.inject({ method: 'POST', url, payload: body, headers });
        assert.equal(res.statusCode, 400, `${what}: ${res.body}`);
        const fields = res.json<ErrorJson>().error.fields?.map((x) => x.field) ?? [];
        assert.ok(fields.includes('Idempotency-Key'), `${what}: ${fields.join(',')}`);
      }
      const both = await app.inject({
        method: 'POST',
        url,
        payload: { amount: 0, actor: 'ops', reason: 'r' },
        headers: { 'idempotency-key': '' },
      });
      assert.equal(both.statusCode, 400, both.body);
      assert.deepEqual(
        both
          .json<ErrorJson>()
          .error.fields?.map((x) => x.field)
          .sort(),
        ['Idempotency-Key', 'amount'],
        'body and header problems in one answer',
      );
      const inBody = await postKeyed(url, 'k', { ...body, requestId: 'k' });
      assert.equal(inBody.statusCode, 400, 'the request id travels in the header, not the body');
      assert.equal(await getRefundsStatus(f.client, input.orderId), undefined, 'no refunds workflow started');
      assert.equal(refundsOf(input.orderId).length, 0);
    });

    const badRefunds: [string, Record<string, unknown>][] = [
      ['amount', { amount: 0, actor: 'ops', reason: 'r' }],
      ['amount', { amount: 12.5, actor: 'ops', reason: 'r' }],
      ['amount', { amount: '100', actor: 'ops', reason: 'r' }],
      ['amount', { amount: 100_000_000, actor: 'ops', reason: 'r' }],
      ['actor', { reason: 'r' }],
      ['actor', { actor: '  ', reason: 'r' }],
      ['reason', { actor: 'ops' }],
      ['reason', { actor: 'ops', reason: 'x'.repeat(1001) }],
      ['note', { actor: 'ops', reason: 'r', note: 'unknown' }],
    ];
    it('rejects each bad refund field with a 400 naming it, and starts nothing', async function () {
      const input = orderInput(f, title(this));
      await post('/v1/checkouts', input);
      await waitForStatus(f, input.orderId, (s) => s.state === 'completed');
      for (const [field, body] of badRefunds) {
        const res = await post(`/v1/checkouts/${input.orderId}/refund`, body);
        assert.equal(res.statusCode, 400, `${field}: ${res.body}`);
        const fields = res.json<ErrorJson>().error.fields?.map((x) => x.field) ?? [];
        assert.ok(fields.includes(field), `${field}: ${fields.join(',')}`);
      }
      for (const body of [{ reason: 'r' }, { actor: 'ops' }, { actor: 'ops', reason: 'r', amount: 1 }]) {
        const res = await post(`/v1/checkouts/${input.orderId}/retry-provisioning`, body);
        assert.equal(res.statusCode, 400, res.body);
      }
      assert.equal(await getRefundsStatus(f.client, input.orderId), undefined, 'no refunds workflow started');
      assert.equal(refundsOf(input.orderId).length, 0);
    });

    it('answers 404 for an unknown order, 409 for an order never paid, and 409 for retry-provisioning when provisioning did not fail', async function () {
      const ops = { actor: 'ops', reason: 'checking' };
      const unknown = await post('/v1/checkouts/never-started-refund/refund', ops);
      assert.equal(unknown.statusCode, 404, unknown.body);
      const declined = orderInput(f, title(this), 'pm_card_chargeDeclined', { paymentPollIntervalMs: 200 });
      await post('/v1/checkouts', declined);
      await waitForStatus(f, declined.orderId, (s) => s.state === 'declined');
      const unpaid = await post(`/v1/checkouts/${declined.orderId}/refund`, ops);
      assert.equal(unpaid.statusCode, 409, unpaid.body);
      assert.match(unpaid.json<ErrorJson>().error.message, /no payment/);
      const retry = await post(`/v1/checkouts/${declined.orderId}/retry-provisioning`, ops);
      assert.equal(retry.statusCode, 409, retry.body);
      assert.equal(refundsOf(declined.orderId).length, 0);
    });
  });

  describe('POST /webhooks/stripe', () => {
    /** A declined checkout waiting for a new card: a live workflow whose history we can inspect. */
    async function waitingCheckout(name: string): Promise<{ orderId: string; paymentIntentId: string }> {
      const input = orderInput(f, name, 'pm_card_chargeDeclined', {
        paymentPollIntervalMs: 200,
        paymentRetryWindowMs: 60_000,
      });
      await post('/v1/checkouts', input);
      const status = await waitForStatus(f, input.orderId, (s) => s.state === 'declined');
      assert.ok(status.paymentIntentId);
      return { orderId: input.orderId, paymentIntentId: status.paymentIntentId };
    }

    function eventFor(orderId: string, paymentIntentId: string): string {
      return JSON.stringify({
        id: `evt_test${Date.now()}`,
        object: 'event',
        type: 'payment_intent.payment_failed',
        created: Math.floor(Date.now() / 1000),
        livemode: false,
        data: {
          object: {
            id: paymentIntentId,
            object: 'payment_intent',
            metadata: { order_id: orderId, checkout_workflow_id: checkoutWorkflowId(orderId) },
          },
        },
      });
    }

    const deliver = (payload: string, signature: string | undefined) =>
      app.inject({
        method: 'POST',
        url: STRIPE_WEBHOOK_PATH,
        payload,
        headers: {
          'content-type': 'application/json; charset=utf-8',
          ...(signature === undefined ? {} : { 'stripe-signature': signature }),
        },
      });
    const sign = (payload: string, secret: string, timestamp = Math.floor(Date.now() / 1000)): string =>
      Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });

    it('accepts an event signed with either secret during a rotation and signals the checkout', async function () {
      const { orderId, paymentIntentId } = await waitingCheckout(title(this));
      const before = await signalCount(f, orderId);
      for (const secret of [OLD_SECRET, NEW_SECRET]) {
        const payload = eventFor(orderId, paymentIntentId);
        const res = await deliver(payload, sign(payload, secret));
        assert.equal(res.statusCode, 200, res.body);
        assert.deepEqual(res.json(), {
          received: true,
          eventId: (JSON.parse(payload) as { id: string }).id,
          workflowId: checkoutWorkflowId(orderId),
          signaled: true,
        });
      }
      assert.equal(await waitForSignalCount(f, orderId, before + 2), before + 2);
    });

    it('rejects forged, stale, missing and re-serialized signatures with 400 and signals nothing', async function () {
      const { orderId, paymentIntentId } = await waitingCheckout(title(this));
      const before = await signalCount(f, orderId);
      const payload = eventFor(orderId, paymentIntentId);
      const tenMinutesAgo = Math.floor(Date.now() / 1000) - 600;
      const reserialized = JSON.stringify(JSON.parse(payload), null, 2);
      const attempts: [string, string, string | undefined][] = [
        ['forged', payload, sign(payload, 'whsec_notOurSecretAtAll')],
        ['stale', payload, sign(payload, NEW_SECRET, tenMinutesAgo)],
        ['missing', payload, undefined],
        ['garbage', payload, 'not-a-signature'],
        ['body changed after signing', reserialized, sign(payload, NEW_SECRET)],
      ];
      for (const [what, body, signature] of attempts) {
        const res = await deliver(body, signature);
        assert.equal(res.statusCode, 400, `${what}: ${res.body}`);
        assert.equal(res.json<ErrorJson>().error.code, 'invalid_signature', what);
      }
      // A good delivery last: once its signal is in the history, any earlier one would be too.
      const good = await deliver(payload, sign(payload, NEW_SECRET));
      assert.equal(good.statusCode, 200, good.body);
      assert.equal(await waitForSignalCount(f, orderId, before + 1), before + 1);
      assert.equal(await signalCount(f, orderId), before + 1);
    });

    it('acknowledges a verified event that names no checkout without signaling anything', async () => {
      const payload = JSON.stringify({
        id: 'evt_unrelated1',
        object: 'event',
        type: 'customer.created',
        data: { object: { id: 'cus_x', object: 'customer', metadata: {} } },
      });
      const res = await deliver(payload, sign(payload, NEW_SECRET));
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json(), { received: true, eventId: 'evt_unrelated1', signaled: false });
    });
  });

  describe('GET /openapi.json', () => {
    it('serves an OpenAPI 3 document', async () => {
      const res = await app.inject({ method: 'GET', url: '/openapi.json' });
      assert.equal(res.statusCode, 200);
      assert.match(res.json<{ openapi: string }>().openapi, /^3\./);
    });
  });
});
