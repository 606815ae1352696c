/**
 * The invariant checker: a pure function from snapshots (the local Stripe server's ledger, the
 * provisioning store, the workflows) to violations and warnings, so it can be tested on hand-made
 * snapshots and trusted on real ones.
 *
 * Invariants, per order:
 * - at most one successful charge across all of its PaymentIntents (`double_charge`), each for the
 *   order's amount (`wrong_amount`);
 * - provisioned if and only if paid and not refunded (`provisioned_unpaid`, `paid_unprovisioned`),
 *   and provisioned against the PaymentIntent that was charged (`provisioned_wrong_payment`);
 * - the checkout finished (workflow closed in a terminal state) or waits in `needs_attention` with a
 *   reason; anything else is `not_final` (stuck), a failed/terminated run is `workflow_failed`, no
 *   workflow at all is `missing_workflow`;
 * - every PaymentIntent is known to its checkout: an unknown one that charged is `charged_orphan`,
 *   an unknown one that never charged is only a warning (`orphan_uncharged`: a lost create answer
 *   can leave one, and it moves no money).
 * A run that hit its overall deadline adds `deadline_exceeded`.
 */
import type { CheckoutState } from '../workflows/definitions';

export interface LedgerPaymentIntentSnapshot {
  readonly id: string;
  readonly status: string;
  readonly amount: number;
  readonly currency: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly successful_charges: number;
  readonly amount_refunded: number;
}

export interface LedgerSnapshot {
  readonly payment_intents: readonly LedgerPaymentIntentSnapshot[];
}

export interface EntitlementSnapshot {
  readonly workflowId: string;
  readonly orderId: string;
  readonly paymentIntentId: string;
}

export interface WorkflowSnapshot {
  readonly orderId: string;
  readonly workflowId: string;
  /** Temporal's execution status (`RUNNING`, `COMPLETED`, `FAILED`, ...); `NOT_FOUND` when absent. */
  readonly executionStatus: string;
  /** The checkout's own state from its status query; undefined when it could not be read. */
  readonly state: CheckoutState | undefined;
  readonly needsAttentionReason: string | undefined;
  readonly paymentIntentIds: readonly string[];
  readonly amount: number;
  /** For a run still open at the end: what it waits on (pending task and activities, last events). */
  readonly diagnosis?: string;
}

export interface ChaosSnapshot {
  /** Every order the run submitted. */
  readonly orderIds: readonly string[];
  readonly ledger: LedgerSnapshot;
  readonly entitlements: readonly EntitlementSnapshot[];
  readonly workflows: readonly WorkflowSnapshot[];
  /** Set when the run's overall deadline passed before every checkout settled. */
  readonly deadlineExceeded?: { readonly deadlineMs: number; readonly unsettled: readonly string[] };
}

export const VIOLATION_KINDS = [
  'double_charge',
  'wrong_amount',
  'provisioned_unpaid',
  'paid_unprovisioned',
  'provisioned_wrong_payment',
  'not_final',
  'workflow_failed',
  'missing_workflow',
  'charged_orphan',
  'deadline_exceeded',
] as const;
export type ViolationKind = (typeof VIOLATION_KINDS)[number];
export type WarningKind = 'orphan_uncharged';

export interface Finding<K extends string> {
  readonly kind: K;
  readonly orderId: string | undefined;
  readonly detail: string;
}

export interface CheckResult {
  readonly violations: readonly Finding<ViolationKind>[];
  readonly warnings: readonly Finding<WarningKind>[];
  /** Checkouts by final state: `completed`, `declined`, ..., `needs_attention:<reason>`, `stuck:<state>`. */
  readonly finalStates: Readonly<Record<string, number>>;
}

const FINISHED: readonly string[] = ['completed', 'declined', 'expired', 'canceled'];

/** Classifies one workflow's end state for the report and the `not_final` check. */
export function finalStateOf(w: WorkflowSnapshot | undefined): string {
  if (!w || w.executionStatus === 'NOT_FOUND') return 'missing';
  if (w.executionStatus === 'COMPLETED')
    return w.state && FINISHED.includes(w.state) ? w.state : 'completed_run';
  if (w.executionStatus !== 'RUNNING') return `run_${w.executionStatus.toLowerCase()}`;
  if (w.state === 'needs_attention') return `needs_attention:${w.needsAttentionReason ?? 'no_reason'}`;
  return `stuck:${w.state ?? 'unreadable'}`;
}

export function checkInvariants(snapshot: ChaosSnapshot): CheckResult {
  const violations: Finding<ViolationKind>[] = [];
  const warnings: Finding<WarningKind>[] = [];
  const finalStates: Record<string, number> = {};

  const workflowByOrder = new Map(snapshot.workflows.map((w) => [w.orderId, w]));
  const entitlementByOrder = new Map(snapshot.entitlements.map((e) => [e.orderId, e]));
  const pisByOrder = new Map<string, LedgerPaymentIntentSnapshot[]>();
  const known = new Set(snapshot.workflows.flatMap((w) => w.paymentIntentIds));
  const submitted = new Set(snapshot.orderIds);

  for (const pi of snapshot.ledger.payment_intents) {
    const orderId = pi.metadata['order_id'];
    if (orderId !== undefined) pisByOrder.set(orderId, [...(pisByOrder.get(orderId) ?? []), pi]);
    if (!known.has(pi.id)) {
      const where = orderId === undefined ? 'no order' : `order ${orderId}`;
      if (pi.successful_charges > 0) {
        violations.push({
          kind: 'charged_orphan',
          orderId,
          detail: `${pi.id} (${where}) charged ${pi.successful_charges}x but no checkout knows it`,
        });
      } else {
        warnings.push({
          kind: 'orphan_uncharged',
          orderId,
          detail: `${pi.id} (${where}, ${pi.status}) is known to no checkout; it never charged`,
        });
      }
    }
  }

  const orders = [...new Set([...snapshot.orderIds, ...pisByOrder.keys(), ...entitlementByOrder.keys()])];
  for (const orderId of orders) {
    const w = workflowByOrder.get(orderId);
    const pis = pisByOrder.get(orderId) ?? [];
    const entitlement = entitlementByOrder.get(orderId);

    const charges = pis.reduce((n, p) => n + p.successful_charges, 0);
    if (charges > 1) {
      violations.push({
        kind: 'double_charge',
        orderId,
        detail: `${charges} successful charges: ${pis
          .filter((p) => p.successful_charges > 0)
          .map((p) => `${p.id} x${p.successful_charges}`)
          .join(', ')}`,
      });
    }
    const charged = pis.filter((p) => p.successful_charges > 0);
    if (w) {
      for (const p of charged) {
        if (p.amount !== w.amount) {
          violations.push({
            kind: 'wrong_amount',
            orderId,
            detail: `${p.id} charged ${p.amount}, the order is for ${w.amount}`,
          });
        }
      }
    }
    const paidPis = charged.filter((p) => p.amount_refunded < p.amount);
    const paid = paidPis.length > 0;
    if (entitlement && !paid) {
      violations.push({
        kind: 'provisioned_unpaid',
        orderId,
        detail: `entitlement for ${entitlement.paymentIntentId} but no unrefunded successful charge`,
      });
    }
    if (paid && !entitlement) {
      violations.push({
        kind: 'paid_unprovisioned',
        orderId,
        detail: `${paidPis.map((p) => p.id).join(', ')} charged but nothing provisioned`,
      });
    }
    if (entitlement && paid && !paidPis.some((p) => p.id === entitlement.paymentIntentId)) {
      violations.push({
        kind: 'provisioned_wrong_payment',
        orderId,
        detail: `provisioned against ${entitlement.paymentIntentId}, charged ${paidPis.map((p) => p.id).join(', ')}`,
      });
    }

    if (!submitted.has(orderId)) continue;
    const final = finalStateOf(w);
    finalStates[final] = (finalStates[final] ?? 0) + 1;
    if (final === 'missing') {
      violations.push({ kind: 'missing_workflow', orderId, detail: 'no workflow for a submitted order' });
    } else if (final.startsWith('run_') || final === 'completed_run') {
      violations.push({ kind: 'workflow_failed', orderId, detail: `workflow ended ${final}` });
    } else if (final.startsWith('stuck:') || final === 'needs_attention:no_reason') {
      violations.push({
        kind: 'not_final',
        orderId,
        detail:
          `still ${final.replace('stuck:', '')} when the run ended (neither finished nor needs-attention with a reason)` +
          (w?.diagnosis === undefined ? '' : `; ${w.diagnosis}`),
      });
    }
  }

  if (snapshot.deadlineExceeded) {
    violations.push({
      kind: 'deadline_exceeded',
      orderId: undefined,
      detail: `overall deadline of ${Math.round(snapshot.deadlineExceeded.deadlineMs / 1000)} s passed with ${snapshot.deadlineExceeded.unsettled.length} checkout(s) unsettled: ${snapshot.deadlineExceeded.unsettled.slice(0, 10).join(', ')}`,
    });
  }
  return { violations, warnings, finalStates };
}

/** Violations counted by kind, every kind present (zeros included) so reports line up. */
export function countByKind(findings: readonly Finding<ViolationKind>[]): Record<ViolationKind, number> {
  const counts = Object.fromEntries(VIOLATION_KINDS.map((k) => [k, 0])) as Record<ViolationKind, number>;
  for (const f of findings) counts[f.kind] += 1;
  return counts;
}
