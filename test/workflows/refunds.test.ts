/**
 * Refunds and the provisioning grace period against the real dev server and the Stripe emulator:
 * refunds of a completed checkout (the refunds workflow), refunds of an open one (the checkout's
 * own update), provisioning that fails for good (automatic full refund after the grace, or an
 * operator's retry, or an operator keeping the payment). Money is asserted through the emulator's
 * ledger, entitlements through the provisioning store.
 */
import assert from 'node:assert/strict';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import {
  InvalidCheckoutInputError,
  RefundNotAllowedError,
  RefundRequestConflictError,
  getCheckoutStatusWithRefunds,
  getRefundsStatus,
  refundCheckout,
  refundRequestDigest,
  resolveCheckout,
  retryProvisioning,
  startCheckout,
  waitForCheckoutResult,
} from '../../src/client';
import type { Provisioner } from '../../src/provisioning';
import { checkoutWorkflowBundle, createCheckoutWorker } from '../../src/worker';
import type { checkoutRefunds } from '../../src/workflows/refunds';
import {
  checkoutWorkflowId,
  refundIdempotencyKey,
  type RefundResult,
  refundsWorkflowId,
  type CheckoutStatus,
} from '../../src/workflows/definitions';
import {
  SwitchableProvisioner,
  causeChain,
  FAST_OPTIONS,
  newOrder,
  recordHistory,
  rejectsWithCause,
  suiteHarness,
  successfulCharges,
  waitForStatus,
} from './support';

const OPS = { actor: 'ops:dee', reason: 'customer asked' } as const;
const REFUNDS_OPTIONS = { idleTimeoutMs: 60_000, stripeCallTimeoutMs: 4_000 } as const;

describe('refunds and the provisioning grace period', function () {
  this.timeout(120_000);
  const h = suiteHarness();
  afterEach(() => {
    h.emulator.control.clearFaults();
  });

  const refundsOf = (orderId: string) =>
    h.emulator.control.ledger().refunds.filter((r) => r.metadata.order_id === orderId);

  async function withProvisioner<T>(
    taskQueue: string,
    provisioner: Provisioner,
    fn: () => Promise<T>,
  ): Promise<T> {
    const worker: Worker = await createCheckoutWorker({
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

  describe('a completed checkout (the refunds workflow)', () => {
    it('refunds in part, refuses more than is left naming it, then refunds the rest: one charge, refunds summing to the amount, the entitlement revoked only by the last', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'refund completed');
      const wf = checkoutWorkflowId(input.orderId);
      await h.withWorker(taskQueue, async () => {
        await startCheckout(h.client, input, { taskQueue });
        assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');

        const part = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 1_000, ...OPS },
          { taskQueue, refundsOptions: REFUNDS_OPTIONS },
        );
        assert.equal(part.workflowId, refundsWorkflowId(input.orderId));
        assert.equal(part.refund.amount, 1_000);
        assert.equal(part.refund.idempotencyKey, refundIdempotencyKey(refundsWorkflowId(input.orderId), 1));
        assert.equal(part.refund.actor, OPS.actor);
        assert.equal(part.refund.full, false);
        assert.equal(part.remainingAmount, 3_200);
        assert.equal((await h.provisioner.get(wf))?.revokedAt, undefined, 'a partial refund keeps it');

        await rejectsWithCause(
          refundCheckout(h.client, input.orderId, { amount: 4_000, ...OPS }, { taskQueue }),
          /amount: 4000 is more than the 3200 usd left to refund/,
        );
        assert.equal(refundsOf(input.orderId).length, 1, 'the refused request refunded nothing');

        const rest = await refundCheckout(
          h.client,
          input.orderId,
          { actor: 'ops:eve', reason: 'order lost' },
          { taskQueue },
        );
        assert.equal(rest.refund.amount, 3_200);
        assert.equal(rest.refund.full, true);
        assert.equal(rest.refundedAmount, 4_200);
        assert.equal(rest.remainingAmount, 0);

        const status = await getCheckoutStatusWithRefunds(h.client, input.orderId);
        assert.equal(status.state, 'completed');
        assert.equal(status.refundedAmount, 4_200);
        assert.deepEqual(
          status.refunds?.map((r) => [r.amount, r.actor, r.reason]),
          [
            [1_000, 'ops:dee', 'customer asked'],
            [3_200, 'ops:eve', 'order lost'],
          ],
        );
        const refundsStatus = await getRefundsStatus(h.client, input.orderId);
        assert.ok(refundsStatus?.audit.some((a) => a.actor === 'ops:eve' && a.action === 'request:refund'));

        await rejectsWithCause(
          refundCheckout(h.client, input.orderId, OPS, { taskQueue }),
          /nothing left to refund/,
        );
      });
      assert.equal(successfulCharges(h, input.orderId), 1);
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [1_000, 3_200],
      );
      assert.ok((await h.provisioner.get(wf))?.revokedAt, 'the full refund revoked the entitlement');
    });

    it('refunds once when the response is lost after Stripe committed the refund', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'refund lost response');
      const key = refundIdempotencyKey(refundsWorkflowId(input.orderId), 1);
      await h.withWorker(taskQueue, async () => {
        await startCheckout(h.client, input, { taskQueue });
        assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');
        h.emulator.control.addFault({
          fault: 'lose_response_after_commit',
          method: 'POST',
          path: '/v1/refunds',
          idempotencyKey: key,
          times: 1,
        });
        const result = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 700, ...OPS },
          { taskQueue, refundsOptions: REFUNDS_OPTIONS },
        );
        assert.equal(h.emulator.control.faults()[0]?.hits, 1, 'the response was lost after commit');
        assert.equal(result.refund.idempotencyKey, key);
        assert.deepEqual(
          refundsOf(input.orderId).map((r) => [r.id, r.amount]),
          [[result.refund.refundId, 700]],
        );
      });
      assert.equal(successfulCharges(h, input.orderId), 1);
    });

    it('runs requests that waited for their turn one at a time: the second waiter sees what the first left', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'refund turns');
      const key = refundIdempotencyKey(refundsWorkflowId(input.orderId), 1);
      await h.withWorker(taskQueue, async () => {
        await startCheckout(h.client, input, { taskQueue });
        assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');
        h.emulator.control.addFault({
          fault: 'slow',
          method: 'POST',
          path: '/v1/refunds',
          idempotencyKey: key,
          delayMs: 1_200,
          times: 1,
        });
        const opts = { taskQueue, refundsOptions: REFUNDS_OPTIONS };
        const first = refundCheckout(h.client, input.orderId, { amount: 2_000, ...OPS }, opts);
        // Wait until the first refund is inside Stripe, then queue two more behind it.
        const deadline = Date.now() + 30_000;
        while ((h.emulator.control.faults()[0]?.hits ?? 0) < 1 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal(h.emulator.control.faults()[0]?.hits, 1, 'the first refund is in flight');
        const waiters = await Promise.allSettled([
          refundCheckout(h.client, input.orderId, { amount: 1_500, ...OPS }, opts),
          refundCheckout(h.client, input.orderId, { amount: 1_500, ...OPS }, opts),
        ]);
        assert.equal((await first).refund.amount, 2_000);
        assert.equal(waiters.filter((w) => w.status === 'fulfilled').length, 1);
        const refused = waiters.find((w) => w.status === 'rejected');
        assert.ok(refused?.status === 'rejected');
        const messages = causeChain(refused.reason);
        assert.ok(
          messages.some((m) => /amount: 1500 is more than the 700 usd left to refund/.test(m)),
          `refused by the handler on its turn, not by Stripe: ${messages.join(' <- ')}`,
        );
      });
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [2_000, 1_500],
      );
    });

    it('learns earlier refunds from Stripe in a new run and never reuses their keys', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'refund new run');
      await h.withWorker(taskQueue, async () => {
        await startCheckout(h.client, input, { taskQueue });
        assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');
        const first = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 1_200, ...OPS },
          { taskQueue, refundsOptions: { idleTimeoutMs: 500, stripeCallTimeoutMs: 4_000 } },
        );
        assert.equal(first.refund.idempotencyKey, refundIdempotencyKey(refundsWorkflowId(input.orderId), 1));
        // The run closes when idle; the next request starts a new run that reads Stripe first.
        const firstRun = h.client.workflow.getHandle<typeof checkoutRefunds>(
          refundsWorkflowId(input.orderId),
        );
        assert.equal((await firstRun.result()).outcome, 'idle');
        // The new run knows only what was paid until it has read Stripe; then its handler refuses.
        await rejectsWithCause(
          refundCheckout(
            h.client,
            input.orderId,
            { amount: 3_500, ...OPS },
            { taskQueue, refundsOptions: REFUNDS_OPTIONS },
          ),
          /amount: 3500 is more than the 3000 usd left to refund/,
        );
        const third = await refundCheckout(h.client, input.orderId, OPS, { taskQueue });
        assert.equal(third.refund.amount, 3_000);
        assert.equal(third.refund.idempotencyKey, refundIdempotencyKey(refundsWorkflowId(input.orderId), 2));
        assert.equal(third.refundedAmount, 4_200);
      });
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [1_200, 3_000],
      );
    });
  });

  describe('a request id (a repeated request refunds once)', () => {
    /** A conflict error naming `amount`, nothing refunded. */
    const isConflict = (err: unknown): boolean => {
      assert.ok(err instanceof RefundRequestConflictError, String(err));
      assert.deepEqual(err.fields, ['amount']);
      assert.match(err.message, /amount: this request id was already used for a refund of 1000/);
      return true;
    };
    const sameRefund = (answers: readonly RefundResult[]): string => {
      const ids = new Set(answers.map((a) => a.refund.refundId));
      assert.equal(ids.size, 1, `one refund for all answers: ${[...ids].join(', ')}`);
      return [...ids][0] ?? '';
    };

    it('answers a repeat (sequential and concurrent) with the first refund, and refuses the id with another amount naming it', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'request id repeat');
      await h.withWorker(taskQueue, async () => {
        await startCheckout(h.client, input, { taskQueue });
        assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');
        const opts = { taskQueue, refundsOptions: REFUNDS_OPTIONS };

        const first = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 1_000, requestId: 'req-A', ...OPS },
          opts,
        );
        assert.equal(first.replayed, undefined);
        assert.equal(first.refund.idempotencyKey, refundIdempotencyKey(refundsWorkflowId(input.orderId), 1));
        assert.deepEqual(first.refund.requested, {
          digest: refundRequestDigest(input.orderId, 'req-A'),
          amount: 1_000,
        });
        const again = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 1_000, requestId: 'req-A', ...OPS },
          opts,
        );
        assert.equal(sameRefund([first, again]), first.refund.refundId);
        assert.equal(again.refundedAmount, 1_000);

        const concurrent = await Promise.all(
          [1, 2, 3].map(() =>
            refundCheckout(h.client, input.orderId, { amount: 500, requestId: 'req-B', ...OPS }, opts),
          ),
        );
        sameRefund(concurrent);
        // Different terms concurrently: the first to get its turn refunds, the other is refused.
        const raced = await Promise.allSettled([
          refundCheckout(h.client, input.orderId, { amount: 300, requestId: 'req-C', ...OPS }, opts),
          refundCheckout(h.client, input.orderId, { amount: 301, requestId: 'req-C', ...OPS }, opts),
        ]);
        assert.equal(raced.filter((r) => r.status === 'fulfilled').length, 1, 'one of the two refunded');
        const refused = raced.find((r) => r.status === 'rejected');
        assert.ok(refused?.status === 'rejected' && refused.reason instanceof RefundRequestConflictError);

        await assert.rejects(
          refundCheckout(h.client, input.orderId, { amount: 2_000, requestId: 'req-A', ...OPS }, opts),
          isConflict,
        );
        await assert.rejects(
          refundCheckout(
            h.client,
            input.orderId,
            { amount: 1_000, requestId: 'x'.repeat(256), ...OPS },
            opts,
          ),
          (err: unknown) =>
            err instanceof InvalidCheckoutInputError &&
            /requestId: must be 1 to 255 printable ASCII/.test(err.message),
        );
        await assert.rejects(
          refundCheckout(h.client, input.orderId, { amount: 1_000, requestId: 'caf\u00e9', ...OPS }, opts),
          (err: unknown) => err instanceof InvalidCheckoutInputError && /requestId/.test(err.message),
        );
      });
      const made = refundsOf(input.orderId);
      assert.equal(made.length, 3, 'req-A, req-B and one req-C: nothing else reached Stripe');
      assert.deepEqual(
        made.slice(0, 2).map((r) => r.amount),
        [1_000, 500],
      );
      for (const r of made) {
        assert.match(r.metadata.refund_request_digest ?? '', /^[0-9a-f]{32}$/);
        assert.ok(!JSON.stringify(r.metadata).includes('req-'), 'no raw request id in Stripe metadata');
      }
      assert.equal(successfulCharges(h, input.orderId), 1);
    });

    it('answers a repeat from a later run of the refunds workflow (it reads the request from Stripe) and refuses other terms there too', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'request id new run');
      const shortRuns = { idleTimeoutMs: 500, stripeCallTimeoutMs: 4_000 };
      await h.withWorker(taskQueue, async () => {
        await startCheckout(h.client, input, { taskQueue });
        assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');
        const handle = h.client.workflow.getHandle<typeof checkoutRefunds>(refundsWorkflowId(input.orderId));
        const first = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 1_000, requestId: 'req-lost', ...OPS },
          { taskQueue, refundsOptions: shortRuns },
        );
        const firstRunId = (await handle.describe()).runId;
        assert.equal((await handle.result()).outcome, 'idle', 'the first run closed');

        // Right after the run closed, Temporal itself answers the same update id from that run.
        const soon = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 1_000, requestId: 'req-lost', ...OPS },
          { taskQueue, refundsOptions: shortRuns },
        );
        assert.equal(soon.refund.refundId, first.refund.refundId);

        // Another request runs (and closes) a new run; the repeat after it reaches a third run,
        // which knows the request only from the refund's Stripe metadata.
        const other = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 200, requestId: 'req-other', ...OPS },
          { taskQueue, refundsOptions: shortRuns },
        );
        const secondRunId = (await handle.describe()).runId;
        assert.notEqual(secondRunId, firstRunId);
        assert.equal((await handle.result()).outcome, 'idle', 'the second run closed');

        const again = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 1_000, requestId: 'req-lost', ...OPS },
          { taskQueue, refundsOptions: shortRuns },
        );
        const thirdRunId = (await handle.describe()).runId;
        assert.ok(thirdRunId !== firstRunId && thirdRunId !== secondRunId, 'a new run answered');
        assert.equal(again.replayed, true);
        assert.equal(again.refund.refundId, first.refund.refundId);
        assert.equal(again.refundedAmount, 1_200);
        assert.ok(again.refunds.some((r) => r.refundId === other.refund.refundId));

        await assert.rejects(
          refundCheckout(
            h.client,
            input.orderId,
            { amount: 1_001, requestId: 'req-lost', ...OPS },
            { taskQueue, refundsOptions: shortRuns },
          ),
          (err: unknown) => err instanceof RefundRequestConflictError && /amount/.test(err.message),
        );
      });
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [1_000, 200],
      );
    });

    it('keeps refunds and request ids through continue-as-new of the refunds workflow', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'request id continue-as-new');
      const opts = {
        taskQueue,
        refundsOptions: { idleTimeoutMs: 60_000, stripeCallTimeoutMs: 4_000, maxHistoryEvents: 50 },
      };
      await h.withWorker(taskQueue, async () => {
        await startCheckout(h.client, input, { taskQueue });
        assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');
        const handle = h.client.workflow.getHandle<typeof checkoutRefunds>(refundsWorkflowId(input.orderId));
        const made: RefundResult[] = [];
        made.push(
          await refundCheckout(h.client, input.orderId, { amount: 100, requestId: 'can-1', ...OPS }, opts),
        );
        const firstRunId = (await handle.describe()).runId;
        // Each refund adds more than a dozen events: the run continues as new within a few.
        let continued = false;
        for (let i = 2; i <= 10 && !continued; i++) {
          made.push(
            await refundCheckout(
              h.client,
              input.orderId,
              { amount: 100, requestId: `can-${i}`, ...OPS },
              opts,
            ),
          );
          const deadline = Date.now() + 2_000;
          while (!continued && Date.now() < deadline) {
            continued = (await handle.describe()).runId !== firstRunId;
            if (!continued) await new Promise((r) => setTimeout(r, 100));
          }
        }
        assert.ok(continued, 'the refunds workflow continued as new');
        const status = await getRefundsStatus(h.client, input.orderId);
        assert.ok(
          status?.audit.some((a) => a.action === 'continue_as_new'),
          'the carried audit shows it',
        );
        assert.deepEqual(
          status?.refunds.map((r) => [r.refundId, r.actor, r.requested?.digest]),
          made.map((m, i) => [
            m.refund.refundId,
            OPS.actor,
            refundRequestDigest(input.orderId, `can-${i + 1}`),
          ]),
          'refunds carried with who asked and their request ids',
        );

        const again = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 100, requestId: 'can-1', ...OPS },
          opts,
        );
        assert.equal(again.replayed, true);
        assert.equal(again.refund.refundId, made[0]?.refund.refundId);
        await assert.rejects(
          refundCheckout(h.client, input.orderId, { amount: 99, requestId: 'can-1', ...OPS }, opts),
          (err: unknown) => err instanceof RefundRequestConflictError,
        );
        const next = await refundCheckout(
          h.client,
          input.orderId,
          { amount: 100, requestId: 'can-next', ...OPS },
          opts,
        );
        assert.equal(next.replayed, undefined);
        assert.equal(
          next.refund.idempotencyKey,
          refundIdempotencyKey(refundsWorkflowId(input.orderId), made.length + 1),
          'the request counter carried on',
        );
        assert.equal(next.refundedAmount, 100 * (made.length + 1));
        assert.equal(refundsOf(input.orderId).length, made.length + 1);
      });
    });

    it('fails a request that Stripe refused saying what to do: the same id gets the same failure and refunds nothing, a new id refunds once under the next key', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'request id failed');
      const rw = refundsWorkflowId(input.orderId);
      await h.withWorker(taskQueue, async () => {
        await startCheckout(h.client, input, { taskQueue });
        assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'completed');
        // Stripe answers the first key with a stored 500 (replayed on every retry of that key).
        h.emulator.control.addFault({
          fault: 'stored_500',
          idempotencyKey: refundIdempotencyKey(rw, 1),
          times: 1,
        });
        const opts = { taskQueue, refundsOptions: REFUNDS_OPTIONS };
        const request = { amount: 1_000, requestId: 'failed-1', ...OPS };
        const told = new RegExp(
          `refund failed: .*; nothing was refunded; to try again, send the refund with a new request id ` +
            `\\(this one keeps getting this answer from ${rw}\\)`,
        );
        await rejectsWithCause(refundCheckout(h.client, input.orderId, request, opts), told);
        h.emulator.control.clearFaults();
        // Exactly what the message says: the same id is answered with the same failure.
        await rejectsWithCause(refundCheckout(h.client, input.orderId, request, opts), told);
        assert.equal(refundsOf(input.orderId).length, 0);
        const retried = await refundCheckout(
          h.client,
          input.orderId,
          { ...request, requestId: 'failed-2' },
          opts,
        );
        assert.equal(retried.refund.idempotencyKey, refundIdempotencyKey(rw, 2));
        assert.equal(retried.refundedAmount, 1_000);
        assert.deepEqual(
          refundsOf(input.orderId).map((r) => r.amount),
          [1_000],
        );
      });
    });

    it('answers a repeat from the open checkout and, once a request refunded it in full, from its result', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'request id open checkout', {
        options: { ...FAST_OPTIONS, provisioningTimeoutMs: 1_500, provisioningGraceMs: 120_000 },
      });
      const wf = checkoutWorkflowId(input.orderId);
      const provisioner = new SwitchableProvisioner(h.provisioner);
      const result = await withProvisioner(taskQueue, provisioner, async () => {
        await startCheckout(h.client, input, { taskQueue });
        await waitForStatus(h, input.orderId, parkedAfterProvisioning);
        const answers = await Promise.all(
          [1, 2].map(() =>
            refundCheckout(
              h.client,
              input.orderId,
              { amount: 1_000, requestId: 'open-1', ...OPS },
              { taskQueue },
            ),
          ),
        );
        answers.push(
          await refundCheckout(
            h.client,
            input.orderId,
            { amount: 1_000, requestId: 'open-1', ...OPS },
            { taskQueue },
          ),
        );
        assert.equal(sameRefund(answers), answers[0]?.refund.refundId);
        assert.ok(answers.every((a) => a.workflowId === wf));
        await assert.rejects(
          refundCheckout(
            h.client,
            input.orderId,
            { amount: 2_000, requestId: 'open-1', ...OPS },
            { taskQueue },
          ),
          isConflict,
        );
        const full = await refundCheckout(
          h.client,
          input.orderId,
          { requestId: 'open-full', ...OPS },
          { taskQueue },
        );
        assert.equal(full.refund.full, true);
        const outcome = await waitForCheckoutResult(h.client, input.orderId);
        // The checkout has ended: the repeat is answered from its result.
        const again = await refundCheckout(
          h.client,
          input.orderId,
          { requestId: 'open-full', ...OPS },
          { taskQueue },
        );
        assert.equal(again.replayed, true);
        assert.equal(again.refund.refundId, full.refund.refundId);
        await assert.rejects(
          refundCheckout(
            h.client,
            input.orderId,
            { amount: 5, requestId: 'open-full', ...OPS },
            { taskQueue },
          ),
          (err: unknown) => err instanceof RefundRequestConflictError,
        );
        return outcome;
      });
      assert.equal(result.outcome, 'refunded');
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [1_000, 3_200],
      );
      assert.equal(successfulCharges(h, input.orderId), 1);
    });
  });

  describe('refusals', () => {
    it('refuses a malformed request before sending anything, an unknown order, and an order that was never paid', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'refund refusals', {
        paymentMethodId: 'pm_card_chargeDeclined',
        options: { ...FAST_OPTIONS, paymentRetryWindowMs: 0 },
      });
      await assert.rejects(
        refundCheckout(h.client, input.orderId, { amount: 0, actor: '', reason: 'x' }),
        (err: unknown) => {
          assert.ok(err instanceof InvalidCheckoutInputError);
          assert.match(err.message, /amount/);
          assert.match(err.message, /actor/);
          return true;
        },
      );
      await assert.rejects(
        refundCheckout(h.client, 'no-such-order-refund', OPS),
        (err: unknown) => err instanceof WorkflowNotFoundError,
      );
      await h.withWorker(taskQueue, async () => {
        await startCheckout(h.client, input, { taskQueue });
        assert.equal((await waitForCheckoutResult(h.client, input.orderId)).outcome, 'declined');
        await assert.rejects(
          refundCheckout(h.client, input.orderId, OPS, { taskQueue }),
          (err: unknown) => err instanceof RefundNotAllowedError && /no payment was taken/.test(err.message),
        );
      });
      assert.equal(await getRefundsStatus(h.client, input.orderId), undefined, 'no refunds workflow started');
      assert.equal(refundsOf(input.orderId).length, 0);
    });
  });

  describe('provisioning that fails for good', () => {
    it('refunds in full after the grace period when no operator decides: state refunded, no entitlement, the ledger shows the refund', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'grace refund', {
        options: { ...FAST_OPTIONS, provisioningTimeoutMs: 1_500, provisioningGraceMs: 1_500 },
      });
      const provisioner = new SwitchableProvisioner(h.provisioner);
      const result = await withProvisioner(taskQueue, provisioner, async () => {
        await startCheckout(h.client, input, { taskQueue });
        return waitForCheckoutResult(h.client, input.orderId);
      });
      assert.equal(result.outcome, 'refunded');
      if (result.outcome !== 'refunded') return;
      assert.equal(result.refundedAmount, 4_200);
      assert.equal(result.entitlement, undefined);
      assert.equal(result.refunds[0]?.actor, 'workflow');
      assert.equal(
        result.refunds[0]?.idempotencyKey,
        refundIdempotencyKey(checkoutWorkflowId(input.orderId), 1),
      );
      assert.ok(provisioner.attempts >= 1);
      assert.equal(successfulCharges(h, input.orderId), 1);
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [4_200],
      );
      assert.equal(await h.provisioner.get(checkoutWorkflowId(input.orderId)), undefined);
      const status = await h.withWorker(taskQueue, () =>
        getCheckoutStatusWithRefunds(h.client, input.orderId),
      );
      assert.equal(status.state, 'refunded');
      const actions = status.audit.map((a) => a.action);
      for (const a of ['state:needs_attention', 'automatic_refund_scheduled', 'refund', 'state:refunded']) {
        assert.ok(actions.includes(a), `audit has ${a}`);
      }
      assert.equal(status.automaticRefund?.status, 'done');
      await recordHistory(h, checkoutWorkflowId(input.orderId), 'provisioning-failed-refunded');
    });

    it('completes without any refund when an operator retries provisioning during the grace', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'grace retry', {
        options: { ...FAST_OPTIONS, provisioningTimeoutMs: 1_500, provisioningGraceMs: 120_000 },
      });
      const provisioner = new SwitchableProvisioner(h.provisioner);
      const result = await withProvisioner(taskQueue, provisioner, async () => {
        await startCheckout(h.client, input, { taskQueue });
        const parked = await waitForStatus(h, input.orderId, parkedAfterProvisioning);
        assert.equal(parked.automaticRefund?.status, 'scheduled');
        await rejectsWithCause(
          resolveCheckout(h.client, input.orderId, { outcome: 'abandon', ...OPS }),
          /does not apply once paid/,
        );
        provisioner.failing = false;
        const after = await retryProvisioning(h.client, input.orderId, {
          actor: 'ops:dee',
          reason: 'backend fixed',
        });
        assert.ok(after.audit.some((a) => a.action === 'retry_provisioning' && a.actor === 'ops:dee'));
        return waitForCheckoutResult(h.client, input.orderId);
      });
      assert.equal(result.outcome, 'completed');
      assert.equal(successfulCharges(h, input.orderId), 1);
      assert.equal(refundsOf(input.orderId).length, 0);
      const ent = await h.provisioner.get(checkoutWorkflowId(input.orderId));
      assert.ok(ent && ent.revokedAt === undefined);
    });

    it('keeps the payment when an operator stops the automatic refund; a deliberate partial refund and a later retry then complete it', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'grace keep', {
        options: { ...FAST_OPTIONS, provisioningTimeoutMs: 1_500, provisioningGraceMs: 4_000 },
      });
      const wf = checkoutWorkflowId(input.orderId);
      const provisioner = new SwitchableProvisioner(h.provisioner);
      const result = await withProvisioner(taskQueue, provisioner, async () => {
        await startCheckout(h.client, input, { taskQueue });
        await waitForStatus(h, input.orderId, parkedAfterProvisioning);
        const kept = await resolveCheckout(h.client, input.orderId, {
          outcome: 'keep_payment',
          actor: 'ops:dee',
          reason: 'provisioning by hand',
        });
        assert.equal(kept.automaticRefund?.status, 'stopped');
        assert.ok(kept.audit.some((a) => a.action === 'keep_payment' && a.actor === 'ops:dee'));
        // The grace timer was canceled, not left to fire.
        const handle = h.client.workflow.getHandle(wf);
        let canceled = false;
        const deadline = Date.now() + 20_000;
        while (!canceled && Date.now() < deadline) {
          const history = await handle.fetchHistory();
          canceled = (history.events ?? []).some((e) => e.timerCanceledEventAttributes != null);
          if (!canceled) await new Promise((r) => setTimeout(r, 200));
        }
        assert.ok(canceled, 'the automatic refund timer was canceled');
        await rejectsWithCause(
          resolveCheckout(h.client, input.orderId, { outcome: 'keep_payment', ...OPS }),
          /keep_payment only applies/,
        );

        const part = await refundCheckout(h.client, input.orderId, { amount: 1_000, ...OPS }, { taskQueue });
        assert.equal(part.workflowId, wf, 'the open checkout refunds itself');
        assert.equal(part.refund.idempotencyKey, refundIdempotencyKey(wf, 1));
        assert.equal(part.remainingAmount, 3_200);
        const parked = await waitForStatus(h, input.orderId, parkedAfterProvisioning);
        assert.equal(parked.refundedAmount, 1_000);

        provisioner.failing = false;
        await retryProvisioning(h.client, input.orderId, { actor: 'ops:dee', reason: 'backend fixed' });
        return waitForCheckoutResult(h.client, input.orderId);
      });
      assert.equal(result.outcome, 'completed');
      if (result.outcome !== 'completed') return;
      assert.deepEqual(
        result.refunds?.map((r) => r.amount),
        [1_000],
      );
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [1_000],
      );
      assert.equal(successfulCharges(h, input.orderId), 1);
      const ent = await h.provisioner.get(wf);
      assert.ok(ent && ent.revokedAt === undefined, 'a partial refund leaves the entitlement');
      await recordHistory(h, wf, 'provisioning-kept-refunded-in-part-retried');
    });

    it('revokes an entitlement granted after a full refund made while provisioning was still being retried', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'refund during provisioning', {
        options: { ...FAST_OPTIONS, provisioningTimeoutMs: 60_000, provisioningGraceMs: 120_000 },
      });
      const wf = checkoutWorkflowId(input.orderId);
      const provisioner = new SwitchableProvisioner(h.provisioner);
      const result = await withProvisioner(taskQueue, provisioner, async () => {
        await startCheckout(h.client, input, { taskQueue });
        await waitForStatus(h, input.orderId, (s) => s.state === 'provisioning');
        const full = await refundCheckout(h.client, input.orderId, OPS, { taskQueue });
        assert.equal(full.workflowId, wf);
        assert.equal(full.refund.full, true);
        // The provision activity is still being retried; let the next attempt grant.
        provisioner.failing = false;
        return waitForCheckoutResult(h.client, input.orderId);
      });
      assert.equal(result.outcome, 'refunded');
      if (result.outcome !== 'refunded') return;
      assert.ok(result.entitlement?.revokedAt, 'the entitlement granted after the refund is revoked');
      const ent = await h.provisioner.get(wf);
      assert.ok(ent?.revokedAt, 'the store shows it revoked');
      assert.equal(successfulCharges(h, input.orderId), 1);
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [4_200],
      );
    });

    it('ends refunded when an operator refunds in full while provisioning has failed', async function () {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'grace full refund', {
        options: { ...FAST_OPTIONS, provisioningTimeoutMs: 1_500, provisioningGraceMs: 120_000 },
      });
      const provisioner = new SwitchableProvisioner(h.provisioner);
      const result = await withProvisioner(taskQueue, provisioner, async () => {
        await startCheckout(h.client, input, { taskQueue });
        await waitForStatus(h, input.orderId, parkedAfterProvisioning);
        await rejectsWithCause(
          refundCheckout(h.client, input.orderId, { amount: 4_201, ...OPS }, { taskQueue }),
          /amount: 4201 is more than the 4200 usd left to refund/,
        );
        const full = await refundCheckout(h.client, input.orderId, OPS, { taskQueue });
        assert.equal(full.refund.full, true);
        return waitForCheckoutResult(h.client, input.orderId);
      });
      assert.equal(result.outcome, 'refunded');
      assert.equal(successfulCharges(h, input.orderId), 1);
      assert.deepEqual(
        refundsOf(input.orderId).map((r) => r.amount),
        [4_200],
      );
      assert.equal(await h.provisioner.get(checkoutWorkflowId(input.orderId)), undefined);
    });
  });
});
