/**
 * What the intake and CLI tests run against: the shared real Temporal dev server, a real Stripe
 * emulator, and one checkout worker on a task queue of this fixture's own (so other suites'
 * workers never pick up these checkouts). One customer is created up front.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { getCheckoutHandle, getCheckoutStatus } from '../../src/client';
import { SqliteProvisioner } from '../../src/provisioning';
import { createStripeClient } from '../../src/stripe/client';
import { startStripeEmulator, type StripeEmulator } from '../../src/stripe-emulator';
import { createCheckoutWorker } from '../../src/worker';
import {
  type CheckoutInput,
  type CheckoutOptions,
  type CheckoutStatus,
} from '../../src/workflows/definitions';
import { testTemporal, uniqueName } from '../support/temporal';

export interface IntakeFixture {
  readonly client: Client;
  readonly emulator: StripeEmulator;
  readonly taskQueue: string;
  readonly customerId: string;
  close(): Promise<void>;
}

/** Short waits so declines, retries and cancels finish in seconds. */
export const FAST: CheckoutOptions = { paymentPollIntervalMs: 200, stripeCallTimeoutMs: 10_000 };

export async function startIntakeFixture(name: string): Promise<IntakeFixture> {
  const server = await testTemporal();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'intake-test-'));
  const emulator = await startStripeEmulator({ quiet: true });
  const stripe = createStripeClient({
    secretKey: 'sk_test_intake',
    timeoutMs: 5_000,
    apiBase: { host: emulator.host, port: emulator.port, protocol: 'http' },
  });
  const customer = await stripe.customers.create({ name: 'Intake test' });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: server.namespace });
  const workerConnection = await NativeConnection.connect({ address: server.address });
  const provisioner = new SqliteProvisioner(path.join(dir, 'provisioning.sqlite'));
  const taskQueue = uniqueName(name);
  const worker: Worker = await createCheckoutWorker({
    connection: workerConnection,
    namespace: server.namespace,
    taskQueue,
    stripe,
    provisioner,
  });
  const running = worker.run();
  return {
    client,
    emulator,
    taskQueue,
    customerId: customer.id,
    async close() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await workerConnection.close();
      await connection.close();
      await provisioner.close();
      await emulator.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function orderInput(
  f: IntakeFixture,
  title: string,
  paymentMethodId = 'pm_card_visa',
  options: CheckoutOptions = FAST,
): CheckoutInput {
  return {
    orderId: uniqueName(title).slice(-60).replace(/^-+/, ''),
    amount: 4200,
    currency: 'usd',
    customerId: f.customerId,
    paymentMethodId,
    provision: { sku: 'pro-plan', quantity: 1 },
    options,
  };
}

export function successfulCharges(f: IntakeFixture, orderId: string): number {
  return f.emulator.control
    .ledger()
    .payment_intents.filter((pi) => pi.metadata.order_id === orderId)
    .reduce((n, pi) => n + pi.successful_charges, 0);
}

/** True when Temporal has a checkout (any state, open or closed) for the order. */
export async function checkoutExists(f: IntakeFixture, orderId: string): Promise<boolean> {
  try {
    await getCheckoutHandle(f.client, orderId).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

export async function waitForStatus(
  f: IntakeFixture,
  orderId: string,
  predicate: (s: CheckoutStatus) => boolean,
  timeoutMs = 30_000,
): Promise<CheckoutStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: CheckoutStatus | undefined;
  for (;;) {
    try {
      last = await getCheckoutStatus(f.client, orderId);
      if (predicate(last)) return last;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) {
      throw new Error(`order ${orderId} never matched; last state ${last?.state ?? 'unknown'}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** How many signals the checkout's history holds: "nothing signaled" is checked here. */
export async function signalCount(f: IntakeFixture, orderId: string): Promise<number> {
  const history = await getCheckoutHandle(f.client, orderId).fetchHistory();
  return (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes != null).length;
}

/**
 * Waits until the history holds `expected` signals. A signal that arrives while a workflow task is
 * running is buffered by the server and written to history only when that task completes.
 */
export async function waitForSignalCount(
  f: IntakeFixture,
  orderId: string,
  expected: number,
  timeoutMs = 10_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let count = await signalCount(f, orderId);
  while (count < expected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    count = await signalCount(f, orderId);
  }
  return count;
}
