/**
 * The one place a Stripe client is made. Two choices matter for exactly-once:
 *
 * - `maxNetworkRetries: 0`: the SDK's own retries are invisible to Temporal and would stack under
 *   Temporal's. Only Temporal retries, with the idempotency key the workflow derived, and every
 *   attempt shows in the workflow history. (The SDK still retries once on ECONNRESET/EPIPE; it keeps
 *   our key, so that retry is harmless.)
 * - `timeout` below the Stripe activities' start-to-close timeout, so a slow Stripe surfaces as a
 *   classified connection error inside the activity instead of an activity timeout.
 *
 * The same code talks to real Stripe (no `apiBase`) or to the local emulator (`apiBase` set, or the
 * emulator mode's local port).
 */
import Stripe from 'stripe';
import type { StripeConfig } from '../config';
import { TracedStripeHttpClient, tracingExports } from '../observability/tracing';

export interface StripeClientOptions {
  readonly secretKey: string;
  readonly timeoutMs: number;
  readonly apiBase?:
    { readonly host: string; readonly port: number; readonly protocol: 'http' | 'https' } | undefined;
  /** A client span per request. Default: whether this process exports spans (`tracingExports`). */
  readonly traced?: boolean;
}

/** The API version this SDK release was generated against; pinned so responses never shift shape. */
export const STRIPE_API_VERSION = Stripe.API_VERSION;

export function createStripeClient(options: StripeClientOptions): Stripe {
  return new Stripe(options.secretKey, {
    apiVersion: STRIPE_API_VERSION,
    maxNetworkRetries: 0,
    timeout: options.timeoutMs,
    telemetry: false,
    // A client span per request, under the calling activity's span; without tracing, the SDK's own
    // client (no span bookkeeping on every call).
    ...((options.traced ?? tracingExports()) ? { httpClient: new TracedStripeHttpClient() } : {}),
    ...(options.apiBase
      ? { host: options.apiBase.host, port: options.apiBase.port, protocol: options.apiBase.protocol }
      : {}),
  });
}

/** From validated config: the emulator's local port in emulator mode unless `apiBase` overrides. */
export function stripeClientFromConfig(config: StripeConfig): Stripe {
  const apiBase =
    config.apiBase ??
    (config.mode === 'emulator'
      ? { host: '127.0.0.1', port: config.emulatorPort, protocol: 'http' as const }
      : undefined);
  return createStripeClient({ secretKey: config.secretKey, timeoutMs: config.requestTimeoutMs, apiBase });
}
