/**
 * What the checkout's server-backed tests share: a real Temporal dev server, the Stripe emulator,
 * the real `stripe` SDK pointed at it, a SQLite provisioner in a temporary file, and the workflow
 * bundle built once per process. Each test gets its own task queue and order id from its title.
 *
 * Money is asserted through the emulator's ledger (`successful_charges`), never through logs.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import type Stripe from 'stripe';
import { startStripeEmulator, type StripeEmulator } from '../../src/stripe-emulator';
import { SqliteProvisioner, type Provisioner } from '../../src/provisioning';
import { createStripeClient } from '../../src/stripe/client';
import { createCheckoutWorker, checkoutWorkflowBundle } from '../../src/worker';
import { getCheckoutHandle, getCheckoutStatus } from '../../src/client';
import type {
  CheckoutInput,
  CheckoutOptions,
  CheckoutState,
  CheckoutStatus,
  Entitlement,
  ProvisionRequest,
} from '../../src/workflows/definitions';
import { checkoutWorkflowId } from '../../src/workflows/definitions';
import { testTemporal, uniqueName } from '../support/temporal';

export const TEST_SECRET_KEY = 'sk_test_checkoutworkflows';
/** Stripe client timeout in tests; the workflow's `stripeCallTimeoutMs` stays above it. */
export const TEST_STRIPE_TIMEOUT_MS = 2_000;

/** Short, test-sized durations; production defaults are in src/workflows/checkout.ts. */
export const FAST_OPTIONS: CheckoutOptions = {
  paymentPollIntervalMs: 200,
  paymentActionTimeoutMs: 20_000,
  paymentRetryWindowMs: 0,
  stripeCallTimeoutMs: 4_000,
  reconcileIntervalMs: 500,
};

export interface CheckoutHarness {
  readonly address: string;
  readonly namespace: string;
  readonly client: Client;
  readonly nativeConnection: NativeConnection;
  readonly emulator: StripeEmulator;
  readonly stripe: Stripe;
  readonly provisioner: SqliteProvisioner;
  readonly provisioningPath: string;
  readonly customerId: string;
  /** Runs `fn` while a checkout worker polls `taskQueue`. */
  withWorker<T>(taskQueue: string, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

let runtimeInstalled = false;

/** Quiet worker logs (warnings and errors still show); the Runtime can be installed only once. */
function installQuietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Another test file in this process installed it first; its logger stays.
  }
}

/** The messages along an error's cause chain, outermost first. */
export function causeChain(err: unknown): string[] {
  const messages: string[] = [];
  for (let e: unknown = err; e instanceof Error; e = e.cause) messages.push(e.message);
  return messages;
}

/** The cause chain's messages on one line, for assertion messages. */
export function causeMessages(err: unknown): string {
  return causeChain(err).join(' <- ');
}

/** Asserts that `promise` rejects with an error whose message, or a cause's, matches `re`. */
export async function rejectsWithCause(promise: Promise<unknown>, re: RegExp): Promise<void> {
  await promise.then(
    () => {
      throw new Error(`expected a rejection matching ${String(re)}`);
    },
    (err: unknown) => {
      const messages = causeChain(err);
      if (!messages.some((m) => re.test(m))) {
        throw new Error(`no message in the cause chain matches ${String(re)}: ${messages.join(' <- ')}`);
      }
    },
  );
}

/**
 * One harness for the enclosing mocha suite: started in its `before` (up to 180 s: the dev server and
 * the bundle), closed in its `after`. The returned object stands for the harness inside the suite's
 * hooks and tests (each property is read from the started harness), so a suite writes
 * `const h = suiteHarness();` instead of the same before/after pair in every file.
 */
export function suiteHarness(): CheckoutHarness {
  let started: CheckoutHarness | undefined;
  before(async function () {
    this.timeout(180_000);
    started = await startHarness();
  });
  after(async () => {
    await started?.close();
  });
  return new Proxy({} as CheckoutHarness, {
    get(_, key) {
      if (!started) throw new Error(`the suite's harness is not started yet (reading ${String(key)})`);
      const value: unknown = Reflect.get(started, key);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(started) : value;
    },
  });
}

export async function startHarness(): Promise<CheckoutHarness> {
  installQuietRuntime();
  const temporal = await testTemporal();
  const [emulator, workflowBundle] = await Promise.all([
    startStripeEmulator({ quiet: true }),
    checkoutWorkflowBundle(),
  ]);
  const stripe = createStripeClient({
    secretKey: TEST_SECRET_KEY,
    timeoutMs: TEST_STRIPE_TIMEOUT_MS,
    apiBase: { host: emulator.host, port: emulator.port, protocol: 'http' },
  });
  const customer = await stripe.customers.create({ description: 'checkout tests' });
  const dir = mkdtempSync(path.join(tmpdir(), 'checkout-'));
  const provisioningPath = path.join(dir, 'provisioning.sqlite');
  const provisioner = new SqliteProvisioner(provisioningPath);
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, namespace: temporal.namespace });
  const nativeConnection = await NativeConnection.connect({ address: temporal.address });

  return {
    address: temporal.address,
    namespace: temporal.namespace,
    client,
    nativeConnection,
    emulator,
    stripe,
    provisioner,
    provisioningPath,
    customerId: customer.id,
    async withWorker<T>(taskQueue: string, fn: () => Promise<T>): Promise<T> {
      const worker: Worker = await createCheckoutWorker({
        connection: nativeConnection,
        namespace: temporal.namespace,
        taskQueue,
        stripe,
        provisioner,
        workflowBundle,
      });
      return worker.runUntil(fn());
    },
    async close(): Promise<void> {
      await connection.close();
      await nativeConnection.close();
      await provisioner.close();
      await emulator.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh order (id and task queue) for one test. */
export function newOrder(
  h: CheckoutHarness,
  title: string,
  overrides: Partial<CheckoutInput> = {},
): { input: CheckoutInput; taskQueue: string } {
  const name = uniqueName(title);
  return {
    taskQueue: `tq-${name}`,
    input: {
      orderId: name,
      amount: 4_200,
      currency: 'usd',
      customerId: h.customerId,
      paymentMethodId: 'pm_card_visa',
      provision: { sku: 'course-101', quantity: 1 },
      options: FAST_OPTIONS,
      ...overrides,
    },
  };
}

/** The emulator's ledger entries for one order (found by the metadata the workflow sets). */
export function paymentIntentsFor(h: CheckoutHarness, orderId: string) {
  return h.emulator.control.ledger().payment_intents.filter((pi) => pi.metadata.order_id === orderId);
}

export function successfulCharges(h: CheckoutHarness, orderId: string): number {
  return paymentIntentsFor(h, orderId).reduce((n, pi) => n + pi.successful_charges, 0);
}

export async function provisionedCount(h: CheckoutHarness, orderId: string): Promise<number> {
  return (await h.provisioner.list()).filter((e) => e.orderId === orderId).length;
}

/** Polls the status query until `predicate` holds (queries need the worker running). */
export async function waitForStatus(
  h: CheckoutHarness,
  orderId: string,
  predicate: (s: CheckoutStatus) => boolean,
  timeoutMs = 30_000,
): Promise<CheckoutStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: CheckoutStatus | undefined;
  for (;;) {
    try {
      last = await getCheckoutStatus(h.client, orderId);
      if (predicate(last)) return last;
    } catch {
      // Not started yet, or no worker has answered: keep polling until the deadline.
    }
    if (Date.now() > deadline) {
      throw new Error(
        `status never matched; last: ${JSON.stringify(last?.state)} ${JSON.stringify(last?.audit)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function inState(state: CheckoutState): (s: CheckoutStatus) => boolean {
  return (s) => s.state === state;
}

export async function until(predicate: () => boolean, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const HISTORIES_DIR = path.resolve(__dirname, '..', 'fixtures', 'histories');

const History = temporal.api.history.v1.History;

/**
 * History fixtures are protobufjs' plain-object form (int64 and bytes as strings, enums by name).
 * Not the CLI's proto JSON: in this install `historyFromJSON` breaks on two copies of protobufjs
 * ("type must be a Type"), while `toObject`/`fromObject` on the SDK's own proto types round-trip.
 */
export function historyToFixture(history: temporal.api.history.v1.IHistory): string {
  const object = History.toObject(History.fromObject(history), {
    longs: String,
    enums: String,
    bytes: String,
  });
  return `${JSON.stringify(object, null, 1)}\n`;
}

export function historyFromFixture(json: string): temporal.api.history.v1.History {
  return History.fromObject(JSON.parse(json) as Record<string, unknown>);
}

/**
 * With RECORD_HISTORIES=1, saves a finished workflow's history as a replay fixture
 * (test/fixtures/histories/<name>.json); test/workflows/replay.test.ts replays every fixture.
 */
export async function recordHistory(h: CheckoutHarness, workflowId: string, name: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const history = await h.client.workflow.getHandle(workflowId).fetchHistory();
  mkdirSync(HISTORIES_DIR, { recursive: true });
  writeFileSync(path.join(HISTORIES_DIR, `${name}.json`), historyToFixture(history));
}

/** Each upsert in the history, as `{ attribute: value }` (keyword lists read as their one value). */
export async function upserts(client: Client, workflowId: string): Promise<Record<string, unknown>[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .map((e: temporal.api.history.v1.IHistoryEvent) => e.upsertWorkflowSearchAttributesEventAttributes)
    .filter((a) => a !== undefined && a !== null)
    .map((a) => {
      const fields = a.searchAttributes?.indexedFields ?? {};
      return Object.fromEntries(
        Object.entries(fields).map(([name, payload]) => {
          const value: unknown = defaultPayloadConverter.fromPayload(payload);
          return [name, Array.isArray(value) && value.length === 1 ? (value[0] as unknown) : value];
        }),
      );
    });
}

/** A provisioning backend that is down until the test says otherwise. */
export class SwitchableProvisioner implements Provisioner {
  failing = true;
  attempts = 0;
  constructor(private readonly inner: Provisioner) {}
  provision(request: ProvisionRequest): Promise<Entitlement> {
    this.attempts += 1;
    if (this.failing) return Promise.reject(new Error('provisioning backend unavailable'));
    return this.inner.provision(request);
  }
  recordRefund(...args: Parameters<Provisioner['recordRefund']>): Promise<Entitlement | undefined> {
    return this.inner.recordRefund(...args);
  }
  get(workflowId: string): Promise<Entitlement | undefined> {
    return this.inner.get(workflowId);
  }
  list(): Promise<readonly Entitlement[]> {
    return this.inner.list();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * `promise`'s value, or a failure naming `what` if it has none within `ms`: for an update or a
 * result that a workflow bug would leave waiting forever.
 */
export async function answered<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} was never answered (waited ${ms} ms)`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resets the checkout's current run to its first workflow task, as the runbook does; the new run id. */
export async function resetToFirstTask(h: CheckoutHarness, orderId: string, reason: string): Promise<string> {
  const handle = getCheckoutHandle(h.client, orderId);
  const oldRunId = (await handle.describe()).runId;
  const history = await handle.fetchHistory();
  const firstTask = history.events?.find((e) => e.workflowTaskCompletedEventAttributes);
  if (!firstTask?.eventId) throw new Error(`no completed workflow task in ${oldRunId}`);
  const reset = await h.client.workflowService.resetWorkflowExecution({
    namespace: h.namespace,
    workflowExecution: { workflowId: checkoutWorkflowId(orderId), runId: oldRunId },
    reason,
    workflowTaskFinishEventId: firstTask.eventId,
    requestId: `reset-${orderId}`,
  });
  if (!reset.runId || reset.runId === oldRunId) throw new Error('the reset started no new run');
  return reset.runId;
}
