/**
 * Plugs webhook delivery, Checkout Sessions and the hosted page into one emulator instance: builds
 * them on the instance's clock, event log and PaymentIntents, returns their routes for the server's
 * route list, and registers reset and stop hooks so `reset()` forgets sessions and webhook endpoints
 * and `stop()` ends every delivery timer, request in flight and expiry sweep.
 */
import { CheckoutSessions } from './checkout-sessions';
import { paymentIntentsCheckoutGateway } from './checkout-payment-gateway';
import { hostedPageRoutes } from './hosted-page';
import { type Route } from './router';
import { type EmulatorState } from './state';
import { WebhookDispatcher, type WebhookDispatcherOptions, webhookControlRoutes } from './webhooks';

export interface WebhooksAndCheckoutOptions {
  readonly webhooks?: WebhookDispatcherOptions;
  /** How often open sessions are checked against `expires_at`. Default 1000 ms. */
  readonly checkoutExpirySweepMs?: number;
}

export interface WebhooksAndCheckout {
  readonly webhooks: WebhookDispatcher;
  readonly checkoutSessions: CheckoutSessions;
  readonly routes: readonly Route[];
}

const installed = new WeakMap<EmulatorState, WebhooksAndCheckout>();

/** The webhook dispatcher and Checkout Sessions of an emulator instance, for in-process tests. */
export function webhooksAndCheckoutOf(state: EmulatorState): WebhooksAndCheckout {
  const found = installed.get(state);
  if (found === undefined)
    throw new Error('installWebhooksAndCheckout was not called for this emulator state.');
  return found;
}

export function installWebhooksAndCheckout(
  state: EmulatorState,
  options: WebhooksAndCheckoutOptions = {},
): WebhooksAndCheckout {
  const webhooks = new WebhookDispatcher(state.events, options.webhooks);
  const checkoutSessions = new CheckoutSessions({
    clock: state.clock,
    events: state.events,
    payments: paymentIntentsCheckoutGateway(state.paymentIntents, state.customers),
    baseUrl: () => state.baseUrl,
    ...(options.checkoutExpirySweepMs === undefined ? {} : { expirySweepMs: options.checkoutExpirySweepMs }),
  });
  state.onClockAdvance(() => checkoutSessions.expireDue());
  state.onReset(() => {
    checkoutSessions.clear();
    webhooks.clear();
  });
  state.onStop(() => {
    checkoutSessions.stop();
    webhooks.stop();
  });
  const result: WebhooksAndCheckout = {
    webhooks,
    checkoutSessions,
    routes: [
      ...checkoutSessions.routes(),
      ...hostedPageRoutes(checkoutSessions),
      ...webhookControlRoutes(webhooks),
    ],
  };
  installed.set(state, result);
  return result;
}
