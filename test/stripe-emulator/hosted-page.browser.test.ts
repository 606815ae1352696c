import assert from 'node:assert/strict';
import http from 'node:http';
import { type AddressInfo } from 'node:net';
import { type Browser } from 'playwright-core';
import Stripe from 'stripe';
import { type StripeEmulator, startStripeEmulator } from '../../src/stripe-emulator';
import { launchChromium, requireChromium } from '../support/browser';

describe('hosted checkout page in a real browser', function () {
  this.timeout(60_000);
  let emulator: StripeEmulator;
  let stripe: Stripe;
  let browser: Browser;
  let shop: http.Server;
  let shopUrl: string;

  before(async () => {
    requireChromium();
    emulator = await startStripeEmulator({ quiet: true });
    stripe = new Stripe('sk_test_browser', {
      host: emulator.host,
      port: emulator.port,
      protocol: 'http',
      maxNetworkRetries: 0,
    });
    // The shop's own pages: where success_url and cancel_url lead.
    shop = http.createServer((request, response) => {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      response.end(`<!doctype html><title>Shop</title><h1 id="shop-page">${request.url ?? ''}</h1>`);
    });
    await new Promise<void>((resolve) => shop.listen(0, '127.0.0.1', resolve));
    shopUrl = `http://127.0.0.1:${(shop.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    if (shop) {
      shop.closeAllConnections();
      await new Promise((resolve) => shop.close(resolve));
    }
    await emulator?.stop();
  });

  async function createSession(): Promise<Stripe.Checkout.Session> {
    return stripe.checkout.sessions.create({
      mode: 'payment',
      line_items: [
        {
          price_data: { currency: 'eur', unit_amount: 2450, product_data: { name: 'Pour-over kettle' } },
          quantity: 1,
        },
      ],
      success_url: `${shopUrl}/done?session_id={CHECKOUT_SESSION_ID}`,
      cancel_url: `${shopUrl}/cart`,
      metadata: { order_id: 'order_browser' },
    });
  }

  it('pays with the success card and lands on success_url with the session id', async () => {
    const session = await createSession();
    const page = await browser.newPage();
    try {
      await page.goto(session.url ?? '');
      assert.equal(await page.getByTestId('line-item-name').textContent(), 'Pour-over kettle');
      assert.equal(await page.getByTestId('amount-total').textContent(), '24.50 EUR');
      await page.getByTestId('payment-method').selectOption('pm_card_visa');
      await Promise.all([page.waitForURL(`${shopUrl}/done?**`), page.getByTestId('pay-button').click()]);
      assert.equal(page.url(), `${shopUrl}/done?session_id=${session.id}`);
      assert.equal(await page.locator('#shop-page').textContent(), `/done?session_id=${session.id}`);
    } finally {
      await page.close();
    }
    const paid = await stripe.checkout.sessions.retrieve(session.id);
    assert.equal(paid.status, 'complete');
    assert.equal(paid.payment_status, 'paid');
    const charged = emulator.control.ledger().payment_intents.filter((pi) => pi.id === paid.payment_intent);
    assert.deepEqual(
      charged.map((pi) => pi.successful_charges),
      [1],
    );
  });

  it('shows a decline, then pays with another card after 3-D Secure', async () => {
    const session = await createSession();
    const page = await browser.newPage();
    try {
      await page.goto(session.url ?? '');
      await page.getByTestId('payment-method').selectOption('pm_card_chargeDeclined');
      await page.getByTestId('pay-button').click();
      assert.equal(await page.getByTestId('payment-error').textContent(), 'Your card was declined.');
      await page.getByTestId('payment-method').selectOption('pm_card_threeDSecure2Required');
      await page.getByTestId('pay-button').click();
      await page.getByTestId('authenticate-complete').waitFor();
      await Promise.all([
        page.waitForURL(`${shopUrl}/done?**`),
        page.getByTestId('authenticate-complete').click(),
      ]);
      assert.equal(page.url(), `${shopUrl}/done?session_id=${session.id}`);
    } finally {
      await page.close();
    }
    assert.equal((await stripe.checkout.sessions.retrieve(session.id)).payment_status, 'paid');
  });
});
