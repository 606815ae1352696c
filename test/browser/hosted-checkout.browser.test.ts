import assert from 'node:assert/strict';
import http from 'node:http';
import { type AddressInfo } from 'node:net';
import { type Browser } from 'playwright-core';
import { startHttpIntake, type HttpIntake } from '../../src/http/server';
import { type CheckoutStatus } from '../../src/workflows/definitions';
import { startIntakeFixture, successfulCharges, type IntakeFixture } from '../http/fixture';
import { launchChromium, requireChromium } from '../support/browser';
import { uniqueName } from '../support/temporal';

/**
 * The whole hosted flow as a customer meets it: the shop starts a hosted checkout through the HTTP
 * intake, the customer opens the returned URL in chromium and pays on the local Stripe server's
 * page, Stripe's webhooks reach the intake, and the checkout ends completed with an entitlement.
 */
describe('hosted checkout in a real browser', function () {
  this.timeout(120_000);
  let f: IntakeFixture;
  let intake: HttpIntake;
  let browser: Browser;
  let shop: http.Server;
  let shopUrl: string;
  let endpointId: string;

  before(async function () {
    this.timeout(180_000);
    requireChromium();
    f = await startIntakeFixture('browser hosted checkout');
    const secret = 'whsec_browserHostedCheckout';
    intake = await startHttpIntake({
      client: f.client,
      taskQueue: f.taskQueue,
      webhookSecrets: [secret],
      host: '127.0.0.1',
      port: 0,
    });
    const registered = await fetch(`${f.emulator.url}/_emulator/webhook_endpoints`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${intake.url}/webhooks/stripe`, secret, retry_base_delay_ms: 50 }),
    });
    assert.equal(registered.status, 200, await registered.clone().text());
    endpointId = ((await registered.json()) as { id: string }).id;
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
    if (endpointId) {
      await fetch(`${f.emulator.url}/_emulator/webhook_endpoints/${endpointId}`, { method: 'DELETE' });
    }
    await intake?.close();
    await f?.close();
  });

  it('pays a hosted checkout on the payment page and sees the checkout completed with an entitlement', async () => {
    const orderId = uniqueName('browser-hosted').slice(-60).replace(/^-+/, '');
    const started = await fetch(`${intake.url}/v1/checkouts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        mode: 'hosted',
        orderId,
        amount: 2450,
        currency: 'eur',
        customerId: f.customerId,
        provision: { sku: 'pour-over-kettle', quantity: 1 },
        successUrl: `${shopUrl}/done?session_id={CHECKOUT_SESSION_ID}`,
        cancelUrl: `${shopUrl}/cart`,
        // Slow polling: the webhooks, not the poll, are what tell the checkout it was paid.
        options: { paymentPollIntervalMs: 60 * 60 * 1000 },
      }),
    });
    assert.equal(started.status, 201, await started.clone().text());
    const created = (await started.json()) as {
      checkoutSession: { id: string; url: string };
      links: { status: string };
    };
    const { id: sessionId, url } = created.checkoutSession;

    const page = await browser.newPage();
    try {
      await page.goto(url);
      assert.equal(await page.getByTestId('amount-total').textContent(), '24.50 EUR');
      assert.equal(await page.getByTestId('line-item-name').textContent(), `Order ${orderId}`);
      await page.getByTestId('payment-method').selectOption('pm_card_visa');
      await Promise.all([page.waitForURL(`${shopUrl}/done?**`), page.getByTestId('pay-button').click()]);
      assert.equal(page.url(), `${shopUrl}/done?session_id=${sessionId}`);
    } finally {
      await page.close();
    }

    let status: CheckoutStatus | undefined;
    const deadline = Date.now() + 60_000;
    while (status?.state !== 'completed') {
      assert.ok(Date.now() < deadline, `never completed; last state ${status?.state ?? 'unknown'}`);
      await new Promise((r) => setTimeout(r, 200));
      const answer = await fetch(`${intake.url}${created.links.status}`);
      if (answer.status === 200) status = (await answer.json()) as CheckoutStatus;
    }
    assert.equal(status.mode, 'hosted');
    assert.equal(status.checkoutSession?.status, 'complete');
    assert.ok(status.entitlement, 'an entitlement was granted');
    assert.equal(status.entitlement.sku, 'pour-over-kettle');
    assert.equal(status.entitlement.paymentIntentId, status.paymentIntentId);
    assert.ok(status.stripeEvents.received >= 1, 'a webhook reached the checkout');
    assert.equal(successfulCharges(f, orderId), 1);
  });
});
