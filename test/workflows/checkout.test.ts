import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  cancelCheckout,
  getCheckoutStatus,
  listCheckouts,
  retryPayment,
  resolveCheckout,
  startCheckout,
  waitForCheckoutResult,
} from '../../src/client';
import { startHttpIntake } from '../../src/http/server';
import {
  FailureType,
  checkoutWorkflowId,
  checkoutWorkflowType,
  paymentIdempotencyKey,
  stripeEventSignal,
} from '../../src/workflows/definitions';
import type { checkout } from '../../src/workflows/checkout';
import {
  FAST_OPTIONS,
  inState,
  newOrder,
  paymentIntentsFor,
  provisionedCount,
  rejectsWithCause,
  recordHistory,
  resetToFirstTask,
  suiteHarness,
  successfulCharges,
  until,
  waitForStatus,
} from './support';

describe('checkout workflow', function () {
  this.timeout(120_000);
  const h = suiteHarness();
  afterEach(() => {
    h.emulator.control.clearFaults();
  });

  it('charges once, provisions once and returns the result when the card is good', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'paid');
    const result = await h.withWorker(taskQueue, async () => {
      const { handle } = await startCheckout(h.client, input, { taskQueue });
      return handle.result();
    });
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    if (result.outcome !== 'completed') return;
    assert.equal(result.entitlement.paymentIntentId, result.paymentIntentId);
    assert.equal(result.amount, input.amount);
    const pi = paymentIntentsFor(h, input.orderId)[0];
    assert.equal(pi?.metadata.checkout_workflow_id, checkoutWorkflowId(input.orderId));
    assert.equal(pi?.metadata.generation, '1');
    await recordHistory(h, checkoutWorkflowId(input.orderId), 'paid');
  });

  it('runs one workflow, charges once and provisions once when the same order is started 5 times at once and again after it completed', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'dupes');
    await h.withWorker(taskQueue, async () => {
      const starts = await Promise.all(
        Array.from({ length: 5 }, () => startCheckout(h.client, input, { taskQueue })),
      );
      const runIds = new Set(await Promise.all(starts.map(async (s) => (await s.handle.describe()).runId)));
      assert.equal(runIds.size, 1);
      const first = await waitForCheckoutResult(h.client, input.orderId);
      assert.equal(first.outcome, 'completed');
      const again = await startCheckout(h.client, input, { taskQueue });
      const after = await again.handle.describe();
      assert.ok(runIds.has(after.runId), 'a completed order must not start a new run');
      assert.deepEqual(await again.handle.result(), first);
    });
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
  });

  it('replays the charge when its response is lost after Stripe committed it: one charge', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'lost');
    const wf = checkoutWorkflowId(input.orderId);
    h.emulator.control.addFault({
      fault: 'lose_response_after_commit',
      idempotencyKey: paymentIdempotencyKey(wf, 1, 'create'),
      times: 1,
    });
    h.emulator.control.addFault({
      fault: 'lose_response_after_commit',
      idempotencyKey: paymentIdempotencyKey(wf, 1, 'confirm'),
      times: 1,
    });
    const result = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    assert.ok(
      h.emulator.control.faults().every((f) => f.hits === 1),
      'both faults fired',
    );
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    await recordHistory(h, wf, 'lost-response-after-commit');
  });

  it('rides out a truncated body, a rate limit, a lock timeout and a dropped connection with one charge', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'noisy stripe');
    const wf = checkoutWorkflowId(input.orderId);
    const create = paymentIdempotencyKey(wf, 1, 'create');
    const confirm = paymentIdempotencyKey(wf, 1, 'confirm');
    h.emulator.control.addFault({ fault: 'truncated_body', idempotencyKey: create, times: 1 });
    h.emulator.control.addFault({ fault: 'rate_limit_429', idempotencyKey: confirm, times: 1 });
    h.emulator.control.addFault({ fault: 'lock_timeout_429', idempotencyKey: confirm, times: 1 });
    h.emulator.control.addFault({ fault: 'reset_before_execution', idempotencyKey: confirm, times: 2 });
    const result = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    assert.ok(
      h.emulator.control.faults().every((f) => f.hits >= 1),
      'every fault fired',
    );
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
  });

  it('returns a decline with its code and provisions nothing', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'declined', {
      paymentMethodId: 'pm_card_chargeDeclinedInsufficientFunds',
    });
    const result = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'declined');
    if (result.outcome !== 'declined') return;
    assert.equal(result.decline.code, 'card_declined');
    assert.equal(result.decline.declineCode, 'insufficient_funds');
    assert.equal(successfulCharges(h, input.orderId), 0);
    assert.equal(await provisionedCount(h, input.orderId), 0);
    await recordHistory(h, checkoutWorkflowId(input.orderId), 'declined');
  });

  it('cancels a declined checkout during its retry window: it ends canceled with no charge', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'cancel declined', {
      paymentMethodId: 'pm_card_chargeDeclined',
      options: { ...FAST_OPTIONS, paymentRetryWindowMs: 120_000 },
    });
    const result = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, inState('declined'));
      const status = await cancelCheckout(h.client, input.orderId, {
        actor: 'customer:web',
        reason: 'gave up after the decline',
      });
      assert.equal(status.state, 'canceled');
      assert.ok(status.audit.some((a) => a.actor === 'customer:web' && a.action === 'request:cancel'));
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'canceled');
    if (result.outcome === 'canceled') {
      assert.equal(result.actor, 'customer:web');
      assert.equal(result.reason, 'gave up after the decline');
    }
    assert.equal(paymentIntentsFor(h, input.orderId)[0]?.status, 'canceled');
    assert.equal(successfulCharges(h, input.orderId), 0);
    assert.equal(await provisionedCount(h, input.orderId), 0);
  });

  it('charges exactly once when a declined card is replaced through retryPayment', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'retry', {
      paymentMethodId: 'pm_card_chargeDeclined',
      options: { paymentPollIntervalMs: 200, paymentRetryWindowMs: 60_000, stripeCallTimeoutMs: 4_000 },
    });
    const result = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, inState('declined'));
      await assert.rejects(
        cancelCheckout(h.client, input.orderId, { actor: '', reason: 'x' }),
        /actor: must be a non-empty string/,
      );
      const status = await retryPayment(h.client, input.orderId, {
        paymentMethodId: 'pm_card_mastercard',
        actor: 'customer:web',
        reason: 'customer entered another card',
      });
      assert.equal(status.generation, 2);
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    assert.equal(result.generation, 2);
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(
      paymentIntentsFor(h, input.orderId).length,
      1,
      'the new card confirms the same PaymentIntent',
    );
    assert.equal(await provisionedCount(h, input.orderId), 1);
    const status = await h.withWorker(taskQueue, () => getCheckoutStatus(h.client, input.orderId));
    const retry = status.audit.find((a) => a.action === 'retry_payment');
    assert.equal(retry?.actor, 'customer:web');
    assert.equal(retry?.reason, 'customer entered another card (generation 2)');
    await recordHistory(h, checkoutWorkflowId(input.orderId), 'declined-then-retried');
  });

  it('rejects invalid input in the workflow itself with a non-retryable InvalidCheckoutInput', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'invalid');
    const err = await h.withWorker(taskQueue, async () => {
      const handle = await h.client.workflow.start(checkoutWorkflowType, {
        workflowId: checkoutWorkflowId(input.orderId),
        taskQueue,
        args: [{ ...input, amount: -5 }],
      });
      return handle.result().then(
        () => assert.fail('must fail'),
        (e: unknown) => e,
      );
    });
    assert.ok(err instanceof WorkflowFailedError);
    assert.ok(err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, FailureType.InvalidCheckoutInput);
    assert.equal(err.cause.nonRetryable, true);
    assert.match(err.cause.message, /amount: must be an integer/);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 0);
  });

  it('parks as needs-attention and never compensates when the key was used with other parameters', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'mismatch');
    const wf = checkoutWorkflowId(input.orderId);
    const squatter = await h.stripe.paymentIntents.create(
      {
        amount: 999,
        currency: 'usd',
        automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
        metadata: { order_id: input.orderId },
      },
      { idempotencyKey: paymentIdempotencyKey(wf, 1, 'create') },
    );
    await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      const status = await waitForStatus(h, input.orderId, inState('needs_attention'));
      assert.equal(status.needsAttention?.reason, 'idempotency_mismatch');
      assert.equal(status.needsAttention?.retryAllowed, false);
      await rejectsWithCause(
        retryPayment(h.client, input.orderId, {
          paymentMethodId: 'pm_card_visa',
          actor: 'ops:ann',
          reason: 'try',
        }),
        /not allowed in state needs_attention/,
      );
      const after = await resolveCheckout(h.client, input.orderId, {
        actor: 'ops:ann',
        reason: 'key collision investigated; order abandoned',
        outcome: 'abandon',
      });
      assert.ok(after.audit.some((a) => a.actor === 'ops:ann' && a.action === 'request:resolve:abandon'));
      const result = await waitForCheckoutResult(h.client, input.orderId);
      assert.equal(result.outcome, 'canceled');
    });
    const pis = paymentIntentsFor(h, input.orderId);
    assert.deepEqual(
      pis.map((p) => [p.id, p.status, p.amount]),
      [[squatter.id, 'requires_payment_method', 999]],
      'the other PaymentIntent is left exactly as it was',
    );
    assert.equal(h.emulator.control.ledger().refunds.length, 0);
    assert.equal(await provisionedCount(h, input.orderId), 0);
    await recordHistory(h, wf, 'idempotency-mismatch');
  });

  it('never provisions unpaid after a stored 500 on the confirm: it reads Stripe, waits as needs-attention, and a new card charges once', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'stored500 confirm', {
      options: { ...FAST_OPTIONS, reconcileIntervalMs: 300 },
    });
    const wf = checkoutWorkflowId(input.orderId);
    h.emulator.control.addFault({
      fault: 'stored_500',
      idempotencyKey: paymentIdempotencyKey(wf, 1, 'confirm'),
    });
    const result = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      const parked = await waitForStatus(h, input.orderId, inState('needs_attention'));
      assert.equal(parked.needsAttention?.reason, 'payment_outcome_unknown');
      assert.equal(parked.needsAttention?.retryAllowed, true, 'Stripe was read and shows no charge');
      assert.match(parked.needsAttention?.detail ?? '', /StripeOutcomeUnknown.*not charged/);
      // It keeps re-reading Stripe on its own and stays parked while Stripe shows no charge.
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal((await getCheckoutStatus(h.client, input.orderId)).state, 'needs_attention');
      assert.equal(successfulCharges(h, input.orderId), 0);
      assert.equal(await provisionedCount(h, input.orderId), 0);
      const listed = await pollList(() =>
        listCheckouts(h.client, { orderId: input.orderId, needsAttention: true }),
      );
      assert.equal(listed[0]?.state, 'needs_attention');
      assert.ok(listed[0]?.needsAttentionSince instanceof Date);
      await retryPayment(h.client, input.orderId, {
        paymentMethodId: 'pm_card_visa',
        actor: 'ops:bo',
        reason: 'Stripe shows the PaymentIntent uncharged; confirming again under a new key',
      });
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1, 'no second PaymentIntent');
    assert.equal(await provisionedCount(h, input.orderId), 1);
    await recordHistory(h, wf, 'stored-500-on-confirm');
  });

  it('creates no second PaymentIntent after a stored 500 on the create: a search miss is inconclusive, so it waits as needs-attention', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'stored500 create');
    const wf = checkoutWorkflowId(input.orderId);
    h.emulator.control.addFault({
      fault: 'stored_500',
      idempotencyKey: paymentIdempotencyKey(wf, 1, 'create'),
    });
    await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      const parked = await waitForStatus(h, input.orderId, inState('needs_attention'));
      assert.equal(parked.needsAttention?.reason, 'payment_outcome_unknown');
      assert.match(parked.needsAttention?.detail ?? '', /search found no PaymentIntent \(inconclusive\)/);
      assert.equal(parked.paymentIntentId, undefined);
      await new Promise((r) => setTimeout(r, 1_000));
      await resolveCheckout(h.client, input.orderId, {
        actor: 'ops:cy',
        reason: 'customer asked to drop the order',
        outcome: 'abandon',
      });
      const result = await waitForCheckoutResult(h.client, input.orderId);
      assert.equal(result.outcome, 'canceled');
      if (result.outcome === 'canceled') assert.equal(result.actor, 'ops:cy');
    });
    assert.equal(paymentIntentsFor(h, input.orderId).length, 0);
    assert.equal(await provisionedCount(h, input.orderId), 0);
    const createRule = h.emulator.control.faults()[0];
    assert.equal(createRule?.hits, 1, 'the create was posted once: no blind new key');
  });

  it('still charges once when the emulator clock passes 24 h (keys pruned) while the charge cannot finish', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'past 24h');
    const wf = checkoutWorkflowId(input.orderId);
    const confirmKey = paymentIdempotencyKey(wf, 1, 'confirm');
    h.emulator.control.addFault({
      fault: 'lose_response_after_commit',
      idempotencyKey: confirmKey,
      times: 1,
    });
    const blocked = h.emulator.control.addFault({ fault: 'transient_500', idempotencyKey: confirmKey });
    const result = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      await until(
        () => h.emulator.control.faults().some((f) => f.id === blocked.id && f.hits >= 1),
        30_000,
        'a retry of the committed confirm to be refused',
      );
      assert.equal(successfulCharges(h, input.orderId), 1, 'Stripe committed the first confirm');
      h.emulator.control.advanceClock(25 * 60 * 60);
      h.emulator.control.clearFaults();
      // The next retry meets a pruned key: Stripe runs it as a new confirm of a succeeded
      // PaymentIntent, refuses it, and the workflow reads the PaymentIntent back.
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    await recordHistory(h, wf, 'past-24h-pruned-key');
  });

  it("stops posting once a key's budget is spent and reads the PaymentIntent back instead", async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'budget spent', {
      options: { ...FAST_OPTIONS, stripeKeyBudgetMs: 3_000 },
    });
    const wf = checkoutWorkflowId(input.orderId);
    const confirmKey = paymentIdempotencyKey(wf, 1, 'confirm');
    h.emulator.control.addFault({
      fault: 'lose_response_after_commit',
      idempotencyKey: confirmKey,
      times: 1,
    });
    h.emulator.control.addFault({ fault: 'transient_500', idempotencyKey: confirmKey });
    const status = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      const result = await waitForCheckoutResult(h.client, input.orderId);
      assert.equal(result.outcome, 'completed');
      return getCheckoutStatus(h.client, input.orderId);
    });
    assert.ok(
      status.audit.some((a) => a.action === 'state:reconciling' && /^confirm /.test(a.reason)),
      `the confirm gave up at its budget and the workflow read Stripe: ${JSON.stringify(status.audit)}`,
    );
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    await recordHistory(h, wf, 'key-budget-spent');
  });

  for (const lag of [0, 3_600]) {
    it(`does not charge twice when a paid checkout is reset to its first workflow task (search lag ${lag} s)`, async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? `reset ${lag}`);
      const wf = checkoutWorkflowId(input.orderId);
      h.emulator.control.configure({ searchLagSeconds: lag });
      try {
        const status = await h.withWorker(taskQueue, async () => {
          const { handle } = await startCheckout(h.client, input, { taskQueue });
          const first = await handle.result();
          assert.equal(first.outcome, 'completed');
          const runId = await resetToFirstTask(
            h,
            input.orderId,
            'test: reset a paid checkout to its first workflow task',
          );
          const again = await h.client.workflow.getHandle<typeof checkout>(wf, runId).result();
          assert.equal(again.outcome, 'completed');
          return getCheckoutStatus(h.client, input.orderId);
        });
        if (lag === 0) {
          assert.ok(
            status.audit.some((a) => a.action === 'adopted_payment_intent'),
            'found by search',
          );
        }
        assert.equal(successfulCharges(h, input.orderId), 1);
        assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
        assert.equal(await provisionedCount(h, input.orderId), 1);
        if (lag === 0) await recordHistory(h, wf, 'reset-after-paid');
      } finally {
        h.emulator.control.configure({ searchLagSeconds: 0 });
      }
    });
  }

  it('waits for 3-D Secure and charges once the customer authenticates', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? '3ds', {
      paymentMethodId: 'pm_card_threeDSecure2Required',
    });
    const result = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      const waiting = await waitForStatus(h, input.orderId, inState('awaiting_customer_action'));
      assert.ok(waiting.paymentIntentId);
      h.emulator.control.authenticate(waiting.paymentIntentId, 'succeed');
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    await recordHistory(h, checkoutWorkflowId(input.orderId), 'three-d-secure');
  });

  it('records a Stripe event once and ignores a redelivery of the same event id', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'dup event', {
      paymentMethodId: 'pm_card_threeDSecure2Required',
    });
    await h.withWorker(taskQueue, async () => {
      const { handle } = await startCheckout(h.client, input, { taskQueue });
      const waiting = await waitForStatus(h, input.orderId, inState('awaiting_customer_action'));
      assert.ok(waiting.paymentIntentId);
      const notice = {
        eventId: 'evt_duplicated1',
        type: 'payment_intent.requires_action',
        objectId: waiting.paymentIntentId,
        paymentIntentId: waiting.paymentIntentId,
      };
      await handle.signal(stripeEventSignal, notice);
      await handle.signal(stripeEventSignal, notice);
      await handle.signal(stripeEventSignal, notice);
      const seen = await waitForStatus(h, input.orderId, (s) => s.stripeEvents.duplicates === 2);
      assert.deepEqual(seen.stripeEvents, { received: 1, duplicates: 2 });
      const entries = seen.audit.filter((a) => a.reason.startsWith('evt_duplicated1 '));
      assert.equal(entries.length, 1);
      assert.equal(entries[0]?.actor, 'stripe');
      assert.equal(entries[0]?.action, 'stripe_event:payment_intent.requires_action');
      assert.equal(seen.state, 'awaiting_customer_action');
      h.emulator.control.authenticate(waiting.paymentIntentId, 'succeed');
      assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');
    });
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
  });

  it('stays paid with one charge when a late payment_failed arrives after the payment succeeded', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'late failed', {
      paymentMethodId: 'pm_card_threeDSecure2Required',
      // Only the signal can wake the wait before the deadline: the poll would be an hour away.
      options: {
        ...FAST_OPTIONS,
        paymentPollIntervalMs: 60 * 60 * 1000,
        paymentActionTimeoutMs: 2 * 60 * 60 * 1000,
      },
    });
    const result = await h.withWorker(taskQueue, async () => {
      const { handle } = await startCheckout(h.client, input, { taskQueue });
      const waiting = await waitForStatus(h, input.orderId, inState('awaiting_customer_action'));
      const pi = waiting.paymentIntentId;
      assert.ok(pi);
      h.emulator.control.authenticate(pi, 'succeed');
      await handle.signal(stripeEventSignal, {
        eventId: 'evt_latefailure1',
        type: 'payment_intent.payment_failed',
        objectId: pi,
        paymentIntentId: pi,
      });
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'completed');
    const status = await h.withWorker(taskQueue, () => getCheckoutStatus(h.client, input.orderId));
    assert.ok(status.audit.some((a) => a.action === 'stripe_event:payment_intent.payment_failed'));
    assert.equal(status.decline, undefined);
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
  });

  it('charges once and provisions once through 3-D Secure while the webhooks arrive duplicated, reordered and delayed', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'noisy webhooks', {
      paymentMethodId: 'pm_card_threeDSecure2Required',
      options: {
        ...FAST_OPTIONS,
        paymentPollIntervalMs: 60 * 60 * 1000,
        paymentActionTimeoutMs: 2 * 60 * 60 * 1000,
      },
    });
    const secret = 'whsec_noisyWebhooksForCheckout';
    const intake = await startHttpIntake({
      client: h.client,
      taskQueue,
      webhookSecrets: [secret],
      host: '127.0.0.1',
      port: 0,
    });
    const control = `http://${h.emulator.host}:${h.emulator.port}/_emulator`;
    const registered = await fetch(`${control}/webhook_endpoints`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        url: `${intake.url}/webhooks/stripe`,
        secret,
        duplicate: 1,
        reorder: true,
        reorder_window_ms: 100,
        delay_ms: 150,
        retry_base_delay_ms: 50,
      }),
    });
    assert.equal(registered.status, 200, await registered.clone().text());
    const endpoint = (await registered.json()) as { id: string };
    try {
      const result = await h.withWorker(taskQueue, async () => {
        await startCheckout(h.client, input, { taskQueue });
        const waiting = await waitForStatus(h, input.orderId, inState('awaiting_customer_action'));
        assert.ok(waiting.paymentIntentId);
        // Both copies of the requires_action event reach the workflow before the customer acts.
        await waitForStatus(h, input.orderId, (s) => s.stripeEvents.duplicates >= 1, 60_000);
        h.emulator.control.authenticate(waiting.paymentIntentId, 'succeed');
        // The hour-long poll cannot finish this: only a webhook-driven read of the PaymentIntent can.
        return waitForCheckoutResult(h.client, input.orderId);
      });
      assert.equal(result.outcome, 'completed');
      const status = await h.withWorker(taskQueue, () => getCheckoutStatus(h.client, input.orderId));
      const eventIds = status.audit.filter((a) => a.actor === 'stripe').map((a) => a.reason.split(' ')[0]);
      assert.equal(new Set(eventIds).size, eventIds.length, 'each event id is recorded once');
      assert.equal(status.stripeEvents.received, eventIds.length);
      const deliveries = (await (
        await fetch(`${control}/webhook_deliveries?endpoint=${endpoint.id}`)
      ).json()) as { data: { copy: number }[] };
      assert.ok(
        deliveries.data.some((d) => d.copy === 2),
        'the emulator delivered duplicates',
      );
      assert.equal(successfulCharges(h, input.orderId), 1);
      assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
      assert.equal(await provisionedCount(h, input.orderId), 1);
    } finally {
      await fetch(`${control}/webhook_endpoints/${endpoint.id}`, { method: 'DELETE' });
      await intake.close();
    }
  });

  it('cancels the PaymentIntent at the payment deadline so a late authentication cannot charge', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'expire', {
      paymentMethodId: 'pm_card_authenticationRequired',
      options: { ...FAST_OPTIONS, paymentActionTimeoutMs: 1_500 },
    });
    const result = await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      return waitForCheckoutResult(h.client, input.orderId);
    });
    assert.equal(result.outcome, 'expired');
    const [pi] = paymentIntentsFor(h, input.orderId);
    assert.equal(pi?.status, 'canceled');
    assert.throws(() => h.emulator.control.authenticate(pi?.id ?? '', 'succeed'), /canceled/);
    assert.equal(successfulCharges(h, input.orderId), 0);
    assert.equal(await provisionedCount(h, input.orderId), 0);
    await recordHistory(h, checkoutWorkflowId(input.orderId), 'expired');
  });

  it('cancels an unpaid checkout on request, recording who and why, and refuses to cancel a paid one', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'cancel', {
      paymentMethodId: 'pm_card_threeDSecure2Required',
    });
    const paid = newOrder(h, 'paid then cancel refused');
    await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, inState('awaiting_customer_action'));
      const status = await cancelCheckout(h.client, input.orderId, {
        actor: 'customer:web',
        reason: 'closed the 3-D Secure window',
      });
      assert.equal(status.state, 'canceled');
      const result = await waitForCheckoutResult(h.client, input.orderId);
      assert.equal(result.outcome, 'canceled');

      await startCheckout(h.client, paid.input, { taskQueue });
      await waitForCheckoutResult(h.client, paid.input.orderId);
    });
    assert.equal(paymentIntentsFor(h, input.orderId)[0]?.status, 'canceled');
    assert.equal(successfulCharges(h, input.orderId), 0);
    await h.withWorker(taskQueue, () =>
      rejectsWithCause(
        cancelCheckout(h.client, paid.input.orderId, { actor: 'ops:dee', reason: 'too late' }),
        /already completed|already ended|refund instead/,
      ),
    );
    assert.equal(successfulCharges(h, paid.input.orderId), 1);
  });
});

async function pollList<T>(list: () => Promise<T[]>, timeoutMs = 15_000): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await list();
    if (found.length > 0 || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 200));
  }
}
