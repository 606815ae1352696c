import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { getCheckoutStatus, waitForCheckoutResult } from '../../src/client';
import { loadConfig } from '../../src/config';
import type { PaymentAction } from '../../src/payment-action';
import { PortsInUseError, StackStartStoppedError, startStack, type Stack } from '../../src/stack/stack';
import { createStripeClient } from '../../src/stripe/client';
import { checkoutWorkflowId } from '../../src/workflows/definitions';
import { testTemporal, uniqueName } from '../support/temporal';
import { closeIfStarted, devServersOnPort, processGroupAlive, waitFor } from '../support/processes';
import { authenticateLikeStripeJs } from '../http/stripe-js';
import { runEntryPoint, signalOnceWhen } from './run-entry-point';
import { unusedPort } from '../support/ports';

function listen(port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

async function isFree(port: number): Promise<boolean> {
  try {
    const srv = await listen(port);
    await new Promise((resolve) => srv.close(resolve));
    return true;
  } catch {
    return false;
  }
}

/** Free ports for everything `npm start` listens on, as the variables that set them. */
async function freePorts(): Promise<Record<string, string>> {
  return {
    HTTP_PORT: String(await unusedPort()),
    TEMPORAL_EMBEDDED_PORT: String(await unusedPort()),
    TEMPORAL_EMBEDDED_UI_PORT: String(await unusedPort()),
    STRIPE_EMULATOR_PORT: String(await unusedPort()),
  };
}

function portOf(srv: Server): number {
  const address = srv.address();
  assert.ok(address && typeof address === 'object');
  return address.port;
}

describe('stack', function () {
  this.timeout(120_000);

  describe('started on free ports', () => {
    let dataDir: string;
    let stack: Stack;

    before(async function () {
      this.timeout(180_000);
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'stack-test-'));
      stack = await startStack(loadConfig({ DATA_DIR: dataDir }), { ports: 'free' });
    });
    after(async () => {
      await stack?.close();
      await rm(dataDir, { recursive: true, force: true });
    });

    it('runs every part on embedded defaults and reports where they are', () => {
      assert.equal(stack.config.temporal.mode, 'embedded');
      assert.equal(stack.stripe.mode, 'emulator');
      assert.match(stack.stripe.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.match(stack.temporal.uiUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.match(stack.httpUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.match(stack.stripe.exampleCustomerId ?? '', /^cus_/);
      assert.equal(stack.config.temporal.embedded.dbFile, path.join(dataDir, 'temporal.sqlite'));
      assert.equal(stack.config.stripe.webhookSecrets.length, 1);
    });

    /** POSTs a card checkout to the stack's intake, as a service would; its order id. */
    async function postCheckout(prefix: string, paymentMethodId: string): Promise<string> {
      const orderId = `${prefix}-${Date.now().toString(36)}`;
      const res = await fetch(`${stack.httpUrl ?? ''}/v1/checkouts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          orderId,
          amount: 1999,
          currency: 'usd',
          customerId: stack.stripe.exampleCustomerId,
          paymentMethodId,
          provision: { sku: 'pro-plan', quantity: 1 },
        }),
      });
      assert.equal(res.status, 201, await res.text());
      return orderId;
    }

    it('takes a checkout through the intake to paid and provisioned, charging once', async () => {
      const orderId = await postCheckout('stack', 'pm_card_visa');
      const result = await waitForCheckoutResult(stack.temporal.client, orderId);
      assert.equal(result.outcome, 'completed');
      const charges = stack.stripe.emulator?.control
        .ledger()
        .payment_intents.filter((pi) => pi.metadata.order_id === orderId)
        .reduce((n, pi) => n + pi.successful_charges, 0);
      assert.equal(charges, 1);
      assert.equal(
        stack.workflowUrl(checkoutWorkflowId(orderId)),
        `${stack.temporal.uiUrl ?? ''}/namespaces/default/workflows/${checkoutWorkflowId(orderId)}`,
      );
    });

    // What `npm start` runs: the intake reads payment actions with the stack's own Stripe client.
    it('hands the customer the 3-D Secure payment action, and their authentication completes the checkout', async () => {
      const orderId = await postCheckout('stack-3ds', 'pm_card_threeDSecure2Required');
      const deadline = Date.now() + 20_000;
      while ((await getCheckoutStatus(stack.temporal.client, orderId)).state !== 'awaiting_customer_action') {
        assert.ok(Date.now() < deadline, 'the checkout waits for the customer');
        await new Promise((r) => setTimeout(r, 150));
      }

      const res = await fetch(`${stack.httpUrl ?? ''}/v1/checkouts/${orderId}/payment-action`);
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const action = JSON.parse(text) as PaymentAction;
      assert.equal(action.status, 'requires_action');
      assert.equal(action.nextAction.type, 'use_stripe_sdk');
      assert.match(action.clientSecret, new RegExp(`^${action.paymentIntentId}_secret_`));

      const emulator = stack.stripe.emulator;
      assert.ok(emulator);
      const stripe = createStripeClient({
        secretKey: 'sk_test_paymentActionStack',
        timeoutMs: 5_000,
        apiBase: { host: emulator.host, port: emulator.port, protocol: 'http' },
      });
      await authenticateLikeStripeJs(stripe, action.clientSecret);
      // The checkout learns of it from the emulator's signed webhook to the intake, or its own polling.
      const result = await waitForCheckoutResult(stack.temporal.client, orderId);
      assert.equal(result.outcome, 'completed');
    });

    it('has the emulator deliver its signed webhooks to the intake, which accepts them', async () => {
      const url = `${stack.stripe.endpoint}/_emulator/webhook_deliveries`;
      const deadline = Date.now() + 20_000;
      let statuses: string[] = [];
      while (Date.now() < deadline) {
        const body = (await (await fetch(url)).json()) as { data: { status: string }[] };
        statuses = body.data.map((d) => d.status);
        if (statuses.includes('succeeded')) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.ok(statuses.includes('succeeded'), `deliveries: ${statuses.join(', ')}`);
      assert.ok(!statuses.includes('failed'), `deliveries: ${statuses.join(', ')}`);
    });

    it('closes everything in reverse order, and a second close is harmless', async () => {
      const httpUrl = stack.httpUrl ?? '';
      await stack.close();
      await stack.close();
      await assert.rejects(fetch(`${httpUrl}/openapi.json`));
      await assert.rejects(fetch(`${stack.stripe.endpoint}/v1/customers`));
    });
  });

  it('connects to an external Temporal through envconfig instead of starting one', async function () {
    this.timeout(180_000);
    const server = await testTemporal();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'stack-external-'));
    const stack = await startStack(
      loadConfig({
        DATA_DIR: dataDir,
        TEMPORAL_ADDRESS: server.address,
        TEMPORAL_TASK_QUEUE: uniqueName('stack external temporal'),
      }),
      { ports: 'free' },
    );
    try {
      assert.equal(stack.config.temporal.mode, 'external');
      assert.equal(stack.temporal.address, server.address);
      assert.equal(stack.temporal.uiUrl, undefined);
      assert.equal(stack.workflowUrl('checkout-x'), undefined);
      const orderId = `stack-ext-${Date.now().toString(36)}`;
      const res = await fetch(`${stack.httpUrl ?? ''}/v1/checkouts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          orderId,
          amount: 500,
          currency: 'eur',
          customerId: stack.stripe.exampleCustomerId,
          paymentMethodId: 'pm_card_visa',
          provision: { sku: 'pro-plan', quantity: 2 },
        }),
      });
      assert.equal(res.status, 201, await res.text());
      assert.equal((await waitForCheckoutResult(stack.temporal.client, orderId)).outcome, 'completed');
    } finally {
      await stack.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('reports a part that dies while running, and still closes the rest', async function () {
    this.timeout(180_000);
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'stack-failure-'));
    const stack = await startStack(loadConfig({ DATA_DIR: dataDir }), { ports: 'free', http: false });
    try {
      stack.temporal.devServer?.process.kill('SIGKILL');
      await assert.rejects(stack.failure, /The Temporal dev server exited unexpectedly/);
    } finally {
      await stack.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses configured ports that are taken, naming each variable, and starts nothing', async () => {
    const httpBlocker = await listen();
    const temporalBlocker = await listen();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'stack-ports-'));
    try {
      const config = loadConfig({
        DATA_DIR: dataDir,
        HTTP_PORT: String(portOf(httpBlocker)),
        TEMPORAL_EMBEDDED_PORT: String(portOf(temporalBlocker)),
        TEMPORAL_EMBEDDED_UI_PORT: String(await unusedPort()),
        STRIPE_EMULATOR_PORT: String(await unusedPort()),
      });
      await assert.rejects(startStack(config), (err: unknown) => {
        assert.ok(err instanceof PortsInUseError);
        assert.deepEqual(err.ports.map((p) => p.variable).sort(), ['HTTP_PORT', 'TEMPORAL_EMBEDDED_PORT']);
        assert.match(err.message, new RegExp(`${portOf(httpBlocker)} \\(HTTP_PORT\\)`));
        return true;
      });
    } finally {
      httpBlocker.close();
      temporalBlocker.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  describe('a start that is stopped or loses a part', () => {
    let dataDir: string;
    beforeEach(async () => {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'stack-stopped-'));
    });
    afterEach(async () => {
      await rm(dataDir, { recursive: true, force: true });
    });

    it('closes what started and rejects with StackStartStoppedError when stopped half-way', async function () {
      this.timeout(180_000);
      const ports = await freePorts();
      const stop = new AbortController();
      const lines: string[] = [];
      const starting = startStack(loadConfig({ DATA_DIR: dataDir, ...ports }), {
        signal: stop.signal,
        // After the dev server, the Stripe server and the client connection are up.
        log: (line) => {
          lines.push(line);
          if (line.startsWith('Provisioning:')) stop.abort();
        },
      });
      closeIfStarted(starting, (stack) => stack.close());
      await assert.rejects(starting, StackStartStoppedError);
      assert.ok(
        lines.some((l) => l.startsWith('Provisioning:')),
        lines.join('\n'),
      );
      assert.ok(!lines.some((l) => l.startsWith('Checkout worker polling')), lines.join('\n'));
      for (const [variable, port] of Object.entries(ports)) {
        assert.ok(await isFree(Number(port)), `${variable} ${port} is free again`);
      }
      assert.deepEqual(devServersOnPort(Number(ports.TEMPORAL_EMBEDDED_PORT)), []);
    });

    it("fails at once with the dev server's exit when it dies during the start", async function () {
      this.timeout(180_000);
      const ports = await freePorts();
      const temporalPort = Number(ports.TEMPORAL_EMBEDDED_PORT);
      const starting = startStack(loadConfig({ DATA_DIR: dataDir, ...ports }), {
        log: (line) => {
          if (line.startsWith('Provisioning:')) {
            for (const pid of devServersOnPort(temporalPort)) process.kill(pid, 'SIGKILL');
          }
        },
      });
      closeIfStarted(starting, (stack) => stack.close());
      // Not the connection retries' error a minute later (TEMPORAL_CONNECT_TIMEOUT_MS).
      await assert.rejects(
        starting,
        /The Temporal dev server exited unexpectedly \(code null, signal SIGKILL\)/,
      );
      for (const [variable, port] of Object.entries(ports)) {
        assert.ok(await isFree(Number(port)), `${variable} ${port} is free again`);
      }
    });
  });

  describe('npm start (src/stack/main.ts)', () => {
    /** Runs `npm start`'s entry point on free ports; `stop` is called once the banner is out. */
    async function runStackAndStop(stop: (kill: (signal: NodeJS.Signals) => void) => void) {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'stack-main-'));
      try {
        const env = {
          DATA_DIR: dataDir,
          HTTP_PORT: String(await unusedPort()),
          TEMPORAL_EMBEDDED_PORT: String(await unusedPort()),
          TEMPORAL_EMBEDDED_UI_PORT: String(await unusedPort()),
          STRIPE_EMULATOR_PORT: String(await unusedPort()),
        };
        let signaled = false;
        const run = await runEntryPoint('src/stack/main.ts', env, 150_000, (stdout, kill) => {
          if (!signaled && stdout.includes('Press Ctrl-C to stop.')) {
            signaled = true;
            stop(kill);
          }
        });
        return { env, run };
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    }

    it('prints where everything is, stays up, and exits 0 after SIGTERM', async function () {
      this.timeout(180_000);
      const { env, run } = await runStackAndStop((kill) => kill('SIGTERM'));
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        run.stdout,
        new RegExp(`Temporal UI: +http://127\\.0\\.0\\.1:${env.TEMPORAL_EMBEDDED_UI_PORT}`),
      );
      assert.match(
        run.stdout,
        new RegExp(`Stripe: +local emulator at http://127\\.0\\.0\\.1:${env.STRIPE_EMULATOR_PORT}`),
      );
      assert.match(run.stdout, new RegExp(`HTTP intake: +http://127\\.0\\.0\\.1:${env.HTTP_PORT}`));
      assert.match(run.stdout, /curl -sS -X POST .*\/v1\/checkouts/);
      assert.match(run.stdout, /npm run checkout -- start --order-id/);
      assert.match(run.stdout, /Stopped\./);
    });

    it('stops gracefully and exits 0 when one Ctrl-C arrives twice (the terminal and npm or tsx both deliver it)', async function () {
      this.timeout(180_000);
      const { run } = await runStackAndStop((kill) => {
        kill('SIGINT');
        setTimeout(() => kill('SIGINT'), 30);
      });
      assert.equal(
        run.code,
        0,
        `a copy of the first Ctrl-C is not a second one:\n${run.stdout}\n${run.stderr}`,
      );
      assert.match(run.stdout, /SIGINT: shutting down/);
      assert.match(run.stdout, /Stopped\./);
    });

    it('stops and exits 0 on a Ctrl-C that comes while it is still starting, leaving nothing behind', async function () {
      this.timeout(180_000);
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'stack-main-'));
      try {
        // Ctrl-C in a terminal signals the whole group: the dev server stops on its own too.
        const run = await runEntryPoint(
          'src/stack/main.ts',
          { DATA_DIR: dataDir, ...(await freePorts()) },
          150_000,
          signalOnceWhen('Provisioning:', 'SIGINT', 'group'),
          { processGroup: true },
        );
        assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
        assert.match(run.stdout, /SIGINT: stopped while starting/);
        assert.match(run.stdout, /Stopped\./);
        assert.doesNotMatch(run.stdout, /Press Ctrl-C to stop/);
        assert.doesNotMatch(run.stderr, /npm start failed/);
        assert.ok(run.pid !== undefined);
        const group = run.pid;
        await waitFor(() => !processGroupAlive(group), `process group ${group} to be empty`, 10_000);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });

    it('stops the dev server it is starting when only it gets SIGTERM, and exits 0', async function () {
      this.timeout(180_000);
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'stack-main-'));
      try {
        const ports = await freePorts();
        const temporalPort = Number(ports.TEMPORAL_EMBEDDED_PORT);
        let signaled = false;
        const run = await runEntryPoint(
          'src/stack/main.ts',
          { DATA_DIR: dataDir, ...ports },
          150_000,
          (stdout, kill) => {
            if (signaled || !stdout.includes('Starting the Temporal dev server')) return;
            signaled = true;
            // Once the CLI runs, so there is a server to stop; the group is not signalled.
            void waitFor(() => devServersOnPort(temporalPort).length > 0, 'the dev server').then(() =>
              kill('SIGTERM'),
            );
          },
          { processGroup: true },
        );
        assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
        assert.match(run.stdout, /SIGTERM: stopped while starting/);
        assert.match(run.stdout, /Stopped\./);
        assert.deepEqual(devServersOnPort(temporalPort), [], 'the dev server was stopped, not orphaned');
        assert.ok(run.pid !== undefined);
        assert.equal(processGroupAlive(run.pid), false);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });

    it('exits 1 listing every configuration problem, starting nothing', async () => {
      const run = await runEntryPoint(
        'src/stack/main.ts',
        { HTTP_PORT: 'eighty', STRIPE_TIMEOUT_MS: '5' },
        60_000,
      );
      assert.equal(run.code, 1);
      assert.match(run.stderr, /Invalid configuration/);
      assert.match(run.stderr, /HTTP_PORT/);
      assert.match(run.stderr, /STRIPE_TIMEOUT_MS/);
      assert.doesNotMatch(run.stdout, /Starting the Temporal dev server/);
    });

    it('exits 1 naming the variable when a configured port is taken', async () => {
      const blocker = await listen();
      try {
        const run = await runEntryPoint(
          'src/stack/main.ts',
          { DATA_DIR: path.join(os.tmpdir(), 'never-used'), HTTP_PORT: String(portOf(blocker)) },
          60_000,
        );
        assert.equal(run.code, 1);
        assert.match(run.stderr, new RegExp(`${portOf(blocker)} \\(HTTP_PORT\\)`));
      } finally {
        blocker.close();
      }
    });
  });
});
