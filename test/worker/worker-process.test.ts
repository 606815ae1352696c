/**
 * The worker process in operation: stopped with SIGTERM in the middle of a charge, several processes
 * on one task queue, and started before its Temporal server is up. Each runs `src/worker.ts` as a
 * real process against the real dev server and the Stripe emulator; money is read from the
 * emulator's ledger and "who did what" from the workflow's history.
 */
import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { startCheckout, waitForCheckoutResult } from '../../src/client';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import {
  SEARCH_ATTRIBUTE_TYPES,
  checkoutWorkflowId,
  paymentIdempotencyKey,
} from '../../src/workflows/definitions';
import {
  FAST_OPTIONS,
  TEST_SECRET_KEY,
  newOrder,
  paymentIntentsFor,
  provisionedCount,
  startHarness,
  successfulCharges,
  until,
  type CheckoutHarness,
} from '../workflows/support';
import {
  activityRuns,
  killAll,
  spawnWorkerProcess,
  startWorkerProcess,
  workflowTaskIdentitiesAfter,
  type WorkerProcess,
} from './support';
import { unusedPort } from '../support/ports';

/** Long enough that the signal lands while Stripe still holds the confirm, even on a loaded machine. */
const CONFIRM_HELD_MS = 8_000;

/**
 * Settings under which a held confirm can finish during shutdown: the Stripe client waits 30 s, the
 * grace is 60 s, and the workflow gives each Stripe call 60 s (options below).
 */
function workerEnv(h: CheckoutHarness, taskQueue: string, extra: Record<string, string> = {}) {
  return {
    TEMPORAL_ADDRESS: h.address,
    TEMPORAL_NAMESPACE: h.namespace,
    TEMPORAL_TASK_QUEUE: taskQueue,
    STRIPE_SECRET_KEY: TEST_SECRET_KEY,
    STRIPE_API_BASE: h.emulator.url,
    STRIPE_TIMEOUT_MS: '30000',
    WORKER_SHUTDOWN_GRACE_MS: '60000',
    PROVISIONING_SQLITE_PATH: h.provisioningPath,
    ...extra,
  };
}

const SLOW_CALL_OPTIONS = { ...FAST_OPTIONS, stripeCallTimeoutMs: 60_000 };

describe('checkout worker process in operation', function () {
  this.timeout(300_000);
  let h: CheckoutHarness;
  const spawned: WorkerProcess[] = [];
  const servers: DevServer[] = [];

  before(async function () {
    this.timeout(180_000);
    h = await startHarness();
  });
  after(async () => {
    killAll(spawned);
    for (const s of servers) await s.stop();
    await h?.close();
  });

  /** Stripe holds this checkout's first confirm for `delayMs`; the result resolves once it arrived. */
  function holdConfirm(wf: string, delayMs: number): () => Promise<void> {
    const held = h.emulator.control.addFault({
      fault: 'slow',
      idempotencyKey: paymentIdempotencyKey(wf, 1, 'confirm'),
      delayMs,
      times: 1,
    });
    return () =>
      until(
        () => h.emulator.control.faults().some((f) => f.id === held.id && f.hits === 1),
        60_000,
        'the confirm to be in flight',
      );
  }

  /** A checkout charging on a worker process of its own, its confirm held by Stripe and in flight. */
  async function chargeHeldOnWorker(title: string) {
    const { input, taskQueue } = newOrder(h, title, { options: SLOW_CALL_OPTIONS });
    const wf = checkoutWorkflowId(input.orderId);
    const confirmInFlight = holdConfirm(wf, CONFIRM_HELD_MS);
    const worker = await startWorkerProcess(workerEnv(h, taskQueue));
    spawned.push(worker);
    await startCheckout(h.client, input, { taskQueue });
    await confirmInFlight();
    return { input, taskQueue, wf, worker };
  }

  /**
   * Before any other worker exists: the stopped worker itself finished the confirm, after the
   * signal, on its first attempt. Nothing failed, timed out or was retried.
   */
  async function assertConfirmFinishedBy(worker: WorkerProcess, wf: string, signalledAt: number) {
    const events = (await h.client.workflow.getHandle(wf).fetchHistory()).events ?? [];
    const confirms = activityRuns(events, 'confirmPaymentIntent');
    assert.equal(confirms.length, 1, JSON.stringify(confirms));
    const [confirm] = confirms;
    assert.equal(confirm?.outcome, 'completed');
    assert.equal(confirm?.attempt, 1);
    assert.ok(confirm?.identity.startsWith(worker.identityPrefix), `${confirm?.identity} ran the confirm`);
    assert.ok((confirm?.at ?? 0) >= signalledAt, 'the confirm completed after the signal, within the grace');
  }

  it('finishes the charge in flight when stopped with SIGTERM, exits 0, and a new worker completes the checkout with one charge and one entitlement', async function () {
    const { input, taskQueue, wf, worker: first } = await chargeHeldOnWorker(this.test?.title ?? 'sigterm');

    const signalledAt = Date.now();
    first.child.kill('SIGTERM');
    const stopped = await first.exited;
    assert.equal(stopped.code, 0, `graceful shutdown exits 0:\n${first.output()}`);
    assert.match(first.output(), /checkout worker stopped/);
    await assertConfirmFinishedBy(first, wf, signalledAt);
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 0, 'nothing provisions without a worker');

    const second = await startWorkerProcess(workerEnv(h, taskQueue));
    spawned.push(second);
    const result = await waitForCheckoutResult(h.client, input.orderId);
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    const after = (await h.client.workflow.getHandle(wf).fetchHistory()).events ?? [];
    assert.equal(activityRuns(after, 'confirmPaymentIntent').length, 1, 'the confirm never ran again');

    second.child.kill('SIGTERM');
    assert.equal((await second.exited).code, 0, second.output());
  });

  it('keeps draining when one stop arrives several times (a terminal, npm and tsx each deliver a Ctrl-C), finishes the charge and exits 0', async function () {
    const { input, wf, worker } = await chargeHeldOnWorker(this.test?.title ?? 'repeated stop');

    const signalledAt = Date.now();
    worker.child.kill('SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 50));
    worker.child.kill('SIGINT');
    worker.child.kill('SIGTERM');
    const stopped = await worker.exited;
    assert.equal(stopped.signal, null, `killed by ${String(stopped.signal)} mid-drain:\n${worker.output()}`);
    assert.equal(stopped.code, 0, `graceful shutdown exits 0:\n${worker.output()}`);
    assert.match(worker.output(), /checkout worker stopped/);
    await assertConfirmFinishedBy(worker, wf, signalledAt);
    assert.equal(successfulCharges(h, input.orderId), 1);
  });

  it('lets a second worker process on the same task queue carry on when the one charging is stopped with SIGTERM', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'two workers', {
      options: SLOW_CALL_OPTIONS,
    });
    const wf = checkoutWorkflowId(input.orderId);
    const confirmInFlight = holdConfirm(wf, CONFIRM_HELD_MS);
    const workers = await Promise.all([
      startWorkerProcess(workerEnv(h, taskQueue)),
      startWorkerProcess(workerEnv(h, taskQueue)),
    ]);
    spawned.push(...workers);
    await startCheckout(h.client, input, { taskQueue });
    await confirmInFlight();

    // Temporal knows which process holds the confirm; stop that one.
    const description = await h.client.workflow.getHandle(wf).describe();
    const pending = description.raw.pendingActivities?.find(
      (a) => a.activityType?.name === 'confirmPaymentIntent',
    );
    const holderIdentity = pending?.lastWorkerIdentity ?? '';
    const holder = workers.find((w) => holderIdentity.startsWith(w.identityPrefix));
    const other = workers.find((w) => w !== holder);
    assert.ok(holder && other, `the confirm runs on one of the two processes (${holderIdentity})`);

    const signalledAt = Date.now();
    holder.child.kill('SIGTERM');
    assert.equal((await holder.exited).code, 0, holder.output());

    const result = await waitForCheckoutResult(h.client, input.orderId);
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);

    const events = (await h.client.workflow.getHandle(wf).fetchHistory()).events ?? [];
    const confirms = activityRuns(events, 'confirmPaymentIntent');
    assert.equal(confirms.length, 1, JSON.stringify(confirms));
    assert.ok(
      confirms[0]?.identity.startsWith(holder.identityPrefix),
      'the stopped process finished its confirm',
    );
    assert.equal(confirms[0]?.outcome, 'completed');
    const provisions = activityRuns(events, 'provision');
    assert.equal(provisions.length, 1);
    assert.ok(provisions[0]?.identity.startsWith(other.identityPrefix), 'the other process provisioned');
    const later = [...workflowTaskIdentitiesAfter(events, signalledAt)];
    assert.ok(later.length > 0 && later.every((id) => id.startsWith(other.identityPrefix)), later.join(', '));
    assert.ok(!other.hasExited(), 'the other process is still running');

    other.child.kill('SIGTERM');
    assert.equal((await other.exited).code, 0, other.output());
  });

  it('stops waiting after WORKER_SHUTDOWN_GRACE_MS when a Stripe call outlasts it, exits 1, and the checkout still charges once', async function () {
    // The confirm is held for 15 s; the worker's grace is 1 s. Temporal retries the abandoned confirm
    // after its 25 s start-to-close, under the same key, on the next worker.
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'grace expired', {
      options: { ...FAST_OPTIONS, stripeCallTimeoutMs: 25_000 },
    });
    const wf = checkoutWorkflowId(input.orderId);
    const confirmInFlight = holdConfirm(wf, 15_000);
    const env = workerEnv(h, taskQueue, { STRIPE_TIMEOUT_MS: '20000', WORKER_SHUTDOWN_GRACE_MS: '1000' });
    const first = await startWorkerProcess(env);
    spawned.push(first);
    await startCheckout(h.client, input, { taskQueue });
    await confirmInFlight();
    first.child.kill('SIGTERM');
    const stopped = await first.exited;
    assert.equal(stopped.code, 1, first.output());
    assert.match(first.output(), /Tasks were still running 3000 ms after the stop signal/);
    assert.doesNotMatch(first.output(), /checkout worker stopped\b(?! before)/);

    const second = await startWorkerProcess(env);
    spawned.push(second);
    const result = await waitForCheckoutResult(h.client, input.orderId);
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    const events = (await h.client.workflow.getHandle(wf).fetchHistory()).events ?? [];
    const confirms = activityRuns(events, 'confirmPaymentIntent');
    assert.equal(confirms.length, 1, JSON.stringify(confirms));
    assert.equal(confirms[0]?.outcome, 'completed');
    assert.ok((confirms[0]?.attempt ?? 0) >= 2, 'the abandoned attempt was retried');
    assert.ok(confirms[0]?.identity.startsWith(second.identityPrefix), 'by the new worker');

    second.child.kill('SIGTERM');
    assert.equal((await second.exited).code, 0, second.output());
  });

  it('waits for a Temporal server that comes up after it, then completes a checkout', async function () {
    const port = await unusedPort();
    const address = `127.0.0.1:${port}`;
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'late server');
    const w = spawnWorkerProcess({
      ...workerEnv(h, taskQueue),
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_CONNECT_TIMEOUT_MS: '300000',
    });
    spawned.push(w);
    await w.waitFor(/not ready, attempt 2:/, 120_000, 'two failed connection attempts');
    assert.match(
      w.output(),
      new RegExp(`Temporal at ${address.replace(/\./g, '\\.')} \\(namespace default\\) not ready`),
    );
    assert.doesNotMatch(w.output(), /checkout worker polling/);

    const server = await startDevServer({
      port,
      uiPort: false,
      searchAttributes: SEARCH_ATTRIBUTE_TYPES,
      startupTimeoutMs: 120_000,
    });
    servers.push(server);
    await w.waitFor(/checkout worker polling/, 120_000, 'the worker to connect once the server is up');

    const connection = await Connection.connect({ address });
    try {
      const client = new Client({ connection, namespace: 'default' });
      await startCheckout(client, input, { taskQueue });
      const result = await waitForCheckoutResult(client, input.orderId);
      assert.equal(result.outcome, 'completed');
    } finally {
      await connection.close();
    }
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);

    w.child.kill('SIGTERM');
    assert.equal((await w.exited).code, 0, w.output());
  });

  it('gives up after TEMPORAL_CONNECT_TIMEOUT_MS with one error naming the address and the setting, exit code 1', async function () {
    const address = `127.0.0.1:${await unusedPort()}`;
    const w = spawnWorkerProcess({
      ...workerEnv(h, 'tq-unreachable'),
      TEMPORAL_ADDRESS: address,
      TEMPORAL_CONNECT_TIMEOUT_MS: '3000',
    });
    spawned.push(w);
    const exit = await w.exited;
    assert.equal(exit.code, 1, w.output());
    assert.match(w.output(), /not ready, attempt 1:/);
    assert.match(
      w.output(),
      new RegExp(
        `Could not connect to Temporal at ${address.replace(/\./g, '\\.')} \\(namespace ${h.namespace}\\) ` +
          'within TEMPORAL_CONNECT_TIMEOUT_MS=3000 after \\d+ attempt\\(s\\); last error: .*[Cc]onnect',
      ),
    );
  });

  it('stops with exit code 0 when sent SIGTERM while still waiting for Temporal', async function () {
    const address = `127.0.0.1:${await unusedPort()}`;
    const w = spawnWorkerProcess({
      ...workerEnv(h, 'tq-never-up'),
      TEMPORAL_ADDRESS: address,
      TEMPORAL_CONNECT_TIMEOUT_MS: '300000',
    });
    spawned.push(w);
    await w.waitFor(/not ready, attempt 1:/, 120_000, 'a failed connection attempt');
    w.child.kill('SIGTERM');
    const exit = await w.exited;
    assert.equal(exit.code, 0, w.output());
    assert.match(w.output(), /checkout worker stopped before connecting: Stopped while waiting for Temporal/);
  });
});
