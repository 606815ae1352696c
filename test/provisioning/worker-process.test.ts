/**
 * The worker process chooses its provisioning backend from its environment alone: a checkout run
 * by `src/worker.ts` with DATABASE_URL lands in PostgreSQL, one with PROVISIONING_HTTP_URL at the
 * user's endpoint, and neither the database password nor the bearer token appears in its output.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { startCheckout } from '../../src/client';
import { PostgresProvisioner } from '../../src/provisioning';
import { checkoutWorkflowId } from '../../src/workflows/definitions';
import {
  TEST_SECRET_KEY,
  newOrder,
  provisionedCount,
  startHarness,
  successfulCharges,
  until,
  type CheckoutHarness,
} from '../workflows/support';
import { startTestEndpoint } from './endpoint';
import { startTestPostgres, type TestPostgres } from './postgres-server';

const ROOT = path.resolve(__dirname, '..', '..');
const DB_PASSWORD = 'pgPassw0rdNotForLogs';
const TOKEN = 'prov_worker_token_93bd1';

interface WorkerProcess {
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

async function spawnWorker(
  h: CheckoutHarness,
  taskQueue: string,
  provisioningEnv: Record<string, string>,
): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'worker.ts')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TEMPORAL_ADDRESS: h.address,
      TEMPORAL_NAMESPACE: h.namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      STRIPE_SECRET_KEY: TEST_SECRET_KEY,
      STRIPE_API_BASE: h.emulator.url,
      STRIPE_TIMEOUT_MS: '2000',
      ...provisioningEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  await until(() => out.includes('checkout worker polling') || gone, 90_000, 'the worker process to poll');
  if (gone) throw new Error(`worker process exited during startup:\n${out}`);
  return {
    child,
    output: () => out,
    async stop(): Promise<void> {
      if (!gone) child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('checkout worker process provisioning backends', function () {
  this.timeout(180_000);
  let h: CheckoutHarness;
  let pg: TestPostgres;
  const workers: WorkerProcess[] = [];

  before(async function () {
    this.timeout(180_000);
    [h, pg] = await Promise.all([startHarness(), startTestPostgres()]);
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });
  after(async () => {
    await h?.close();
    await pg?.stop();
  });

  it('provisions in PostgreSQL when DATABASE_URL is set, and never prints its password', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'worker postgres');
    // The throwaway cluster trusts local connections, so any password works and none is checked.
    const url = new URL(pg.connectionString);
    if (pg.source === 'throwaway cluster') url.password = DB_PASSWORD;
    const worker = await spawnWorker(h, taskQueue, { DATABASE_URL: url.toString() });
    workers.push(worker);
    const { handle } = await startCheckout(h.client, input, { taskQueue });
    const result = await handle.result();
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    const reader = new PostgresProvisioner({ connectionString: pg.connectionString });
    try {
      const stored = await reader.get(checkoutWorkflowId(input.orderId));
      assert.ok(stored, 'no entitlement in PostgreSQL');
      if (result.outcome === 'completed') assert.deepEqual(stored, result.entitlement);
    } finally {
      await reader.close();
    }
    assert.equal(await provisionedCount(h, input.orderId), 0, 'the SQLite store was used instead');
    assert.match(worker.output(), /provisioning: PostgreSQL at 127\.0\.0\.1:\d+\/postgres/);
    assert.ok(!worker.output().includes(DB_PASSWORD));
  });

  it('provisions through the HTTP endpoint when PROVISIONING_HTTP_URL is set, and never prints the token', async function () {
    const endpoint = await startTestEndpoint({ token: TOKEN });
    try {
      const { input, taskQueue } = newOrder(h, this.test?.title ?? 'worker http');
      const worker = await spawnWorker(h, taskQueue, {
        PROVISIONING_HTTP_URL: endpoint.url,
        PROVISIONING_HTTP_TOKEN: TOKEN,
      });
      workers.push(worker);
      const { handle } = await startCheckout(h.client, input, { taskQueue });
      const result = await handle.result();
      assert.equal(result.outcome, 'completed');
      const workflowId = checkoutWorkflowId(input.orderId);
      if (result.outcome === 'completed') {
        assert.deepEqual(result.entitlement, endpoint.entitlements.get(workflowId));
      }
      assert.equal(endpoint.granted(), 1);
      assert.ok(endpoint.requests.every((r) => r.authorization === `Bearer ${TOKEN}`));
      assert.match(worker.output(), /provisioning: HTTP endpoint http:\/\/127\.0\.0\.1:\d+\/provisioning\//);
      assert.ok(!worker.output().includes(TOKEN));
    } finally {
      await endpoint.close();
    }
  });
});
