/**
 * The reconciler's Temporal Schedule and the ways to run it by hand.
 *
 * `ensureReconcilerSchedule` is what `npm start`'s stack calls at startup and what a production
 * deployment calls once per deploy (or from any worker's startup: it is idempotent): it creates the
 * schedule `checkout-reconciler`, or, when it exists, updates its interval, action and policies to
 * the ones given, keeping whether it is paused. Overlap policy SKIP: a run still going when the
 * next is due makes that one skip, so two runs never overlap on their own (and if an operator
 * overlaps them by hand, the per-PaymentIntent keys and case ids keep the fixes single).
 *
 * `triggerReconcilerNow` asks the schedule for a run now (with SKIP too: if one is already running,
 * that is the run it waits for) and returns its result; `runReconcilerOnce` starts a run without a
 * schedule (a dry run, or a deployment that has none).
 */
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import {
  RECONCILER_SCHEDULE_ID,
  RECONCILE_WORKFLOW_ID_PREFIX,
  reconcileWorkflowType,
  validateReconcileOptions,
  type ReconcileOptions,
  type ReconcileResult,
} from '../workflows/definitions';
import type { reconcile } from '../workflows/reconciler';

export const RECONCILER_INTERVAL_DEFAULT_MS = 15 * 60 * 1000;
const INTERVAL_MIN_MS = 1_000;
const INTERVAL_MAX_MS = 7 * 24 * 60 * 60 * 1000;
/** After an outage, a run missed less than this long ago is still taken (once: SKIP). */
const CATCHUP_WINDOW_MS = 10 * 60 * 1000;

export interface ReconcilerScheduleOptions {
  /** The task queue of the worker that runs `reconcile` (the checkout worker). */
  readonly taskQueue: string;
  /** Default 15 min. */
  readonly intervalMs?: number;
  /** Passed to every run; defaults in src/workflows/reconciler.ts. */
  readonly reconcile?: ReconcileOptions;
  /** Default `checkout-reconciler`. */
  readonly scheduleId?: string;
}

export class InvalidReconcilerOptionsError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid reconciler options: ${problems.join('; ')}`);
    this.name = 'InvalidReconcilerOptionsError';
  }
}

function checked(opts: ReconcilerScheduleOptions): {
  scheduleId: string;
  intervalMs: number;
  reconcile: ReconcileOptions;
} {
  const problems: string[] = [];
  const intervalMs = opts.intervalMs ?? RECONCILER_INTERVAL_DEFAULT_MS;
  if (!Number.isSafeInteger(intervalMs) || intervalMs < INTERVAL_MIN_MS || intervalMs > INTERVAL_MAX_MS) {
    problems.push(`intervalMs: must be an integer from ${INTERVAL_MIN_MS} to ${INTERVAL_MAX_MS}`);
  }
  if (typeof opts.taskQueue !== 'string' || opts.taskQueue.length === 0) {
    problems.push('taskQueue: must be a non-empty string');
  }
  const v = validateReconcileOptions(opts.reconcile);
  if (!v.ok) problems.push(...v.problems);
  if (problems.length > 0 || !v.ok) throw new InvalidReconcilerOptionsError(problems);
  return { scheduleId: opts.scheduleId ?? RECONCILER_SCHEDULE_ID, intervalMs, reconcile: v.value };
}

function action(
  taskQueue: string,
  options: ReconcileOptions,
): ScheduleOptionsStartWorkflowAction<typeof reconcile> {
  return {
    type: 'startWorkflow',
    workflowType: reconcileWorkflowType,
    // The server appends the scheduled time: `reconcile-2026-11-27T22:15:00Z`.
    workflowId: RECONCILE_WORKFLOW_ID_PREFIX,
    taskQueue,
    args: [{ options }],
    staticSummary: 'Reconcile Stripe PaymentIntents with checkouts',
    staticDetails:
      'Cancels orphaned unconfirmed PaymentIntents and opens a `reconciliationCase` for money taken ' +
      'that no checkout provisioned. See docs/reconciler.md.',
  };
}

export interface EnsuredSchedule {
  readonly scheduleId: string;
  /** False when it existed and was updated. */
  readonly created: boolean;
}

/** Creates the reconciler's schedule, or brings an existing one to these options. Idempotent. */
export async function ensureReconcilerSchedule(
  client: Client,
  opts: ReconcilerScheduleOptions,
): Promise<EnsuredSchedule> {
  const { scheduleId, intervalMs, reconcile: options } = checked(opts);
  const spec = { intervals: [{ every: intervalMs }] };
  const policies = {
    overlap: ScheduleOverlapPolicy.SKIP,
    catchupWindow: CATCHUP_WINDOW_MS,
    pauseOnFailure: false,
  };
  try {
    await client.schedule.create({
      scheduleId,
      spec,
      action: action(opts.taskQueue, options),
      policies,
      state: { note: 'Created by ensureReconcilerSchedule (src/reconciler/schedule.ts)' },
    });
    return { scheduleId, created: true };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update((previous) => ({
    spec,
    action: action(opts.taskQueue, options),
    policies,
    state: { paused: previous.state.paused, ...(previous.state.note ? { note: previous.state.note } : {}) },
  }));
  return { scheduleId, created: false };
}

export interface ReconcileRun {
  readonly workflowId: string;
  readonly firstExecutionRunId: string;
  /** Temporal's execution status (RUNNING, COMPLETED, FAILED, …). */
  readonly status: string;
  /** Present once the run completed. */
  readonly result: ReconcileResult | undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Triggers the schedule now and waits for that run's result (or the run already in progress). */
export async function triggerReconcilerNow(
  client: Client,
  opts: { readonly scheduleId?: string; readonly timeoutMs?: number } = {},
): Promise<ReconcileRun> {
  const handle = client.schedule.getHandle(opts.scheduleId ?? RECONCILER_SCHEDULE_ID);
  const deadline = Date.now() + (opts.timeoutMs ?? 10 * 60 * 1000);
  const before = await handle.describe();
  const seen = new Set(before.info.recentActions.map((a) => a.action.workflow.firstExecutionRunId));
  await handle.trigger(ScheduleOverlapPolicy.SKIP);
  let target: { workflowId: string; firstExecutionRunId: string } | undefined;
  while (target === undefined) {
    const now: ScheduleDescription = await handle.describe();
    target =
      now.info.recentActions.map((a) => a.action.workflow).find((w) => !seen.has(w.firstExecutionRunId)) ??
      (now.info.numActionsSkippedOverlap > before.info.numActionsSkippedOverlap
        ? now.info.runningActions[0]?.workflow
        : undefined);
    if (target !== undefined) break;
    if (Date.now() > deadline) throw new Error('The reconciler schedule did not start a run in time');
    await sleep(200);
  }
  return waitForRun(client, target.workflowId, target.firstExecutionRunId);
}

async function waitForRun(
  client: Client,
  workflowId: string,
  firstExecutionRunId: string,
): Promise<ReconcileRun> {
  const handle = client.workflow.getHandle<typeof reconcile>(workflowId, undefined, { firstExecutionRunId });
  const result = await handle.result();
  return { workflowId, firstExecutionRunId, status: 'COMPLETED', result };
}

/** The schedule's most recent run: its status and, once it completed, its findings. */
export async function latestReconcileRun(
  client: Client,
  scheduleId: string = RECONCILER_SCHEDULE_ID,
): Promise<ReconcileRun | undefined> {
  const d = await client.schedule.getHandle(scheduleId).describe();
  const last = d.info.recentActions.at(-1)?.action.workflow;
  if (last === undefined) return undefined;
  const handle = client.workflow.getHandle<typeof reconcile>(last.workflowId, undefined, {
    firstExecutionRunId: last.firstExecutionRunId,
  });
  const status = (await handle.describe()).status.name;
  const result = status === 'COMPLETED' ? await handle.result() : undefined;
  return { ...last, status, result };
}

/** Whether the schedule exists (a deployment may run without one). */
export async function reconcilerScheduleExists(
  client: Client,
  scheduleId: string = RECONCILER_SCHEDULE_ID,
): Promise<boolean> {
  try {
    await client.schedule.getHandle(scheduleId).describe();
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}

/** One run outside the schedule (e.g. a dry run), waited for. Its id says when it was asked for. */
export async function runReconcilerOnce(
  client: Client,
  opts: { readonly taskQueue: string; readonly options?: ReconcileOptions },
): Promise<ReconcileRun> {
  const v = validateReconcileOptions(opts.options);
  if (!v.ok) throw new InvalidReconcilerOptionsError(v.problems);
  const workflowId = `${RECONCILE_WORKFLOW_ID_PREFIX}-manual-${new Date().toISOString()}`;
  const handle = await client.workflow.start<typeof reconcile>(reconcileWorkflowType, {
    workflowId,
    taskQueue: opts.taskQueue,
    args: [{ options: v.value }],
    staticSummary: `Reconcile by hand${v.value.dryRun ? ' (dry run)' : ''}`,
  });
  return waitForRun(client, workflowId, handle.firstExecutionRunId);
}
