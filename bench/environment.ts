/**
 * Everything one benchmark run shares: the pinned Temporal dev server (in memory, headless), the
 * local Stripe server on a worker thread, a Temporal client, a Stripe client and customer for the
 * direct integration, a temporary directory for the SQLite provisioning files, and the worker
 * processes. `close()` stops them in reverse order and removes the directory; it runs in `finally`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type Stripe from 'stripe';
import { createStripeClient } from '../src/stripe/client';
import { startDevServer, type DevServer } from '../src/temporal/dev-server';
import { SEARCH_ATTRIBUTE_TYPES } from '../src/workflows/definitions';
import { startEmulatorThread, type EmulatorThread } from './emulator-thread';
import { startBenchWorker, type BenchWorker, type WorkerTuning } from './worker-host';

/** Any `sk_test_…` key works against the emulator; no account stands behind it. */
export const BENCH_STRIPE_KEY = 'sk_test_checkoutbenchmark';
const STRIPE_TIMEOUT_MS = 10_000;

export interface BenchEnvironment {
  readonly runId: string;
  readonly devServer: DevServer;
  readonly emulator: EmulatorThread;
  readonly client: Client;
  /** The benchmark process's own Stripe client (direct integration, setup). */
  readonly stripe: Stripe;
  readonly customerId: string;
  readonly dir: string;
  /** The dev server process's resident set size now, from /proc; undefined where there is none. */
  serverRssBytes(): number | undefined;
  /** CPU time (user + system) the dev server process has used, from /proc; undefined where there is none. */
  serverCpuMs(): number | undefined;
  startWorkers(
    kind: 'checkout' | 'floor',
    count: number,
    taskQueue: string,
    tuning: WorkerTuning,
  ): Promise<BenchWorker[]>;
  close(): Promise<void>;
}

function rssOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kib === undefined ? undefined : Number(kib) * 1024;
  } catch {
    return undefined;
  }
}

/** Linux's USER_HZ: /proc reports CPU times in these ticks. */
const CLOCK_TICKS_PER_SECOND = 100;

function cpuMsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start at state; utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS_PER_SECOND : undefined;
  } catch {
    return undefined;
  }
}

export async function startBenchEnvironment(log: (line: string) => void): Promise<BenchEnvironment> {
  const closers: (() => Promise<void>)[] = [];
  // Interrupted (Ctrl-C, a timeout): stop the dev server and the workers rather than orphan them.
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping the benchmark's servers and workers`);
    void close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const close = async (): Promise<void> => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const c of closers.splice(0).reverse()) {
      try {
        await c();
      } catch (err) {
        log(`closing a part of the benchmark failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  };
  try {
    const runId = `b${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
    const dir = mkdtempSync(path.join(tmpdir(), 'checkout-bench-'));
    closers.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));

    log('starting the Temporal dev server (in memory) and the Stripe emulator (worker thread)');
    const [devServer, emulator] = await Promise.all([
      startDevServer({ uiPort: false, searchAttributes: SEARCH_ATTRIBUTE_TYPES, startupTimeoutMs: 120_000 }),
      startEmulatorThread(),
    ]);
    closers.push(() => devServer.stop());
    closers.push(() => emulator.stop());

    const connection = await Connection.connect({ address: devServer.address });
    closers.push(() => connection.close());
    const client = new Client({ connection, namespace: devServer.namespace });

    const stripe = createStripeClient({
      secretKey: BENCH_STRIPE_KEY,
      timeoutMs: STRIPE_TIMEOUT_MS,
      apiBase: { host: emulator.url.hostname, port: Number(emulator.url.port), protocol: 'http' },
    });
    const customer = await stripe.customers.create(
      { description: 'checkout benchmark' },
      { idempotencyKey: `${runId}-customer` },
    );

    const workers: BenchWorker[] = [];
    closers.push(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop()));
    });
    let workerNo = 0;
    return {
      runId,
      devServer,
      emulator,
      client,
      stripe,
      customerId: customer.id,
      dir,
      serverRssBytes: () => rssOf(devServer.process.pid),
      serverCpuMs: () => cpuMsOf(devServer.process.pid),
      async startWorkers(kind, count, taskQueue, tuning) {
        const started = await Promise.all(
          Array.from({ length: count }, () =>
            startBenchWorker({
              kind,
              address: devServer.address,
              namespace: devServer.namespace,
              taskQueue,
              stripeUrl: emulator.url.origin,
              stripeSecretKey: BENCH_STRIPE_KEY,
              // The working floor's grants in a store of their own, not contending with the checkout's.
              provisioningPath: path.join(
                dir,
                kind === 'floor' ? 'floor-provisioning.sqlite' : 'provisioning.sqlite',
              ),
              tuning,
              identity: `bench-${kind}-worker-${++workerNo}`,
            }),
          ),
        );
        workers.push(...started);
        return started;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
