/**
 * The reconciler against a real Temporal dev server and the Stripe emulator: planted orphans are
 * canceled exactly once, planted paid-but-not-provisioned and charged-without-checkout payments
 * become one case each (found by CheckoutState=needs_attention), healthy checkouts yield nothing,
 * and a running checkout keeps its PaymentIntent. Money and cancels are asserted through the
 * emulator's ledger and event log.
 */
import assert from 'node:assert/strict';
import { startCheckout, waitForCheckoutResult, cancelCheckout } from '../../src/client';
import {
  getReconciliationCase,
  listReconciliationCases,
  resolveReconciliationCase,
} from '../../src/reconciler/cases';
import {
  CheckoutStateAttr,
  StripePaymentIntentIdAttr,
  checkoutWorkflowId,
  reconcileCancelIdempotencyKey,
  reconcileWorkflowType,
  reconciliationCaseWorkflowId,
  reconciliationCaseWorkflowType,
  type ReconcileOptions,
  type ReconcileResult,
  type ReconciledFinding,
} from '../../src/workflows/definitions';
import type { reconcile } from '../../src/workflows/reconciler';
import { uniqueName } from '../support/temporal';
import { FAST_OPTIONS, newOrder, suiteHarness, waitForStatus } from '../workflows/support';

const NOW: ReconcileOptions = { orphanGraceMs: 0 };

describe('reconciler', function () {
  this.timeout(120_000);
  const h = suiteHarness();

  let runs = 0;
  function runReconcile(taskQueue: string, options: ReconcileOptions): Promise<ReconcileResult> {
    runs += 1;
    return h.client.workflow.execute<typeof reconcile>(reconcileWorkflowType, {
      workflowId: `${uniqueName('reconcile')}-${runs}`,
      taskQueue,
      args: [{ options }],
    });
  }

  function findingFor(result: ReconcileResult, paymentIntentId: string): ReconciledFinding | undefined {
    return result.findings.find((f) => f.paymentIntentId === paymentIntentId);
  }

  function metadataOf(orderId: string, generation = '1'): Record<string, string> {
    return { order_id: orderId, checkout_workflow_id: checkoutWorkflowId(orderId), generation };
  }

  /** An unconfirmed PaymentIntent carrying a checkout's metadata, as a lost create would leave it. */
  async function plantUnconfirmed(orderId: string, generation = '1'): Promise<string> {
    const pi = await h.stripe.paymentIntents.create({
      amount: 4_200,
      currency: 'usd',
      customer: h.customerId,
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      metadata: metadataOf(orderId, generation),
    });
    return pi.id;
  }

  /** A PaymentIntent charged outside any checkout flow, carrying a checkout's metadata. */
  async function plantCharged(orderId: string, generation = '1'): Promise<string> {
    const pi = await h.stripe.paymentIntents.create({
      amount: 4_200,
      currency: 'usd',
      customer: h.customerId,
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      payment_method: 'pm_card_visa',
      confirm: true,
      metadata: metadataOf(orderId, generation),
    });
    assert.equal(pi.status, 'succeeded');
    return pi.id;
  }

  function stripeStatus(paymentIntentId: string): string | undefined {
    return h.emulator.control.ledger().payment_intents.find((p) => p.id === paymentIntentId)?.status;
  }

  function cancelEvents(paymentIntentId: string) {
    return h.emulator.events
      .all()
      .filter((e) => e.type === 'payment_intent.canceled' && e.data.object['id'] === paymentIntentId);
  }

  async function caseVisible(paymentIntentId: string): Promise<string[]> {
    const query =
      `WorkflowType = '${reconciliationCaseWorkflowType}' AND ${CheckoutStateAttr.name} = 'needs_attention' ` +
      `AND ${StripePaymentIntentIdAttr.name} = '${paymentIntentId}'`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ids: string[] = [];
      for await (const wf of h.client.workflow.list({ query })) ids.push(wf.workflowId);
      if (ids.length > 0 || Date.now() > deadline) return ids;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async function executionsOf(workflowId: string): Promise<number> {
    let n = 0;
    for await (const _ of h.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) n += 1;
    return n;
  }

  /** A checkout that ends declined (no retry window): closed, nothing provisioned. */
  async function declinedCheckout(title: string, taskQueue: string): Promise<string> {
    const { input } = newOrder(h, title, { paymentMethodId: 'pm_card_chargeDeclined' });
    await startCheckout(h.client, input, { taskQueue });
    const result = await waitForCheckoutResult(h.client, input.orderId);
    assert.equal(result.outcome, 'declined');
    return input.orderId;
  }

  it('cancels an orphan of a completed checkout and of an order with no checkout, once across two runs, under reconcile/<pi>/cancel', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'orphan');
    await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');
      const ofCompleted = await plantUnconfirmed(input.orderId, '2');
      const ofNobody = await plantUnconfirmed(uniqueName('no-such-order'));

      const first = await runReconcile(taskQueue, NOW);
      for (const pi of [ofCompleted, ofNobody]) {
        const f = findingFor(first, pi);
        assert.equal(f?.kind, 'orphan', pi);
        assert.equal(f?.outcome, 'canceled');
        assert.equal(stripeStatus(pi), 'canceled');
      }
      assert.ok(first.fixes.orphan >= 2);

      const second = await runReconcile(taskQueue, NOW);
      for (const pi of [ofCompleted, ofNobody]) {
        assert.equal(findingFor(second, pi), undefined, 'a canceled PaymentIntent is no finding');
        const events = cancelEvents(pi);
        assert.equal(events.length, 1, 'Stripe canceled it once');
        assert.equal(events[0]?.request.idempotency_key, reconcileCancelIdempotencyKey(pi));
      }
    });
  });

  it('cancels once when two runs overlap on the same orphan (one key for every run)', async function () {
    const { taskQueue } = newOrder(h, this.test?.title ?? 'overlap');
    const pi = await plantUnconfirmed(uniqueName('overlapping-runs'));
    await h.withWorker(taskQueue, async () => {
      const runs = await Promise.all([runReconcile(taskQueue, NOW), runReconcile(taskQueue, NOW)]);
      const seen = runs.map((r) => findingFor(r, pi)).filter((f) => f !== undefined);
      assert.ok(seen.length >= 1);
      for (const f of seen) assert.equal(f.outcome, 'canceled');
      assert.equal(stripeStatus(pi), 'canceled');
      assert.equal(cancelEvents(pi).length, 1);
    });
  });

  it('pages through the window, and a continued run resumes after its cursor with the counts it carried', async function () {
    const { taskQueue } = newOrder(h, this.test?.title ?? 'continued');
    const older = await plantUnconfirmed(uniqueName('continued-older'));
    const newer = await plantUnconfirmed(uniqueName('continued-newer'));
    const startedAt = new Date().toISOString();
    await h.withWorker(taskQueue, async () => {
      const result = await h.client.workflow.execute<typeof reconcile>(reconcileWorkflowType, {
        workflowId: `${uniqueName('reconcile-continued')}-${++runs}`,
        taskQueue,
        args: [
          {
            options: { orphanGraceMs: 0, dryRun: true, pageSize: 2 },
            progress: {
              nowMs: Date.now(),
              startedAt,
              cursor: newer,
              scanned: 10,
              withCheckoutMetadata: 7,
              findings: [],
              findingsNotListed: 0,
              counts: {
                orphan: 5,
                paid_not_provisioned: 0,
                charged_without_checkout: 0,
                duplicate_payment: 0,
              },
              fixes: {
                orphan: 0,
                paid_not_provisioned: 0,
                charged_without_checkout: 0,
                duplicate_payment: 0,
              },
            },
          },
        ],
      });
      assert.equal(result.startedAt, startedAt);
      assert.equal(findingFor(result, newer), undefined, 'the cursor itself was read before');
      assert.equal(findingFor(result, older)?.outcome, 'reported');
      const orphansNow = result.findings.filter((f) => f.kind === 'orphan').length;
      assert.equal(result.counts.orphan, 5 + orphansNow);
      assert.ok(result.scanned > 10);
      assert.equal(stripeStatus(older), 'requires_payment_method');
    });
  });

  it('leaves an unconfirmed PaymentIntent younger than the grace, and changes nothing on a dry run', async function () {
    const { taskQueue } = newOrder(h, this.test?.title ?? 'grace');
    const pi = await plantUnconfirmed(uniqueName('young-orphan'));
    await h.withWorker(taskQueue, async () => {
      const young = await runReconcile(taskQueue, { orphanGraceMs: 60 * 60 * 1000 });
      assert.equal(findingFor(young, pi), undefined);
      const dry = await runReconcile(taskQueue, { orphanGraceMs: 0, dryRun: true });
      assert.equal(findingFor(dry, pi)?.outcome, 'reported');
      assert.equal(dry.dryRun, true);
      assert.equal(stripeStatus(pi), 'requires_payment_method');
      assert.equal(cancelEvents(pi).length, 0);
    });
  });

  it('opens one case for a payment whose checkout ended without provisioning, findable by CheckoutState=needs_attention; re-runs do not duplicate it and resolve closes it', async function () {
    const { taskQueue } = newOrder(h, this.test?.title ?? 'paid-not-provisioned');
    await h.withWorker(taskQueue, async () => {
      const orderId = await declinedCheckout('declined then charged outside it', taskQueue);
      const pi = await plantCharged(orderId, '2');

      const first = await runReconcile(taskQueue, NOW);
      const f = findingFor(first, pi);
      assert.equal(f?.kind, 'paid_not_provisioned');
      assert.equal(f?.outcome, 'case_opened');
      assert.equal(f?.caseWorkflowId, reconciliationCaseWorkflowId(pi));
      assert.equal(f?.checkout, 'completed');
      assert.deepEqual(await caseVisible(pi), [reconciliationCaseWorkflowId(pi)]);

      const second = await runReconcile(taskQueue, NOW);
      assert.equal(findingFor(second, pi)?.outcome, 'case_open');
      assert.equal(second.fixes.paid_not_provisioned, 0);
      assert.equal(await executionsOf(reconciliationCaseWorkflowId(pi)), 1);

      const open = await getReconciliationCase(h.client, pi);
      assert.equal(open.state, 'needs_attention');
      assert.equal(open.finding.orderId, orderId);
      assert.ok((await listReconciliationCases(h.client)).some((c) => c.paymentIntentId === pi));

      await assert.rejects(
        resolveReconciliationCase(h.client, pi, { actor: 'ops', reason: '', outcome: 'refunded' }),
        /reason/,
      );
      const resolved = await resolveReconciliationCase(h.client, pi, {
        actor: 'ops@example.com',
        reason: 'refunded by hand in the dashboard',
        outcome: 'refunded',
      });
      assert.equal(resolved.state, 'resolved');
      assert.equal(resolved.resolution?.actor, 'ops@example.com');
      assert.ok(resolved.audit.some((a) => a.action === 'resolve:refunded'));
      await assert.rejects(
        h.client.workflow
          .getHandle(reconciliationCaseWorkflowId(pi))
          .executeUpdate('resolve', { args: [{ actor: 'a', reason: 'b', outcome: 'no_action' }] }),
        (err: unknown) => err instanceof Error,
      );
      const result = (await h.client.workflow.getHandle(reconciliationCaseWorkflowId(pi)).result()) as {
        resolution: { outcome: string };
      };
      assert.equal(result.resolution.outcome, 'refunded');

      const third = await runReconcile(taskQueue, NOW);
      assert.equal(findingFor(third, pi)?.outcome, 'case_resolved');
      assert.equal(await executionsOf(reconciliationCaseWorkflowId(pi)), 1);
    });
  });

  it('opens a case for a charge with checkout metadata but no checkout, and for a second charge of a provisioned checkout', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'charged-without-checkout');
    await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');
      const second = await plantCharged(input.orderId, '2');
      const orphanCharge = await plantCharged(uniqueName('never-started'));

      const run = await runReconcile(taskQueue, NOW);
      assert.equal(findingFor(run, orphanCharge)?.kind, 'charged_without_checkout');
      assert.equal(findingFor(run, orphanCharge)?.outcome, 'case_opened');
      assert.equal(findingFor(run, second)?.kind, 'duplicate_payment');
      assert.equal(findingFor(run, second)?.outcome, 'case_opened');
      assert.deepEqual(await caseVisible(orphanCharge), [reconciliationCaseWorkflowId(orphanCharge)]);
    });
  });

  it('finds nothing for a healthy completed checkout, and leaves a running checkout its PaymentIntent', async function () {
    const healthy = newOrder(h, 'healthy completed checkout');
    const waiting = newOrder(h, 'running checkout waiting for a new card', {
      paymentMethodId: 'pm_card_chargeDeclined',
      options: { ...FAST_OPTIONS, paymentRetryWindowMs: 10 * 60 * 1000 },
    });
    const taskQueue = healthy.taskQueue;
    await h.withWorker(taskQueue, async () => {
      await startCheckout(h.client, healthy.input, { taskQueue });
      const done = await waitForCheckoutResult(h.client, healthy.input.orderId);
      assert.equal(done.outcome, 'completed');
      await startCheckout(h.client, waiting.input, { taskQueue });
      const declined = await waitForStatus(h, waiting.input.orderId, (s) => s.state === 'declined');
      const waitingPi = declined.paymentIntentId ?? '';
      assert.match(waitingPi, /^pi_/);

      const run = await runReconcile(taskQueue, NOW);
      assert.equal(done.outcome === 'completed' && findingFor(run, done.paymentIntentId), undefined);
      assert.equal(findingFor(run, waitingPi), undefined);
      assert.equal(stripeStatus(waitingPi), 'requires_payment_method');

      await cancelCheckout(h.client, waiting.input.orderId, { actor: 'test', reason: 'clean up' });
    });
  });
});
