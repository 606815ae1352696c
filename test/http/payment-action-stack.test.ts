import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { getCheckoutStatus, waitForCheckoutResult } from '../../src/client';
import { loadConfig } from '../../src/config';
import { type PaymentAction } from '../../src/payment-action';
import { startStack, type Stack } from '../../src/stack/stack';
import { createStripeClient } from '../../src/stripe/client';
import { authenticateLikeStripeJs } from './stripe-js';

/** What `npm start` runs: the intake there reads payment actions with the stack's own Stripe client. */
describe('HTTP intake in the stack: the 3-D Secure handoff', function () {
  this.timeout(120_000);
  let dataDir: string;
  let stack: Stack;

  before(async function () {
    this.timeout(180_000);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'payment-action-stack-'));
    stack = await startStack(loadConfig({ DATA_DIR: dataDir }), { ports: 'free', reconciler: false });
  });
  after(async () => {
    await stack?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('hands the customer the payment action, and their authentication completes the checkout', async () => {
    const orderId = `stack-3ds-${Date.now().toString(36)}`;
    const started = await fetch(`${stack.httpUrl ?? ''}/v1/checkouts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        orderId,
        amount: 1999,
        currency: 'usd',
        customerId: stack.stripe.exampleCustomerId,
        paymentMethodId: 'pm_card_threeDSecure2Required',
        provision: { sku: 'pro-plan', quantity: 1 },
      }),
    });
    assert.equal(started.status, 201, await started.text());
    const deadline = Date.now() + 20_000;
    while ((await getCheckoutStatus(stack.temporal.client, orderId)).state !== 'awaiting_customer_action') {
      assert.ok(Date.now() < deadline, 'the checkout waits for the customer');
      await new Promise((r) => setTimeout(r, 150));
    }

    const res = await fetch(`${stack.httpUrl ?? ''}/v1/checkouts/${orderId}/payment-action`);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const action = JSON.parse(text) as PaymentAction;
    assert.equal(action.status, 'requires_action');
    assert.equal(action.nextAction.type, 'use_stripe_sdk');
    assert.match(action.clientSecret, new RegExp(`^${action.paymentIntentId}_secret_`));

    const emulator = stack.stripe.emulator;
    assert.ok(emulator);
    const stripe = createStripeClient({
      secretKey: 'sk_test_paymentActionStack',
      timeoutMs: 5_000,
      apiBase: { host: emulator.host, port: emulator.port, protocol: 'http' },
    });
    await authenticateLikeStripeJs(stripe, action.clientSecret);
    // The checkout learns of it from the emulator's signed webhook to the intake, or its own polling.
    const result = await waitForCheckoutResult(stack.temporal.client, orderId);
    assert.equal(result.outcome, 'completed');
  });
});
