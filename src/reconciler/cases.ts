/**
 * Operators' side of reconciliation cases: find them through Temporal visibility by the same search
 * attributes as checkouts, read one, and resolve it after acting. The CLI and tests go through here.
 */
import type { Client } from '@temporalio/client';
import {
  CheckoutStateAttr,
  NeedsAttentionSinceAttr,
  OrderIdAttr,
  StripePaymentIntentIdAttr,
  caseResolveUpdate,
  caseStatusQuery,
  reconciliationCaseWorkflowId,
  reconciliationCaseWorkflowType,
  validateCaseResolveRequest,
  type CaseResolveRequest,
  type ReconciliationCaseStatus,
} from '../workflows/definitions';
import type { reconciliationCase } from '../workflows/reconciliation-case';

export class InvalidCaseRequestError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid case request: ${problems.join('; ')}`);
    this.name = 'InvalidCaseRequestError';
  }
}

const PAYMENT_INTENT_ID_RE = /^pi_[A-Za-z0-9_]{1,250}$/;

function caseHandle(client: Client, paymentIntentId: string) {
  if (!PAYMENT_INTENT_ID_RE.test(paymentIntentId)) {
    throw new InvalidCaseRequestError(['paymentIntentId: must be a PaymentIntent id (pi_…)']);
  }
  return client.workflow.getHandle<typeof reconciliationCase>(reconciliationCaseWorkflowId(paymentIntentId));
}

export interface CaseListEntry {
  readonly workflowId: string;
  readonly orderId: string | undefined;
  readonly paymentIntentId: string | undefined;
  readonly state: string | undefined;
  readonly needsAttentionSince: Date | undefined;
  readonly workflowStatus: string;
}

/** The visibility query for cases; `open` keeps those still waiting for an operator. */
export function caseListQuery(open: boolean): string {
  const clauses = [`WorkflowType = '${reconciliationCaseWorkflowType}'`];
  if (open) clauses.push(`${CheckoutStateAttr.name} = 'needs_attention'`);
  return clauses.join(' AND ');
}

/** Cases from visibility (eventually consistent, usually within a second), newest first. */
export async function listReconciliationCases(
  client: Client,
  opts: { readonly open?: boolean; readonly limit?: number } = {},
): Promise<CaseListEntry[]> {
  const limit = opts.limit ?? 100;
  const out: CaseListEntry[] = [];
  for await (const wf of client.workflow.list({
    query: caseListQuery(opts.open ?? true),
    pageSize: Math.min(limit, 1000),
  })) {
    const sa = wf.typedSearchAttributes;
    out.push({
      workflowId: wf.workflowId,
      orderId: sa.get(OrderIdAttr),
      paymentIntentId: sa.get(StripePaymentIntentIdAttr),
      state: sa.get(CheckoutStateAttr),
      needsAttentionSince: sa.get(NeedsAttentionSinceAttr),
      workflowStatus: wf.status.name,
    });
    if (out.length >= limit) break;
  }
  return out;
}

export async function getReconciliationCase(
  client: Client,
  paymentIntentId: string,
): Promise<ReconciliationCaseStatus> {
  return caseHandle(client, paymentIntentId).query(caseStatusQuery);
}

/** Closes a case after the operator acted; refused if malformed or already resolved. */
export async function resolveReconciliationCase(
  client: Client,
  paymentIntentId: string,
  request: CaseResolveRequest,
): Promise<ReconciliationCaseStatus> {
  const v = validateCaseResolveRequest(request);
  if (!v.ok) throw new InvalidCaseRequestError(v.problems);
  return caseHandle(client, paymentIntentId).executeUpdate(caseResolveUpdate, { args: [v.value] });
}
