/**
 * What a card checkout writes to its search attributes (`CheckoutSearchIndex`, docs/checkout.md
 * "What operators can search"): `processing` from the start, then only the states it rests in, with
 * its PaymentIntent; a run started the earlier way (`CheckoutState=validating`) still upserts every
 * step, as the recorded histories from before the change do.
 */
import assert from 'node:assert/strict';
import { startCheckout, waitForCheckoutResult } from '../../src/client';
import {
  CheckoutStateAttr,
  OrderIdAttr,
  PROCESSING,
  StripePaymentIntentIdAttr,
  checkoutWorkflowId,
  checkoutWorkflowType,
} from '../../src/workflows/definitions';
import type { checkout } from '../../src/workflows/checkout';
import {
  inState,
  newOrder,
  recordHistory,
  suiteHarness,
  successfulCharges,
  upserts,
  waitForStatus,
} from './support';

describe('checkout search attributes', function () {
  this.timeout(120_000);
  const h = suiteHarness();

  it('writes them once, with the completion, when a card is paid at once', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'indexed paid');
    const workflowId = checkoutWorkflowId(input.orderId);
    const result = await h.withWorker(taskQueue, async () => {
      const { handle } = await startCheckout(h.client, input, { taskQueue });
      // Started as processing, with the order id: nothing for the workflow to write at first.
      const started = (await handle.describe()).typedSearchAttributes;
      assert.equal(started.get(CheckoutStateAttr), PROCESSING);
      assert.equal(started.get(OrderIdAttr), input.orderId);
      return handle.result();
    });
    assert.equal(result.outcome, 'completed');
    if (result.outcome !== 'completed') return;
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.deepEqual(await upserts(h.client, workflowId), [
      { CheckoutState: 'completed', StripePaymentIntentId: result.paymentIntentId },
    ]);
    const attributes = (await h.client.workflow.getHandle(workflowId).describe()).typedSearchAttributes;
    assert.equal(attributes.get(CheckoutStateAttr), 'completed');
    assert.equal(attributes.get(StripePaymentIntentIdAttr), result.paymentIntentId);
    assert.equal(attributes.get(OrderIdAttr), input.orderId);
    await recordHistory(h, workflowId, 'paid-indexed-at-rest');
  });

  it('shows awaiting_customer_action with its PaymentIntent while 3-D Secure waits, then processing, then completed', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'indexed 3ds', {
      paymentMethodId: 'pm_card_threeDSecure2Required',
    });
    const workflowId = checkoutWorkflowId(input.orderId);
    const result = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      const waiting = await waitForStatus(h, input.orderId, inState('awaiting_customer_action'));
      assert.ok(waiting.paymentIntentId);
      const attributes = (await h.client.workflow.getHandle(workflowId).describe()).typedSearchAttributes;
      assert.equal(attributes.get(CheckoutStateAttr), 'awaiting_customer_action');
      assert.equal(attributes.get(StripePaymentIntentIdAttr), waiting.paymentIntentId);
      h.emulator.control.authenticate(waiting.paymentIntentId, 'succeed');
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    if (result.outcome !== 'completed') return;
    assert.deepEqual(await upserts(h.client, workflowId), [
      // The wait's deadline is a timer behind a patch, and `patched()` indexes the patch ids.
      { TemporalChangeVersion: 'payment-deadline-timer' },
      // So is the wait's wake, counted from the checkout's last request to Stripe (checkout.ts).
      { TemporalChangeVersion: ['payment-deadline-timer', 'wake-since-request'] },
      { CheckoutState: 'awaiting_customer_action', StripePaymentIntentId: result.paymentIntentId },
      // Authenticated: no longer waiting on the customer, working again (paid, provisioning).
      { CheckoutState: 'processing' },
      { CheckoutState: 'completed' },
    ]);
    await recordHistory(h, workflowId, 'three-d-secure-indexed-at-rest');
  });

  it('upserts every step, as before, in a run started with CheckoutState=validating (the earlier start)', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'legacy start');
    const workflowId = checkoutWorkflowId(input.orderId);
    const result = await h.withWorker(taskQueue, async () => {
      const handle = await h.client.workflow.start<typeof checkout>(checkoutWorkflowType, {
        workflowId,
        taskQueue,
        args: [input],
        typedSearchAttributes: [
          { key: OrderIdAttr, value: input.orderId },
          { key: CheckoutStateAttr, value: 'validating' },
        ],
      });
      return handle.result();
    });
    assert.equal(result.outcome, 'completed');
    if (result.outcome !== 'completed') return;
    const pi = result.paymentIntentId;
    assert.deepEqual(await upserts(h.client, workflowId), [
      { OrderId: input.orderId },
      { CheckoutState: 'creating_payment' },
      { StripePaymentIntentId: pi },
      { CheckoutState: 'confirming_payment' },
      { StripePaymentIntentId: pi },
      { CheckoutState: 'paid' },
      { CheckoutState: 'provisioning' },
      { CheckoutState: 'completed' },
    ]);
    assert.equal(successfulCharges(h, input.orderId), 1);
  });
});
