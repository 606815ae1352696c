/**
 * The chaos run (issue 5): N checkouts through the embedded stack while a seeded schedule breaks
 * everything it can, then the invariant checker on what Stripe, provisioning and Temporal show.
 *
 * The stack is built here rather than with `src/stack` because the run needs its parts apart: the
 * pinned Temporal dev server on a SQLite file in a temp dir (so it can be restarted on the same
 * file), the local Stripe server in this process (its fault rules, clock, ledger and webhook
 * endpoints through the control API), the HTTP intake (webhooks land there and wake workflows), and
 * at least two worker processes (`src/worker.ts`, or the broken variant's) that can be SIGKILLed.
 *
 * The run is bounded: every checkout is driven until it finishes or has sat in `needs_attention`
 * with nothing left to do, and an overall deadline stops the wait; hitting it is a violation.
 *
 * What each fault does and how the checkout is meant to survive it: docs/chaos.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import Stripe from 'stripe';
import { getCheckoutHandle, retryPayment, startCheckout } from '../client';
import { STRIPE_WEBHOOK_PATH, startHttpIntake, type HttpIntake } from '../http/server';
import { SqliteProvisioner } from '../provisioning';
import { startStripeEmulator, type StripeEmulator } from '../stripe-emulator';
import { type FaultRuleInput } from '../stripe-emulator/faults';
import { startDevServer, type DevServer } from '../temporal/dev-server';
import { closeSafeInterceptors } from '../temporal/connection-guard';
import {
  SEARCH_ATTRIBUTE_TYPES,
  TERMINAL_STATES,
  checkoutWorkflowId,
  paymentIdempotencyKey,
  statusQuery,
  type CheckoutInput,
  type CheckoutOptions,
  type CheckoutStatus,
} from '../workflows/definitions';
import { BROKEN_VARIANTS } from './broken-activities';
import {
  checkInvariants,
  countByKind,
  type ChaosSnapshot,
  type CheckResult,
  type WorkflowSnapshot,
} from './checker';
import {
  FIRST_CARD,
  NEW_CARD,
  buildSchedule,
  cardPlanCounts,
  plannedCounts,
  scheduleHash,
  type OrderPlan,
  type StepFault,
} from './schedule';
import { otherNondeterminism, resetOnSdkDefect, stuckTask } from './sdk-defect';
import { WorkerPool } from './workers';

export const VARIANTS = ['correct', ...BROKEN_VARIANTS] as const;
export type Variant = (typeof VARIANTS)[number];

export interface ChaosOptions {
  readonly checkouts: number;
  readonly seed: number;
  /** At least 2. */
  readonly workers: number;
  readonly variant: Variant;
  /** Overall deadline for the whole run, start to verdict. Default: `defaultDeadlineMs(checkouts)`. */
  readonly deadlineMs?: number;
  /** Checkouts driven at once. Default 40. */
  readonly concurrency?: number;
  /** Progress lines. Default: silent. */
  readonly log?: (line: string) => void;
  /** Keep the temp dir (Temporal SQLite file, provisioning DB, worker logs) for a post-mortem. */
  readonly keepDir?: boolean;
}

export interface FaultCount {
  readonly planned: number;
  readonly injected: number;
}

export interface ChaosReport {
  readonly variant: Variant;
  readonly checkouts: number;
  readonly seed: number;
  readonly workers: number;
  readonly scheduleHash: string;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly deadlineMs: number;
  /** Faults by type: planned by the schedule, and what the stack reports actually happened. */
  readonly faults: Readonly<Record<string, FaultCount>>;
  readonly cardPlans: Readonly<Record<string, number>>;
  readonly finalStates: Readonly<Record<string, number>>;
  readonly violationsByKind: Readonly<Record<string, number>>;
  readonly violations: CheckResult['violations'];
  readonly warnings: number;
  readonly warningSamples: CheckResult['warnings'];
  readonly stack: {
    readonly workerStarts: number;
    readonly unexpectedWorkerExits: number;
    readonly temporalRestartMs: readonly number[];
    readonly tempDir: string | undefined;
  };
  readonly passed: boolean;
}

/** Checkout options for the run: short waits so a run of thousands ends in minutes. */
const CHECKOUT_OPTIONS: CheckoutOptions = {
  paymentActionTimeoutMs: 30_000,
  paymentPollIntervalMs: 2_000,
  paymentRetryWindowMs: 30_000,
  stripeCallTimeoutMs: 10_000,
  reconcileIntervalMs: 5_000,
};
const POLL_MS = 1_500;
/** A checkout in needs-attention with nothing left for the harness to do, unchanged this long, has settled. */
const SETTLE_MS = 20_000;
const MAX_NEW_CARDS = 3;
const OPERATOR_RETRIES = 1;
/** How often a checkout that is not moving is looked at for the SDK defect's stuck workflow task. */
const STUCK_CHECK_MS = 15_000;
const CLOCK_JUMP_SECONDS = 25 * 3600;
const ACTOR = 'chaos-harness';
const SECRET_KEY = 'sk_test_chaosharness';
const WEBHOOK_EVENTS = [
  'payment_intent.succeeded',
  'payment_intent.payment_failed',
  'payment_intent.requires_action',
  'payment_intent.canceled',
  'payment_intent.processing',
];

export function defaultDeadlineMs(checkouts: number): number {
  return 5 * 60_000 + checkouts * 600;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Retries `fn` through Temporal restarts and overload until it works or `until` passes. */
async function persist<T>(fn: () => Promise<T>, until: number, pauseMs = 1_000): Promise<T> {
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || Date.now() + pauseMs > until) throw err;
      await sleep(pauseMs);
    }
  }
}

interface Tally {
  add(kind: string, n?: number): void;
  readonly counts: Record<string, number>;
}

function tally(): Tally {
  const counts: Record<string, number> = {};
  return {
    counts,
    add(kind, n = 1) {
      counts[kind] = (counts[kind] ?? 0) + n;
    },
  };
}

class Semaphore {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(size: number) {
    this.free = size;
  }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}

/** Talks to the local Stripe server's control API over HTTP, as any harness elsewhere would. */
class ControlApi {
  constructor(private readonly baseUrl: string) {}

  async request<T>(method: string, route: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.baseUrl}/_emulator/${route}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`control API ${method} ${route}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }
}

interface RuleRecord {
  readonly id: string;
  readonly fault: string;
}

interface DeliveryRecord {
  readonly id: string;
  readonly copy: number;
  readonly attempts: readonly { readonly succeeded: boolean }[];
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? ((): void => {});
  if (options.workers < 2) throw new Error('the chaos run needs at least two workers');
  const schedule = buildSchedule({
    checkouts: options.checkouts,
    seed: options.seed,
    workers: options.workers,
  });
  const hash = scheduleHash(schedule);
  const deadlineMs = options.deadlineMs ?? defaultDeadlineMs(options.checkouts);
  const startedAt = new Date();
  const deadline = startedAt.getTime() + deadlineMs;
  log(
    `chaos: ${options.checkouts} checkouts, seed ${options.seed}, ${options.workers} workers, variant ${options.variant}, schedule sha256 ${hash}`,
  );

  const tempDir = mkdtempSync(path.join(os.tmpdir(), 'checkout-chaos-'));
  const dbFile = path.join(tempDir, 'temporal.sqlite');
  const provisioningPath = path.join(tempDir, 'provisioning.sqlite');
  const taskQueue = `chaos-${options.seed}`;
  const injected = tally();
  const temporalRestartMs: number[] = [];
  const closers: (() => Promise<void>)[] = [];

  let devServer: DevServer | undefined;
  let emulator: StripeEmulator | undefined;
  let pool: WorkerPool | undefined;
  try {
    devServer = await startDevServer({
      uiPort: false,
      dbFile,
      searchAttributes: SEARCH_ATTRIBUTE_TYPES,
      startupTimeoutMs: 120_000,
    });
    const temporalAddress = devServer.address;
    const temporalPort = devServer.port;
    closers.push(async () => {
      await devServer?.stop();
    });
    log(`chaos: Temporal dev server on ${temporalAddress}, history in ${dbFile}`);

    emulator = await startStripeEmulator({ host: '127.0.0.1', port: 0, quiet: true });
    const started = emulator;
    closers.push(() => started.stop());
    const control = new ControlApi(emulator.url);
    await control.request('POST', 'config', { searchLagSeconds: schedule.searchLagSeconds });

    const connection = await Connection.connect({
      address: temporalAddress,
      interceptors: closeSafeInterceptors(),
    });
    closers.push(() => connection.close());
    const client = new Client({ connection });

    const webhookSecret = `whsec_${randomBytes(24).toString('hex')}`;
    const intake: HttpIntake = await startHttpIntake({
      host: '127.0.0.1',
      port: 0,
      client,
      taskQueue,
      webhookSecrets: [webhookSecret],
    });
    closers.push(() => intake.close());
    const endpoint = await control.request<{ id: string }>('POST', 'webhook_endpoints', {
      url: `${intake.url}${STRIPE_WEBHOOK_PATH}`,
      secret: webhookSecret,
      enabled_events: WEBHOOK_EVENTS,
      description: 'chaos run: the HTTP intake, duplicated, reordered and delayed',
      duplicate: schedule.webhook.duplicate,
      reorder: schedule.webhook.reorder,
      reorder_window_ms: schedule.webhook.reorderWindowMs,
      delay_ms: schedule.webhook.delayMs,
      seed: schedule.webhook.seed,
      max_attempts: 8,
      retry_base_delay_ms: 500,
    });
    const deliveries = new Map<string, DeliveryRecord>();
    const collectDeliveries = async (): Promise<void> => {
      const res = await control.request<{ data: DeliveryRecord[] }>(
        'GET',
        `webhook_deliveries?endpoint=${encodeURIComponent(endpoint.id)}`,
      );
      for (const d of res.data) deliveries.set(d.id, d);
    };

    const stripe = new Stripe(SECRET_KEY, {
      host: emulator.host,
      port: emulator.port,
      protocol: 'http',
      telemetry: false,
    });
    const customers: string[] = [];
    for (let i = 0; i < schedule.customers; i++) {
      const c = await stripe.customers.create(
        { name: `Chaos customer ${i}` },
        { idempotencyKey: `chaos-${options.seed}-customer-${i}` },
      );
      customers.push(c.id);
    }

    const readRules: RuleRecord[] = [];
    for (const rf of schedule.readFaults) {
      const rule = await control.request<{ id: string }>('POST', 'faults', rf);
      readRules.push({ id: rule.id, fault: rf.fault });
    }

    const workerEntry =
      options.variant === 'correct'
        ? path.resolve(__dirname, '..', 'worker.ts')
        : path.resolve(__dirname, 'broken-worker.ts');
    const workerPool = new WorkerPool({
      entry: workerEntry,
      args: options.variant === 'correct' ? [] : ['--variant', options.variant],
      env: {
        TEMPORAL_ADDRESS: temporalAddress,
        TEMPORAL_NAMESPACE: 'default',
        TEMPORAL_TASK_QUEUE: taskQueue,
        STRIPE_SECRET_KEY: SECRET_KEY,
        STRIPE_API_BASE: emulator.url,
        STRIPE_TIMEOUT_MS: String(schedule.stripeTimeoutMs),
        PROVISIONING_SQLITE_PATH: provisioningPath,
        DATA_DIR: tempDir,
        // info: the harness waits for the worker's 'checkout worker polling' line, logged at info.
        LOG_LEVEL: 'info',
      },
      slots: options.workers,
      logDir: tempDir,
      readyTimeoutMs: 180_000,
    });
    pool = workerPool;
    await workerPool.startAll();
    log(
      `chaos: ${options.workers} workers polling ${taskQueue}; Stripe emulator ${emulator.url}; intake ${intake.url}`,
    );

    const restartTemporal = async (): Promise<void> => {
      const t0 = Date.now();
      await devServer?.stop();
      devServer = await startDevServer({
        port: temporalPort,
        uiPort: false,
        dbFile,
        searchAttributes: SEARCH_ATTRIBUTE_TYPES,
        startupTimeoutMs: 120_000,
      });
      temporalRestartMs.push(Date.now() - t0);
    };

    const ruleFor = (plan: OrderPlan, f: StepFault): FaultRuleInput => {
      const workflowId = checkoutWorkflowId(plan.orderId);
      const base = {
        fault: f.fault,
        times: f.times,
        ...(f.delayMs === undefined ? {} : { delayMs: f.delayMs }),
      };
      if (options.variant === 'no-key') {
        // No key of ours to aim at: the broken writes carry the checkout and step in metadata.
        return {
          ...base,
          method: 'POST',
          metadata: { checkout_workflow_id: workflowId, chaos_step: f.step },
        };
      }
      return { ...base, idempotencyKey: `${paymentIdempotencyKey(workflowId, 1, f.step)}*` };
    };

    const harvestRules = async (rules: readonly RuleRecord[]): Promise<void> => {
      if (rules.length === 0) return;
      const ids = new Set(rules.map((r) => r.id));
      const listed = await control.request<{ data: { id: string; fault: string; hits: number }[] }>(
        'GET',
        'faults',
      );
      for (const r of listed.data) if (ids.has(r.id)) injected.add(r.fault, r.hits);
      for (const r of rules) await control.request('DELETE', `faults?id=${encodeURIComponent(r.id)}`);
    };

    let actionErrors = 0;
    let queryErrors = 0;
    const unsettled = new Set<string>();
    const lastStatus = new Map<string, CheckoutStatus>();

    const driveOrder = async (plan: OrderPlan): Promise<void> => {
      const rules: RuleRecord[] = [];
      for (const f of plan.faults) {
        const rule = await control.request<{ id: string }>('POST', 'faults', ruleFor(plan, f));
        rules.push({ id: rule.id, fault: f.fault });
      }
      const input: CheckoutInput = {
        orderId: plan.orderId,
        amount: plan.amount,
        currency: 'usd',
        customerId: customers[plan.customerIndex] ?? '',
        paymentMethodId: FIRST_CARD[plan.card],
        provision: { sku: 'chaos-widget', quantity: 1 },
        options: CHECKOUT_OPTIONS,
      };
      const start = (): Promise<unknown> =>
        persist(() => startCheckout(client, input, { taskQueue }), deadline);
      if (plan.duplicateStart === 'concurrent') {
        await Promise.all([start(), start()]);
        injected.add('duplicate_start_concurrent');
      } else {
        await start();
      }
      const handle = getCheckoutHandle(client, plan.orderId);
      let newCards = 0;
      let operatorRetries = 0;
      const authenticated = new Set<string>();
      let stableKey = '';
      let stableSince = Date.now();
      let defectReset = false;
      let lastStuckCheck = Date.now();
      // The operator's runbook for a workflow task that keeps failing with the SDK defect's
      // signature (./sdk-defect.ts): one reset per checkout, counted in the report. True when the
      // task keeps failing with our own nondeterminism instead: nothing will move the checkout, so
      // the driver stops waiting for it and the checker reports it (not_final, with why).
      const checkStuck = async (): Promise<boolean> => {
        if (Date.now() - lastStuckCheck < STUCK_CHECK_MS) return false;
        lastStuckCheck = Date.now();
        try {
          const stuck = await stuckTask(handle);
          if (!stuck) return false;
          const ours = otherNondeterminism(stuck.events);
          if (ours !== undefined) {
            log(
              `chaos: ${plan.orderId} is stuck, not waiting for it: its workflow task keeps failing: ${ours}`,
            );
            return true;
          }
          if (defectReset) return false;
          const reset = await resetOnSdkDefect(
            handle,
            stuck,
            'operator: workflow task stuck on the SDK update-replay defect (sdk-rust#943, #1146), runbook reset',
            `chaos-defect-reset-${plan.orderId}`,
          );
          if (!reset) return false;
          defectReset = true;
          injected.add('operator_reset_after_sdk_defect');
          log(
            `chaos: reset ${plan.orderId} to its first workflow task (run ${reset.oldRunId} → ${reset.newRunId}): ${reset.failure}`,
          );
        } catch (err) {
          log(`chaos: looking at the stuck ${plan.orderId} failed: ${message(err)}`);
        }
        return false;
      };
      for (;;) {
        if (Date.now() > deadline) return;
        await sleep(POLL_MS);
        let status: CheckoutStatus;
        try {
          status = await handle.query(statusQuery);
        } catch (err) {
          queryErrors += 1;
          if (queryErrors <= 5) log(`chaos: status query of ${plan.orderId} failed: ${message(err)}`);
          if (await isClosed(handle)) break;
          if (await checkStuck()) break;
          continue;
        }
        lastStatus.set(plan.orderId, status);
        // Declined is terminal for the workflow only after its retry window; until then, a new card.
        if (TERMINAL_STATES.includes(status.state) && status.state !== 'declined') {
          if (await isClosed(handle)) break;
          continue;
        }
        const key = `${status.state}/${status.generation}/${status.needsAttention?.reason ?? ''}`;
        if (key !== stableKey) {
          stableKey = key;
          stableSince = Date.now();
        } else if (Date.now() - stableSince > STUCK_CHECK_MS && (await checkStuck())) {
          break;
        }
        try {
          if (status.state === 'declined' && (plan.card === 'declines' || newCards >= MAX_NEW_CARDS)) {
            if (await isClosed(handle)) {
              if (plan.card === 'declines') injected.add('decline_kept');
              break;
            }
          } else if (status.state === 'declined') {
            newCards += 1;
            await retryPayment(client, plan.orderId, {
              paymentMethodId: NEW_CARD,
              actor: ACTOR,
              reason: 'the customer entered a new card',
            });
            injected.add('decline_then_new_card');
          } else if (status.state === 'awaiting_customer_action' && status.paymentIntentId) {
            const pi = status.paymentIntentId;
            const outcome =
              plan.card === 'three_ds_authenticated'
                ? 'succeed'
                : plan.card === 'three_ds_fails_then_new_card'
                  ? 'fail'
                  : undefined;
            if (!outcome && !authenticated.has(pi)) {
              authenticated.add(pi);
              injected.add('three_ds_never_answered');
            }
            if (outcome && !authenticated.has(pi)) {
              // Marked only once the emulator took it: a failed request is tried again on the next
              // poll, or the checkout would wait for a customer who never comes back.
              await control.request('POST', `payment_intents/${encodeURIComponent(pi)}/authenticate`, {
                outcome,
              });
              authenticated.add(pi);
              injected.add(`three_ds_${outcome}`);
            }
          } else if (status.state === 'needs_attention') {
            if (status.needsAttention?.retryAllowed && operatorRetries < OPERATOR_RETRIES) {
              operatorRetries += 1;
              await retryPayment(client, plan.orderId, {
                paymentMethodId: NEW_CARD,
                actor: ACTOR,
                reason: 'operator: Stripe shows no charge, retrying with a new card',
              });
              injected.add('operator_retry_after_needs_attention');
            } else if (Date.now() - stableSince > SETTLE_MS) {
              break;
            }
          }
        } catch (err) {
          // A rejected update (the state moved on) or Temporal restarting: read again and decide anew.
          actionErrors += 1;
          if (actionErrors <= 5)
            log(`chaos: acting on ${plan.orderId} (${status.state}) failed: ${message(err)}`);
        }
      }
      if (plan.duplicateStart === 'after_end') {
        try {
          await persist(() => startCheckout(client, input, { taskQueue }), deadline);
          injected.add('duplicate_start_after_end');
        } catch (err) {
          log(`chaos: duplicate start of ${plan.orderId} after its end failed: ${message(err)}`);
        }
      }
      await persist(() => harvestRules(rules), deadline).catch(() => undefined);
      unsettled.delete(plan.orderId);
    };

    // Submit in order, firing stack events at their scheduled points, with a bounded window.
    const window = new Semaphore(options.concurrency ?? 40);
    const drivers: Promise<void>[] = [];
    let eventIndex = 0;
    let settledCount = 0;
    const progress = setInterval(() => {
      log(
        `chaos: ${drivers.length}/${schedule.checkouts} started, ${settledCount} settled, ${Math.round((Date.now() - startedAt.getTime()) / 1000)} s`,
      );
      collectDeliveries().catch(() => undefined);
    }, 15_000);
    try {
      for (const plan of schedule.orders) {
        for (
          let e = schedule.events[eventIndex];
          e && e.beforeOrder <= plan.index;
          e = schedule.events[++eventIndex]
        ) {
          if (e.kind === 'worker_sigkill') {
            workerPool.killAndRestart(e.worker, e.downMs);
          } else if (e.kind === 'temporal_restart') {
            await restartTemporal();
            injected.add('temporal_restart');
          } else {
            await control.request('POST', 'clock/advance', { seconds: CLOCK_JUMP_SECONDS });
            injected.add('clock_advance_25h');
          }
        }
        if (Date.now() > deadline) break;
        await window.acquire();
        unsettled.add(plan.orderId);
        drivers.push(
          driveOrder(plan)
            .catch((err: unknown) => log(`chaos: driving ${plan.orderId} failed: ${message(err)}`))
            .finally(() => {
              settledCount += 1;
              window.release();
            }),
        );
      }
      await Promise.all(drivers);
    } finally {
      clearInterval(progress);
    }
    for (const plan of schedule.orders.slice(drivers.length)) unsettled.add(plan.orderId);
    await collectDeliveries().catch(() => undefined);
    await harvestRules(readRules).catch(() => undefined);

    // Snapshot: the ledger, the provisioning store and every workflow (describe + status query).
    const ledger = await control.request<ChaosSnapshot['ledger']>('GET', 'ledger');
    const stats = await control.request<{ by_route: Record<string, number> }>('GET', 'stats');
    const reader = new SqliteProvisioner(provisioningPath);
    const entitlements = await reader.list().finally(() => reader.close());
    const workflows: WorkflowSnapshot[] = [];
    const snapshotLimit = Math.max(deadline, Date.now()) + 5 * 60_000;
    const queue = [...schedule.orders];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let plan = queue.shift(); plan; plan = queue.shift()) {
          workflows.push(await snapshotWorkflow(client, plan, lastStatus.get(plan.orderId), snapshotLimit));
        }
      }),
    );
    const snapshot: ChaosSnapshot = {
      orderIds: schedule.orders.map((o) => o.orderId),
      ledger,
      // A refund that leaves nothing paid revokes the entitlement: revoked is not provisioned.
      entitlements: entitlements
        .filter((e) => e.revokedAt === undefined)
        .map((e) => ({
          workflowId: e.workflowId,
          orderId: e.orderId,
          paymentIntentId: e.paymentIntentId,
        })),
      workflows,
      ...(unsettled.size > 0 ? { deadlineExceeded: { deadlineMs, unsettled: [...unsettled] } } : {}),
    };
    const result = checkInvariants(snapshot);

    injected.add('worker_sigkill', workerPool.sigkills);
    injected.add(
      'search_while_lagging',
      Object.entries(stats.by_route)
        .filter(([route]) => route.startsWith('GET /v1/payment_intents/search'))
        .reduce((n, [, count]) => n + count, 0),
    );
    log(`chaos: stripe requests by route ${JSON.stringify(stats.by_route)}`);
    const all = [...deliveries.values()];
    injected.add('webhook_delivered', all.length);
    injected.add('webhook_duplicated', all.filter((d) => d.copy > 1).length);
    injected.add('webhook_reordered_and_delayed', all.length);
    injected.add(
      'webhook_failed_attempt_retried',
      all.reduce((n, d) => n + d.attempts.filter((a) => !a.succeeded).length, 0),
    );

    const planned = plannedCounts(schedule);
    planned['search_while_lagging'] = 0;
    const faults: Record<string, FaultCount> = {};
    for (const kind of [...new Set([...Object.keys(planned), ...Object.keys(injected.counts)])].sort()) {
      faults[kind] = { planned: planned[kind] ?? 0, injected: injected.counts[kind] ?? 0 };
    }
    const report: ChaosReport = {
      variant: options.variant,
      checkouts: options.checkouts,
      seed: options.seed,
      workers: options.workers,
      scheduleHash: hash,
      startedAt: startedAt.toISOString(),
      durationMs: Date.now() - startedAt.getTime(),
      deadlineMs,
      faults,
      cardPlans: cardPlanCounts(schedule),
      finalStates: result.finalStates,
      violationsByKind: countByKind(result.violations),
      violations: result.violations,
      warnings: result.warnings.length,
      warningSamples: result.warnings.slice(0, 20),
      stack: {
        workerStarts: workerPool.starts,
        unexpectedWorkerExits: workerPool.unexpectedExits,
        temporalRestartMs,
        tempDir: options.keepDir ? tempDir : undefined,
      },
      passed: result.violations.length === 0,
    };
    return report;
  } finally {
    await pool?.stopAll().catch(() => undefined);
    for (const close of closers.reverse()) await close().catch(() => undefined);
    if (!options.keepDir) rmSync(tempDir, { recursive: true, force: true });
  }
}

async function isClosed(handle: { describe(): Promise<{ status: { name: string } }> }): Promise<boolean> {
  try {
    return (await handle.describe()).status.name !== 'RUNNING';
  } catch {
    return false;
  }
}

/**
 * What a run still open when the run ends is waiting on, for its `not_final` finding: the pending
 * workflow task and activities (attempt, last failure), the last workflow-task failure in its history
 * and its last events. So a stuck checkout in a CI log says why without a rerun. Best effort.
 */
export async function whyStillOpen(handle: WorkflowHandle): Promise<string> {
  try {
    const { raw } = await handle.describe();
    const parts: string[] = [];
    const task = raw.pendingWorkflowTask;
    if (task) parts.push(`workflow task pending, attempt ${task.attempt ?? '?'}`);
    for (const a of raw.pendingActivities ?? []) {
      const failure = a.lastFailure?.message ? `, last failure: ${a.lastFailure.message.slice(0, 200)}` : '';
      parts.push(`activity ${a.activityType?.name ?? '?'} pending, attempt ${a.attempt ?? '?'}${failure}`);
    }
    const events = (await handle.fetchHistory()).events ?? [];
    const failed = [...events]
      .reverse()
      .find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes;
    if (failed) {
      const cause = temporal.api.enums.v1.WorkflowTaskFailedCause[failed.cause ?? 0];
      parts.push(`last workflow task failure: ${cause} ${(failed.failure?.message ?? '').slice(0, 300)}`);
    }
    const last = events.slice(-6).map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0]);
    parts.push(`${events.length} events, the last: ${last.join(' > ')}`);
    return parts.join('; ');
  } catch (err) {
    return `could not describe it: ${message(err)}`;
  }
}

async function snapshotWorkflow(
  client: Client,
  plan: OrderPlan,
  last: CheckoutStatus | undefined,
  until: number,
): Promise<WorkflowSnapshot> {
  const workflowId = checkoutWorkflowId(plan.orderId);
  const handle = getCheckoutHandle(client, plan.orderId);
  let executionStatus: string;
  try {
    executionStatus = (await persist(() => handle.describe(), until)).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) executionStatus = 'NOT_FOUND';
    else throw err;
  }
  let status = last;
  if (executionStatus !== 'NOT_FOUND') {
    try {
      status = await persist(() => handle.query(statusQuery), Math.min(until, Date.now() + 60_000));
    } catch {
      // A closed run answers queries only through a worker's replay; the driver's last read stands in.
    }
  }
  let state = status?.state;
  const ids = new Set(status?.paymentIntentIds ?? []);
  const diagnosis = executionStatus === 'RUNNING' ? await whyStillOpen(handle) : undefined;
  if (executionStatus === 'COMPLETED') {
    // The run's result is the authority on how it ended, whatever the last status read showed.
    const result = await persist(() => handle.result(), until);
    state = result.outcome;
    if ('paymentIntentId' in result && result.paymentIntentId) ids.add(result.paymentIntentId);
  }
  return {
    orderId: plan.orderId,
    workflowId,
    executionStatus,
    state,
    needsAttentionReason: status?.needsAttention?.reason,
    paymentIntentIds: [...ids],
    amount: plan.amount,
    ...(diagnosis === undefined ? {} : { diagnosis }),
  };
}
