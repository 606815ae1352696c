/**
 * Verifying and routing Stripe webhook deliveries.
 *
 * Stripe signs the exact bytes it sends (`Stripe-Signature: t=<unix>,v1=<HMAC-SHA256>`), so the
 * signature is checked on the raw body before anything parses it; a body re-serialized from parsed
 * JSON would not verify. During a secret rotation Stripe signs with both the old and the new secret,
 * and an operator may deploy the new secret before or after Stripe switches, so a delivery is accepted
 * when any configured secret verifies it. The timestamp tolerance stays at the library's 300 s: a
 * captured delivery replayed later is rejected as stale.
 *
 * Routing: the checkout workflow writes its own id into `metadata.checkout_workflow_id` of every
 * object it creates at Stripe (and `client_reference_id` of a Checkout Session), so an event names
 * the workflow it belongs to without any lookup. Events that name no checkout are acknowledged and
 * dropped: Stripe would otherwise retry them for days.
 */
import Stripe from 'stripe';

/** What the intake hands to the workflow: enough to dedupe (`eventId`) and to re-read the object. */
export interface RoutedStripeEvent {
  readonly workflowId: string;
  readonly eventId: string;
  readonly type: string;
  readonly objectId: string;
}

export type WebhookVerification =
  { readonly ok: true; readonly event: Stripe.Event } | { readonly ok: false; readonly reason: string };

/** Stripe's default and recommended tolerance; never 0 (that disables the replay check). */
export const WEBHOOK_TOLERANCE_SECONDS = 300;

/**
 * Verifies `rawBody` against each secret in turn. Returns the event for the first secret that
 * verifies it, or the reason the last one failed (all secrets see the same timestamp, so a stale
 * delivery reports staleness whichever secret is last).
 */
export function verifyStripeWebhook(
  rawBody: Buffer,
  signatureHeader: string | undefined,
  secrets: readonly string[],
): WebhookVerification {
  if (secrets.length === 0) return { ok: false, reason: 'no webhook signing secret is configured' };
  if (signatureHeader === undefined || signatureHeader.length === 0) {
    return { ok: false, reason: 'missing Stripe-Signature header' };
  }
  let reason = 'signature did not verify';
  for (const secret of secrets) {
    try {
      const event = Stripe.webhooks.constructEvent(
        rawBody,
        signatureHeader,
        secret,
        WEBHOOK_TOLERANCE_SECONDS,
      );
      return { ok: true, event };
    } catch (err) {
      reason = err instanceof Error ? err.message : String(err);
    }
  }
  return { ok: false, reason };
}

/** The checkout workflow an event belongs to, or undefined when it names none. */
export function routeStripeEvent(event: Stripe.Event): RoutedStripeEvent | undefined {
  const object: unknown = event.data.object;
  if (object === null || typeof object !== 'object') return undefined;
  const fields = object as { id?: unknown; metadata?: unknown; client_reference_id?: unknown };
  const metadata =
    fields.metadata !== null && typeof fields.metadata === 'object'
      ? (fields.metadata as Record<string, unknown>)
      : {};
  const fromMetadata = metadata.checkout_workflow_id;
  const workflowId =
    typeof fromMetadata === 'string' && fromMetadata.length > 0
      ? fromMetadata
      : typeof fields.client_reference_id === 'string' && fields.client_reference_id.length > 0
        ? fields.client_reference_id
        : undefined;
  if (workflowId === undefined || typeof fields.id !== 'string') return undefined;
  return { workflowId, eventId: event.id, type: event.type, objectId: fields.id };
}
