/**
 * The after-payment flow (src/workflows/provisioning-flow.ts) when operator requests meet: requests
 * that reach the checkout in one workflow task, and decisions sent while the automatic refund is
 * being made. Against the real dev server and the Stripe emulator; money through the emulator's
 * ledger. To put several updates in one workflow task, the test stops the worker, sends them one
 * after another (each admitted by the server, none accepted yet), and starts a worker again: the
 * next workflow task carries them all, in that order. Each test checks that it did.
 */
import assert from 'node:assert/strict';
import type { Worker } from '@temporalio/worker';
import {
  refundCheckout,
  resolveCheckout,
  retryProvisioning,
  startCheckout,
  waitForCheckoutResult,
} from '../../src/client';
import { checkoutWorkflowBundle, createCheckoutWorker } from '../../src/worker';
import {
  checkoutWorkflowId,
  refundIdempotencyKey,
  type CheckoutStatus,
} from '../../src/workflows/definitions';
import {
  FAST_OPTIONS,
  SwitchableProvisioner,
  answered,
  causeMessages,
  newOrder,
  rejectsWithCause,
  suiteHarness,
  until,
  waitForStatus,
} from './support';

type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const parked = (s: CheckoutStatus): boolean =>
  s.state === 'needs_attention' && s.needsAttention?.reason === 'provisioning_failed';

describe('the paid-order flow when operator requests meet', function () {
  this.timeout(150_000);
  const h = suiteHarness();
  const started: string[] = [];
  afterEach(async () => {
    h.emulator.control.clearFaults();
    // A checkout the old code left waiting forever is not left running on the shared server.
    for (const wf of started.splice(0)) {
      await h.client.workflow
        .getHandle(wf)
        .terminate('test cleanup')
        .catch(() => undefined);
    }
  });

  const refundsOf = (orderId: string) =>
    h.emulator.control.ledger().refunds.filter((r) => r.metadata.order_id === orderId);

  async function withDownProvisioning<T>(taskQueue: string, fn: () => Promise<T>): Promise<T> {
    const worker: Worker = await createCheckoutWorker({
      connection: h.nativeConnection,
      namespace: h.namespace,
      taskQueue,
      stripe: h.stripe,
      provisioner: new SwitchableProvisioner(h.provisioner),
      workflowBundle: await checkoutWorkflowBundle(),
    });
    return worker.runUntil(fn());
  }

  /** A card checkout, paid, whose provisioning failed for good; the worker is stopped on return. */
  async function parkedCheckout(title: string): Promise<{ orderId: string; taskQueue: string }> {
    const { input, taskQueue } = newOrder(h, title, {
      options: { ...FAST_OPTIONS, provisioningTimeoutMs: 1_500, provisioningGraceMs: 120_000 },
    });
    started.push(checkoutWorkflowId(input.orderId));
    await withDownProvisioning(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, parked);
    });
    return { orderId: input.orderId, taskQueue };
  }

  /**
   * Sends the requests in order while no worker runs, each once the server holds it, so the next
   * workflow task carries them all.
   */
  async function sendTogether<T extends readonly (() => Promise<unknown>)[]>(
    sends: T,
  ): Promise<{ [K in keyof T]: Promise<Settled<Awaited<ReturnType<T[K]>>>> }> {
    const out: Promise<Settled<unknown>>[] = [];
    for (const send of sends) {
      out.push(settle(send()));
      await sleep(700);
    }
    return out as { [K in keyof T]: Promise<Settled<Awaited<ReturnType<T[K]>>>> };
  }

  /** The ids of the updates the checkout accepted or rejected, grouped by workflow task. */
  async function updatesPerTask(orderId: string): Promise<string[][]> {
    const history = await h.client.workflow.getHandle(checkoutWorkflowId(orderId)).fetchHistory();
    const tasks: string[][] = [];
    let current: string[] = [];
    for (const e of history.events ?? []) {
      if (e.workflowTaskCompletedEventAttributes) {
        if (current.length > 0) tasks.push(current);
        current = [];
      }
      const accepted = e.workflowExecutionUpdateAcceptedEventAttributes;
      if (accepted) current.push(accepted.acceptedRequest?.meta?.updateId ?? '?');
    }
    if (current.length > 0) tasks.push(current);
    return tasks;
  }

  it('answers a retryProvisioning that the checkout could not take before a refund ended it: refused in the audit trail, the update returning the refunded status, and the workflow closes', async function () {
    const { orderId, taskQueue } = await parkedCheckout(this.test?.title ?? 'retry with ending refund');
    // Refunded in full outside the checkout (the dashboard): the checkout learns it only when its
    // own refund fails and it reads Stripe's list.
    const pi = (await h.stripe.paymentIntents.search({ query: `metadata['order_id']:'${orderId}'` })).data[0];
    assert.ok(pi, 'the checkout has a PaymentIntent');
    await h.stripe.refunds.create({ payment_intent: pi.id });
    // A partial refund leaves something as far as the checkout knows, so it is let in after the
    // retry; Stripe refuses it, the list shows everything refunded, and the checkout ends refunded
    // before the retry is taken.
    const [retry, refund] = await sendTogether([
      () => retryProvisioning(h.client, orderId, { actor: 'ops:ann', reason: 'backend is back' }),
      () =>
        refundCheckout(
          h.client,
          orderId,
          { amount: 1_000, requestId: 'part-1', actor: 'ops:bo', reason: 'one seat' },
          { taskQueue },
        ),
    ] as const);
    const result = await withDownProvisioning(taskQueue, async () => {
      const [r, f] = await answered(Promise.all([retry, refund]), 40_000, 'an update');
      assert.ok(!f.ok, 'the partial refund fails at Stripe');
      assert.match(causeMessages(f.error), /refund failed: /);
      assert.ok(r.ok, `the retry is answered: ${r.ok ? '' : causeMessages(r.error)}`);
      assert.equal(r.value.state, 'refunded');
      const refused = r.value.audit.find((e) => e.action === 'retry_provisioning_refused');
      assert.ok(refused, `audit: ${r.value.audit.map((e) => e.action).join(', ')}`);
      assert.equal(refused.actor, 'ops:ann');
      assert.match(refused.reason, /refunded in full \(4200 usd\) before the retry was taken/);
      return answered(waitForCheckoutResult(h.client, orderId), 20_000, 'the checkout result');
    });
    assert.equal(result.outcome, 'refunded');
    const tasks = await updatesPerTask(orderId);
    assert.ok(
      tasks.some((t) => t.length === 2),
      `both updates were accepted in one workflow task: ${JSON.stringify(tasks)}`,
    );
    // The only refund is the one made outside; the checkout sent none that succeeded.
    const refunds = h.emulator.control.ledger().refunds.filter((r) => r.payment_intent === pi.id);
    assert.deepEqual(
      refunds.map((r) => r.amount),
      [4_200],
    );
  });

  it('refuses a retryProvisioning sent together after a refund with a request id, naming the refund in progress, and the refund ends the checkout', async function () {
    const { orderId, taskQueue } = await parkedCheckout(this.test?.title ?? 'refund then retry');
    const [refund, retry] = await sendTogether([
      () =>
        refundCheckout(
          h.client,
          orderId,
          { requestId: 'all-1', actor: 'ops:bo', reason: 'customer asked' },
          { taskQueue },
        ),
      () => retryProvisioning(h.client, orderId, { actor: 'ops:ann', reason: 'backend is back' }),
    ] as const);
    const result = await withDownProvisioning(taskQueue, async () => {
      const [f, r] = await answered(Promise.all([refund, retry]), 40_000, 'an update');
      assert.ok(f.ok, `the refund succeeds: ${f.ok ? '' : causeMessages(f.error)}`);
      assert.equal(f.value.refund.full, true);
      assert.ok(!r.ok, 'the retry is refused');
      assert.match(causeMessages(r.error), /a refund is in progress; try again once it finished/);
      return answered(waitForCheckoutResult(h.client, orderId), 20_000, 'the checkout result');
    });
    assert.equal(result.outcome, 'refunded');
    assert.equal(refundsOf(orderId).length, 1);
  });

  it('refuses a refund of everything left sent together after a retryProvisioning, naming the pending retry, and takes the retry', async function () {
    const { orderId, taskQueue } = await parkedCheckout(this.test?.title ?? 'retry then full refund');
    const [retry, refund] = await sendTogether([
      () => retryProvisioning(h.client, orderId, { actor: 'ops:ann', reason: 'backend is back' }),
      () =>
        refundCheckout(
          h.client,
          orderId,
          { requestId: 'all-2', actor: 'ops:bo', reason: 'customer asked' },
          { taskQueue },
        ),
    ] as const);
    const result = await withDownProvisioning(taskQueue, async () => {
      const [r, f] = await answered(Promise.all([retry, refund]), 40_000, 'an update');
      assert.ok(!f.ok, 'the full refund is refused');
      assert.match(causeMessages(f.error), /a retryProvisioning by ops:ann is pending/);
      assert.ok(r.ok, `the retry is taken: ${r.ok ? '' : causeMessages(r.error)}`);
      assert.equal(r.value.state, 'provisioning');
      assert.equal(refundsOf(orderId).length, 0);
      // The retry fails again (the backend is still down); a refund then goes through.
      await waitForStatus(
        h,
        orderId,
        (s) => parked(s) && s.audit.some((e) => e.action === 'retry_provisioning'),
      );
      await refundCheckout(
        h.client,
        orderId,
        { requestId: 'all-2b', actor: 'ops:bo', reason: 'customer asked' },
        { taskQueue },
      );
      return answered(waitForCheckoutResult(h.client, orderId), 20_000, 'the checkout result');
    });
    assert.equal(result.outcome, 'refunded');
    assert.equal(refundsOf(orderId).length, 1);
  });

  it('refuses keep_payment while the automatic refund is in flight, naming why, and the checkout ends refunded as the refund says', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'keep during auto refund', {
      options: { ...FAST_OPTIONS, provisioningTimeoutMs: 1_500, provisioningGraceMs: 3_000 },
    });
    const wf = checkoutWorkflowId(input.orderId);
    started.push(wf);
    // The automatic refund's request is held at Stripe long enough to send decisions meanwhile.
    const rule = h.emulator.control.addFault({
      fault: 'slow',
      idempotencyKey: refundIdempotencyKey(wf, 1),
      delayMs: 2_500,
      times: 1,
    });
    const result = await withDownProvisioning(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      await waitForStatus(h, input.orderId, (s) => s.automaticRefund?.status === 'scheduled');
      await until(
        () => h.emulator.control.faults().some((f) => f.id === rule.id && f.hits > 0),
        20_000,
        'the automatic refund reaching Stripe',
      );
      await rejectsWithCause(
        resolveCheckout(h.client, input.orderId, {
          outcome: 'keep_payment',
          actor: 'ops:dee',
          reason: 'we will provision by hand',
        }),
        /keep_payment is too late: the automatic refund is already being made/,
      );
      return answered(waitForCheckoutResult(h.client, input.orderId), 30_000, 'the checkout result');
    });
    assert.equal(result.outcome, 'refunded');
    const refunds = refundsOf(input.orderId);
    assert.equal(refunds.length, 1);
    assert.equal(refunds[0]?.amount, input.amount);
  });
});
