/**
 * A workflow interceptor bundled with the checkout workflow (see `WORKFLOW_INTERCEPTOR_MODULES`,
 * next to the OpenTelemetry ones from `@temporalio/interceptors-opentelemetry`): it counts state
 * changes.
 *
 * The counter watches the commands each activation concludes with: every change of the checkout's
 * state is an `upsertWorkflowSearchAttributes` command carrying `CheckoutState` (the workflow upserts
 * it exactly when the state changes). Nothing in the workflow code knows about metrics, and the
 * command sequence is untouched, so recorded histories replay as before.
 *
 * Replay-safe: the workflow metric meter drops values while the workflow is replaying, so a worker
 * that rebuilds a checkout from history (cache eviction, another worker taking over) does not count
 * its past again. One over-count remains possible: a workflow task whose completion never reached the
 * server (the worker died mid-task) is run again by the next worker, and both runs count.
 *
 * Deterministic: it only reads commands and calls the workflow metric meter (a sink).
 */
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { metricMeter, type WorkflowInterceptors } from '@temporalio/workflow';
import { CHECKOUT_STATES, CheckoutStateAttr, type CheckoutState } from '../workflows/definitions';
import { ProductMetric } from './metric-names';

function stateOf(payload: Payload | null | undefined): CheckoutState | undefined {
  if (payload === null || payload === undefined) return undefined;
  let value: unknown;
  try {
    value = defaultPayloadConverter.fromPayload(payload);
  } catch {
    return undefined;
  }
  // Keyword search attributes may arrive as a one-element list.
  const v = Array.isArray(value) ? (value as unknown[])[0] : value;
  return CHECKOUT_STATES.find((s) => s === v);
}

export const interceptors = (): WorkflowInterceptors => {
  const stateEntered = metricMeter.createCounter(
    ProductMetric.stateEntered,
    '1',
    'Checkouts that entered a state, by state',
  );
  const chargesSucceeded = metricMeter.createCounter(
    ProductMetric.chargesSucceeded,
    '1',
    'Checkouts whose payment Stripe shows succeeded (entered paid)',
  );
  const reconciliations = metricMeter.createCounter(
    ProductMetric.reconciliations,
    '1',
    'Times a checkout read Stripe before any write (entered reconciling)',
  );
  let paidCounted = false;
  return {
    internals: [
      {
        concludeActivation(input, next) {
          for (const command of input.commands) {
            const fields = command.upsertWorkflowSearchAttributes?.searchAttributes?.indexedFields;
            const state = stateOf(fields?.[CheckoutStateAttr.name]);
            if (state === undefined) continue;
            stateEntered.add(1, { state });
            if (state === 'reconciling') reconciliations.add(1);
            if (state === 'paid' && !paidCounted) {
              // Set during replay too, so a rebuilt checkout never counts its charge a second time.
              paidCounted = true;
              chargesSucceeded.add(1);
            }
          }
          return next(input);
        },
      },
    ],
  };
};
