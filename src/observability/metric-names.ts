/**
 * The product's own metric names, in one place for the code that emits them, the tests that scrape
 * them and docs/observability.md. Pure constants: workflow code (`StateMetrics` in
 * src/workflows/common.ts) imports this file into the deterministic workflow bundle.
 *
 * The endpoint shows them as written here: the runtime's `temporal_` prefix goes on the SDK's own
 * metrics only. Counters carry no `_total` suffix (the runtime's Prometheus exporter default).
 */
export const ProductMetric = {
  /** Counter, label `state`: a checkout entered that state (each state change, as its status shows it). */
  stateEntered: 'checkout_state_entered',
  /** Counter: a checkout entered `paid` (counted once per workflow run). */
  chargesSucceeded: 'checkout_charges_succeeded',
  /** Counter: a checkout entered `reconciling` (read Stripe before any write after an unknown outcome). */
  reconciliations: 'checkout_reconciliations',
  /** Counter, label `status`: Stripe answered a refund creation (the createRefund activity completed). */
  refunds: 'checkout_refunds',
  /** Gauge, label `state`: open (running) card and hosted checkouts in that state (visibility). */
  open: 'checkout_open',
  /** Gauge, label `workflow_type`: open checkouts and reconciler cases waiting for an operator. */
  needsAttention: 'checkout_needs_attention',
  /** Gauge, seconds: age of the oldest of those; 0 when there is none. */
  needsAttentionOldestAge: 'checkout_needs_attention_oldest_age_seconds',
  /** Gauge, unix seconds: when the visibility gauges were last refreshed successfully. */
  visibilityRefreshed: 'checkout_visibility_refreshed_timestamp_seconds',
} as const;
