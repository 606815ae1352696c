/**
 * The operator's view (issue 4): in the Temporal Web UI that the embedded dev server serves, an
 * operator finds a checkout by its order through the `OrderId` search attribute, sees exactly that
 * one workflow, opens it, and reads its state from the `CheckoutState` search attribute and from the
 * workflow's `status` query, next to its workflow id and summary. Triage by state
 * (`CheckoutState="declined"`) must list the matching checkouts and no others.
 *
 * Driven by Debian's chromium through playwright-core against the real stack on free ports: the dev
 * server with its UI, the Stripe emulator and the worker. Visibility is checked through the client
 * first, so a failure in the browser means the UI does not show what Temporal holds, not that
 * visibility lagged. Selectors are text and roles (the UI is a SvelteKit SPA whose markup moves
 * between releases), with generous waits for a loaded machine; values are read and compared exactly,
 * so a missing search attribute or a wrong state fails. On failure a full-page screenshot is saved
 * under the OS temp directory and its path printed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { listCheckouts, startCheckout, waitForCheckoutResult } from '../../src/client';
import { loadConfig } from '../../src/config';
import { startStack, type Stack } from '../../src/stack/stack';
import {
  CheckoutStateAttr,
  OrderIdAttr,
  checkoutWorkflowId,
  statusQuery,
  type CheckoutInput,
  type CheckoutState,
} from '../../src/workflows/definitions';
import { launchChromium } from '../support/browser';
import { uniqueName } from '../support/temporal';

/** A page load of the SPA (bundle, settings, namespaces, then the data) on a busy 2-core box. */
const NAVIGATION_TIMEOUT_MS = 120_000;
/** One element appearing after its data request answers. */
const ELEMENT_TIMEOUT_MS = 60_000;
/** Visibility is eventually consistent; the dev server usually catches up within a second. */
const VISIBILITY_TIMEOUT_MS = 30_000;

/** The top-level string field `key` of a pretty-printed JSON object (two-space indent), if any. */
function topLevelString(json: string, key: string): string | undefined {
  const match = new RegExp(`^ {2}"${key}": "([^"]*)",?$`, 'm').exec(json);
  return match?.[1];
}

describe("Temporal Web UI: the operator's view of checkouts", function () {
  this.timeout(180_000);

  let dataDir: string;
  let stack: Stack;
  let uiUrl: string;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const paidOrder = uniqueName('ui paid');
  const declinedOrder = uniqueName('ui declined');

  async function waitForVisibility(orderId: string, state: CheckoutState): Promise<void> {
    const deadline = Date.now() + VISIBILITY_TIMEOUT_MS;
    let seen: string | undefined;
    for (;;) {
      const [entry] = await listCheckouts(stack.temporal.client, { orderId });
      seen = entry?.state;
      if (seen === state) return;
      if (Date.now() > deadline) {
        assert.fail(`visibility shows ${orderId} as ${String(seen)}, not ${state}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  before(async function () {
    this.timeout(360_000);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'temporal-ui-test-'));
    stack = await startStack(loadConfig({ DATA_DIR: dataDir }), { ports: 'free', http: false });
    assert.ok(stack.temporal.uiUrl, 'the embedded dev server runs its Web UI');
    uiUrl = stack.temporal.uiUrl;

    const order: Omit<CheckoutInput, 'orderId' | 'paymentMethodId'> = {
      amount: 1999,
      currency: 'usd',
      customerId: stack.stripe.exampleCustomerId ?? '',
      provision: { sku: 'pro-plan', quantity: 1 },
    };
    const client = stack.temporal.client;
    await startCheckout(client, { ...order, orderId: paidOrder, paymentMethodId: 'pm_card_visa' });
    // A short retry window so the declined checkout ends declined instead of waiting 15 min for a card.
    await startCheckout(client, {
      ...order,
      orderId: declinedOrder,
      paymentMethodId: 'pm_card_chargeDeclined',
      options: { paymentRetryWindowMs: 1_000 },
    });
    assert.equal((await waitForCheckoutResult(client, paidOrder)).outcome, 'completed');
    assert.equal((await waitForCheckoutResult(client, declinedOrder)).outcome, 'declined');
    await waitForVisibility(paidOrder, 'completed');
    await waitForVisibility(declinedOrder, 'declined');

    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1600, height: 1200 } });
    context.setDefaultNavigationTimeout(NAVIGATION_TIMEOUT_MS);
    context.setDefaultTimeout(ELEMENT_TIMEOUT_MS);
  });

  beforeEach(async () => {
    page = await context.newPage();
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      const file = path.join(os.tmpdir(), `${uniqueName(this.currentTest.title)}.png`);
      try {
        await page.screenshot({ path: file, fullPage: true });
        console.log(`    screenshot of the failed page: ${file} (${page.url()})`);
      } catch (err) {
        console.log(`    no screenshot of the failed page: ${String(err)}`);
      }
    }
    await page.close();
  });

  after(async function () {
    this.timeout(120_000);
    await browser?.close();
    await stack?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  /**
   * Opens the workflows list with a visibility query (the UI keeps it in `?query=`, URI-encoded) and
   * returns the workflow ids of the rows it shows, once the list has answered.
   */
  async function listByQuery(query: string, filterChip: string): Promise<string[]> {
    await page.goto(`${uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`, {
      waitUntil: 'networkidle',
    });
    // The chip proves the UI parsed and applied our query rather than listing everything.
    await page.getByTitle(filterChip, { exact: true }).waitFor();
    const error = page.getByText('Error Filtering Workflows');
    const empty = page.getByText('No Workflows Found');
    const rows = page.getByRole('row').filter({ has: page.getByRole('link', { name: /^checkout-/ }) });
    await rows.first().or(empty).or(error).waitFor();
    if (await error.isVisible()) {
      assert.fail(`the UI refused ${query}: ${await page.locator('main').innerText()}`);
    }
    const ids: string[] = [];
    for (const row of await rows.all()) {
      ids.push((await row.getByRole('link', { name: /^checkout-/ }).innerText()).trim());
    }
    return ids;
  }

  /**
   * The JSON the detail tab at `tab` shows in its one code block matching `content` (a regex: case
   * sensitive, unlike a string, and specific enough not to match the Timeline tab's Input or Result
   * while the SPA swaps tabs; two matches fail as a strict-mode violation).
   */
  async function openTabJson(tab: string, urlSuffix: string, content: RegExp): Promise<string> {
    await page.getByRole('tab', { name: tab, exact: true }).click();
    await page.waitForURL(`**/${urlSuffix}`);
    const block = page.getByRole('textbox').filter({ hasText: content });
    await block.waitFor();
    return block.innerText();
  }

  /**
   * From the list filtered by `OrderId` alone: exactly this checkout, then its page shows its
   * workflow id, its summary, and `state` both as the search attribute and from the status query.
   */
  async function findAndCheck(orderId: string, state: CheckoutState): Promise<void> {
    const workflowId = checkoutWorkflowId(orderId);
    const listed = await listByQuery(
      `${OrderIdAttr.name}="${orderId}"`,
      `${OrderIdAttr.name} = "${orderId}"`,
    );
    assert.deepEqual(listed, [workflowId], 'the OrderId query lists exactly this checkout');

    await page.getByRole('link', { name: workflowId, exact: true }).click();
    await page.waitForURL(`**/workflows/${workflowId}/**`);
    const heading = page.getByRole('heading', { level: 1 });
    await heading.getByText(workflowId, { exact: true }).waitFor();
    assert.equal((await heading.innerText()).trim(), workflowId);

    const attributes = await openTabJson(
      'Search Attributes',
      'search-attributes',
      new RegExp(`"${OrderIdAttr.name}": "`),
    );
    assert.equal(topLevelString(attributes, OrderIdAttr.name), orderId, attributes);
    assert.equal(topLevelString(attributes, CheckoutStateAttr.name), state, attributes);

    await page.getByRole('tab', { name: 'User Metadata', exact: true }).click();
    await page.waitForURL('**/user-metadata');
    const summary = page.locator('iframe#user-metadata-summary').contentFrame();
    await summary.getByText(`order ${orderId}:`).waitFor();

    await page.getByRole('tab', { name: 'Queries', exact: true }).click();
    await page.waitForURL('**/query');
    assert.equal(await page.getByLabel('Query Type').inputValue(), statusQuery.name);
    await page.getByRole('button', { name: 'Run Query' }).click();
    // The status object starts with workflowId; the Timeline's Result (if still mounted) with outcome.
    const block = page.getByRole('textbox').filter({ hasText: /^\{\s*"workflowId":/ });
    await block.waitFor();
    const status = await block.innerText();
    assert.equal(topLevelString(status, 'workflowId'), workflowId, status);
    assert.equal(topLevelString(status, 'orderId'), orderId, status);
    assert.equal(topLevelString(status, 'state'), state, status);
  }

  it('finds the paid checkout by OrderId and shows it completed, with its workflow id', async () => {
    await findAndCheck(paidOrder, 'completed');
  });

  it('finds the declined checkout by OrderId and shows it declined, with its workflow id', async () => {
    await findAndCheck(declinedOrder, 'declined');
  });

  it('lists checkouts by CheckoutState, each state showing only its own checkout', async () => {
    for (const [state, orderId] of [
      ['declined', declinedOrder],
      ['completed', paidOrder],
    ] as const) {
      const listed = await listByQuery(
        `${CheckoutStateAttr.name}="${state}"`,
        `${CheckoutStateAttr.name} = "${state}"`,
      );
      assert.deepEqual(listed, [checkoutWorkflowId(orderId)], `CheckoutState="${state}"`);
    }
  });
});
