import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import Stripe from 'stripe';
import { createActivities } from '../../src/activities';
import { startCheckout } from '../../src/client';
import { loadConfig, redactConfig } from '../../src/config';
import {
  HttpProvisioner,
  ProvisioningError,
  ProvisioningRejectedError,
  ProvisioningResponseError,
  ProvisioningUnavailableError,
  createProvisioner,
} from '../../src/provisioning';
import { checkoutWorkflowBundle, createCheckoutWorker } from '../../src/worker';
import { checkoutWorkflowId, type ProvisionRequest } from '../../src/workflows/definitions';
import { uniqueName } from '../support/temporal';
import { newOrder, suiteHarness, successfulCharges } from '../workflows/support';
import { provisionerContract, type ContractBackend } from './contract';
import { startTestEndpoint, type TestEndpoint } from './endpoint';

const TOKEN = 'prov_test_token_4f9c2a';

function requestFor(title: string): ProvisionRequest {
  const orderId = uniqueName(title);
  return {
    workflowId: checkoutWorkflowId(orderId),
    orderId,
    paymentIntentId: 'pi_http',
    item: { sku: 'course-101', quantity: 1 },
  };
}

/** The error `promise` rejects with, asserted to be a ProvisioningError. */
async function provisioningErrorOf(promise: Promise<unknown>): Promise<ProvisioningError> {
  const err = await promise.then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ProvisioningError, `not a ProvisioningError: ${String(err)}`);
  return err;
}

function entitlementPosts(endpoint: TestEndpoint) {
  return endpoint.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/entitlements'));
}

describe('HttpProvisioner', function () {
  this.timeout(60_000);
  let endpoint: TestEndpoint;
  const open: HttpProvisioner[] = [];
  function provisioner(timeoutMs = 5_000, token: string | undefined = TOKEN): HttpProvisioner {
    const p = new HttpProvisioner({ url: endpoint.url, token, timeoutMs });
    open.push(p);
    return p;
  }

  before(async () => {
    endpoint = await startTestEndpoint({ token: TOKEN, slowMs: 2_000 });
  });
  after(async () => {
    await endpoint?.close();
  });
  afterEach(async () => {
    endpoint.faults.entitlements.length = 0;
    endpoint.faults.refunds.length = 0;
    await Promise.all(open.splice(0).map((p) => p.close()));
  });

  describe('against an endpoint that stores by Idempotency-Key', () => {
    const backend: ContractBackend = {
      open: () => Promise.resolve(new HttpProvisioner({ url: endpoint.url, token: TOKEN, timeoutMs: 5_000 })),
      refundsOf: (workflowId) => Promise.resolve(endpoint.refunds.get(workflowId) ?? []),
    };
    provisionerContract(() => backend);
  });

  it('sends the workflow id as Idempotency-Key, the bearer token and the documented JSON body', async function () {
    const request = requestFor(this.test?.title ?? 'wire');
    await provisioner().provision(request);
    const sent = entitlementPosts(endpoint).filter((r) => r.idempotencyKey === request.workflowId);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]?.authorization, `Bearer ${TOKEN}`);
    assert.equal(sent[0]?.contentType, 'application/json');
    assert.deepEqual(sent[0]?.body, {
      workflowId: request.workflowId,
      orderId: request.orderId,
      paymentIntentId: 'pi_http',
      sku: 'course-101',
      quantity: 1,
    });
  });

  it('sends <workflow id>/refund/<refund id> as the key of a refund', async function () {
    const request = requestFor(this.test?.title ?? 'refund key');
    const p = provisioner();
    await p.provision(request);
    await p.recordRefund({ workflowId: request.workflowId, refundId: 're_42', amount: 7, full: false });
    const sent = endpoint.requests.filter(
      (r) =>
        r.path.endsWith('/refunds') && (r.body as { workflowId?: string }).workflowId === request.workflowId,
    );
    assert.deepEqual(
      sent.map((r) => [r.idempotencyKey, r.body]),
      [
        [
          `${request.workflowId}/refund/re_42`,
          { workflowId: request.workflowId, refundId: 're_42', amount: 7, full: false },
        ],
      ],
    );
  });

  it('retries a 5xx, a dropped connection and a timeout with the same key, and grants once', async function () {
    const request = requestFor(this.test?.title ?? 'retries');
    endpoint.faults.entitlements.push('500', 'drop', 'slow');
    const before = endpoint.granted();
    const p = provisioner(500);
    const e500 = await provisioningErrorOf(p.provision(request));
    assert.ok(e500 instanceof ProvisioningUnavailableError);
    assert.equal(e500.retryable, true);
    assert.equal(e500.status, 500);
    assert.match(e500.message, /answered 500: .*bad day/);
    const dropped = await provisioningErrorOf(p.provision(request));
    assert.ok(dropped instanceof ProvisioningUnavailableError);
    assert.match(dropped.message, /request failed/);
    // The slow attempt takes effect at the endpoint; only its answer is lost.
    const slow = await provisioningErrorOf(p.provision(request));
    assert.ok(slow instanceof ProvisioningUnavailableError);
    assert.match(slow.message, /no answer within 500 ms/);
    const granted = await provisioner().provision(request);
    assert.deepEqual(granted, endpoint.entitlements.get(request.workflowId));
    assert.equal(endpoint.granted() - before, 1);
    const keys = entitlementPosts(endpoint)
      .filter((r) => (r.body as { orderId?: string }).orderId === request.orderId)
      .map((r) => r.idempotencyKey);
    assert.deepEqual(
      keys,
      Array.from({ length: 4 }, () => request.workflowId),
    );
    for (const err of [e500, dropped, slow]) assert.ok(!err.message.includes(TOKEN));
  });

  it('takes a 429 as retryable after the Retry-After it names', async function () {
    endpoint.faults.entitlements.push('429');
    const err = await provisioningErrorOf(provisioner().provision(requestFor(this.test?.title ?? '429')));
    assert.ok(err instanceof ProvisioningUnavailableError);
    assert.equal(err.status, 429);
    assert.equal(err.retryAfterMs, 7_000);
  });

  it('takes a 409 for a request still in flight as retryable, and the retry returns the first grant', async function () {
    const slowEndpoint = await startTestEndpoint({ grantDelayMs: 500 });
    try {
      const p = new HttpProvisioner({ url: slowEndpoint.url, timeoutMs: 5_000 });
      const request = requestFor(this.test?.title ?? '409');
      const [first, second] = await Promise.allSettled([p.provision(request), p.provision(request)]);
      const results = [first, second];
      const ok = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r) => r.status === 'rejected');
      assert.equal(ok.length, 1);
      assert.equal(refused.length, 1);
      const reason: unknown = refused[0]?.status === 'rejected' ? refused[0].reason : undefined;
      assert.ok(reason instanceof ProvisioningUnavailableError);
      assert.equal(reason.status, 409);
      const again = await p.provision(request);
      assert.deepEqual(again, ok[0]?.status === 'fulfilled' ? ok[0].value : undefined);
      assert.equal(slowEndpoint.granted(), 1);
    } finally {
      await slowEndpoint.close();
    }
  });

  it('does not retry a 400 or a 401, and never puts the token in the error', async function () {
    endpoint.faults.entitlements.push('400');
    const bad = await provisioningErrorOf(provisioner().provision(requestFor(this.test?.title ?? '400')));
    assert.ok(bad instanceof ProvisioningRejectedError);
    assert.equal(bad.retryable, false);
    assert.equal(bad.status, 400);
    assert.match(bad.message, /sku course-101 is not sold here/);
    const wrongToken = 'prov_wrong_token_xyz';
    const denied = await provisioningErrorOf(
      provisioner(5_000, wrongToken).provision(requestFor(`401 ${this.test?.title ?? ''}`)),
    );
    assert.ok(denied instanceof ProvisioningRejectedError);
    assert.equal(denied.status, 401);
    assert.ok(!denied.message.includes(wrongToken));
    assert.ok(!denied.message.includes(TOKEN));
  });

  it('does not follow a redirect: the POST would turn into a GET and the token would travel', async function () {
    const hits: string[] = [];
    const redirecting = createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      res.writeHead(307, { location: 'http://127.0.0.1:9/elsewhere' });
      res.end();
    });
    await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = redirecting.address() as AddressInfo;
      const p = new HttpProvisioner({ url: `http://127.0.0.1:${port}/hooks`, token: TOKEN });
      const err = await provisioningErrorOf(p.provision(requestFor(this.test?.title ?? 'redirect')));
      assert.ok(err instanceof ProvisioningRejectedError);
      assert.match(err.message, /redirect/);
      assert.deepEqual(hits, ['POST /hooks/entitlements']);
    } finally {
      redirecting.closeAllConnections();
      await new Promise<void>((resolve) => redirecting.close(() => resolve()));
    }
  });

  it('retries a 2xx whose body is not an entitlement, naming what is wrong', async function () {
    endpoint.faults.entitlements.push('garbage');
    const err = await provisioningErrorOf(provisioner().provision(requestFor(this.test?.title ?? 'garbage')));
    assert.ok(err instanceof ProvisioningResponseError);
    assert.equal(err.retryable, true);
    assert.match(err.message, /entitlementId/);
    assert.match(err.message, /createdAt/);
  });

  it('refuses an endpoint URL that carries credentials, and config never logs the token', () => {
    assert.throws(
      () => new HttpProvisioner({ url: 'https://user:pw@provision.example/hooks' }),
      /must not carry credentials/,
    );
    const config = loadConfig({
      PROVISIONING_HTTP_URL: 'https://provision.example/hooks?key=querysecret',
      PROVISIONING_HTTP_TOKEN: TOKEN,
    });
    assert.equal(config.provisioning.backend, 'http');
    assert.ok(createProvisioner(config.provisioning) instanceof HttpProvisioner);
    const logged = JSON.stringify(redactConfig(config));
    assert.ok(!logged.includes(TOKEN));
    assert.ok(!logged.includes('querysecret'));
    assert.match(logged, /provision\.example\/hooks/);
  });

  describe('as the provision activity', () => {
    const activities = (): ReturnType<typeof createActivities> =>
      createActivities({ stripe: new Stripe('sk_test_unused'), provisioner: provisioner() });

    async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
      const err = await promise.then(
        () => assert.fail('expected a rejection'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ApplicationFailure);
      return err;
    }

    it('fails non-retryably on a 400 and retryably on a 500, with the endpoint error as cause', async function () {
      endpoint.faults.entitlements.push('400', '500');
      const rejected = await failureOf(activities().provision(requestFor(`a ${this.test?.title ?? ''}`)));
      assert.equal(rejected.type, 'ProvisioningFailed');
      assert.equal(rejected.nonRetryable, true);
      assert.ok(rejected.cause instanceof ProvisioningRejectedError);
      const unavailable = await failureOf(activities().provision(requestFor(`b ${this.test?.title ?? ''}`)));
      assert.equal(unavailable.nonRetryable, false);
      assert.ok(unavailable.cause instanceof ProvisioningUnavailableError);
    });

    it("passes a 429's Retry-After on as the next retry delay", async function () {
      endpoint.faults.entitlements.push('429');
      const failure = await failureOf(activities().provision(requestFor(this.test?.title ?? '429 activity')));
      assert.equal(failure.nonRetryable, false);
      assert.equal(failure.nextRetryDelay, 7_000);
    });
  });
});

describe('HttpProvisioner in a checkout on the Temporal dev server', function () {
  this.timeout(180_000);
  const h = suiteHarness();
  let endpoint: TestEndpoint;
  beforeEach(async () => {
    endpoint = await startTestEndpoint({ token: TOKEN, slowMs: 6_000 });
  });
  afterEach(async () => {
    await endpoint?.close();
  });

  async function withHttpWorker<T>(taskQueue: string, fn: () => Promise<T>): Promise<T> {
    const worker = await createCheckoutWorker({
      connection: h.nativeConnection,
      namespace: h.namespace,
      taskQueue,
      stripe: h.stripe,
      // Below the test workflow's 4 s activity start-to-close, so the request times out first.
      provisioner: new HttpProvisioner({ url: endpoint.url, token: TOKEN, timeoutMs: 1_500 }),
      workflowBundle: await checkoutWorkflowBundle(),
    });
    return worker.runUntil(fn());
  }

  it('sends the same Idempotency-Key on every activity retry (500, dropped connection, timeout) and grants once', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'http retries');
    const workflowId = checkoutWorkflowId(input.orderId);
    endpoint.faults.entitlements.push('500', 'drop', 'slow');
    const result = await withHttpWorker(taskQueue, async () => {
      const { handle } = await startCheckout(h.client, input, { taskQueue });
      return handle.result();
    });
    assert.equal(result.outcome, 'completed');
    if (result.outcome !== 'completed') return;
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(endpoint.faults.entitlements.length, 0, 'every fault was met by an attempt');
    const posts = entitlementPosts(endpoint);
    // Three failed attempts and the one answered; a loaded machine may add a timed-out attempt.
    assert.ok(posts.length >= 4, `only ${posts.length} attempts reached the endpoint`);
    for (const p of posts) {
      assert.equal(p.idempotencyKey, workflowId);
      assert.equal(p.authorization, `Bearer ${TOKEN}`);
    }
    assert.equal(endpoint.granted(), 1);
    assert.deepEqual(result.entitlement, endpoint.entitlements.get(workflowId));
    assert.equal(result.entitlement.paymentIntentId, result.paymentIntentId);
  });

  it('does not retry provisioning the endpoint refused with a 400', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'http 400');
    const workflowId = checkoutWorkflowId(input.orderId);
    endpoint.faults.entitlements.push('400');
    const handle = h.client.workflow.getHandle(workflowId);
    const failed = await withHttpWorker(taskQueue, async () => {
      await startCheckout(h.client, input, { taskQueue });
      // Temporal writes ActivityTaskFailed only when it will not retry the activity again.
      let event: temporal.api.history.v1.IHistoryEvent | undefined;
      const deadline = Date.now() + 60_000;
      while (event === undefined && Date.now() < deadline) {
        const history = await handle.fetchHistory();
        event = history.events?.find((e) => e.activityTaskFailedEventAttributes);
        if (event === undefined) await new Promise((r) => setTimeout(r, 200));
      }
      return event;
    });
    try {
      assert.ok(failed, 'the provision activity never failed for good');
      const attrs = failed.activityTaskFailedEventAttributes;
      assert.equal(attrs?.retryState, temporal.api.enums.v1.RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE);
      assert.match(attrs?.failure?.message ?? '', /answered 400/);
      assert.equal(entitlementPosts(endpoint).length, 1);
      assert.equal(endpoint.granted(), 0);
      assert.equal(successfulCharges(h, input.orderId), 1);
    } finally {
      await handle.terminate('test over').catch(() => undefined);
    }
  });
});
