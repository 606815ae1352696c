/**
 * The hosted payment page a Checkout Session's `url` points at, served by the emulator itself as
 * plain HTML forms (no scripts, no external assets), so a browser test and a plain HTTP client drive
 * it the same way:
 *
 *   GET  /checkout/pay/:id               the line items, the amount, a list of test payment methods
 *   POST /checkout/pay/:id               `payment_method=pm_…`: pays; 303 to `success_url` (with
 *                                        `{CHECKOUT_SESSION_ID}` filled in) when paid, 303 to the
 *                                        authenticate page for 3-D Secure, or 402 with the page again
 *                                        and the decline message, so the payer can try another method
 *   GET  /checkout/pay/:id/authenticate  the 3-D Secure challenge: "Complete" and "Fail" buttons
 *   POST /checkout/pay/:id/authenticate  `outcome=complete|fail`
 *   GET  /checkout/pay/:id/complete      the confirmation shown when the session has no `success_url`
 *
 * An expired or already completed session answers 410 with a page that says so; nothing is charged.
 * Elements carry stable `id` and `data-testid` attributes (`payment-method`, `pay-button`,
 * `payment-error`, `authenticate-complete`, `authenticate-fail`, `checkout-expired`, …).
 */
import {
  type CheckoutLineItem,
  type CheckoutPaymentOutcome,
  type CheckoutSessionObject,
  type CheckoutSessions,
} from './checkout-sessions';
import { type RawRequest, type RawResponse, type RawRoute } from './router';

/** A test payment method the page offers. */
interface PageMethod {
  readonly id: string;
  readonly label: string;
  readonly type: 'card' | 'us_bank_account';
}

/** The methods the page lists, in order; bank debits only where the session allows them. */
export const HOSTED_PAGE_METHODS: readonly PageMethod[] = [
  { id: 'pm_card_visa', label: 'Visa 4242: succeeds', type: 'card' },
  { id: 'pm_card_mastercard', label: 'Mastercard 4444: succeeds', type: 'card' },
  { id: 'pm_card_chargeDeclined', label: 'Visa 0002: declined (generic_decline)', type: 'card' },
  {
    id: 'pm_card_chargeDeclinedInsufficientFunds',
    label: 'Visa 9995: declined (insufficient_funds)',
    type: 'card',
  },
  { id: 'pm_card_threeDSecure2Required', label: 'Visa 3220: 3-D Secure required', type: 'card' },
  {
    id: 'pm_usBankAccount_success',
    label: 'US bank account 6789: debit succeeds later',
    type: 'us_bank_account',
  },
  {
    id: 'pm_usBankAccount_accountClosed',
    label: 'US bank account 1113: debit fails later',
    type: 'us_bank_account',
  },
];

const ZERO_DECIMAL_CURRENCIES = new Set([
  'bif',
  'clp',
  'djf',
  'gnf',
  'jpy',
  'kmf',
  'krw',
  'mga',
  'pyg',
  'rwf',
  'ugx',
  'vnd',
  'vuv',
  'xaf',
  'xof',
  'xpf',
]);

const PAGE_HEADERS = {
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  'Content-Security-Policy':
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
};

export function hostedPageRoutes(sessions: CheckoutSessions): RawRoute[] {
  return [
    {
      kind: 'raw',
      method: 'GET',
      pattern: '/checkout/pay/:id',
      handler: (request) => showPayment(sessions, request),
    },
    {
      kind: 'raw',
      method: 'POST',
      pattern: '/checkout/pay/:id',
      handler: (request) => submitPayment(sessions, request),
    },
    {
      kind: 'raw',
      method: 'GET',
      pattern: '/checkout/pay/:id/authenticate',
      handler: (request) => showAuthentication(sessions, request),
    },
    {
      kind: 'raw',
      method: 'POST',
      pattern: '/checkout/pay/:id/authenticate',
      handler: (request) => submitAuthentication(sessions, request),
    },
    {
      kind: 'raw',
      method: 'GET',
      pattern: '/checkout/pay/:id/complete',
      handler: (request) => showComplete(sessions, request),
    },
  ];
}

function showPayment(sessions: CheckoutSessions, request: RawRequest): RawResponse {
  const view = sessions.forPage(sessionId(request));
  if (view === undefined) return notFound();
  if (view.session.status !== 'open') return closedPage(view.session);
  if (view.awaitingAuthentication) return redirect(`${pagePath(view.session.id)}/authenticate`);
  return paymentPage(view.session, view.lineItems, view.lastErrorMessage, 200);
}

async function submitPayment(sessions: CheckoutSessions, request: RawRequest): Promise<RawResponse> {
  const id = sessionId(request);
  const view = sessions.forPage(id);
  if (view === undefined) return notFound();
  const form = new URLSearchParams(request.body.toString('utf8'));
  const paymentMethod = form.get('payment_method') ?? '';
  const allowed = methodsFor(view.session).some((method) => method.id === paymentMethod);
  if (!allowed) {
    if (view.session.status !== 'open') return closedPage(view.session);
    return paymentPage(view.session, view.lineItems, 'Choose one of the listed payment methods.', 400);
  }
  return respondToOutcome(sessions, await sessions.pay(id, paymentMethod));
}

function showAuthentication(sessions: CheckoutSessions, request: RawRequest): RawResponse {
  const view = sessions.forPage(sessionId(request));
  if (view === undefined) return notFound();
  if (view.session.status !== 'open') return closedPage(view.session);
  if (!view.awaitingAuthentication) return redirect(pagePath(view.session.id));
  return authenticationPage(view.session);
}

async function submitAuthentication(sessions: CheckoutSessions, request: RawRequest): Promise<RawResponse> {
  const id = sessionId(request);
  if (sessions.forPage(id) === undefined) return notFound();
  const outcome = new URLSearchParams(request.body.toString('utf8')).get('outcome');
  if (outcome !== 'complete' && outcome !== 'fail') {
    return html(
      400,
      page('Authentication', '<p data-testid="payment-error" id="payment-error">Unknown outcome.</p>'),
    );
  }
  return respondToOutcome(sessions, await sessions.authenticate(id, outcome === 'complete'));
}

function showComplete(sessions: CheckoutSessions, request: RawRequest): RawResponse {
  const view = sessions.forPage(sessionId(request));
  if (view === undefined) return notFound();
  if (view.session.status !== 'complete') return redirect(pagePath(view.session.id));
  return html(
    200,
    page(
      'Payment complete',
      `<h1 data-testid="checkout-complete" id="checkout-complete">Thanks for your payment</h1>
<p>${escapeHtml(formatAmount(view.session.amount_total, view.session.currency))} ${
        view.session.payment_status === 'paid' ? 'paid' : 'submitted; the bank debit settles later'
      }.</p>`,
    ),
  );
}

function respondToOutcome(sessions: CheckoutSessions, outcome: CheckoutPaymentOutcome): RawResponse {
  const { session } = outcome;
  switch (outcome.kind) {
    case 'complete':
      return redirect(successTarget(session));
    case 'requires_action':
      return redirect(`${pagePath(session.id)}/authenticate`);
    case 'declined': {
      const lineItems = sessions.forPage(session.id)?.lineItems ?? [];
      return paymentPage(session, lineItems, outcome.message, 402);
    }
    case 'not_open':
      // A second Pay (a double click) after the first completed leads where the first one did.
      return session.status === 'complete' ? redirect(successTarget(session)) : closedPage(session);
  }
}

function successTarget(session: CheckoutSessionObject): string {
  if (session.success_url === null) return `${pagePath(session.id)}/complete`;
  return session.success_url.split('{CHECKOUT_SESSION_ID}').join(session.id);
}

function methodsFor(session: CheckoutSessionObject): PageMethod[] {
  return HOSTED_PAGE_METHODS.filter((method) => session.payment_method_types.includes(method.type));
}

function paymentPage(
  session: CheckoutSessionObject,
  lineItems: readonly CheckoutLineItem[],
  errorMessage: string | null,
  status: number,
): RawResponse {
  const rows = lineItems
    .map(
      (item, index) => `<tr data-testid="line-item" id="line-item-${index}">
  <td data-testid="line-item-name">${escapeHtml(item.description)}</td>
  <td data-testid="line-item-quantity">${item.quantity}</td>
  <td data-testid="line-item-amount" class="amount">${escapeHtml(formatAmount(item.amount_total, item.currency))}</td>
</tr>`,
    )
    .join('\n');
  const options = methodsFor(session)
    .map(
      (method, index) =>
        `<option value="${escapeHtml(method.id)}"${index === 0 ? ' selected' : ''}>${escapeHtml(method.label)}</option>`,
    )
    .join('\n');
  const error =
    errorMessage === null
      ? ''
      : `<p class="error" role="alert" data-testid="payment-error" id="payment-error">${escapeHtml(errorMessage)}</p>`;
  const cancel =
    session.cancel_url === null
      ? ''
      : `<p><a href="${escapeHtml(session.cancel_url)}" data-testid="cancel-link" id="cancel-link">Back</a></p>`;
  const body = `<h1>Pay</h1>
<table data-testid="line-items" id="line-items">
<thead><tr><th>Item</th><th>Qty</th><th class="amount">Amount</th></tr></thead>
<tbody>
${rows}
</tbody>
<tfoot><tr><th colspan="2">Total</th><th class="amount" data-testid="amount-total" id="amount-total">${escapeHtml(
    formatAmount(session.amount_total, session.currency),
  )}</th></tr></tfoot>
</table>
${error}
<form method="post" action="${escapeHtml(pagePath(session.id))}" data-testid="payment-form" id="payment-form">
<label for="payment-method">Test payment method</label>
<select name="payment_method" id="payment-method" data-testid="payment-method">
${options}
</select>
<button type="submit" id="pay-button" data-testid="pay-button">Pay ${escapeHtml(
    formatAmount(session.amount_total, session.currency),
  )}</button>
</form>
${cancel}
<p class="note" data-session-id="${escapeHtml(session.id)}">Stripe emulator, test mode: no real money moves.</p>`;
  return html(status, page('Pay', body));
}

function authenticationPage(session: CheckoutSessionObject): RawResponse {
  const body = `<h1 data-testid="authenticate-title" id="authenticate-title">3-D Secure authentication</h1>
<p>Your bank asks you to confirm a payment of ${escapeHtml(formatAmount(session.amount_total, session.currency))}.</p>
<form method="post" action="${escapeHtml(pagePath(session.id))}/authenticate" id="authenticate-form">
<button type="submit" name="outcome" value="complete" id="authenticate-complete" data-testid="authenticate-complete">Complete</button>
<button type="submit" name="outcome" value="fail" id="authenticate-fail" data-testid="authenticate-fail">Fail</button>
</form>`;
  return html(200, page('Authenticate', body));
}

function closedPage(session: CheckoutSessionObject): RawResponse {
  const body =
    session.status === 'expired'
      ? `<h1 data-testid="checkout-expired" id="checkout-expired">This checkout session has expired</h1>
<p>No payment was taken. Return to the shop to start again.</p>`
      : `<h1 data-testid="checkout-already-complete" id="checkout-already-complete">This checkout session is already complete</h1>
<p>No further payment is needed.</p>`;
  return html(410, page('Checkout closed', body));
}

function notFound(): RawResponse {
  return html(
    404,
    page(
      'Not found',
      '<h1 data-testid="checkout-not-found" id="checkout-not-found">No such checkout session</h1>',
    ),
  );
}

function redirect(location: string): RawResponse {
  return { status: 303, headers: { Location: location, 'Cache-Control': 'no-store' }, body: '' };
}

function html(status: number, body: string): RawResponse {
  return { status, headers: PAGE_HEADERS, body };
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Stripe emulator checkout</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 32rem; margin: 2rem auto; padding: 0 1rem; color: #1a1f36; }
table { width: 100%; border-collapse: collapse; margin-bottom: 1rem; }
th, td { text-align: left; padding: 0.4rem 0; border-bottom: 1px solid #e3e8ee; }
.amount { text-align: right; }
select, button { font: inherit; padding: 0.5rem; margin: 0.5rem 0; width: 100%; }
button { background: #635bff; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
button[value="fail"] { background: #df1b41; }
.error { color: #df1b41; }
.note { color: #697386; font-size: 0.85rem; }
</style>
</head>
<body>
${body}
</body>
</html>
`;
}

function pagePath(id: string): string {
  return `/checkout/pay/${encodeURIComponent(id)}`;
}

function sessionId(request: RawRequest): string {
  return request.pathParams.id ?? '';
}

export function formatAmount(amount: number, currency: string): string {
  const code = currency.toUpperCase();
  if (ZERO_DECIMAL_CURRENCIES.has(currency.toLowerCase())) return `${amount} ${code}`;
  return `${(amount / 100).toFixed(2)} ${code}`;
}

function escapeHtml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}
