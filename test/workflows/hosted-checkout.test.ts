import assert from 'node:assert/strict';
import Stripe from 'stripe';
import {
  CheckoutConflictError,
  InvalidCheckoutInputError,
  cancelCheckout,
  getCheckoutStatus,
  listCheckouts,
  retryProvisioning,
  startCheckout,
  startHostedCheckout,
  waitForCheckoutResult,
} from '../../src/client';
import { startHttpIntake, type HttpIntake } from '../../src/http/server';
import type { Provisioner } from '../../src/provisioning';
import { checkoutWorkflowBundle, createCheckoutWorker } from '../../src/worker';
import {
  checkoutSessionIdempotencyKey,
  checkoutWorkflowId,
  validateHostedCheckoutInput,
  type CheckoutStatus,
  type HostedCheckoutInput,
  type HostedCheckoutOptions,
} from '../../src/workflows/definitions';
import { uniqueName } from '../support/temporal';
import {
  SwitchableProvisioner,
  inState,
  paymentIntentsFor,
  provisionedCount,
  recordHistory,
  rejectsWithCause,
  suiteHarness,
  successfulCharges,
  until,
  upserts,
  waitForStatus,
  type CheckoutHarness,
} from './support';

/** Test-sized waits; the session deadline is set per test. */
const FAST_HOSTED: HostedCheckoutOptions = {
  paymentPollIntervalMs: 200,
  sessionTimeoutMs: 60_000,
  stripeCallTimeoutMs: 4_000,
  reconcileIntervalMs: 500,
};

function newHostedOrder(
  h: CheckoutHarness,
  title: string,
  overrides: Partial<HostedCheckoutInput> = {},
): { input: HostedCheckoutInput; taskQueue: string } {
  const name = uniqueName(title);
  return {
    taskQueue: `tq-${name}`,
    input: {
      orderId: name,
      amount: 2_500,
      currency: 'usd',
      customerId: h.customerId,
      provision: { sku: 'course-201', quantity: 1 },
      successUrl: 'http://shop.test/done?session_id={CHECKOUT_SESSION_ID}',
      cancelUrl: 'http://shop.test/cart',
      options: FAST_HOSTED,
      ...overrides,
    },
  };
}

/** What the hosted page's Pay button does: a form post, answered with a redirect or a page. */
async function payOnPage(h: CheckoutHarness, sessionId: string, paymentMethod: string): Promise<number> {
  const response = await fetch(`${h.emulator.url}/checkout/pay/${sessionId}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ payment_method: paymentMethod }).toString(),
    redirect: 'manual',
  });
  await response.text();
  return response.status;
}

/** True once the history shows a completed `getCheckoutSession` scheduled after the first signal. */
async function sessionReadAfterSignal(h: CheckoutHarness, workflowId: string): Promise<boolean> {
  const events = (await h.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const signaled = events.findIndex((e) => e.workflowExecutionSignaledEventAttributes != null);
  if (signaled < 0) return false;
  const readsAfter = new Set(
    events
      .slice(signaled)
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'getCheckoutSession')
      .map((e) => String(e.eventId)),
  );
  return events.some(
    (e) =>
      e.activityTaskCompletedEventAttributes != null &&
      readsAfter.has(String(e.activityTaskCompletedEventAttributes.scheduledEventId)),
  );
}

describe('hosted checkout workflow', function () {
  this.timeout(120_000);
  const h = suiteHarness();

  /** An intake for this test's task queue, with an emulator webhook endpoint pointing at it. */
  async function withWebhooks<T>(
    taskQueue: string,
    endpointOptions: Record<string, unknown>,
    fn: (intake: HttpIntake, secret: string, endpointId: string) => Promise<T>,
  ): Promise<T> {
    const secret = `whsec_${uniqueName('hosted').replace(/[^A-Za-z0-9]/g, '')}`;
    const intake = await startHttpIntake({
      client: h.client,
      taskQueue,
      webhookSecrets: [secret],
      host: '127.0.0.1',
      port: 0,
    });
    const registered = await fetch(`${h.emulator.url}/_emulator/webhook_endpoints`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${intake.url}/webhooks/stripe`, secret, ...endpointOptions }),
    });
    assert.equal(registered.status, 200, await registered.clone().text());
    const endpoint = (await registered.json()) as { id: string };
    try {
      return await fn(intake, secret, endpoint.id);
    } finally {
      await fetch(`${h.emulator.url}/_emulator/webhook_endpoints/${endpoint.id}`, { method: 'DELETE' });
      await intake.close();
    }
  }

  it('hands back the URL at once, then completes, provisions once and charges once when paid on the page while webhooks arrive duplicated and reordered', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted paid', {
      // An hour between polls: only a webhook-driven read of the session can finish this in time.
      options: {
        ...FAST_HOSTED,
        paymentPollIntervalMs: 60 * 60 * 1000,
        sessionTimeoutMs: 2 * 60 * 60 * 1000,
      },
    });
    const endpointOptions = { duplicate: 1, reorder: true, reorder_window_ms: 100, retry_base_delay_ms: 50 };
    const result = await withWebhooks(taskQueue, endpointOptions, (_intake, _secret, endpointId) =>
      h.withWorker(taskQueue, async () => {
        const started = await startHostedCheckout(h.client, input, { taskQueue });
        assert.equal(started.created, true);
        assert.equal(started.workflowId, checkoutWorkflowId(input.orderId));
        assert.equal(started.state, 'awaiting_customer_action');
        assert.ok(started.sessionId?.startsWith('cs_'));
        assert.equal(started.url, `${h.emulator.url}/checkout/pay/${started.sessionId ?? ''}`);

        const session = await h.stripe.checkout.sessions.retrieve(started.sessionId ?? '');
        assert.equal(session.client_reference_id, checkoutWorkflowId(input.orderId));
        assert.equal(session.metadata?.checkout_workflow_id, checkoutWorkflowId(input.orderId));
        assert.equal(session.metadata?.order_id, input.orderId);
        assert.equal(session.amount_total, input.amount);
        assert.equal(session.customer, h.customerId);
        // A two-hour deadline is also Stripe's own expiry, so the session closes even without us.
        const twoHoursAhead = Date.now() / 1000 + 2 * 60 * 60;
        assert.ok(Math.abs(session.expires_at - twoHoursAhead) < 120, `expires_at ${session.expires_at}`);

        assert.equal(await payOnPage(h, started.sessionId ?? '', 'pm_card_visa'), 303);
        const outcome = await waitForCheckoutResult(h.client, input.orderId);
        const deliveries = (await (
          await fetch(`${h.emulator.url}/_emulator/webhook_deliveries?endpoint=${endpointId}`)
        ).json()) as { data: { copy: number }[] };
        assert.ok(
          deliveries.data.some((d) => d.copy === 2),
          'the emulator delivered duplicates',
        );
        return outcome;
      }),
    );
    assert.equal(result.outcome, 'completed');
    if (result.outcome !== 'completed') return;
    assert.equal(result.amount, input.amount);
    assert.equal(result.entitlement.paymentIntentId, result.paymentIntentId);
    assert.equal(successfulCharges(h, input.orderId), 1);
    const [pi] = paymentIntentsFor(h, input.orderId);
    assert.equal(pi?.metadata.checkout_workflow_id, checkoutWorkflowId(input.orderId));
    assert.equal(await provisionedCount(h, input.orderId), 1);

    const status = await h.withWorker(taskQueue, () => getCheckoutStatus(h.client, input.orderId));
    assert.equal(status.mode, 'hosted');
    assert.equal(status.state, 'completed');
    assert.equal(status.checkoutSession?.status, 'complete');
    assert.equal(status.checkoutSession?.url, null);
    assert.equal(status.paymentIntentId, result.paymentIntentId);
    assert.ok(status.audit.some((a) => a.action === 'stripe_event:checkout.session.completed'));
    const eventIds = status.audit.filter((a) => a.actor === 'stripe').map((a) => a.reason.split(' ')[0]);
    assert.equal(new Set(eventIds).size, eventIds.length, 'each event id is recorded once');

    // Listing finds hosted checkouts next to card checkouts (visibility is eventually consistent).
    let listed: Awaited<ReturnType<typeof listCheckouts>> = [];
    const deadline = Date.now() + 15_000;
    while (!listed.some((e) => e.state === 'completed') && Date.now() < deadline) {
      listed = await listCheckouts(h.client, { orderId: input.orderId });
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual(
      listed.map((e) => e.state),
      ['completed'],
    );
    assert.equal(listed[0]?.paymentIntentId, result.paymentIntentId);
    // Indexed where it rested (docs/checkout.md): waiting on the page, working (paid, provisioning), completed.
    const indexedStates = (await upserts(h.client, checkoutWorkflowId(input.orderId))).flatMap((u) =>
      u.CheckoutState === undefined ? [] : [u.CheckoutState],
    );
    assert.deepEqual(indexedStates, ['awaiting_customer_action', 'processing', 'completed']);
    await recordHistory(h, checkoutWorkflowId(input.orderId), 'hosted-paid-indexed-at-rest');
  });

  it('returns the same session and URL to a duplicate start, concurrent or later, and refuses other terms; a card start finds the same checkout', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted dupes');
    await h.withWorker(taskQueue, async () => {
      const starts = await Promise.all(
        Array.from({ length: 4 }, () => startHostedCheckout(h.client, input, { taskQueue })),
      );
      const urls = new Set(starts.map((s) => s.url));
      assert.equal(urls.size, 1);
      assert.ok([...urls][0]);
      assert.equal(new Set(starts.map((s) => s.sessionId)).size, 1);
      const again = await startHostedCheckout(h.client, input, { taskQueue });
      assert.equal(again.created, false);
      assert.equal(again.url, starts[0]?.url);

      await assert.rejects(
        startHostedCheckout(h.client, { ...input, amount: input.amount + 1 }, { taskQueue }),
        (err: unknown) => err instanceof CheckoutConflictError && err.differences.includes('amount'),
      );
      // A card start for the same order and terms finds the hosted checkout: one checkout, no charge.
      const card = await startCheckout(
        h.client,
        {
          orderId: input.orderId,
          amount: input.amount,
          currency: input.currency,
          customerId: h.customerId,
          paymentMethodId: 'pm_card_visa',
          provision: input.provision,
        },
        { taskQueue },
      );
      assert.equal(card.workflowId, starts[0]?.workflowId);
      assert.equal((await getCheckoutStatus(h.client, input.orderId)).mode, 'hosted');
      assert.equal(successfulCharges(h, input.orderId), 0);
      assert.equal(await payOnPage(h, starts[0]?.sessionId ?? '', 'pm_card_visa'), 303);
      assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');

      const afterwards = await startHostedCheckout(h.client, input, { taskQueue });
      assert.equal(afterwards.created, false);
      assert.equal(afterwards.state, 'completed');
      assert.equal(afterwards.url, null);
      assert.equal(afterwards.sessionId, starts[0]?.sessionId);
    });
    const sessions = await h.stripe.checkout.sessions.list({ customer: h.customerId, limit: 100 });
    assert.equal(
      sessions.data.filter((s) => s.client_reference_id === checkoutWorkflowId(input.orderId)).length,
      1,
    );
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
  });

  it('expires the session at the deadline so a payment started too late cannot land, and ends expired', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted expired', {
      options: { ...FAST_HOSTED, sessionTimeoutMs: 3_000 },
    });
    const result = await h.withWorker(taskQueue, async () => {
      const started = await startHostedCheckout(h.client, input, { taskQueue });
      // The customer starts 3-D Secure and never finishes: the PaymentIntent exists, unpaid.
      assert.equal(await payOnPage(h, started.sessionId ?? '', 'pm_card_threeDSecure2Required'), 303);
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'expired');
    const status = await h.withWorker(taskQueue, () => getCheckoutStatus(h.client, input.orderId));
    const sessionId = status.checkoutSession?.id ?? '';
    assert.equal(status.checkoutSession?.status, 'expired');
    assert.ok(status.audit.some((a) => a.action === 'expire_checkout_session'));
    const session = await h.stripe.checkout.sessions.retrieve(sessionId);
    assert.equal(session.status, 'expired');
    // Nothing can be paid any more: the page refuses, and the late challenge cannot charge.
    assert.equal(await payOnPage(h, sessionId, 'pm_card_visa'), 410);
    const [pi] = paymentIntentsFor(h, input.orderId);
    await until(() => paymentIntentsFor(h, input.orderId)[0]?.status === 'canceled', 10_000, 'cancel');
    assert.throws(() => h.emulator.control.authenticate(pi?.id ?? '', 'succeed'), /canceled/);
    assert.equal(successfulCharges(h, input.orderId), 0);
    assert.equal(await provisionedCount(h, input.orderId), 0);
    await recordHistory(h, checkoutWorkflowId(input.orderId), 'hosted-expired');
  });

  it('waits for a bank debit to settle and provisions only once Stripe shows it succeeded', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted async ok', {
      paymentMethodTypes: ['card', 'us_bank_account'],
    });
    const result = await h.withWorker(taskQueue, async () => {
      const started = await startHostedCheckout(h.client, input, { taskQueue });
      assert.equal(await payOnPage(h, started.sessionId ?? '', 'pm_usBankAccount_success'), 303);
      const waiting = await waitForStatus(h, input.orderId, inState('awaiting_async_payment'));
      assert.equal(waiting.entitlement, undefined);
      assert.equal(await provisionedCount(h, input.orderId), 0);
      // Money in flight: a cancel is refused.
      await rejectsWithCause(
        cancelCheckout(h.client, input.orderId, { actor: 'ops:ann', reason: 'customer asked' }),
        /still settling/,
      );
      h.emulator.control.settle(waiting.paymentIntentId ?? '', 'succeed');
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
  });

  it('ends declined without provisioning when the bank debit fails', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted async fail', {
      paymentMethodTypes: ['us_bank_account'],
    });
    const result = await h.withWorker(taskQueue, async () => {
      const started = await startHostedCheckout(h.client, input, { taskQueue });
      assert.equal(await payOnPage(h, started.sessionId ?? '', 'pm_usBankAccount_accountClosed'), 303);
      const waiting = await waitForStatus(h, input.orderId, inState('awaiting_async_payment'));
      h.emulator.control.settle(waiting.paymentIntentId ?? '');
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'declined');
    if (result.outcome === 'declined')
      assert.equal(result.decline.paymentIntentId, paymentIntentsFor(h, input.orderId)[0]?.id);
    assert.equal(successfulCharges(h, input.orderId), 0);
    assert.equal(await provisionedCount(h, input.orderId), 0);
  });

  it('believes no webhook body: a forged signature is refused and a signed lie about payment changes nothing', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted forged', {
      options: { ...FAST_HOSTED, paymentPollIntervalMs: 60 * 60 * 1000 },
    });
    await withWebhooks(taskQueue, {}, (intake, secret) =>
      h.withWorker(taskQueue, async () => {
        const started = await startHostedCheckout(h.client, input, { taskQueue });
        const lie = JSON.stringify({
          id: 'evt_forgedPaidSession1',
          object: 'event',
          type: 'checkout.session.completed',
          created: Math.floor(Date.now() / 1000),
          data: {
            object: {
              id: started.sessionId,
              object: 'checkout.session',
              status: 'complete',
              payment_status: 'paid',
              payment_intent: 'pi_forged123',
              client_reference_id: started.workflowId,
              metadata: { checkout_workflow_id: started.workflowId },
            },
          },
        });
        const post = (signature: string): Promise<Response> =>
          fetch(`${intake.url}/webhooks/stripe`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'stripe-signature': signature },
            body: lie,
          });
        const forged = await post(
          Stripe.webhooks.generateTestHeaderString({ payload: lie, secret: 'whsec_notTheRealSecret' }),
        );
        assert.equal(forged.status, 400);
        let status = await getCheckoutStatus(h.client, input.orderId);
        assert.equal(status.stripeEvents.received, 0);

        const signed = await post(Stripe.webhooks.generateTestHeaderString({ payload: lie, secret }));
        assert.equal(signed.status, 200);
        assert.equal(((await signed.json()) as { signaled: boolean }).signaled, true);
        await waitForStatus(h, input.orderId, (s) => s.stripeEvents.received === 1);
        // The event woke the workflow, which read the session back from Stripe (not the event body).
        const deadline = Date.now() + 30_000;
        while (!(await sessionReadAfterSignal(h, started.workflowId))) {
          assert.ok(Date.now() < deadline, 'the workflow never read the session after the signal');
          await new Promise((r) => setTimeout(r, 100));
        }
        status = await getCheckoutStatus(h.client, input.orderId);
        assert.equal(status.state, 'awaiting_customer_action');
        assert.equal(status.checkoutSession?.status, 'open');
        assert.deepEqual(status.paymentIntentIds, []);
        assert.equal(await provisionedCount(h, input.orderId), 0);
        await cancelCheckout(h.client, input.orderId, { actor: 'test', reason: 'done' });
      }),
    );
  });

  it('cancels an open hosted checkout on request: the session is expired and nothing can be paid', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted cancel');
    await h.withWorker(taskQueue, async () => {
      const started = await startHostedCheckout(h.client, input, { taskQueue });
      const status = await cancelCheckout(h.client, input.orderId, {
        actor: 'customer:web',
        reason: 'changed their mind',
      });
      assert.equal(status.state, 'canceled');
      const result = await waitForCheckoutResult(h.client, input.orderId);
      assert.equal(result.outcome, 'canceled');
      if (result.outcome === 'canceled') assert.equal(result.actor, 'customer:web');
      assert.equal((await h.stripe.checkout.sessions.retrieve(started.sessionId ?? '')).status, 'expired');
      assert.equal(await payOnPage(h, started.sessionId ?? '', 'pm_card_visa'), 410);
    });
    assert.equal(successfulCharges(h, input.orderId), 0);
  });

  async function withProvisioner<T>(
    taskQueue: string,
    provisioner: Provisioner,
    fn: () => Promise<T>,
  ): Promise<T> {
    const worker = await createCheckoutWorker({
      connection: h.nativeConnection,
      namespace: h.namespace,
      taskQueue,
      stripe: h.stripe,
      provisioner,
      workflowBundle: await checkoutWorkflowBundle(),
    });
    return worker.runUntil(fn());
  }
  const parkedAfterProvisioning = (s: CheckoutStatus): boolean =>
    s.state === 'needs_attention' && s.needsAttention?.reason === 'provisioning_failed';

  it('parks a paid checkout whose provisioning fails for good, then completes when an operator retries provisioning', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted provisioning retry', {
      options: { ...FAST_HOSTED, provisioningTimeoutMs: 1_500, provisioningGraceMs: 10 * 60 * 1000 },
    });
    const provisioner = new SwitchableProvisioner(h.provisioner);
    const result = await withProvisioner(taskQueue, provisioner, async () => {
      const started = await startHostedCheckout(h.client, input, { taskQueue });
      assert.equal(await payOnPage(h, started.sessionId ?? '', 'pm_card_visa'), 303);
      const parked = await waitForStatus(h, input.orderId, parkedAfterProvisioning);
      assert.equal(parked.automaticRefund?.status, 'scheduled');
      await rejectsWithCause(
        cancelCheckout(h.client, input.orderId, { actor: 'ops:ann', reason: 'too late' }),
        /refund instead/,
      );
      provisioner.failing = false;
      await retryProvisioning(h.client, input.orderId, { actor: 'ops:ann', reason: 'backend is back' });
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    assert.equal(
      h.emulator.control.ledger().refunds.filter((r) => r.metadata.order_id === input.orderId).length,
      0,
    );
  });

  it('refunds a paid hosted checkout in full when provisioning fails for good and nobody decides within the grace', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted grace refund', {
      options: { ...FAST_HOSTED, provisioningTimeoutMs: 1_500, provisioningGraceMs: 1_500 },
    });
    const provisioner = new SwitchableProvisioner(h.provisioner);
    const result = await withProvisioner(taskQueue, provisioner, async () => {
      const started = await startHostedCheckout(h.client, input, { taskQueue });
      assert.equal(await payOnPage(h, started.sessionId ?? '', 'pm_card_visa'), 303);
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'refunded');
    if (result.outcome === 'refunded') assert.equal(result.refundedAmount, input.amount);
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.deepEqual(
      h.emulator.control
        .ledger()
        .refunds.filter((r) => r.metadata.order_id === input.orderId)
        .map((r) => r.amount),
      [input.amount],
    );
    assert.equal(await provisionedCount(h, input.orderId), 0);
  });

  it('provisions instead of canceling when the customer paid just before the cancel reached Stripe', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted paid before cancel', {
      // No webhooks and an hour between polls: the workflow learns of the payment only at the cancel.
      options: {
        ...FAST_HOSTED,
        paymentPollIntervalMs: 60 * 60 * 1000,
        sessionTimeoutMs: 2 * 60 * 60 * 1000,
      },
    });
    const result = await h.withWorker(taskQueue, async () => {
      const started = await startHostedCheckout(h.client, input, { taskQueue });
      assert.equal(await payOnPage(h, started.sessionId ?? '', 'pm_card_visa'), 303);
      const answer = await cancelCheckout(h.client, input.orderId, {
        actor: 'customer:web',
        reason: 'too slow',
      });
      assert.notEqual(answer.state, 'canceled');
      assert.ok(answer.audit.some((a) => a.action === 'cancel_refused'));
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
  });

  /** The deadline's expire meets a stored 500: the checkout parks with the session still open. */
  function parkWithOpenSession(orderId: string): void {
    h.emulator.control.addFault({
      fault: 'stored_500',
      method: 'POST',
      idempotencyKey: checkoutSessionIdempotencyKey(checkoutWorkflowId(orderId), 'expire'),
    });
  }
  const parkedOpen = (s: CheckoutStatus): boolean =>
    s.state === 'needs_attention' &&
    s.needsAttention?.reason === 'unexpected_payment_state' &&
    s.checkoutSession?.status === 'open';

  it('provisions a payment that lands on a parked checkout as soon as its webhook arrives', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted parked webhook', {
      // An hour between the parked checkout's own re-reads: only the webhook can finish this in time.
      options: { ...FAST_HOSTED, sessionTimeoutMs: 2_000, reconcileIntervalMs: 60 * 60 * 1000 },
    });
    parkWithOpenSession(input.orderId);
    await withWebhooks(taskQueue, {}, () =>
      h.withWorker(taskQueue, async () => {
        const started = await startHostedCheckout(h.client, input, { taskQueue });
        await waitForStatus(h, input.orderId, parkedOpen);
        assert.equal(await payOnPage(h, started.sessionId ?? '', 'pm_card_visa'), 303);
        const done = await waitForStatus(h, input.orderId, inState('completed'), 30_000);
        assert.ok(done.stripeEvents.received > 0);
        assert.ok(done.audit.some((a) => a.action === 'parked_reread_paid'));
      }),
    );
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    await recordHistory(h, checkoutWorkflowId(input.orderId), 'hosted-parked-paid-on-webhook');
  });

  it('re-reads a parked checkout whose session is still open every reconcileIntervalMs and provisions a payment that landed', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted parked reread', {
      options: { ...FAST_HOSTED, sessionTimeoutMs: 2_000, reconcileIntervalMs: 500 },
    });
    parkWithOpenSession(input.orderId);
    await h.withWorker(taskQueue, async () => {
      const started = await startHostedCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, parkedOpen);
      // Parked and re-reading: still parked, the state unchanged, while nothing was paid.
      await new Promise((r) => setTimeout(r, 1_500));
      const still = await getCheckoutStatus(h.client, input.orderId);
      assert.equal(still.state, 'needs_attention');
      assert.equal(still.audit.filter((a) => a.action === 'state:needs_attention').length, 1);
      assert.equal(await payOnPage(h, started.sessionId ?? '', 'pm_card_visa'), 303);
      await waitForStatus(h, input.orderId, inState('completed'), 30_000);
    });
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
  });

  it('refuses a duplicate start with other payment method types or options, naming the field; the order of the types does not matter', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted dup extras', {
      paymentMethodTypes: ['card', 'us_bank_account'],
    });
    await h.withWorker(taskQueue, async () => {
      const first = await startHostedCheckout(h.client, input, { taskQueue });
      const reordered = await startHostedCheckout(
        h.client,
        { ...input, paymentMethodTypes: ['us_bank_account', 'card'] },
        { taskQueue },
      );
      assert.equal(reordered.url, first.url);
      await assert.rejects(
        startHostedCheckout(h.client, { ...input, paymentMethodTypes: ['card'] }, { taskQueue }),
        (err: unknown) =>
          err instanceof CheckoutConflictError && err.differences.join() === 'paymentMethodTypes',
      );
      await assert.rejects(
        startHostedCheckout(
          h.client,
          { ...input, options: { ...FAST_HOSTED, sessionTimeoutMs: 120_000 } },
          { taskQueue },
        ),
        (err: unknown) =>
          err instanceof CheckoutConflictError && err.differences.join() === 'options.sessionTimeoutMs',
      );
      // The return URLs are not terms.
      const moved = await startHostedCheckout(
        h.client,
        { ...input, successUrl: 'http://shop.test/thanks', cancelUrl: 'http://shop.test/basket' },
        { taskQueue },
      );
      assert.equal(moved.url, first.url);
      await cancelCheckout(h.client, input.orderId, { actor: 'test', reason: 'done' });
      await waitForCheckoutResult(h.client, input.orderId);
      // Closed: compared with the start's memo.
      await assert.rejects(
        startHostedCheckout(h.client, { ...input, paymentMethodTypes: ['card'] }, { taskQueue }),
        (err: unknown) =>
          err instanceof CheckoutConflictError && err.differences.join() === 'paymentMethodTypes',
      );
    });
  });

  it('refuses at the start what Stripe would refuse later: an order id too long for client_reference_id, a return URL with a bad port or host', () => {
    const { input } = newHostedOrder(h, 'hosted limits');
    const problems = (overrides: Record<string, unknown>): string[] => {
      const v = validateHostedCheckoutInput({ ...input, ...overrides });
      return v.ok ? [] : [...v.problems];
    };
    // `checkout-` + the order id is the client_reference_id, which Stripe takes up to 200 characters.
    assert.deepEqual(problems({ orderId: 'o'.repeat(191) }), []);
    assert.match(problems({ orderId: 'o'.repeat(192) }).join(), /^orderId: .*at most 191 characters/);
    assert.match(
      problems({ successUrl: 'https://shop.example.com:99999/thanks' }).join(),
      /^successUrl: port 99999 is out of range/,
    );
    assert.match(problems({ cancelUrl: 'https://shop.example.com:0/cart' }).join(), /^cancelUrl: port 0/);
    assert.match(problems({ successUrl: 'https://1.2.3.999/thanks' }).join(), /^successUrl: not a valid URL/);
    assert.match(problems({ cancelUrl: 'http://[1.2.3.4]/cart' }).join(), /^cancelUrl: not a valid URL/);
    assert.deepEqual(problems({ successUrl: 'https://shop.example.com:8443/t?s={CHECKOUT_SESSION_ID}' }), []);
    assert.deepEqual(problems({ successUrl: 'http://[::1]:3000/thanks' }), []);
    // A running checkout's own check keeps accepting what its start was accepted with (replay).
    const running = validateHostedCheckoutInput(
      { ...input, orderId: 'o'.repeat(200), successUrl: 'https://shop.example.com:99999/thanks' },
      'workflow',
    );
    assert.equal(running.ok, true);
  });

  it('keys the session create on the workflow id: the same order never gets a second session', () => {
    assert.equal(
      checkoutSessionIdempotencyKey('checkout-order-1', 'create'),
      'checkout-order-1/session/g1/create',
    );
    assert.equal(
      checkoutSessionIdempotencyKey('checkout-order-1', 'expire'),
      'checkout-order-1/session/g1/expire',
    );
  });

  it('refuses bad input naming each field, before anything starts', async function () {
    const { input, taskQueue } = newHostedOrder(h, this.test?.title ?? 'hosted bad input');
    const bad = {
      ...input,
      amount: 0,
      currency: 'USD',
      customerId: 'customer-1',
      successUrl: 'javascript:alert(1)',
      cancelUrl: 'shop/cart',
      paymentMethodTypes: ['card', 'card'],
      paymentMethodId: 'pm_card_visa',
      provision: { sku: 'a b', quantity: 0 },
      options: { sessionTimeoutMs: 5, nope: 1 },
    };
    const v = validateHostedCheckoutInput(bad);
    assert.equal(v.ok, false);
    const fields = v.ok ? [] : v.problems.map((p) => p.slice(0, p.indexOf(':')));
    assert.deepEqual(fields.sort(), [
      'amount',
      'cancelUrl',
      'currency',
      'customerId',
      'options.nope',
      'options.sessionTimeoutMs',
      'paymentMethodId',
      'paymentMethodTypes',
      'provision.quantity',
      'provision.sku',
      'successUrl',
    ]);
    await assert.rejects(
      startHostedCheckout(h.client, bad as unknown as HostedCheckoutInput, { taskQueue }),
      InvalidCheckoutInputError,
    );
    await assert.rejects(
      h.client.workflow.getHandle(checkoutWorkflowId(input.orderId)).describe(),
      /not found/i,
    );
  });
});
