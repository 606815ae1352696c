/** The workflows this project's workers run; the bundler starts here. */
export { checkout } from './checkout';
export { hostedCheckout } from './hosted-checkout';
export { reconcile } from './reconciler';
export { reconciliationCase } from './reconciliation-case';
export { checkoutRefunds } from './refunds';
