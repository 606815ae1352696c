/**
 * The worker process (`src/worker.ts`) as operators run it, configured only through its environment:
 * its Prometheus endpoint shows Temporal's metrics and the product's counters moving during real
 * checkouts, and nothing it prints ever holds the Stripe key, through a successful checkout, a Stripe
 * authentication failure and a configuration error.
 *
 * A process of its own because the Temporal runtime (which serves the endpoint) is installed once
 * per process, and the test process already has one.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { refundCheckout, resolveCheckout, startCheckout, waitForCheckoutResult } from '../../src/client';
import { ProductMetric } from '../../src/observability';
import { createStripeClient } from '../../src/stripe/client';
import { startStripeEmulator, type StripeEmulator } from '../../src/stripe-emulator';
import {
  checkoutWorkflowId,
  paymentIdempotencyKey,
  type CheckoutInput,
  type CheckoutOptions,
} from '../../src/workflows/definitions';
import { testTemporal, uniqueName } from '../support/temporal';
import { unusedPort } from '../support/ports';

const ROOT = path.resolve(__dirname, '..', '..');
/** A key the emulator accepts, recognisable anywhere it might leak. */
const CANARY_KEY = 'sk_test_0bsCanaryKeyNeverLogged7Q';
/** A restricted key passes config validation; the emulator refuses it (401, like a revoked key). */
const CANARY_REFUSED_KEY = 'rk_test_0bsCanaryRefusedKey8R';
const FAST: CheckoutOptions = {
  paymentPollIntervalMs: 200,
  paymentActionTimeoutMs: 20_000,
  paymentRetryWindowMs: 0,
  stripeCallTimeoutMs: 4_000,
  reconcileIntervalMs: 500,
};

interface WorkerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
}

async function until(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  lastSeen: () => string = () => '',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${lastSeen()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function spawnWorker(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'worker.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, stdout: () => out, stderr: () => err };
}

async function waitPolling(w: WorkerProcess): Promise<void> {
  let gone = false;
  void w.exited.then(() => (gone = true));
  await until(() => w.stdout().includes('checkout worker polling') || gone, 120_000, 'the worker to poll');
  if (gone) throw new Error(`worker exited during startup:\n${w.stdout()}\n${w.stderr()}`);
}

async function stopWorker(w: WorkerProcess): Promise<void> {
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.child.kill('SIGTERM');
  const done = await Promise.race([
    w.exited,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000)),
  ]);
  if (done === undefined) w.child.kill('SIGKILL');
}

/** The sum of a metric's samples whose labels include `labels` (Prometheus text format). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || (m[1] !== name && m[1] !== `${name}_total`)) continue;
    const found: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      found[l[1] ?? ''] = l[2] ?? '';
    }
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) total = (total ?? 0) + Number(m[4]);
  }
  return total;
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

describe('worker process observability', function () {
  this.timeout(300_000);
  let emulator: StripeEmulator;
  let connection: Connection;
  let client: Client;
  let address: string;
  let namespace: string;
  let customerId: string;
  let dir: string;
  const workers: WorkerProcess[] = [];

  before(async function () {
    this.timeout(180_000);
    const server = await testTemporal();
    address = server.address;
    namespace = server.namespace;
    emulator = await startStripeEmulator({ quiet: true });
    const stripe = createStripeClient({
      secretKey: CANARY_KEY,
      timeoutMs: 5_000,
      apiBase: { host: emulator.host, port: emulator.port, protocol: 'http' },
    });
    customerId = (await stripe.customers.create({ name: 'Observability test' })).id;
    connection = await Connection.connect({ address });
    client = new Client({ connection, namespace });
    dir = mkdtempSync(path.join(tmpdir(), 'observability-'));
  });

  after(async () => {
    for (const w of workers) await stopWorker(w);
    await connection?.close();
    await emulator?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function workerEnv(taskQueue: string, extra: Record<string, string>): Record<string, string> {
    return {
      TEMPORAL_ADDRESS: address,
      TEMPORAL_NAMESPACE: namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      STRIPE_API_BASE: emulator.url,
      STRIPE_TIMEOUT_MS: '2000',
      PROVISIONING_SQLITE_PATH: path.join(dir, `${taskQueue}.sqlite`),
      ...extra,
    };
  }

  function order(title: string): CheckoutInput {
    return {
      orderId: uniqueName(title).slice(-60).replace(/^-+/, ''),
      amount: 4200,
      currency: 'usd',
      customerId,
      paymentMethodId: 'pm_card_visa',
      provision: { sku: 'pro-plan', quantity: 1 },
      options: FAST,
    };
  }

  function assertNoSecret(w: WorkerProcess, secret: string): void {
    const all = `${w.stdout()}\n${w.stderr()}`;
    assert.ok(!all.includes(secret), `the key appeared in the worker's output`);
    // Not even the distinctive part, in case something re-encodes the prefix.
    assert.ok(!all.includes(secret.slice(8)), `part of the key appeared in the worker's output`);
  }

  it('serves Temporal and product metrics on /metrics, and the product counters move during checkouts', async function () {
    const taskQueue = uniqueName(this.test?.title ?? 'metrics');
    const port = await unusedPort();
    const w = spawnWorker(
      workerEnv(taskQueue, {
        STRIPE_SECRET_KEY: CANARY_KEY,
        METRICS_PORT: String(port),
        METRICS_VISIBILITY_INTERVAL_MS: '1000',
        LOG_LEVEL: 'info',
      }),
    );
    workers.push(w);
    await waitPolling(w);

    // The first visibility refresh runs right after startup; wait for its gauges.
    let before = '';
    await until(
      async () => {
        before = await scrape(port);
        return sample(before, ProductMetric.visibilityRefreshed) !== undefined;
      },
      30_000,
      'the first visibility refresh',
      () => before,
    );
    // The workflow metric meter tags with camelCase keys; the SDK's own metrics use snake_case.
    const onQueue = { taskQueue };
    const sdkOnQueue = { task_queue: taskQueue };
    assert.equal(sample(before, ProductMetric.chargesSucceeded, onQueue) ?? 0, 0);
    assert.equal(sample(before, ProductMetric.stateEntered, { ...onQueue, state: 'completed' }) ?? 0, 0);
    const openBefore = sample(before, ProductMetric.open, { state: 'needs_attention' });
    const attentionBefore = sample(before, ProductMetric.needsAttention, { workflow_type: 'checkout' });
    assert.notEqual(openBefore, undefined, `no ${ProductMetric.open} gauge:\n${before}`);
    assert.notEqual(attentionBefore, undefined, `no ${ProductMetric.needsAttention} gauge`);

    // 1. A card checkout that completes: one charge, states up to completed.
    const paid = order('metrics paid');
    await startCheckout(client, paid, { taskQueue });
    const result = await waitForCheckoutResult(client, paid.orderId);
    assert.equal(result.outcome, 'completed');
    let after = '';
    await until(
      async () => {
        after = await scrape(port);
        return sample(after, ProductMetric.stateEntered, { ...onQueue, state: 'completed' }) === 1;
      },
      30_000,
      'the completed state to be counted',
      () => after,
    );
    assert.equal(sample(after, ProductMetric.chargesSucceeded, onQueue), 1);
    for (const state of ['creating_payment', 'confirming_payment', 'paid', 'provisioning']) {
      assert.equal(sample(after, ProductMetric.stateEntered, { ...onQueue, state }), 1, state);
    }
    // Temporal's own metrics are on the same endpoint. The runtime counts a workflow completed only
    // once the server has taken the completion, which can be after the state counter above moved.
    const temporalServed = (text: string): boolean =>
      (sample(text, 'temporal_workflow_completed', sdkOnQueue) ?? 0) >= 1 &&
      ((sample(text, 'temporal_activity_execution_latency_count', sdkOnQueue) ?? 0) >= 1 ||
        (sample(text, 'temporal_activity_execution_latency_seconds_count', sdkOnQueue) ?? 0) >= 1);
    await until(
      async () => {
        after = await scrape(port);
        return temporalServed(after);
      },
      30_000,
      'temporal_workflow_completed and an activity latency histogram to be served',
      () => after,
    );

    // 2. A refund of that checkout (through the refunds workflow, on this worker).
    assert.equal(sample(after, ProductMetric.refunds) ?? 0, 0);
    const refund = await refundCheckout(
      client,
      paid.orderId,
      { actor: 'test', reason: 'observability test' },
      { taskQueue, refundsOptions: { idleTimeoutMs: 1_000 } },
    );
    assert.equal(refund.refundedAmount, paid.amount);
    await until(
      async () => {
        after = await scrape(port);
        return sample(after, ProductMetric.refunds, { activityType: 'createRefund' }) === 1;
      },
      30_000,
      'the refund to be counted',
      () => after,
    );

    // 3. A checkout that needs an operator (someone else used its key): the gauges see it.
    const parked = order('metrics parked');
    await createSquatter(parked);
    await startCheckout(client, parked, { taskQueue });
    await until(
      async () => {
        after = await scrape(port);
        return (
          (sample(after, ProductMetric.needsAttention, { workflow_type: 'checkout' }) ?? 0) >=
            (attentionBefore ?? 0) + 1 &&
          (sample(after, ProductMetric.open, { state: 'needs_attention' }) ?? 0) >= (openBefore ?? 0) + 1
        );
      },
      60_000,
      'the visibility gauges to show the parked checkout',
    );
    assert.equal(sample(after, ProductMetric.stateEntered, { ...onQueue, state: 'needs_attention' }), 1);
    assert.equal(sample(after, ProductMetric.chargesSucceeded, onQueue), 1, 'no second charge counted');
    const age = sample(after, ProductMetric.needsAttentionOldestAge);
    assert.ok(age !== undefined && age >= 0, `oldest age served (${String(age)})`);
    assert.ok((sample(after, ProductMetric.visibilityRefreshed) ?? 0) > Date.now() / 1000 - 120);
    await resolveCheckout(client, parked.orderId, {
      actor: 'test',
      reason: 'observability test cleanup',
      outcome: 'abandon',
    });
    await waitForCheckoutResult(client, parked.orderId);

    // Logs: JSON lines, the SDK's own among them, and never the key.
    const lines = w
      .stdout()
      .split('\n')
      .filter((l) => l.trim() !== '');
    assert.ok(lines.length > 0);
    const parsed = lines.map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`a stdout line is not JSON: ${l}`);
      }
    });
    assert.ok(parsed.every((p) => typeof p.level === 'string' && typeof p.msg === 'string'));
    assert.ok(
      parsed.some((p) => p.component === 'temporal'),
      'the SDK log goes through the same logger',
    );
    assertNoSecret(w, CANARY_KEY);

    async function createSquatter(input: CheckoutInput): Promise<void> {
      const stripe = createStripeClient({
        secretKey: CANARY_KEY,
        timeoutMs: 5_000,
        apiBase: { host: emulator.host, port: emulator.port, protocol: 'http' },
      });
      await stripe.paymentIntents.create(
        {
          amount: 999,
          currency: 'usd',
          automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
          metadata: { order_id: input.orderId },
        },
        { idempotencyKey: paymentIdempotencyKey(checkoutWorkflowId(input.orderId), 1, 'create') },
      );
    }
  });

  it('never prints the key when Stripe refuses it', async function () {
    const taskQueue = uniqueName(this.test?.title ?? 'refused');
    const w = spawnWorker(
      workerEnv(taskQueue, { STRIPE_SECRET_KEY: CANARY_REFUSED_KEY, LOG_LEVEL: 'debug' }),
    );
    workers.push(w);
    await waitPolling(w);
    const input = order('refused key');
    await startCheckout(client, input, { taskQueue });
    // The activity fails with Stripe's authentication error; the SDK logs the failure.
    await until(
      () => /api_key_invalid|Invalid API Key|authentication/i.test(w.stdout()),
      60_000,
      'the authentication failure to be logged',
    );
    await client.workflow.getHandle(checkoutWorkflowId(input.orderId)).terminate('observability test');
    await stopWorker(w);
    assertNoSecret(w, CANARY_REFUSED_KEY);
  });

  it('exports the checkout trace over OTLP/HTTP to the configured collector', async function () {
    // A stand-in collector: it keeps every body posted to /v1/traces.
    const bodies: string[] = [];
    const collector = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        if (req.url === '/v1/traces') bodies.push(body);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = collector.address() as AddressInfo;
      const taskQueue = uniqueName(this.test?.title ?? 'otlp');
      const w = spawnWorker(
        workerEnv(taskQueue, {
          STRIPE_SECRET_KEY: CANARY_KEY,
          OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
          OTEL_SERVICE_NAME: 'checkout-otlp-test',
        }),
      );
      workers.push(w);
      await waitPolling(w);
      const input = order('otlp');
      // Only the worker exports here, so the run is started traced explicitly (the test process may
      // not have tracing on): whether a run has workflow spans is decided by its start.
      await startCheckout(client, input, { taskQueue, traced: true });
      assert.equal((await waitForCheckoutResult(client, input.orderId)).outcome, 'completed');
      // The batch processor sends every few seconds; SIGTERM flushes what is left.
      await until(
        () => bodies.join('\n').includes('Stripe POST /v1/payment_intents/{id}/confirm'),
        30_000,
        'the Stripe span to reach the collector',
        () => bodies.join('\n').slice(0, 2000),
      );
      await stopWorker(w);
      const all = bodies.join('\n');
      for (const name of ['RunWorkflow:checkout', 'RunActivity:confirmPaymentIntent', 'checkout-otlp-test']) {
        assert.ok(all.includes(name), `${name} exported`);
      }
      assert.ok(!all.includes(CANARY_KEY.slice(8)), 'no key in exported spans');
    } finally {
      await new Promise((resolve) => collector.close(resolve));
    }
  });

  it('never prints the key in a configuration error', async function () {
    const taskQueue = uniqueName(this.test?.title ?? 'config');
    const w = spawnWorker(
      workerEnv(taskQueue, { STRIPE_SECRET_KEY: `${CANARY_KEY}!`, METRICS_PORT: 'not-a-port' }),
    );
    workers.push(w);
    const { code } = await w.exited;
    assert.equal(code, 1);
    assert.match(w.stderr(), /STRIPE_SECRET_KEY/);
    assert.match(w.stderr(), /METRICS_PORT/);
    assertNoSecret(w, CANARY_KEY);
  });
});
