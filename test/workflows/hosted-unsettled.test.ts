/**
 * A hosted checkout whose session is complete but whose PaymentIntent does not settle (real Stripe:
 * a `us_bank_account` debit waiting for microdeposit verification stays `requires_action`). The local
 * Stripe server settles bank debits straight to `processing`, so Stripe is faked here at the
 * activity seam, with typed fakes of the Checkout Session and PaymentIntent reads.
 */
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { CheckoutActivities } from '../../src/activities';
import { checkoutWorkflowBundle } from '../../src/worker';
import {
  checkoutWorkflowId,
  hostedCheckoutWorkflowType,
  statusQuery,
  type CheckoutSessionSnapshot,
  type HostedCheckoutInput,
  type PaymentIntentSnapshot,
  type PaymentIntentStatus,
} from '../../src/workflows/definitions';
import { testTemporal, uniqueName } from '../support/temporal';

type FakeStripe = Pick<
  CheckoutActivities,
  | 'createCheckoutSession'
  | 'getCheckoutSession'
  | 'expireCheckoutSession'
  | 'getPaymentIntent'
  | 'findCheckoutPaymentIntents'
>;

describe('hosted checkout: complete but not settled', function () {
  this.timeout(120_000);

  it('waits with a timer instead of re-reading Stripe in a loop, then parks once asyncPaymentTimeoutMs runs out', async function () {
    const server = await testTemporal();
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection, namespace: server.namespace });
    const native = await NativeConnection.connect({ address: server.address });
    const name = uniqueName(this.test?.title ?? 'hosted unsettled');
    const orderId = name.slice(-60).replace(/^-+/, '');
    const calls: Record<string, number> = {};
    const count = (activity: string): void => {
      calls[activity] = (calls[activity] ?? 0) + 1;
    };
    const session = (status: 'open' | 'complete'): CheckoutSessionSnapshot => ({
      id: 'cs_test_unsettled1',
      status,
      paymentStatus: 'unpaid',
      paymentIntentId: status === 'open' ? undefined : 'pi_microdeposits1',
      url: status === 'open' ? 'https://pay.example/cs_test_unsettled1' : null,
      amountTotal: 1999,
      currency: 'usd',
      clientReferenceId: checkoutWorkflowId(orderId),
      metadata: {},
      expiresAt: Math.floor(Date.now() / 1000) + 86_400,
    });
    const paymentIntent = (status: PaymentIntentStatus): PaymentIntentSnapshot => ({
      id: 'pi_microdeposits1',
      status,
      amount: 1999,
      currency: 'usd',
      metadata: {},
      lastPaymentError: undefined,
    });
    const fakes: FakeStripe = {
      createCheckoutSession: () => {
        count('createCheckoutSession');
        return Promise.resolve(session('open'));
      },
      getCheckoutSession: () => {
        count('getCheckoutSession');
        return Promise.resolve(session('complete'));
      },
      expireCheckoutSession: () => {
        count('expireCheckoutSession');
        return Promise.resolve(session('complete'));
      },
      getPaymentIntent: () => {
        count('getPaymentIntent');
        return Promise.resolve(paymentIntent('requires_action'));
      },
      findCheckoutPaymentIntents: () => {
        count('findCheckoutPaymentIntents');
        return Promise.resolve({ paymentIntents: [] });
      },
    };
    const taskQueue = `tq-${name}`;
    const worker = await Worker.create({
      connection: native,
      namespace: server.namespace,
      taskQueue,
      workflowBundle: await checkoutWorkflowBundle(),
      activities: fakes,
    });
    const input: HostedCheckoutInput = {
      orderId,
      amount: 1999,
      currency: 'usd',
      provision: { sku: 'course-201', quantity: 1 },
      successUrl: 'https://shop.example.com/ok',
      cancelUrl: 'https://shop.example.com/no',
      paymentMethodTypes: ['us_bank_account'],
      options: {
        sessionTimeoutMs: 2_000,
        asyncPaymentTimeoutMs: 6_000,
        paymentPollIntervalMs: 500,
        reconcileIntervalMs: 60_000,
      },
    };
    try {
      await worker.runUntil(async () => {
        const handle = await client.workflow.start(hostedCheckoutWorkflowType, {
          workflowId: checkoutWorkflowId(orderId),
          taskQueue,
          args: [input],
        });
        try {
          await new Promise((r) => setTimeout(r, 3_000));
          // Past the session deadline: the checkout waits for the debit, it does not expire in a loop.
          const waiting = await handle.query(statusQuery);
          assert.equal(waiting.state, 'awaiting_async_payment');
          const deadline = Date.now() + 30_000;
          let status = waiting;
          while (status.state !== 'needs_attention' && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 250));
            status = await handle.query(statusQuery);
          }
          assert.equal(status.state, 'needs_attention');
          assert.equal(status.needsAttention?.reason, 'unexpected_payment_state');
          assert.match(status.needsAttention?.detail ?? '', /pi_microdeposits1 still requires_action/);
          await new Promise((r) => setTimeout(r, 2_000));
          const history = (await handle.fetchHistory()).events ?? [];
          assert.ok((calls.expireCheckoutSession ?? 0) <= 1, JSON.stringify(calls));
          // About 6 s of polling that doubles from 0.5 s: a handful of reads, not a read per task.
          assert.ok((calls.getCheckoutSession ?? 0) <= 10, JSON.stringify(calls));
          assert.ok(history.length < 200, `${history.length} history events`);
          assert.ok(history.some((e) => e.timerStartedEventAttributes != null));
        } finally {
          await handle.terminate('test done');
        }
      });
    } finally {
      await native.close();
      await connection.close();
    }
  });
});
