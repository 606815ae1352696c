/**
 * A reconciliation case: one open item for an operator, started by the reconciler
 * (`case-<PaymentIntent id>`) when Stripe shows money taken that no checkout accounted for: paid but
 * not provisioned, charged without a checkout, or a second payment for a provisioned checkout.
 *
 * It carries the search attributes operators already use for checkouts (CheckoutState =
 * needs_attention, OrderId, StripePaymentIntentId, NeedsAttentionSince), a static summary and
 * details, the finding in its `status` query and in the UI's current details. It does nothing to
 * Stripe or provisioning itself: refunding or provisioning by hand is an operator's decision. The
 * operator then sends `resolve` (actor, reason, outcome: refunded | provisioned | no_action); the
 * validator refuses a malformed request or a second resolve, the resolution lands in the audit trail,
 * CheckoutState becomes `resolved`, NeedsAttentionSince is cleared, and the workflow ends with the
 * resolution as its result. Started with REJECT_DUPLICATE, a resolved case is never reopened.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  CheckoutStateAttr,
  NeedsAttentionSinceAttr,
  RECONCILER_FINDING_KINDS,
  caseResolveUpdate,
  caseStatusQuery,
  validateCaseResolveRequest,
  type AuditEntry,
  type CaseResolveRequest,
  type CaseState,
  type ReconciliationCaseInput,
  type ReconciliationCaseResult,
  type ReconciliationCaseStatus,
} from './definitions';
import { StateMetrics } from './common';

export async function reconciliationCase(input: ReconciliationCaseInput): Promise<ReconciliationCaseResult> {
  const finding = input?.finding;
  if (
    finding === undefined ||
    !RECONCILER_FINDING_KINDS.includes(finding.kind) ||
    typeof finding.paymentIntentId !== 'string' ||
    typeof input.openedAt !== 'string' ||
    typeof input.openedBy !== 'string'
  ) {
    throw ApplicationFailure.create({
      message:
        'Invalid reconciliation case input: needs finding { kind, paymentIntentId, … }, openedAt, openedBy',
      type: 'InvalidCaseInput',
      nonRetryable: true,
    });
  }
  const caseWorkflowId = workflowInfo().workflowId;
  let state: CaseState = 'needs_attention';
  const metrics = new StateMetrics();
  let resolution: (CaseResolveRequest & { readonly at: string }) | undefined;
  const audit: AuditEntry[] = [
    {
      at: input.openedAt,
      actor: 'reconciler',
      action: `opened:${finding.kind}`,
      reason: `${finding.detail} (run ${input.openedBy})`,
    },
  ];

  const status = (): ReconciliationCaseStatus => ({
    caseWorkflowId,
    state,
    finding,
    openedAt: input.openedAt,
    openedBy: input.openedBy,
    resolution,
    audit: [...audit],
  });

  setHandler(caseStatusQuery, status);
  setHandler(
    caseResolveUpdate,
    (request) => {
      const at = new Date().toISOString();
      resolution = { actor: request.actor, reason: request.reason, outcome: request.outcome, at };
      audit.push({ at, actor: request.actor, action: `resolve:${request.outcome}`, reason: request.reason });
      state = 'resolved';
      metrics.entered('resolved');
      upsertSearchAttributes([
        { key: CheckoutStateAttr, value: 'resolved' },
        { key: NeedsAttentionSinceAttr, value: null },
      ]);
      return status();
    },
    {
      validator: (request) => {
        const valid = validateCaseResolveRequest(request);
        if (!valid.ok) throw new Error(`invalid request: ${valid.problems.join('; ')}`);
        if (state !== 'needs_attention') throw new Error('the case is already resolved');
      },
    },
  );

  setCurrentDetails(
    `**${finding.kind}**: ${finding.detail}. ${finding.amount} ${finding.currency}, ` +
      `PaymentIntent \`${finding.paymentIntentId}\` (${finding.paymentIntentStatus}), order ` +
      `\`${finding.orderId}\`. Waiting for an operator's \`resolve\`.`,
  );
  await condition(() => resolution !== undefined);
  const resolved = resolution;
  if (resolved === undefined) throw new Error('unreachable: resolved without a resolution');
  setCurrentDetails(`Resolved (${resolved.outcome}) by ${resolved.actor}: ${resolved.reason}`);
  await condition(allHandlersFinished);
  return { caseWorkflowId, finding, resolution: resolved };
}
