/**
 * Every route the emulator serves, in one list. A capability that adds endpoints (Checkout
 * Sessions, webhook endpoints, the hosted payment page) adds one line here.
 */
import { apiRoutes } from './api-routes';
import { controlRoutes } from './control';
import { type Route } from './router';
import { type EmulatorState } from './state';
import { installWebhooksAndCheckout } from './webhooks-and-checkout';

export function emulatorRoutes(state: EmulatorState): Route[] {
  return [...apiRoutes(state), ...controlRoutes(state), ...installWebhooksAndCheckout(state).routes];
}
