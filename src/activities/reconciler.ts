/**
 * The reconciler's activities: every read and write the `reconcile` workflow makes.
 *
 * - `inspectPaymentIntentPage` lists one page of PaymentIntents created in the window (Stripe's
 *   list, never search: search lags behind writes by up to an hour, a list does not), keeps those
 *   with checkout metadata, reads each one's checkout from Temporal (describe: status and the
 *   `CheckoutState` / `StripePaymentIntentId` it set, no worker needed), the entitlement from the
 *   provisioning store and, only for a succeeded PaymentIntent without a matching entitlement, its
 *   refunds; `classify` (src/reconciler/classify.ts) decides. Only findings cross into history.
 * - `cancelOrphanPaymentIntent` cancels under the key the workflow derives from the PaymentIntent
 *   (`reconcile/<id>/cancel`); a PaymentIntent already past cancel is read and returned as is.
 * - `openReconciliationCase` starts `case-<PaymentIntent id>` with REJECT_DUPLICATE and
 *   USE_EXISTING, so neither a retry nor a second run opens a second case, and a case an operator
 *   resolved is never reopened; the memo `openedBy` tells whether this run opened it.
 * - `recordReconcileRun` adds the run's counts to the worker's metrics.
 *
 * Reads are safe to repeat; Stripe and Temporal errors are left to Temporal's retries, except what
 * the Stripe error table marks as not retryable.
 */
import { Context } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type Stripe from 'stripe';
import type { Provisioner } from '../provisioning';
import {
  checkoutRefOf,
  classify,
  needsProvisioningCheck,
  type CheckoutView,
  type EntitlementView,
} from '../reconciler/classify';
import { toActivityFailure } from '../stripe/errors';
import { isUnexpectedState, snapshotOf } from './payment-intents';
import {
  CheckoutStateAttr,
  NeedsAttentionSinceAttr,
  OrderIdAttr,
  RECONCILER_FINDING_KINDS,
  StripePaymentIntentIdAttr,
  reconciliationCaseWorkflowId,
  reconciliationCaseWorkflowType,
  type PaymentIntentSnapshot,
  type ReconcilerCounts,
  type ReconcilerFinding,
  type ReconciliationCaseInput,
} from '../workflows/definitions';

export interface ReconcilerActivityDependencies {
  readonly stripe: Stripe;
  readonly provisioner: Provisioner;
  /** Needed to read checkouts and open cases; a worker without it fails those activities clearly. */
  readonly temporal?: Client;
}

export interface InspectPageInput {
  /** Stripe's `created[gte]` (unix seconds). */
  readonly createdGte: number;
  /** The last id of the previous page; absent for the first. */
  readonly startingAfter?: string;
  readonly pageSize: number;
  /** The run's reference time; grace is measured from it. */
  readonly nowMs: number;
  readonly orphanGraceMs: number;
}

export interface InspectPageResult {
  readonly scanned: number;
  readonly withCheckoutMetadata: number;
  readonly findings: readonly ReconcilerFinding[];
  /** `starting_after` for the next page; absent after the last page. */
  readonly nextStartingAfter?: string;
}

export interface CancelOrphanInput {
  readonly paymentIntentId: string;
  readonly idempotencyKey: string;
}

export interface OpenCaseInput extends ReconciliationCaseInput {
  readonly taskQueue: string;
}

export interface OpenCaseResult {
  readonly outcome: 'case_opened' | 'case_open' | 'case_resolved';
  readonly caseWorkflowId: string;
}

export interface RecordRunInput {
  readonly scanned: number;
  readonly counts: ReconcilerCounts;
  readonly fixes: ReconcilerCounts;
}

/** Names the observability docs list; emitted through the worker's metric meter. */
export const RECONCILER_METRICS = {
  runs: 'checkout_reconciler_runs_total',
  scanned: 'checkout_reconciler_payment_intents_scanned_total',
  findings: 'checkout_reconciler_findings_total',
  fixes: 'checkout_reconciler_fixes_total',
} as const;

/** Refund statuses that count as money going back (a failed or canceled refund does not). */
const REFUNDING: readonly string[] = ['succeeded', 'pending', 'requires_action'];

export function createReconcilerActivities(deps: ReconcilerActivityDependencies) {
  const { stripe, provisioner } = deps;

  function temporal(): Client {
    if (deps.temporal === undefined) {
      throw ApplicationFailure.create({
        message:
          'This worker has no Temporal client for the reconciler (pass `temporal` in ActivityDependencies)',
        type: 'ReconcilerNotConfigured',
        nonRetryable: true,
      });
    }
    return deps.temporal;
  }

  async function viewCheckout(workflowId: string): Promise<CheckoutView> {
    try {
      const d = await temporal().workflow.getHandle(workflowId).describe();
      if (d.status.name === 'RUNNING') {
        return {
          kind: 'running',
          state: d.typedSearchAttributes.get(CheckoutStateAttr),
          paymentIntentId: d.typedSearchAttributes.get(StripePaymentIntentIdAttr),
        };
      }
      return { kind: 'closed', status: d.status.name };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { kind: 'absent' };
      throw err;
    }
  }

  async function refundedAmount(paymentIntentId: string): Promise<number> {
    let total = 0;
    let startingAfter: string | undefined;
    for (;;) {
      const page = await stripe.refunds.list({
        payment_intent: paymentIntentId,
        limit: 100,
        ...(startingAfter === undefined ? {} : { starting_after: startingAfter }),
      });
      for (const r of page.data) if (REFUNDING.includes(r.status ?? '')) total += r.amount;
      const last = page.data.at(-1);
      if (!page.has_more || last === undefined) return total;
      startingAfter = last.id;
    }
  }

  return {
    /** One page of the window: lists, reads each checkout and entitlement, returns the findings. */
    async inspectPaymentIntentPage(input: InspectPageInput): Promise<InspectPageResult> {
      let page: Stripe.ApiList<Stripe.PaymentIntent>;
      try {
        page = await stripe.paymentIntents.list({
          created: { gte: input.createdGte },
          limit: input.pageSize,
          ...(input.startingAfter === undefined ? {} : { starting_after: input.startingAfter }),
        });
      } catch (err) {
        throw toActivityFailure(err);
      }
      const findings: ReconcilerFinding[] = [];
      const checkouts = new Map<string, CheckoutView>();
      const entitlements = new Map<string, EntitlementView | undefined>();
      let withCheckoutMetadata = 0;
      for (const raw of page.data) {
        const ref = checkoutRefOf(raw.metadata);
        if (ref === undefined) continue;
        withCheckoutMetadata += 1;
        const pi = snapshotOf(raw);
        let checkout = checkouts.get(ref.workflowId);
        if (checkout === undefined) {
          checkout = await viewCheckout(ref.workflowId);
          checkouts.set(ref.workflowId, checkout);
        }
        let entitlement: EntitlementView | undefined;
        let refunded = 0;
        if (needsProvisioningCheck(pi.status, checkout)) {
          if (!entitlements.has(ref.workflowId)) {
            const e = await provisioner.get(ref.workflowId);
            entitlements.set(ref.workflowId, e ? { paymentIntentId: e.paymentIntentId } : undefined);
          }
          entitlement = entitlements.get(ref.workflowId);
          if (entitlement?.paymentIntentId !== pi.id) {
            try {
              refunded = await refundedAmount(pi.id);
            } catch (err) {
              throw toActivityFailure(err);
            }
          }
        }
        const finding = classify(
          {
            paymentIntent: {
              id: pi.id,
              status: pi.status,
              amount: pi.amount,
              currency: pi.currency,
              created: raw.created,
            },
            ref,
            checkout,
            entitlement,
            refunded,
          },
          input.nowMs,
          input.orphanGraceMs,
        );
        if (finding) findings.push(finding);
      }
      const last = page.data.at(-1);
      return {
        scanned: page.data.length,
        withCheckoutMetadata,
        findings,
        ...(page.has_more && last !== undefined ? { nextStartingAfter: last.id } : {}),
      };
    },

    /**
     * Cancels an orphan under the reconciler's key. Canceling an unconfirmed PaymentIntent moves no
     * money; one that moved on meanwhile (confirmed, already canceled) is read and returned.
     */
    async cancelOrphanPaymentIntent(input: CancelOrphanInput): Promise<PaymentIntentSnapshot> {
      try {
        return snapshotOf(
          await stripe.paymentIntents.cancel(
            input.paymentIntentId,
            { cancellation_reason: 'abandoned' },
            { idempotencyKey: input.idempotencyKey },
          ),
        );
      } catch (err) {
        if (!isUnexpectedState(err)) throw toActivityFailure(err);
      }
      try {
        return snapshotOf(await stripe.paymentIntents.retrieve(input.paymentIntentId));
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** Opens the case for a finding an operator must act on, at most once per PaymentIntent. */
    async openReconciliationCase(input: OpenCaseInput): Promise<OpenCaseResult> {
      const client = temporal();
      const { finding, openedAt, openedBy } = input;
      const caseWorkflowId = reconciliationCaseWorkflowId(finding.paymentIntentId);
      const args: [ReconciliationCaseInput] = [{ finding, openedAt, openedBy }];
      try {
        await client.workflow.start(reconciliationCaseWorkflowType, {
          workflowId: caseWorkflowId,
          taskQueue: input.taskQueue,
          args,
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          memo: { openedBy },
          typedSearchAttributes: [
            { key: CheckoutStateAttr, value: 'needs_attention' },
            { key: OrderIdAttr, value: finding.orderId },
            { key: StripePaymentIntentIdAttr, value: finding.paymentIntentId },
            { key: NeedsAttentionSinceAttr, value: new Date(openedAt) },
          ],
          staticSummary: `Reconciliation: ${finding.kind} ${finding.paymentIntentId} (order ${finding.orderId})`,
          staticDetails:
            `${finding.detail}. ${finding.amount} ${finding.currency}, PaymentIntent ` +
            `\`${finding.paymentIntentId}\`, checkout \`${finding.checkoutWorkflowId}\`. Act (refund ` +
            `or provision by hand), then send the \`resolve\` update with actor, reason and outcome.`,
        });
      } catch (err) {
        // REJECT_DUPLICATE: the case existed and an operator closed it. Never reopened.
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
      const d = await client.workflow.getHandle(caseWorkflowId).describe();
      if (d.status.name !== 'RUNNING') return { outcome: 'case_resolved', caseWorkflowId };
      return { outcome: d.memo?.['openedBy'] === openedBy ? 'case_opened' : 'case_open', caseWorkflowId };
    },

    /** Adds one run's counts to the worker's metrics (Prometheus or OTel, as the runtime exports). */
    // Activities must be async; this one only records.
    // eslint-disable-next-line @typescript-eslint/require-await
    async recordReconcileRun(input: RecordRunInput): Promise<void> {
      const meter = Context.current().metricMeter;
      meter.createCounter(RECONCILER_METRICS.runs, 'runs', 'Reconciler runs finished').add(1);
      meter
        .createCounter(RECONCILER_METRICS.scanned, 'payment_intents', 'PaymentIntents the reconciler read')
        .add(input.scanned);
      const findings = meter.createCounter(
        RECONCILER_METRICS.findings,
        'findings',
        'Reconciler findings by kind, counted on every run that finds them',
      );
      const fixes = meter.createCounter(
        RECONCILER_METRICS.fixes,
        'fixes',
        'Reconciler fixes by kind: orphans canceled, cases opened',
      );
      for (const kind of RECONCILER_FINDING_KINDS) {
        findings.add(input.counts[kind], { kind });
        fixes.add(input.fixes[kind], { kind });
      }
    },
  };
}

export type ReconcilerActivities = ReturnType<typeof createReconcilerActivities>;
