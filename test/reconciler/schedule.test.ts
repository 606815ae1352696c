/**
 * The reconciler's schedule as `npm start` sets it up: the stack creates it at startup, a second
 * `ensureReconcilerSchedule` updates rather than duplicates it, and a trigger runs the reconciler on
 * the stack's own worker against the stack's Stripe.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { loadConfig } from '../../src/config';
import {
  RECONCILER_INTERVAL_DEFAULT_MS,
  ensureReconcilerSchedule,
  latestReconcileRun,
  reconcilerScheduleExists,
  triggerReconcilerNow,
} from '../../src/reconciler/schedule';
import { startStack, type Stack } from '../../src/stack/stack';
import { stripeClientFromConfig } from '../../src/stripe/client';
import {
  RECONCILER_SCHEDULE_ID,
  checkoutWorkflowId,
  reconcileWorkflowType,
  reconciliationCaseWorkflowId,
} from '../../src/workflows/definitions';
import { uniqueName } from '../support/temporal';

function intervalMs(every: unknown): number {
  // The client describes durations in milliseconds.
  assert.equal(typeof every, 'number');
  return every as number;
}

describe('reconciler schedule', function () {
  this.timeout(180_000);
  let dataDir: string;
  let stack: Stack;

  before(async function () {
    this.timeout(240_000);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'reconciler-schedule-'));
    stack = await startStack(loadConfig({ DATA_DIR: dataDir }), { ports: 'free', http: false });
  });
  after(async () => {
    await stack?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('exists after the stack starts: every 15 minutes, overlap SKIP, running reconcile on the checkout task queue', async () => {
    assert.equal(stack.reconcilerScheduleId, RECONCILER_SCHEDULE_ID);
    const d = await stack.temporal.client.schedule.getHandle(RECONCILER_SCHEDULE_ID).describe();
    assert.equal(d.spec.intervals?.length, 1);
    assert.equal(intervalMs(d.spec.intervals?.[0]?.every), RECONCILER_INTERVAL_DEFAULT_MS);
    assert.equal(d.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(d.action.workflowType, reconcileWorkflowType);
    assert.equal(d.action.taskQueue, stack.config.temporal.taskQueue);
    assert.equal(await reconcilerScheduleExists(stack.temporal.client), true);
  });

  it('is updated, not duplicated, when ensured again', async () => {
    const client = stack.temporal.client;
    const again = await ensureReconcilerSchedule(client, {
      taskQueue: stack.config.temporal.taskQueue,
      intervalMs: 20 * 60 * 1000,
    });
    assert.deepEqual(again, { scheduleId: RECONCILER_SCHEDULE_ID, created: false });
    const d = await client.schedule.getHandle(RECONCILER_SCHEDULE_ID).describe();
    assert.equal(intervalMs(d.spec.intervals?.[0]?.every), 20 * 60 * 1000);
    const ids: string[] = [];
    for await (const s of client.schedule.list()) ids.push(s.scheduleId);
    assert.deepEqual(
      ids.filter((id) => id === RECONCILER_SCHEDULE_ID),
      [RECONCILER_SCHEDULE_ID],
    );
    await assert.rejects(
      ensureReconcilerSchedule(client, { taskQueue: '', intervalMs: 5, reconcile: { pageSize: 500 } }),
      /taskQueue.*intervalMs|intervalMs.*taskQueue/s,
    );
  });

  it('triggered now, runs the reconciler on the stack, which opens a case for a planted charge without a checkout', async () => {
    const stripe = stripeClientFromConfig(stack.config.stripe);
    const orderId = uniqueName('charged-without-checkout');
    const pi = await stripe.paymentIntents.create({
      amount: 1_500,
      currency: 'usd',
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      payment_method: 'pm_card_visa',
      confirm: true,
      metadata: { order_id: orderId, checkout_workflow_id: checkoutWorkflowId(orderId), generation: '1' },
    });
    assert.equal(pi.status, 'succeeded');

    const run = await triggerReconcilerNow(stack.temporal.client);
    assert.match(run.workflowId, /^reconcile-/);
    const finding = run.result?.findings.find((f) => f.paymentIntentId === pi.id);
    assert.equal(finding?.kind, 'charged_without_checkout');
    assert.equal(finding?.outcome, 'case_opened');
    assert.equal(finding?.caseWorkflowId, reconciliationCaseWorkflowId(pi.id));

    const latest = await latestReconcileRun(stack.temporal.client);
    assert.equal(latest?.workflowId, run.workflowId);
    assert.equal(latest?.status, 'COMPLETED');
    assert.equal(latest?.result?.counts.charged_without_checkout, 1);
  });
});
