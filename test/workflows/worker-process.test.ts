import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { startCheckout, waitForCheckoutResult } from '../../src/client';
import { checkoutWorkflowId, paymentIdempotencyKey } from '../../src/workflows/definitions';
import {
  TEST_SECRET_KEY,
  newOrder,
  paymentIntentsFor,
  provisionedCount,
  recordHistory,
  startHarness,
  successfulCharges,
  until,
  type CheckoutHarness,
} from './support';

const ROOT = path.resolve(__dirname, '..', '..');

interface WorkerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

/**
 * `src/worker.ts` as its own process, configured only through its environment. Node runs it with
 * tsx's loader in the same process (`--import tsx`), not through the `tsx` CLI, whose wrapper process
 * would take the SIGKILL while the real worker went on polling.
 */
async function spawnWorker(h: CheckoutHarness, taskQueue: string): Promise<WorkerProcess> {
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
      PROVISIONING_SQLITE_PATH: h.provisioningPath,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  await until(() => out.includes('checkout worker polling') || gone, 90_000, 'the worker process to poll');
  if (gone) throw new Error(`worker process exited during startup:\n${out}`);
  return { child, exited, output: () => out };
}

describe('checkout worker process', function () {
  this.timeout(180_000);
  let h: CheckoutHarness;
  const spawned: WorkerProcess[] = [];

  before(async function () {
    this.timeout(180_000);
    h = await startHarness();
  });
  after(async () => {
    for (const w of spawned)
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await h?.close();
  });

  it('charges once and provisions once when the worker process is SIGKILLed while the charge is in flight', async function () {
    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'sigkill');
    const wf = checkoutWorkflowId(input.orderId);
    const slow = h.emulator.control.addFault({
      fault: 'slow',
      idempotencyKey: paymentIdempotencyKey(wf, 1, 'confirm'),
      delayMs: 8_000,
      times: 1,
    });

    const first = await spawnWorker(h, taskQueue);
    spawned.push(first);
    await startCheckout(h.client, input, { taskQueue });
    await until(
      () => h.emulator.control.faults().some((f) => f.id === slow.id && f.hits === 1),
      60_000,
      'the confirm to be in flight',
    );
    first.child.kill('SIGKILL');
    const died = await first.exited;
    assert.equal(died.signal, 'SIGKILL');

    const second = await spawnWorker(h, taskQueue);
    spawned.push(second);
    const result = await waitForCheckoutResult(h.client, input.orderId);
    assert.equal(result.outcome, 'completed');
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(paymentIntentsFor(h, input.orderId).length, 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    await recordHistory(h, wf, 'worker-killed-during-confirm');

    second.child.kill('SIGTERM');
    const stopped = await second.exited;
    assert.equal(stopped.code, 0, `graceful shutdown exits 0:\n${second.output()}`);
    assert.match(second.output(), /checkout worker stopped/);
  });
});
