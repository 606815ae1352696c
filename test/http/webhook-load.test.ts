/**
 * The webhook route under a burst: deliveries beyond `webhookMaxInFlight` are shed with a fast 503
 * and `Retry-After`, and a delivery whose signal is not taken within `webhookSignalTimeoutMs` is
 * answered 503 instead of holding Stripe's connection past its timeout. A stub stands in for the
 * Temporal client, so the signal's timing is the test's to decide.
 */
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import type { LightMyRequestResponse } from 'fastify';
import Stripe from 'stripe';
import { STRIPE_WEBHOOK_PATH, buildHttpIntake, type HttpIntakeOptions } from '../../src/http/server';
import { checkoutWorkflowId } from '../../src/workflows/definitions';

const SECRET = 'whsec_loadTestSecret0123456789';

/** A client whose signals stay pending until the test releases them. */
function stubClient(): { client: Client; pending: (() => void)[]; signals: string[] } {
  const pending: (() => void)[] = [];
  const signals: string[] = [];
  const client = {
    workflow: {
      getHandle: (workflowId: string) => ({
        signal: () =>
          new Promise<void>((resolve) => {
            signals.push(workflowId);
            pending.push(resolve);
          }),
      }),
    },
  } as unknown as Client;
  return { client, pending, signals };
}

function delivery(n: number): { payload: string; headers: Record<string, string> } {
  const orderId = `order-load-${n}`;
  const payload = JSON.stringify({
    id: `evt_load${n}`,
    object: 'event',
    type: 'payment_intent.succeeded',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    data: {
      object: {
        id: `pi_load${n}`,
        object: 'payment_intent',
        metadata: { order_id: orderId, checkout_workflow_id: checkoutWorkflowId(orderId) },
      },
    },
  });
  const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET });
  return { payload, headers: { 'content-type': 'application/json', 'stripe-signature': signature } };
}

type Limits = Pick<HttpIntakeOptions, 'webhookMaxInFlight' | 'webhookSignalTimeoutMs'>;
interface LoadedIntake {
  /** Delivers signed event `n` to the webhook route. */
  readonly send: (n: number) => Promise<LightMyRequestResponse>;
  /** Releases of the signals still pending, in the order they were sent. */
  readonly pending: (() => void)[];
  /** Workflow ids signalled so far. */
  readonly signals: string[];
}

/** Runs `body` against an intake with `limits` and a stub client, closing the intake after. */
async function withLoadedIntake(limits: Limits, body: (t: LoadedIntake) => Promise<void>): Promise<void> {
  const { client, pending, signals } = stubClient();
  const app = buildHttpIntake({ client, taskQueue: 'unused', webhookSecrets: [SECRET], ...limits });
  try {
    await body({
      send: (n) => app.inject({ method: 'POST', url: STRIPE_WEBHOOK_PATH, ...delivery(n) }),
      pending,
      signals,
    });
  } finally {
    await app.close();
  }
}

describe('HTTP intake webhooks under load', () => {
  it('sheds deliveries beyond the in-flight limit with a fast 503 and Retry-After, and takes them again once there is room', async () => {
    await withLoadedIntake({ webhookMaxInFlight: 2 }, async ({ send, pending, signals }) => {
      const first = send(1);
      const second = send(2);
      while (signals.length < 2) await new Promise((r) => setTimeout(r, 5));
      const shed = await send(3);
      assert.equal(shed.statusCode, 503, shed.body);
      assert.equal(shed.headers['retry-after'], '5');
      assert.equal(shed.json<{ error: { code: string } }>().error.code, 'overloaded');
      assert.equal(signals.length, 2, 'the shed delivery signalled nothing');
      for (const release of pending.splice(0)) release();
      assert.equal((await first).statusCode, 200);
      assert.equal((await second).statusCode, 200);
      // Room again: the redelivery is taken.
      const again = send(3);
      while (signals.length < 3) await new Promise((r) => setTimeout(r, 5));
      for (const release of pending.splice(0)) release();
      const taken = await again;
      assert.equal(taken.statusCode, 200, taken.body);
      assert.equal(taken.json<{ signaled: boolean }>().signaled, true);
    });
  });

  it('answers 503 when the signal is not taken in time, and counts it in flight until it settles', async () => {
    await withLoadedIntake(
      { webhookMaxInFlight: 1, webhookSignalTimeoutMs: 100 },
      async ({ send, pending, signals }) => {
        const started = Date.now();
        const slow = await send(1);
        assert.equal(slow.statusCode, 503, slow.body);
        assert.equal(slow.json<{ error: { code: string } }>().error.code, 'temporal_slow');
        assert.ok(Date.now() - started < 5_000, 'answered at the deadline, not when the signal settled');
        // Still in flight (the signal may land): the next delivery is shed until it settles.
        assert.equal((await send(2)).statusCode, 503);
        assert.equal(signals.length, 1);
        for (const release of pending.splice(0)) release();
        await new Promise((r) => setTimeout(r, 10));
        const next = send(2);
        while (signals.length < 2) await new Promise((r) => setTimeout(r, 5));
        for (const release of pending.splice(0)) release();
        assert.equal((await next).statusCode, 200);
      },
    );
  });
});
