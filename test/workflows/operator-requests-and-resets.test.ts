/**
 * The card checkout's operator requests that arrive while it is busy, and reset runs that cannot
 * trust what they see: each case here once left a workflow open forever, charged after a cancel was
 * taken, charged twice, or ended a paid order wrongly.
 */
import assert from 'node:assert/strict';
import { WorkflowUpdateStage } from '@temporalio/client';
import {
  cancelCheckout,
  getCheckoutHandle,
  getCheckoutStatus,
  listCheckouts,
  resolveCheckout,
  retryPayment,
  startCheckout,
} from '../../src/client';
import { checkoutWorkflowBundle, createCheckoutWorker } from '../../src/worker';
import { HOUR, MINUTE, nextParkedRereadInterval } from '../../src/workflows/common';
import {
  NeedsAttentionSinceAttr,
  cancelUpdate,
  checkoutWorkflowId,
  paymentIdempotencyKey,
  retryPaymentUpdate,
  stripeEventSignal,
  type CheckoutResult,
  type CheckoutState,
} from '../../src/workflows/definitions';
import {
  SwitchableProvisioner,
  answered,
  resetToFirstTask,
  FAST_OPTIONS,
  inState,
  newOrder,
  paymentIntentsFor,
  provisionedCount,
  recordHistory,
  rejectsWithCause,
  suiteHarness,
  successfulCharges,
  waitForStatus,
} from './support';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const RESET_REASON = 'test: reset to the first workflow task';

describe('checkout workflow: operator requests while busy, and resets', function () {
  this.timeout(150_000);
  const h = suiteHarness();
  afterEach(() => {
    h.emulator.control.clearFaults();
    h.emulator.control.configure({ searchLagSeconds: 0 });
  });

  /**
   * Starts a checkout whose `step` request Stripe holds for 1.5 s, has the customer cancel while
   * the checkout is in `state`, and returns the cancel's answer and the checkout's result.
   */
  async function cancelDuring(title: string, step: 'create' | 'confirm', state: CheckoutState) {
    const { input, taskQueue } = newOrder(h, title);
    const wf = checkoutWorkflowId(input.orderId);
    h.emulator.control.addFault({
      fault: 'slow',
      idempotencyKey: paymentIdempotencyKey(wf, 1, step),
      delayMs: 1_500,
      times: 1,
    });
    return h.withWorker(taskQueue, async () => {
      const { handle } = await startCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, inState(state));
      const cancel = await handle.startUpdate(cancelUpdate, {
        args: [{ actor: 'customer:web', reason: 'changed my mind' }],
        waitForStage: WorkflowUpdateStage.ACCEPTED,
      });
      const answer = await answered(cancel.result(), 30_000, 'the cancel');
      const result = await answered(handle.result(), 30_000, 'the result');
      return { orderId: input.orderId, wf, answer, result };
    });
  }

  it('answers a cancel that reached the confirm too late: refused, the order completes and the workflow closes', async function () {
    const { orderId, wf, answer, result } = await cancelDuring(
      'cancel during confirm',
      'confirm',
      'confirming_payment',
    );
    assert.ok(
      answer.audit.some(
        (a) => a.action === 'cancel_refused' && a.reason.startsWith('customer:web: the payment succeeded'),
      ),
      JSON.stringify(answer.audit),
    );
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, orderId), 1);
    assert.equal(await provisionedCount(h, orderId), 1);
    await recordHistory(h, wf, 'cancel-during-confirm-refused');
  });

  it('honours a cancel taken while the create was in flight: nothing is confirmed or charged', async function () {
    const { orderId, wf, answer, result } = await cancelDuring(
      'cancel during create',
      'create',
      'creating_payment',
    );
    assert.equal(answer.state, 'canceled');
    assert.equal(result.outcome, 'canceled');
    assert.equal(successfulCharges(h, orderId), 0);
    assert.deepEqual(
      paymentIntentsFor(h, orderId).map((p) => p.status),
      ['canceled'],
    );
    assert.equal(await provisionedCount(h, orderId), 0);
    await recordHistory(h, wf, 'cancel-during-create');
  });

  it('takes one of a new card and a cancel sent together after a decline, refuses the other, and closes', async function () {
    const { input, taskQueue } = newOrder(h, 'retry and cancel together', {
      paymentMethodId: 'pm_card_chargeDeclined',
      options: { ...FAST_OPTIONS, paymentRetryWindowMs: 120_000 },
    });
    await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, inState('declined'));
    });
    // No worker now: both updates are admitted and reach the workflow in its next task together.
    const handle = getCheckoutHandle(h.client, input.orderId);
    const retry = handle
      .executeUpdate(retryPaymentUpdate, {
        args: [{ paymentMethodId: 'pm_card_visa', actor: 'customer:web', reason: 'new card' }],
      })
      .then(
        (s) => `taken: ${s.state}`,
        (e: unknown) => `refused: ${String((e as { cause?: unknown }).cause ?? e)}`,
      );
    await sleep(1_000);
    const cancel = handle
      .executeUpdate(cancelUpdate, { args: [{ actor: 'ops:ann', reason: 'fraud suspicion' }] })
      .then(
        (s) => `taken: ${s.state}`,
        (e: unknown) => `refused: ${String((e as { cause?: unknown }).cause ?? e)}`,
      );
    await sleep(1_000);
    await h.withWorker(taskQueue, async () => {
      const answers = await answered(Promise.all([retry, cancel]), 30_000, 'an update');
      assert.match(answers[0], /^taken/);
      assert.match(answers[1], /^refused: .*a retryPayment by customer:web is already pending/);
      const result = await answered(handle.result(), 30_000, 'the result');
      assert.equal(result.outcome, 'completed');
    });
    assert.equal(successfulCharges(h, input.orderId), 1);
  });

  it('refuses a cancel while an abandon is being carried out, and ends canceled without NeedsAttentionSince', async function () {
    const { input, taskQueue } = newOrder(h, 'abandon then cancel');
    const wf = checkoutWorkflowId(input.orderId);
    h.emulator.control.addFault({
      fault: 'stored_500',
      idempotencyKey: paymentIdempotencyKey(wf, 1, 'confirm'),
    });
    h.emulator.control.addFault({
      fault: 'slow',
      idempotencyKey: paymentIdempotencyKey(wf, 1, 'cancel'),
      delayMs: 2_000,
      times: 1,
    });
    await h.withWorker(taskQueue, async () => {
      const { handle } = await startCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, inState('needs_attention'));
      const abandon = resolveCheckout(h.client, input.orderId, {
        actor: 'ops:ann',
        reason: 'customer gave up',
        outcome: 'abandon',
      });
      await waitForStatus(h, input.orderId, (s) =>
        s.audit.some((a) => a.action === 'request:resolve:abandon'),
      );
      await rejectsWithCause(
        handle.executeUpdate(cancelUpdate, { args: [{ actor: 'ops:bob', reason: 'also cancel' }] }),
        /the checkout is being canceled/,
      );
      await abandon;
      const result = await answered(handle.result(), 30_000, 'the result');
      assert.equal(result.outcome, 'canceled');
    });
    const described = await h.client.workflow.getHandle(wf).describe();
    assert.equal(described.typedSearchAttributes.get(NeedsAttentionSinceAttr), undefined);
    assert.equal((await listCheckouts(h.client, { orderId: input.orderId, needsAttention: true })).length, 0);
    assert.equal(successfulCharges(h, input.orderId), 0);
  });

  it('writes nothing when a reset run more than 24 h after the charge cannot search Stripe, and adopts the payment once it can', async function () {
    const { input, taskQueue } = newOrder(h, 'reset past 24h search down');
    await h.withWorker(taskQueue, async () => {
      const { handle } = await startCheckout(h.client, input, { taskQueue });
      assert.equal((await handle.result()).outcome, 'completed');
      h.emulator.control.advanceClock(25 * 3_600); // Stripe has pruned the keys
      h.emulator.control.addFault({ fault: 'stored_500', method: 'GET', path: '/v1/payment_intents/search' });
      const runId = await resetToFirstTask(h, input.orderId, RESET_REASON);
      const parked = await waitForStatus(h, input.orderId, inState('needs_attention'));
      assert.equal(parked.needsAttention?.reason, 'payment_outcome_unknown');
      assert.equal(parked.needsAttention?.retryAllowed, false);
      assert.match(parked.needsAttention?.detail ?? '', /nothing is written until a search succeeds/);
      await sleep(2_000); // four search intervals: still nothing written
      assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
      h.emulator.control.clearFaults();
      const result = (await h.client.workflow
        .getHandle(checkoutWorkflowId(input.orderId), runId)
        .result()) as CheckoutResult;
      assert.equal(result.outcome, 'completed');
      const status = await getCheckoutStatus(h.client, input.orderId);
      assert.ok(
        status.audit.some((a) => a.action === 'adopted_payment_intent'),
        JSON.stringify(status.audit),
      );
    });
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    await recordHistory(h, checkoutWorkflowId(input.orderId), 'reset-search-failed');
  });

  it('provisions after a reset when the replayed key answers with the first card’s decline but a new card paid (search lagging)', async function () {
    h.emulator.control.configure({ searchLagSeconds: 3_600 });
    const { input, taskQueue } = newOrder(h, 'reset after new card', {
      paymentMethodId: 'pm_card_chargeDeclined',
      options: { ...FAST_OPTIONS, paymentRetryWindowMs: 60_000, provisioningTimeoutMs: 600_000 },
    });
    // The first run's provisioner is down, so it rests in `provisioning` after the charge: the
    // stuck checkout the runbook resets.
    const down = new SwitchableProvisioner(h.provisioner);
    const worker = await createCheckoutWorker({
      connection: h.nativeConnection,
      namespace: h.namespace,
      taskQueue,
      stripe: h.stripe,
      provisioner: down,
      workflowBundle: await checkoutWorkflowBundle(),
    });
    await worker.runUntil(async () => {
      await startCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, inState('declined'));
      await retryPayment(h.client, input.orderId, {
        paymentMethodId: 'pm_card_visa',
        actor: 'customer:web',
        reason: 'new card',
      });
      await waitForStatus(h, input.orderId, inState('provisioning'));
    });
    assert.equal(successfulCharges(h, input.orderId), 1);
    const runId = await resetToFirstTask(h, input.orderId, RESET_REASON);
    const result = (await h.withWorker(taskQueue, () =>
      h.client.workflow.getHandle(checkoutWorkflowId(input.orderId), runId).result(),
    )) as CheckoutResult;
    assert.equal(result.outcome, 'completed', JSON.stringify(result));
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
  });

  it('does not report an earlier card’s decline as the new card’s when the new confirm’s outcome is unknown', async function () {
    const { input, taskQueue } = newOrder(h, 'stale decline after new card', {
      paymentMethodId: 'pm_card_chargeDeclinedInsufficientFunds',
      options: { ...FAST_OPTIONS, paymentRetryWindowMs: 60_000 },
    });
    const wf = checkoutWorkflowId(input.orderId);
    await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      const declined = await waitForStatus(h, input.orderId, inState('declined'));
      assert.equal(declined.decline?.declineCode, 'insufficient_funds');
      h.emulator.control.addFault({
        fault: 'stored_500',
        idempotencyKey: paymentIdempotencyKey(wf, 2, 'confirm'),
      });
      await retryPayment(h.client, input.orderId, {
        paymentMethodId: 'pm_card_visa',
        actor: 'customer:web',
        reason: 'new card',
      });
      const parked = await waitForStatus(
        h,
        input.orderId,
        (s) => s.generation === 2 && (s.state === 'declined' || s.state === 'needs_attention'),
      );
      assert.equal(parked.state, 'needs_attention', JSON.stringify(parked.decline));
      assert.equal(parked.needsAttention?.reason, 'payment_outcome_unknown');
      assert.equal(parked.needsAttention?.retryAllowed, true);
      assert.match(parked.needsAttention?.detail ?? '', /an earlier card's decline/);
      assert.equal(parked.decline, undefined);
      await getCheckoutHandle(h.client, input.orderId).terminate('test cleanup');
    });
    assert.equal(successfulCharges(h, input.orderId), 0);
  });

  it('refuses a cancel when two payments succeeded for the order, and closes on an operator’s abandon', async function () {
    const { input, taskQueue } = newOrder(h, 'cancel double charged');
    const wf = checkoutWorkflowId(input.orderId);
    h.emulator.control.addFault({
      fault: 'stored_500',
      idempotencyKey: paymentIdempotencyKey(wf, 1, 'create'),
    });
    await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, (s) => s.needsAttention?.reason === 'payment_outcome_unknown');
      // Two charges carrying this checkout's metadata (made outside it, say by hand in the dashboard).
      for (const generation of ['7', '8']) {
        await h.stripe.paymentIntents.create({
          amount: input.amount,
          currency: input.currency,
          customer: input.customerId,
          payment_method: 'pm_card_visa',
          confirm: true,
          automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
          metadata: { order_id: input.orderId, checkout_workflow_id: wf, generation },
        });
      }
      await waitForStatus(
        h,
        input.orderId,
        (s) => s.needsAttention?.reason === 'multiple_successful_payments',
      );
      await rejectsWithCause(
        cancelCheckout(h.client, input.orderId, { actor: 'customer:web', reason: 'close it' }),
        /more than one payment succeeded for this order .*a cancel cannot undo them/,
      );
      await resolveCheckout(h.client, input.orderId, {
        actor: 'ops:ann',
        reason: 'both refunded through their cases',
        outcome: 'abandon',
      });
      const result = await answered(
        getCheckoutHandle(h.client, input.orderId).result(),
        30_000,
        'the result',
      );
      assert.equal(result.outcome, 'canceled');
    });
    assert.equal(successfulCharges(h, input.orderId), 2);
  });

  it('spaces a parked checkout’s own re-reads out, doubling up to an hour (the webhook is the fast path)', function () {
    const gaps = [5 * MINUTE];
    while (gaps.length < 7) gaps.push(nextParkedRereadInterval(gaps[gaps.length - 1] ?? 0, 5 * MINUTE));
    assert.deepEqual(
      gaps.map((ms) => ms / MINUTE),
      [5, 10, 20, 40, 60, 60, 60],
    );
    // An interval set above the hour is kept, never shortened.
    assert.equal(nextParkedRereadInterval(2 * HOUR, 2 * HOUR), 2 * HOUR);
  });

  for (const how of ['webhook', 'periodic re-read'] as const) {
    it(`provisions a bank debit that settles after the deadline parked it (${how})`, async function () {
      h.emulator.control.configure({ asyncSettleSeconds: 100_000 });
      try {
        const { input, taskQueue } = newOrder(h, `debit settles late ${how}`, {
          paymentMethodId: 'pm_usBankAccount_success',
          options: {
            ...FAST_OPTIONS,
            paymentActionTimeoutMs: 1_500,
            // With a webhook the re-read must not wait for the interval.
            reconcileIntervalMs: how === 'webhook' ? 600_000 : 500,
          },
        });
        await h.withWorker(taskQueue, async () => {
          const { handle } = await startCheckout(h.client, input, { taskQueue });
          const parked = await waitForStatus(h, input.orderId, inState('needs_attention'));
          assert.equal(parked.needsAttention?.reason, 'unexpected_payment_state');
          const paymentIntentId = parked.paymentIntentId ?? '';
          await sleep(1_500); // still processing: the parked checkout stays parked
          assert.equal((await getCheckoutStatus(h.client, input.orderId)).state, 'needs_attention');
          h.emulator.control.settle(paymentIntentId, 'succeed');
          if (how === 'webhook') {
            await handle.signal(stripeEventSignal, {
              eventId: `evt_late${Date.now()}`,
              type: 'payment_intent.succeeded',
              objectId: paymentIntentId,
            });
          }
          const result = await answered(handle.result(), 30_000, 'the result');
          assert.equal(result.outcome, 'completed');
        });
        assert.equal(successfulCharges(h, input.orderId), 1);
        assert.equal(await provisionedCount(h, input.orderId), 1);
        if (how === 'webhook')
          await recordHistory(h, checkoutWorkflowId(input.orderId), 'debit-settled-after-deadline');
      } finally {
        h.emulator.control.configure({ asyncSettleSeconds: 3 });
      }
    });
  }
});
