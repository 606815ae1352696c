/** A stand-in for the customer's browser running Stripe.js, for the 3-D Secure handoff tests. */
import assert from 'node:assert/strict';
import type Stripe from 'stripe';

/**
 * What the merchant's page does with the answer: Stripe.js `handleNextAction({ clientSecret })`
 * reads the PaymentIntent with the client secret and runs its `next_action`. The emulator has no
 * publishable keys, so this stand-in reads it with the test's key (and the client secret, which it
 * checks), then does what the customer's browser does with the 3-D Secure page: open it and submit
 * its "Complete authentication" form.
 */
export async function authenticateLikeStripeJs(stripe: Stripe, clientSecret: string): Promise<void> {
  const id = clientSecret.slice(0, clientSecret.indexOf('_secret_'));
  const pi = await stripe.paymentIntents.retrieve(id, { client_secret: clientSecret });
  assert.equal(pi.client_secret, clientSecret);
  assert.equal(pi.status, 'requires_action');
  const next = pi.next_action;
  const pageUrl =
    next?.type === 'redirect_to_url'
      ? next.redirect_to_url?.url
      : (next?.use_stripe_sdk as { stripe_js?: string } | undefined)?.stripe_js;
  assert.ok(typeof pageUrl === 'string', `a 3-D Secure page in ${JSON.stringify(next)}`);
  const page = await fetch(pageUrl);
  assert.equal(page.status, 200);
  const html = await page.text();
  const form =
    /<form method="post" action="([^"]+)"><input type="hidden" name="outcome" value="succeed">/.exec(html);
  assert.ok(form?.[1], 'the page offers to complete authentication');
  const submitted = await fetch(new URL(form[1].replace(/&amp;/g, '&'), pageUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'outcome=succeed',
  });
  assert.equal(submitted.status, 200);
}
