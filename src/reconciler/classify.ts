/**
 * The reconciler's decision for one PaymentIntent, as a pure function of what was read: the
 * PaymentIntent (from Stripe's list), its checkout (from Temporal), the entitlement (from the
 * provisioning store) and its refunds. The activity does the reading; this decides, so every rule
 * is testable without a server and written down in one place (docs/reconciler.md has the table).
 *
 * Running checkouts own their PaymentIntents: a PaymentIntent a running checkout follows is never
 * touched, a succeeded one is never turned into a case (the checkout provisions it or parks itself),
 * and a running checkout that follows no PaymentIntent yet, or is about to adopt what it created
 * (validating, reconciling, creating), keeps every PaymentIntent.
 */
import {
  PROCESSING,
  checkoutWorkflowId,
  type PaymentIntentStatus,
  type ReconcilerFinding,
  type ReconcilerFindingKind,
} from '../workflows/definitions';

/** The checkout metadata every checkout sets on its PaymentIntents. */
export interface CheckoutRef {
  readonly orderId: string;
  readonly workflowId: string;
}

const ORDER_ID_RE = /^[A-Za-z0-9_-]{1,200}$/;

/**
 * The checkout a PaymentIntent belongs to, from its metadata; undefined when it carries none or
 * carries values no checkout could have set (not ours to judge).
 */
export function checkoutRefOf(metadata: Readonly<Record<string, string>>): CheckoutRef | undefined {
  const orderId = metadata['order_id'];
  const workflowId = metadata['checkout_workflow_id'];
  if (orderId === undefined || workflowId === undefined) return undefined;
  if (!ORDER_ID_RE.test(orderId) || workflowId !== checkoutWorkflowId(orderId)) return undefined;
  return { orderId, workflowId };
}

export type CheckoutView =
  | { readonly kind: 'absent' }
  | {
      readonly kind: 'running';
      /** `CheckoutState` as the checkout last set it; undefined if it set none. */
      readonly state: string | undefined;
      /** `StripePaymentIntentId`: the PaymentIntent the checkout follows now. */
      readonly paymentIntentId: string | undefined;
    }
  /** Closed in any way: completed, failed, canceled, terminated, timed out. */
  | { readonly kind: 'closed'; readonly status: string };

export interface EntitlementView {
  readonly paymentIntentId: string;
}

export interface Observation {
  readonly paymentIntent: {
    readonly id: string;
    readonly status: PaymentIntentStatus;
    readonly amount: number;
    readonly currency: string;
    /** Unix seconds, Stripe's `created`. */
    readonly created: number;
  };
  readonly ref: CheckoutRef;
  readonly checkout: CheckoutView;
  /** Undefined when nothing was provisioned for the checkout. */
  readonly entitlement: EntitlementView | undefined;
  /** Minor units refunded (succeeded and pending refunds); read only when it matters. */
  readonly refunded: number;
}

const UNCONFIRMED: readonly PaymentIntentStatus[] = ['requires_payment_method', 'requires_confirmation'];
/**
 * `CheckoutState` values in which a running checkout may still adopt a PaymentIntent it cannot see
 * yet: `processing` (where a checkout does not index its PaymentIntent), and the working states runs
 * from before that index wrote.
 */
const ADOPTING_STATES: readonly string[] = [PROCESSING, 'validating', 'reconciling', 'creating_payment'];

/** What must be read before a succeeded PaymentIntent can be judged. */
export function needsProvisioningCheck(status: PaymentIntentStatus, checkout: CheckoutView): boolean {
  return status === 'succeeded' && checkout.kind !== 'running';
}

/** Whether an unconfirmed PaymentIntent is old enough to be judged at all. */
export function pastGrace(createdUnix: number, nowMs: number, graceMs: number): boolean {
  return nowMs - createdUnix * 1000 >= graceMs;
}

function describeCheckout(c: CheckoutView): string {
  switch (c.kind) {
    case 'absent':
      return 'absent';
    case 'running':
      return `running (${c.state ?? 'no state'})`;
    case 'closed':
      return c.status.toLowerCase();
  }
}

/** The finding for one PaymentIntent, or undefined when all is as it should be. */
export function classify(
  obs: Observation,
  nowMs: number,
  orphanGraceMs: number,
): ReconcilerFinding | undefined {
  const { paymentIntent: pi, checkout } = obs;
  const finding = (kind: ReconcilerFindingKind, detail: string): ReconcilerFinding => ({
    kind,
    paymentIntentId: pi.id,
    paymentIntentStatus: pi.status,
    orderId: obs.ref.orderId,
    checkoutWorkflowId: obs.ref.workflowId,
    amount: pi.amount,
    currency: pi.currency,
    createdAt: new Date(pi.created * 1000).toISOString(),
    checkout: describeCheckout(checkout),
    refunded: obs.refunded,
    detail,
  });

  if (UNCONFIRMED.includes(pi.status)) {
    if (!pastGrace(pi.created, nowMs, orphanGraceMs)) return undefined;
    switch (checkout.kind) {
      case 'absent':
        return finding('orphan', `unconfirmed and no checkout ${obs.ref.workflowId} exists`);
      case 'closed':
        return finding(
          'orphan',
          `unconfirmed and checkout ${obs.ref.workflowId} is ${describeCheckout(checkout)}`,
        );
      case 'running':
        // Only a checkout that demonstrably follows another PaymentIntent has let this one go. One
        // that follows none may not know its PaymentIntent yet (a hosted checkout's open Checkout
        // Session pays a PaymentIntent the workflow learns of only at completion; a card checkout
        // whose create answer was lost is still looking for it).
        if (checkout.paymentIntentId === undefined || checkout.paymentIntentId === pi.id) return undefined;
        if (checkout.state === undefined || ADOPTING_STATES.includes(checkout.state)) return undefined;
        return finding(
          'orphan',
          `unconfirmed; running checkout ${obs.ref.workflowId} follows ${checkout.paymentIntentId}`,
        );
    }
  }

  if (pi.status !== 'succeeded' || checkout.kind === 'running') return undefined;
  if (obs.refunded >= pi.amount) return undefined;
  const refundNote = obs.refunded > 0 ? ` (${obs.refunded} of ${pi.amount} refunded)` : '';
  if (obs.entitlement !== undefined) {
    if (obs.entitlement.paymentIntentId === pi.id) return undefined;
    return finding(
      'duplicate_payment',
      `succeeded, but checkout ${obs.ref.workflowId} provisioned ${obs.entitlement.paymentIntentId}${refundNote}`,
    );
  }
  if (checkout.kind === 'absent') {
    return finding(
      'charged_without_checkout',
      `succeeded, no checkout ${obs.ref.workflowId} exists and nothing was provisioned${refundNote}`,
    );
  }
  return finding(
    'paid_not_provisioned',
    `succeeded, checkout ${obs.ref.workflowId} is ${describeCheckout(checkout)} and nothing was provisioned${refundNote}`,
  );
}
