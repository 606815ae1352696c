/**
 * The workflow interceptor module bundled with every workflow (see `WORKFLOW_INTERCEPTOR_MODULES`):
 * OpenTelemetry's workflow interceptors for the runs that are traced, nothing for the rest.
 *
 * Why per run, and why decided this way:
 * - They are not free. The SDK evaluates a workflow's modules once per workflow, and
 *   OpenTelemetry's (API, core, semantic conventions) took a checkout from 12.7 to 19.5 ms of workflow
 *   CPU in the replay measurement in docs/benchmarks.md, for spans nobody exported.
 * - They must not come and go within a run. They add no commands, but they add awaits around every
 *   handler, so with them a run's update handlers finish in another order than without them: a
 *   recorded history with updates (provisioning-kept-refunded-in-part-retried) fails to replay
 *   without them. So a worker's tracing setting cannot decide; the run's start must.
 *
 * A run is traced when its start says so, which every replay of it sees alike: a checkout started by
 * `startCheckout`/`startHostedCheckout` in a process that exports spans carries `traced: true` in
 * its memo. Every run not started with `CheckoutState=processing` is traced as all runs were before
 * this module existed: earlier checkouts, refunds, the reconciler and its cases (rare, and their
 * histories were recorded with the interceptors). The interceptors module is required lazily, so an
 * untraced run never evaluates it.
 *
 * The SDK builds a workflow's interceptors before it has decoded the run's memo and search
 * attributes, so each interceptor here decides at its first call (every handler, the workflow
 * function and every command come after the run's initialization) and then forwards: to
 * OpenTelemetry's interceptor, returning its very promise (no await of its own, so a traced run
 * keeps the timing it had with OpenTelemetry's interceptors registered directly), or straight to
 * `next`, as if nothing were registered.
 *
 * Workflow code: deterministic, reads only the run's start (memo and search attributes).
 */
import type {
  WorkflowInboundCallsInterceptor,
  WorkflowInterceptors,
  WorkflowInternalsInterceptor,
  WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';
import { workflowInfo } from '@temporalio/workflow';
import { CheckoutStateAttr, PROCESSING, TRACED_MEMO } from '../workflows/definitions';

/** Whether a run is traced, from its start: the memo flag, or any start other than `processing`. */
export function runIsTraced(
  memo: Record<string, unknown> | undefined,
  startState: string | undefined,
): boolean {
  return memo?.[TRACED_MEMO] === true || startState !== PROCESSING;
}

type Otel = Required<Pick<WorkflowInterceptors, 'inbound' | 'outbound' | 'internals'>>;

export const interceptors = (): WorkflowInterceptors => {
  /** Undefined until decided; null once decided untraced. */
  let otel: Otel | null | undefined;
  const decide = (): Otel | null | undefined => {
    if (otel !== undefined) return otel;
    const info = workflowInfo();
    // Before the run's initialization the memo is not decoded yet: do not decide.
    if (info.memo === undefined) return undefined;
    if (!runIsTraced(info.memo, info.typedSearchAttributes.get(CheckoutStateAttr))) {
      otel = null;
      return otel;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors') as {
      interceptors: () => Otel;
    };
    otel = mod.interceptors();
    return otel;
  };
  const inbound = (): WorkflowInboundCallsInterceptor | undefined => decide()?.inbound[0];
  const outbound = (): WorkflowOutboundCallsInterceptor | undefined => decide()?.outbound[0];

  const lazyInbound: WorkflowInboundCallsInterceptor = {
    execute: (input, next) => inbound()?.execute?.(input, next) ?? next(input),
    handleSignal: (input, next) => inbound()?.handleSignal?.(input, next) ?? next(input),
    handleUpdate: (input, next) => inbound()?.handleUpdate?.(input, next) ?? next(input),
    validateUpdate: (input, next) => {
      const i = inbound();
      return i?.validateUpdate ? i.validateUpdate(input, next) : next(input);
    },
    handleQuery: (input, next) => inbound()?.handleQuery?.(input, next) ?? next(input),
  };
  const lazyOutbound: WorkflowOutboundCallsInterceptor = {
    scheduleActivity: (input, next) => outbound()?.scheduleActivity?.(input, next) ?? next(input),
    scheduleLocalActivity: (input, next) => outbound()?.scheduleLocalActivity?.(input, next) ?? next(input),
    startNexusOperation: (input, next) => outbound()?.startNexusOperation?.(input, next) ?? next(input),
    startChildWorkflowExecution: (input, next) =>
      outbound()?.startChildWorkflowExecution?.(input, next) ?? next(input),
    continueAsNew: (input, next) => outbound()?.continueAsNew?.(input, next) ?? next(input),
    signalWorkflow: (input, next) => outbound()?.signalWorkflow?.(input, next) ?? next(input),
    getLogAttributes: (input, next) => {
      const o = outbound();
      return o?.getLogAttributes ? o.getLogAttributes(input, next) : next(input);
    },
    getMetricTags: (input, next) => {
      const o = outbound();
      return o?.getMetricTags ? o.getMetricTags(input, next) : next(input);
    },
  };
  const lazyInternals: WorkflowInternalsInterceptor = {
    dispose: (input, next) => {
      // Only a run that evaluated OpenTelemetry's module has its context manager to disable.
      const i = otel ? otel.internals[0] : undefined;
      if (i?.dispose) return i.dispose(input, next);
      return next(input);
    },
  };
  return { inbound: [lazyInbound], outbound: [lazyOutbound], internals: [lazyInternals] };
};
