/**
 * The operator's reset for one known SDK defect, as the chaos harness applies it.
 *
 * The SDK's core can replay an update accepted in a workflow task that followed a timed-out one in
 * a different order than it ran (temporalio/sdk-rust#943, #1146; docs/chaos.md, "The three stuck
 * checkouts"). The run's workflow task then fails on every attempt, with one of two signatures, and
 * the checkout stops moving though it charged at most once. The runbook (docs/checkout.md, "A
 * checkout whose workflow task keeps failing") is a reset to the first workflow task: the reset run
 * reads Stripe before any write. The harness plays that operator, for these two signatures only: any
 * other workflow-task failure (our own nondeterminism, a bug in the workflow) is left failing, and
 * the checker reports the checkout as `not_final`. A checkout stuck on our own nondeterminism is not
 * waited for (`stuckOnOtherNondeterminism`): the run ends, and fails, without sitting out its deadline.
 */
import { temporal } from '@temporalio/proto';
import type { WorkflowHandle } from '@temporalio/client';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

const {
  WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE,
  WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR,
} = temporal.api.enums.v1.WorkflowTaskFailedCause;

/** What the two failures say (the SDK core's nondeterminism error, the server's refusal). */
const SIGNATURES: readonly RegExp[] = [
  /Update machine does not handle this event/,
  /BadUpdateWorkflowExecutionMessage/,
];

/** A workflow task that has failed this many attempts in a row is stuck, not unlucky. */
export const STUCK_TASK_ATTEMPTS = 3;

type WorkflowTaskFailed = NonNullable<HistoryEvent['workflowTaskFailedEventAttributes']>;

/** The history's last workflow task, if it failed; `undefined` when it completed (or none failed). */
function lastTaskFailure(events: readonly HistoryEvent[]): WorkflowTaskFailed | undefined {
  for (let i = events.length - 1; i >= 0; i -= 1) {
    const e = events[i];
    if (e?.workflowTaskCompletedEventAttributes) return undefined;
    if (e?.workflowTaskFailedEventAttributes) return e.workflowTaskFailedEventAttributes;
  }
  return undefined;
}

/**
 * The failure message of the history's last workflow task, when that task failed with one of the
 * defect's signatures; `undefined` when the last task completed, or failed in any other way.
 */
export function sdkUpdateReplayDefect(events: readonly HistoryEvent[]): string | undefined {
  const failed = lastTaskFailure(events);
  if (!failed) return undefined;
  const text = failed.failure?.message ?? '';
  const byCause = failed.cause === WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE;
  return byCause || SIGNATURES.some((s) => s.test(text))
    ? text || 'BadUpdateWorkflowExecutionMessage'
    : undefined;
}

/** Our own nondeterminism (or anything core reports as such): no retry of the task will pass it. */
const NONDETERMINISM = /\[TMPRL1100\]|Nondeterminism/;

/**
 * The failure message of the history's last workflow task when that task failed with a
 * nondeterminism error that is not the SDK defect's (our own: a workflow change, or code that
 * decides differently on replay); `undefined` when the last task completed, failed another way, or
 * failed with the defect's signature (which the reset above is for).
 */
export function otherNondeterminism(events: readonly HistoryEvent[]): string | undefined {
  const failed = lastTaskFailure(events);
  if (!failed || sdkUpdateReplayDefect(events) !== undefined) return undefined;
  const text = failed.failure?.message ?? '';
  const byCause = failed.cause === WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR;
  return byCause || NONDETERMINISM.test(text) ? text || 'nondeterminism' : undefined;
}

/** A running workflow whose current workflow task has failed `STUCK_TASK_ATTEMPTS` times in a row. */
export interface StuckTask {
  readonly runId: string;
  readonly events: readonly HistoryEvent[];
}

/** The handle's workflow and its history when it is stuck (`StuckTask`); `undefined` otherwise. */
export async function stuckTask(handle: WorkflowHandle): Promise<StuckTask | undefined> {
  const description = await handle.describe();
  if (description.status.name !== 'RUNNING') return undefined;
  if ((description.raw.pendingWorkflowTask?.attempt ?? 0) < STUCK_TASK_ATTEMPTS) return undefined;
  return { runId: description.runId, events: (await handle.fetchHistory()).events ?? [] };
}

/**
 * The failure a running workflow is stuck on when it is `otherNondeterminism`. No worker will move
 * it, so the chaos harness stops waiting for it (the checker reports it `not_final`, with why)
 * instead of waiting out the run's deadline. `undefined` otherwise.
 */
export async function stuckOnOtherNondeterminism(handle: WorkflowHandle): Promise<string | undefined> {
  const stuck = await stuckTask(handle);
  return stuck && otherNondeterminism(stuck.events);
}

/** The event a reset to the first workflow task goes back to (as `--type FirstWorkflowTask` does). */
export function firstWorkflowTaskCompleted(
  events: readonly HistoryEvent[],
): NonNullable<HistoryEvent['eventId']> | undefined {
  return events.find((x) => x.workflowTaskCompletedEventAttributes)?.eventId ?? undefined;
}

export interface DefectReset {
  readonly failure: string;
  readonly oldRunId: string;
  readonly newRunId: string;
}

/**
 * Resets the handle's workflow to its first workflow task when its current workflow task has
 * failed `STUCK_TASK_ATTEMPTS` times in a row with the defect's signature; otherwise does nothing
 * and returns `undefined`. `requestId` makes a repeated call one reset.
 */
export async function resetIfStuckOnSdkDefect(
  handle: WorkflowHandle,
  reason: string,
  requestId: string,
): Promise<DefectReset | undefined> {
  const stuck = await stuckTask(handle);
  return stuck && resetOnSdkDefect(handle, stuck, reason, requestId);
}

/** `resetIfStuckOnSdkDefect` for a workflow already known to be stuck. */
export async function resetOnSdkDefect(
  handle: WorkflowHandle,
  stuck: StuckTask,
  reason: string,
  requestId: string,
): Promise<DefectReset | undefined> {
  const failure = sdkUpdateReplayDefect(stuck.events);
  const first = firstWorkflowTaskCompleted(stuck.events);
  if (failure === undefined || first === undefined) return undefined;
  const reset = await handle.client.workflowService.resetWorkflowExecution({
    namespace: handle.client.options.namespace,
    workflowExecution: { workflowId: handle.workflowId, runId: stuck.runId },
    reason,
    workflowTaskFinishEventId: first,
    requestId,
  });
  return { failure, oldRunId: stuck.runId, newRunId: reset.runId ?? '' };
}
