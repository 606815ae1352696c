/**
 * Connects Checkout Sessions to the emulator's own PaymentIntents, in process: the hosted page's
 * payments go through exactly the code `POST /v1/payment_intents` runs, so they emit the same
 * events and land in the same ledger. A decline, which the PaymentIntents API raises as a 402, is
 * turned back into the PaymentIntent (now `requires_payment_method`) with its message, because for
 * the page a decline is an answer to show, not an error.
 *
 * Events these payments cause carry `request: { id: null, idempotency_key: null }`: they come from
 * the payer's browser, not from an API request of the integration.
 */
import { type CheckoutPaymentGateway, type CheckoutPaymentIntent } from './checkout-sessions';
import { type Customers } from './customers';
import { StripeApiError } from './errors';
import { NO_REQUEST } from './events';
import { type PaymentIntentObject, type PaymentIntents } from './payment-intents';
import { type FormParams } from './router';

export function paymentIntentsCheckoutGateway(
  paymentIntents: PaymentIntents,
  customers: Customers,
): CheckoutPaymentGateway {
  return {
    asyncPaymentMethodTypes: ['us_bank_account'],
    createAndConfirm(params) {
      const form: FormParams = {
        amount: String(params.amount),
        currency: params.currency,
        confirm: 'true',
        payment_method: params.paymentMethod,
        payment_method_types: [...params.paymentMethodTypes],
        metadata: { ...params.metadata },
      };
      if (params.customer !== null) form.customer = params.customer;
      if (params.receiptEmail !== null) form.receipt_email = params.receiptEmail;
      if (params.description !== null) form.description = params.description;
      return attempt(paymentIntents, () => paymentIntents.create(form, NO_REQUEST));
    },
    confirm(id, paymentMethod) {
      return attempt(paymentIntents, () =>
        paymentIntents.confirm(id, { payment_method: paymentMethod }, NO_REQUEST),
      );
    },
    authenticate(id, succeed) {
      return view(paymentIntents.authenticate(id, succeed ? 'succeed' : 'fail'));
    },
    cancel(id) {
      const status = paymentIntents.retrieve(id).status;
      if (
        status === 'requires_payment_method' ||
        status === 'requires_action' ||
        status === 'requires_confirmation'
      ) {
        paymentIntents.cancel(id, { cancellation_reason: 'abandoned' }, NO_REQUEST);
      }
    },
    customerExists(id) {
      return customers.has(id);
    },
  };
}

function attempt(paymentIntents: PaymentIntents, run: () => PaymentIntentObject): CheckoutPaymentIntent {
  try {
    return view(run());
  } catch (error) {
    const declined =
      error instanceof StripeApiError && error.status === 402 ? error.body.payment_intent?.id : undefined;
    if (typeof declined !== 'string') throw error;
    return view(paymentIntents.retrieve(declined));
  }
}

function view(pi: PaymentIntentObject): CheckoutPaymentIntent {
  return { id: pi.id, status: pi.status, lastErrorMessage: pi.last_payment_error?.message ?? null };
}
