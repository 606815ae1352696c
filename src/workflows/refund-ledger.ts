/**
 * Refunds of one paid order, as a workflow makes them: the open checkout (through
 * provisioning-flow.ts) and, once the checkout completed, the order's refunds workflow (refunds.ts).
 *
 * - One refund at a time, so "at most what is left" is checked against a settled amount.
 * - Key `<workflow id>/refund/r<n>`, n counting refund requests (never attempts): an activity retry
 *   after a lost response resends the same key and Stripe replays the refund.
 * - A refund that fails, or whose outcome is unclear (a stored 500, a budget spent), is settled by
 *   listing the PaymentIntent's refunds in Stripe (`GET /v1/refunds`, current, unlike search):
 *   the request's own refund is found by its `refund_request` metadata, and any other refund made
 *   outside (the dashboard) is adopted so the amount left stays true. Never refunded again under a
 *   new key to find out.
 * - Every refund is recorded in the provisioning store (once per refund id); the one that leaves
 *   nothing revokes the entitlement.
 * - A refund that failed with Stripe's list showing it not made fails the request (`RefundFailed`),
 *   its message saying what to do: a request id keeps answering with that failure (Temporal answers
 *   its update id from the run's record), so a new attempt needs a new id;
 *   the failed one consumed its key `r<n>`, never used again. When the list failed too, the outcome
 *   is unknown and the message says to check Stripe first.
 * - A request with a caller's request id (its digest, `RefundRequested`) is remembered with its
 *   refund: `byRequest` answers a repeat with that refund instead of refunding again. The digest
 *   and terms go into the refund's Stripe metadata (`refund_request_digest`,
 *   `refund_request_amount`), so a later run, which learns refunds from Stripe's list, remembers
 *   them too; entries carry them through continue-as-new.
 */
import { ApplicationFailure, condition, log, proxyActivities } from '@temporalio/workflow';
import type { CheckoutActivities } from '../activities';
import {
  REFUND_REQUEST_CONFLICT,
  refundRequestConflict,
  type RefundUpdateRequest,
  refundCounts,
  refundIdempotencyKey,
  refundRequestNumber,
  refundRequestedOf,
  type Entitlement,
  type ListedRefund,
  type RefundEntry,
  type RefundRequested,
} from './definitions';
import { ACTIVITY_RETRY as RETRY, HOUR, READ_SCHEDULE_TO_CLOSE_MS, errorMessage } from './common';

/** A refund key is used for one request; its retries stay well inside Stripe's 24 h key life. */
const REFUND_KEY_BUDGET_MS = 20 * HOUR;

export interface RefundTarget {
  /** The workflow making the refunds: its id prefixes the keys. */
  readonly keyWorkflowId: string;
  /** The checkout that took the payment: metadata, and the entitlement's id in the store. */
  readonly checkoutWorkflowId: string;
  readonly orderId: string;
  readonly paymentIntentId: string;
  readonly amount: number;
  readonly currency: string;
}

export type AuditRecorder = (actor: string, action: string, reason: string) => void;

export class RefundLedger {
  private readonly entries: RefundEntry[] = [];
  private readonly known = new Set<string>();
  /** Request digest -> the refund made for it. */
  private readonly requests = new Map<string, RefundEntry>();
  private refundedTotal = 0;
  private next: number;
  private busy = false;
  /** A handler holds the turn (see `turn`). */
  private claimed = false;
  /** The entitlement as the store last reported it after a refund. */
  entitlement: Entitlement | undefined;

  constructor(
    readonly target: RefundTarget,
    private readonly record: AuditRecorder,
    private readonly stripeCallTimeoutMs: number,
    carried?: { readonly refunds: readonly RefundEntry[]; readonly nextRequest: number },
  ) {
    this.next = carried?.nextRequest ?? 1;
    for (const r of carried?.refunds ?? []) {
      this.entries.push(r);
      this.known.add(r.refundId);
      this.refundedTotal += r.amount;
      if (r.requested) this.requests.set(r.requested.digest, r);
    }
  }

  /** The refund already made for this request digest, if any. */
  byRequest(digest: string | undefined): RefundEntry | undefined {
    return digest === undefined ? undefined : this.requests.get(digest);
  }

  /** The refund already made for this request id (same terms), or throws the conflict. */
  earlierRefundFor(request: RefundUpdateRequest): RefundEntry | undefined {
    const earlier = this.byRequest(request.requestDigest);
    if (!earlier) return undefined;
    const conflict = refundRequestConflict(earlier, request);
    if (conflict !== undefined) {
      throw ApplicationFailure.create({
        message: conflict,
        type: REFUND_REQUEST_CONFLICT,
        nonRetryable: true,
      });
    }
    return earlier;
  }

  get refunded(): number {
    return this.refundedTotal;
  }

  get remaining(): number {
    return Math.max(0, this.target.amount - this.refundedTotal);
  }

  get full(): boolean {
    return this.refundedTotal >= this.target.amount;
  }

  /** A refund is being made, or a handler holds the turn to make one. */
  get inFlight(): boolean {
    return this.busy || this.claimed;
  }

  /**
   * Waits for this handler's turn and holds it until `release` is called. The predicate claims the
   * turn as it passes: the SDK resolves every true condition in one pass, so a plain
   * `condition(() => !inFlight)` would let two waiting handlers through together.
   */
  async turn(): Promise<() => void> {
    await condition(() => {
      if (this.busy || this.claimed) return false;
      this.claimed = true;
      return true;
    });
    return () => {
      this.claimed = false;
    };
  }

  get nextRequest(): number {
    return this.next;
  }

  get refunds(): readonly RefundEntry[] {
    return [...this.entries];
  }

  /**
   * Learns from Stripe what was already refunded, and moves the request counter past every
   * `refund_request` number seen, so this workflow never reuses a key an earlier run used.
   */
  async learnFromStripe(): Promise<void> {
    const listed = await this.list();
    for (const r of listed) {
      const n = refundRequestNumber(r.metadata);
      if (n !== undefined && n >= this.next) this.next = n + 1;
    }
    for (const r of listed) {
      if (this.known.has(r.id) || !refundCounts(r.status)) continue;
      await this.adopt(r, {
        actor: 'stripe',
        reason: `already refunded (${r.metadata.refund_request ?? 'made outside this checkout'})`,
        at: new Date(r.created * 1000).toISOString(),
        requested: refundRequestedOf(r.metadata),
      });
    }
  }

  /**
   * Refunds `amount` now under the next request number, for `requested` (the caller's request id
   * and terms) when given. Throws (non-retryable) if it failed.
   */
  async refund(
    actor: string,
    reason: string,
    amount: number,
    requested?: RefundRequested,
  ): Promise<RefundEntry> {
    const t = this.target;
    this.busy = true;
    const n = this.next;
    this.next += 1;
    const idempotencyKey = refundIdempotencyKey(t.keyWorkflowId, n);
    try {
      let made: { id: string; amount: number } | undefined;
      try {
        made = await proxyActivities<CheckoutActivities>({
          startToCloseTimeout: this.stripeCallTimeoutMs,
          scheduleToCloseTimeout: REFUND_KEY_BUDGET_MS,
          retry: RETRY,
          summary: `Refund ${amount} ${t.currency} (request r${n})`,
        }).createRefund({
          idempotencyKey,
          params: {
            payment_intent: t.paymentIntentId,
            amount,
            metadata: {
              order_id: t.orderId,
              checkout_workflow_id: t.checkoutWorkflowId,
              refund_request: `r${n}`,
              // Only with a request id, so requests without one send exactly what they always did.
              ...(requested === undefined
                ? {}
                : {
                    refund_request_digest: requested.digest,
                    refund_request_amount: requested.amount === null ? 'rest' : String(requested.amount),
                  }),
            },
          },
        });
      } catch (err) {
        this.record(actor, 'refund_failed', `r${n}: ${errorMessage(err)}`);
        const back = await this.readBack(n);
        made = back.mine;
        if (!made) {
          throw ApplicationFailure.create({
            message: `refund failed: ${errorMessage(err)}; ${this.whatNow(back.listed, requested !== undefined)}`,
            type: 'RefundFailed',
            nonRetryable: true,
          });
        }
      }
      return await this.adopt(made, {
        actor,
        reason,
        idempotencyKey,
        at: new Date().toISOString(),
        requested,
      });
    } finally {
      this.busy = false;
    }
  }

  /** Records the full refund in the store again (idempotent): revokes whatever was granted since. */
  async revokeAgain(): Promise<void> {
    const full = [...this.entries].reverse().find((r) => r.full);
    if (!full) return;
    this.entitlement =
      (await this.store().recordRefund({
        workflowId: this.target.checkoutWorkflowId,
        refundId: full.refundId,
        amount: full.amount,
        full: true,
      })) ?? this.entitlement;
  }

  /**
   * What the caller of a failed refund should do. Temporal keeps an update's outcome by its id (and
   * update-with-start finds it in a run that just closed), and a request id's update id derives from
   * it, so that id keeps answering with this failure: trying again takes a new request id. Safe only
   * when Stripe's list showed the refund not made; otherwise it says to look first.
   */
  private whatNow(listed: boolean, withRequestId: boolean): string {
    if (!listed) {
      return (
        "whether Stripe made it is unknown (listing its refunds failed too): check the payment's refunds " +
        `in Stripe (metadata checkout_workflow_id ${this.target.checkoutWorkflowId}) before asking again`
      );
    }
    return withRequestId
      ? `nothing was refunded; to try again, send the refund with a new request id (this one keeps getting this answer from ${this.target.keyWorkflowId})`
      : 'nothing was refunded; sending the refund again is a new request';
  }

  /** After a failed refund: adopts what Stripe lists that this ledger does not know yet. */
  private async readBack(
    n: number,
  ): Promise<{ listed: boolean; mine: { id: string; amount: number } | undefined }> {
    let listed: readonly ListedRefund[];
    try {
      listed = await this.list();
    } catch (err) {
      log.warn('listing refunds failed', { error: errorMessage(err) });
      return { listed: false, mine: undefined };
    }
    let mine: ListedRefund | undefined;
    for (const r of listed) {
      if (this.known.has(r.id) || !refundCounts(r.status)) continue;
      if (
        r.metadata.refund_request === `r${n}` &&
        r.metadata.checkout_workflow_id === this.target.checkoutWorkflowId
      ) {
        // Request numbers only grow across the checkout and its refunds workflow, so r<n> is ours.
        mine ??= r;
        continue;
      }
      await this.adopt(r, {
        actor: 'stripe',
        reason: `found in Stripe (${r.metadata.refund_request ?? 'made outside this checkout'})`,
        at: new Date(r.created * 1000).toISOString(),
        requested: refundRequestedOf(r.metadata),
      });
    }
    return { listed: true, mine };
  }

  private async list(): Promise<readonly ListedRefund[]> {
    const res = await proxyActivities<CheckoutActivities>({
      startToCloseTimeout: this.stripeCallTimeoutMs,
      scheduleToCloseTimeout: READ_SCHEDULE_TO_CLOSE_MS,
      retry: RETRY,
      summary: `List the refunds of ${this.target.paymentIntentId}`,
    }).listRefunds({ paymentIntentId: this.target.paymentIntentId });
    return res.refunds;
  }

  private async adopt(
    made: { id: string; amount: number },
    who: {
      actor: string;
      reason: string;
      at: string;
      idempotencyKey?: string;
      requested?: RefundRequested | undefined;
    },
  ): Promise<RefundEntry> {
    const t = this.target;
    this.known.add(made.id);
    this.refundedTotal += made.amount;
    const full = this.full;
    const entry: RefundEntry = {
      refundId: made.id,
      amount: made.amount,
      ...(who.idempotencyKey === undefined ? {} : { idempotencyKey: who.idempotencyKey }),
      actor: who.actor,
      reason: who.reason,
      at: who.at,
      full,
      ...(who.requested === undefined ? {} : { requested: who.requested }),
    };
    this.entries.push(entry);
    if (who.requested) this.requests.set(who.requested.digest, entry);
    this.record(
      who.actor,
      'refund',
      `${who.reason} (${made.amount} ${t.currency}, ${made.id}; ` +
        `${full ? 'nothing left: entitlement revoked' : `${this.remaining} left`})`,
    );
    const after = await this.store().recordRefund({
      workflowId: t.checkoutWorkflowId,
      refundId: made.id,
      amount: made.amount,
      full,
    });
    if (after) this.entitlement = after;
    return entry;
  }

  private store(): CheckoutActivities {
    return proxyActivities<CheckoutActivities>({
      startToCloseTimeout: this.stripeCallTimeoutMs,
      // Recording is idempotent per refund id and must happen: retried without limit.
      retry: RETRY,
      summary: 'Record the refund in the provisioning store',
    });
  }
}
