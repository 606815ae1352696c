/**
 * The product's own metric names, in one place for the code that emits them, the tests that scrape
 * them and docs/observability.md. Pure constants: the workflow interceptor module imports this file
 * into the deterministic workflow bundle.
 *
 * Names are given without the runtime's prefix; the Prometheus endpoint shows them as written here
 * (the runtime is installed with an empty `metricPrefix` for custom metrics; Temporal's own metrics
 * keep their `temporal_` names).
 */
export const ProductMetric = {
  /** Counter, label `state`: a checkout entered that state (each change of `CheckoutState`). */
  stateEntered: 'checkout_state_entered',
  /** Counter: a checkout entered `paid` (counted once per workflow run). */
  chargesSucceeded: 'checkout_charges_succeeded',
  /** Counter: a checkout entered `reconciling` (read Stripe before any write after an unknown outcome). */
  reconciliations: 'checkout_reconciliations',
  /** Counter, label `status`: Stripe answered a refund creation (the createRefund activity completed). */
  refunds: 'checkout_refunds',
  /** Gauge, label `state`: open (running) checkouts in that state, from Temporal visibility. */
  open: 'checkout_open',
  /** Gauge: open checkouts waiting for an operator (`NeedsAttentionSince` set). */
  needsAttention: 'checkout_needs_attention',
  /** Gauge, seconds: age of the oldest open checkout waiting for an operator; 0 when there is none. */
  needsAttentionOldestAge: 'checkout_needs_attention_oldest_age_seconds',
  /** Gauge, unix seconds: when the visibility gauges were last refreshed successfully. */
  visibilityRefreshed: 'checkout_visibility_refreshed_timestamp_seconds',
} as const;
