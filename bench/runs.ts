/**
 * One measured run: `count` checkouts of one mode, `concurrency` at a time in a closed loop (each
 * slot starts its next checkout as soon as its last one completed), timed from the start call to
 * the completed result. Around the run it reads the Stripe server's request counts, the worker
 * processes' peak memory and the dev server's RSS, and afterwards checks in the Stripe ledger that
 * every order was charged exactly once.
 *
 * The modes make the same Stripe requests and provisioning writes where they make any:
 *   floor          the floor workflow (floor-workflows.ts): three no-op activities;
 *   checkout       the product: `startCheckout` (src/client.ts), the checkout workflow and activities;
 *   direct         the same activity functions called from a plain loop: no Temporal, no durability;
 *   shaped-floor   diagnostic: the floor plus the checkout's start options and its one upsert;
 *   local-floor    diagnostic: the floor with local activities, whatever the checkout uses;
 *   working-floor  diagnostic: the floor calling the checkout's activities (its Stripe requests and
 *                  SQLite grant), with no bookkeeping and no workflow logic.
 */
import { performance } from 'node:perf_hooks';
import type { Client } from '@temporalio/client';
import { createActivities } from '../src/activities';
import { startCheckout } from '../src/client';
import { SqliteProvisioner } from '../src/provisioning';
import {
  CheckoutStateAttr,
  OrderIdAttr,
  PROCESSING,
  checkoutWorkflowId,
  type CheckoutInput,
} from '../src/workflows/definitions';
import type { checkoutFloor, checkoutShapedFloor, checkoutWorkingFloor } from './floor-workflows';
import {
  FLOOR_WORKFLOW_TYPE,
  SHAPED_FLOOR_WORKFLOW_TYPE,
  WORKING_FLOOR_WORKFLOW_TYPE,
  type FloorActivityKind,
} from './floor-activities';
import { payByCard } from './card-path';
import { statsDelta } from './emulator-thread';
import type { BenchEnvironment } from './environment';
import {
  requestsPerCheckout,
  summarize,
  toMiB,
  type MemoryFigures,
  type Mode,
  type RoundResult,
  type RunFigures,
} from './figures';
import type { BenchWorker, MemorySample } from './worker-host';

export const AMOUNT = 4_200;
export const CURRENCY = 'usd';
export const SKU = 'course-101';

export interface RunSpec {
  readonly mode: Mode;
  /** The kind of activity the `floor` mode's three calls are (the checkout's kind). Default ordinary. */
  readonly floorKind?: FloorActivityKind;
  readonly concurrency: number;
  readonly count: number;
  /** Prefix that makes this run's order ids unique. */
  readonly label: string;
  /** Task queue the workers of this mode poll (unused by `direct`). */
  readonly taskQueue: string;
  /** Workers serving this mode, for memory; empty for `direct`. */
  readonly workers: readonly BenchWorker[];
}

export interface Progress {
  (done: number, failed: number, total: number, elapsedMs: number): void;
}

export interface Checkouts {
  /** Runs one checkout to completion; rejects if it did not complete. */
  one(orderId: string): Promise<void>;
  close(): Promise<void>;
}

export function checkoutInput(
  env: BenchEnvironment,
  orderId: string,
  paymentMethodId: string,
): CheckoutInput {
  return {
    orderId,
    amount: AMOUNT,
    currency: CURRENCY,
    customerId: env.customerId,
    paymentMethodId,
    provision: { sku: SKU, quantity: 1 },
  };
}

/** The floor's workflow id for an order id. */
export function floorWorkflowId(orderId: string): string {
  return `floor-${orderId}`;
}

function floorCheckouts(client: Client, taskQueue: string, kind: FloorActivityKind): Checkouts {
  return {
    async one(orderId) {
      const handle = await client.workflow.start<typeof checkoutFloor>(FLOOR_WORKFLOW_TYPE, {
        workflowId: floorWorkflowId(orderId),
        taskQueue,
        args: [orderId, kind],
      });
      const result = await handle.result();
      if (result.outcome !== 'completed') throw new Error(`floor ${orderId} ended ${String(result.outcome)}`);
    },
    close: () => Promise.resolve(),
  };
}

/**
 * The shaped floor, started the way `startCheckout` starts a checkout (the same id policies, memo,
 * search attributes and summaries; no describe, as a fresh start has none), so that with the
 * workflow's one upsert it carries all of the checkout's Temporal bookkeeping and none of its work.
 */
function shapedFloorCheckouts(env: BenchEnvironment, taskQueue: string): Checkouts {
  return {
    async one(orderId) {
      const input = checkoutInput(env, orderId, 'pm_card_visa');
      const handle = await env.client.workflow.start<typeof checkoutShapedFloor>(SHAPED_FLOOR_WORKFLOW_TYPE, {
        workflowId: `shaped-${orderId}`,
        taskQueue,
        args: [input],
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        memo: {
          terms: { amount: AMOUNT, currency: CURRENCY, customerId: env.customerId, sku: SKU, quantity: 1 },
        },
        typedSearchAttributes: [
          { key: OrderIdAttr, value: orderId },
          { key: CheckoutStateAttr, value: PROCESSING },
        ],
        staticSummary: `Checkout for order ${orderId}: ${AMOUNT} ${CURRENCY}`,
        staticDetails: `Shaped floor for order ${orderId}: the checkout's bookkeeping without its work.`,
      });
      const result = await handle.result();
      if (result.outcome !== 'completed')
        throw new Error(`shaped floor ${orderId} ended ${String(result.outcome)}`);
    },
    close: () => Promise.resolve(),
  };
}

/** The working floor: a plain start, like the floor's, of a workflow that does the checkout's work. */
function workingFloorCheckouts(env: BenchEnvironment, taskQueue: string): Checkouts {
  return {
    async one(orderId) {
      const handle = await env.client.workflow.start<typeof checkoutWorkingFloor>(
        WORKING_FLOOR_WORKFLOW_TYPE,
        {
          workflowId: `working-${orderId}`,
          taskQueue,
          args: [checkoutInput(env, orderId, 'pm_card_visa')],
        },
      );
      const result = await handle.result();
      if (result.outcome !== 'completed')
        throw new Error(`working floor ${orderId} ended ${String(result.outcome)}`);
    },
    close: () => Promise.resolve(),
  };
}

function productCheckouts(env: BenchEnvironment, taskQueue: string): Checkouts {
  return {
    async one(orderId) {
      const { handle } = await startCheckout(env.client, checkoutInput(env, orderId, 'pm_card_visa'), {
        taskQueue,
      });
      const result = await handle.result();
      if (result.outcome !== 'completed') throw new Error(`checkout ${orderId} ended ${result.outcome}`);
    },
    close: () => Promise.resolve(),
  };
}

/**
 * The direct integration: the checkout's own activity functions (same Stripe SDK calls, keys and
 * parameters, same SQLite provisioning) in a plain loop. What it lacks is what Temporal adds: a
 * crash between confirm and provision is not resumed, a failed call is not retried, no history.
 */
function directCheckouts(env: BenchEnvironment, label: string): Checkouts {
  const provisioner = new SqliteProvisioner(`${env.dir}/direct-${label}.sqlite`);
  const activities = createActivities({ stripe: env.stripe, provisioner });
  return {
    async one(orderId) {
      await payByCard(
        activities,
        checkoutWorkflowId(orderId),
        checkoutInput(env, orderId, 'pm_card_visa'),
        (message) => new Error(`direct ${message}`),
      );
    },
    close: () => provisioner.close(),
  };
}

/** A checkout not completed by then counts as failed, so a stuck run cannot hang the benchmark. */
export const CHECKOUT_TIMEOUT_MS = 600_000;

function withTimeout(p: Promise<void>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export interface LoopResult {
  readonly latenciesMs: number[];
  readonly failed: number;
  readonly firstFailure: string | undefined;
  readonly elapsedMs: number;
  readonly orderIds: string[];
}

/** `count` calls of `one`, `concurrency` at a time, each slot starting the next as its last ends. */
export async function closedLoop(
  count: number,
  concurrency: number,
  orderIdOf: (i: number) => string,
  one: (orderId: string) => Promise<void>,
  progress: Progress,
): Promise<LoopResult> {
  const latenciesMs: number[] = [];
  const orderIds: string[] = [];
  let next = 0;
  let failed = 0;
  let firstFailure: string | undefined;
  const started = performance.now();
  const ticker = setInterval(
    () => progress(latenciesMs.length, failed, count, performance.now() - started),
    500,
  );
  const slot = async (): Promise<void> => {
    while (next < count) {
      const orderId = orderIdOf(next++);
      orderIds.push(orderId);
      const t0 = performance.now();
      try {
        await withTimeout(one(orderId), CHECKOUT_TIMEOUT_MS, orderId);
        latenciesMs.push(performance.now() - t0);
      } catch (err) {
        failed++;
        firstFailure ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, slot));
  } finally {
    clearInterval(ticker);
  }
  const elapsedMs = performance.now() - started;
  progress(latenciesMs.length, failed, count, elapsedMs);
  return { latenciesMs, failed, firstFailure, elapsedMs, orderIds };
}

/** Orders among `orderIds` whose PaymentIntents together show exactly one successful charge. */
export async function chargedExactlyOnce(
  env: BenchEnvironment,
  orderIds: readonly string[],
): Promise<number> {
  const wanted = new Set(orderIds);
  const charges = new Map<string, number>();
  for (const pi of (await env.emulator.ledger()).payment_intents) {
    const order = pi.metadata.order_id;
    if (order === undefined || !wanted.has(order)) continue;
    charges.set(order, (charges.get(order) ?? 0) + pi.successful_charges);
  }
  let exact = 0;
  for (const order of wanted) if (charges.get(order) === 1) exact++;
  return exact;
}

function memoryFigures(samples: readonly MemorySample[]): MemoryFigures | undefined {
  if (samples.length === 0) return undefined;
  return {
    measured: 'worker child processes',
    processes: samples.length,
    peakRssMiB: toMiB(samples.reduce((s, m) => s + m.peakRssBytes, 0)),
    peakHeapUsedMiB: toMiB(samples.reduce((s, m) => s + m.peakHeapUsedBytes, 0)),
  };
}

/** Samples the dev server's RSS every 100 ms while `fn` runs; returns the peak. */
export async function withServerPeak<T>(
  env: BenchEnvironment,
  fn: () => Promise<T>,
): Promise<{ value: T; peakRssBytes: number | undefined }> {
  let peak: number | undefined;
  const sample = (): void => {
    const rss = env.serverRssBytes();
    if (rss !== undefined) peak = Math.max(peak ?? 0, rss);
  };
  sample();
  const timer = setInterval(sample, 100);
  try {
    const value = await fn();
    sample();
    return { value, peakRssBytes: peak };
  } finally {
    clearInterval(timer);
  }
}

function checkoutsFor(env: BenchEnvironment, spec: RunSpec): Checkouts {
  switch (spec.mode) {
    case 'floor':
      return floorCheckouts(env.client, spec.taskQueue, spec.floorKind ?? 'activity');
    case 'local-floor':
      return floorCheckouts(env.client, spec.taskQueue, 'local');
    case 'shaped-floor':
      return shapedFloorCheckouts(env, spec.taskQueue);
    case 'working-floor':
      return workingFloorCheckouts(env, spec.taskQueue);
    case 'checkout':
      return productCheckouts(env, spec.taskQueue);
    case 'direct':
      return directCheckouts(env, spec.label);
  }
}

export async function runMode(env: BenchEnvironment, spec: RunSpec, progress: Progress): Promise<RunFigures> {
  return (await runModeRound(env, spec, progress)).figures;
}

/** One run of a mode, with its raw latencies so that rounds can be merged (`mergeRounds`). */
export async function runModeRound(
  env: BenchEnvironment,
  spec: RunSpec,
  progress: Progress,
): Promise<RoundResult> {
  const checkouts = checkoutsFor(env, spec);
  try {
    const workersBefore = await Promise.all(spec.workers.map((w) => w.memory({ reset: true })));
    const serverCpuBefore = env.serverCpuMs();
    const benchCpuBefore = process.cpuUsage();
    const before = await env.emulator.stats();
    const { value: loop, peakRssBytes } = await withServerPeak(env, () =>
      closedLoop(
        spec.count,
        spec.concurrency,
        (i) => `${spec.label}-${i}`,
        (id) => checkouts.one(id),
        progress,
      ),
    );
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const serverCpuAfter = env.serverCpuMs();
    const stripe = statsDelta(before, await env.emulator.stats());
    const workersAfter = await Promise.all(spec.workers.map((w) => w.memory({ reset: true })));
    const memory = memoryFigures(workersAfter);
    const completed = loop.latenciesMs.length;
    const perCheckout = (ms: number): number => (completed === 0 ? Number.NaN : ms / completed);
    const workerCpuMs = workersAfter.reduce((s, m, i) => s + m.cpuMs - (workersBefore[i]?.cpuMs ?? 0), 0);
    const figures: RunFigures = {
      mode: spec.mode,
      concurrency: spec.concurrency,
      workerProcesses: spec.workers.length,
      requested: spec.count,
      completed,
      failed: loop.failed,
      firstFailure: loop.firstFailure,
      elapsedMs: Math.round(loop.elapsedMs),
      checkoutsPerSecond: (completed / loop.elapsedMs) * 1000,
      latencyMs: summarize(loop.latenciesMs),
      stripeRequests: stripe.total,
      stripeRequestsPerCheckout: requestsPerCheckout(stripe, completed),
      stripeRequestsByRoute: stripe.by_route,
      workerMemory: memory,
      serverPeakRssMiB: peakRssBytes === undefined ? undefined : toMiB(peakRssBytes),
      cpuMsPerCheckout: {
        serverMs:
          serverCpuBefore === undefined || serverCpuAfter === undefined
            ? undefined
            : perCheckout(serverCpuAfter - serverCpuBefore),
        workerMs: spec.workers.length === 0 ? undefined : perCheckout(workerCpuMs),
        benchProcessMs: perCheckout((benchCpu.user + benchCpu.system) / 1000),
      },
      chargedExactlyOnce:
        spec.mode === 'checkout' || spec.mode === 'direct' || spec.mode === 'working-floor'
          ? await chargedExactlyOnce(env, loop.orderIds)
          : undefined,
      rounds: 1,
    };
    return { figures, latenciesMs: loop.latenciesMs };
  } finally {
    await checkouts.close();
  }
}

/** How many activity calls of each kind one workflow run made, read from its history. */
export interface ActivityCalls {
  /** Ordinary activities: `ActivityTaskScheduled` events. */
  readonly activities: number;
  /** Local activities: `MarkerRecorded` events with the SDK's local-activity marker. */
  readonly localActivities: number;
}

/** The marker the SDK records for each completed local activity. */
export const LOCAL_ACTIVITY_MARKER = 'core_local_activity';

export async function activityCallsOf(client: Client, workflowId: string): Promise<ActivityCalls> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  let activities = 0;
  let localActivities = 0;
  for (const event of history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes) activities++;
    if (event.markerRecordedEventAttributes?.markerName === LOCAL_ACTIVITY_MARKER) localActivities++;
  }
  return { activities, localActivities };
}
