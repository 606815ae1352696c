/**
 * A benchmark worker process, forked by `worker-host.ts` with its spec as the only argument.
 *
 * `checkout` runs the product's worker exactly as `src/worker.ts` builds it (`createCheckoutWorker`
 * with the real activities, the Stripe SDK pointed at the local Stripe server, and SQLite
 * provisioning); the only things the benchmark chooses are the worker options that function takes.
 * `floor` runs `floor-workflows.ts` with no-op activities and the same worker options (and, for the
 * working floor only, the checkout's create, confirm and provision activity functions).
 *
 * It samples its own memory every 50 ms and answers the parent's requests over IPC. It ends on the
 * parent's `stop` (graceful shutdown) or when the parent goes away (the IPC channel closes).
 */
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { createActivities } from '../src/activities';
import { SqliteProvisioner } from '../src/provisioning';
import { createStripeClient } from '../src/stripe/client';
import { QUIET_BUNDLER, createCheckoutWorker } from '../src/worker';
import { createFloorActivities } from './floor-activities';
import type { BenchWorkerSpec, FromWorker, ToWorker } from './worker-host';

const SAMPLE_INTERVAL_MS = 50;
const STRIPE_TIMEOUT_MS = 10_000;
const SHUTDOWN_GRACE_MS = 10_000;

function send(message: FromWorker): void {
  process.send?.(message);
}

async function createWorker(
  spec: BenchWorkerSpec,
  connection: NativeConnection,
): Promise<{
  worker: Worker;
  close: () => Promise<void>;
}> {
  if (spec.kind === 'checkout') {
    const url = new URL(spec.stripeUrl);
    const provisioner = new SqliteProvisioner(spec.provisioningPath);
    const worker = await createCheckoutWorker({
      connection,
      namespace: spec.namespace,
      taskQueue: spec.taskQueue,
      stripe: createStripeClient({
        secretKey: spec.stripeSecretKey,
        timeoutMs: STRIPE_TIMEOUT_MS,
        apiBase: { host: url.hostname, port: Number(url.port), protocol: 'http' },
      }),
      provisioner,
      identity: spec.identity,
      shutdownGraceTimeMs: SHUTDOWN_GRACE_MS,
      ...spec.tuning,
    });
    return { worker, close: () => provisioner.close() };
  }
  // The working floor (floor-workflows.ts) calls the checkout's own activities, with a Stripe client
  // and a provisioning store of its own; the no-op floors never touch them.
  const url = new URL(spec.stripeUrl);
  const provisioner = new SqliteProvisioner(spec.provisioningPath);
  const real = createActivities({
    stripe: createStripeClient({
      secretKey: spec.stripeSecretKey,
      timeoutMs: STRIPE_TIMEOUT_MS,
      apiBase: { host: url.hostname, port: Number(url.port), protocol: 'http' },
    }),
    provisioner,
  });
  const bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('./floor-workflows'),
    // Bundled as the checkout's is: its modules shared by every run (`checkoutBundleOptions`).
    preloadModules: [require.resolve('./floor-workflows')],
    logger: QUIET_BUNDLER,
  });
  const worker = await Worker.create({
    connection,
    namespace: spec.namespace,
    taskQueue: spec.taskQueue,
    workflowBundle: { code: bundle.code },
    activities: {
      ...createFloorActivities(),
      createPaymentIntent: (input: Parameters<typeof real.createPaymentIntent>[0]) =>
        real.createPaymentIntent(input),
      confirmPaymentIntent: (input: Parameters<typeof real.confirmPaymentIntent>[0]) =>
        real.confirmPaymentIntent(input),
      provision: (request: Parameters<typeof real.provision>[0]) => real.provision(request),
    },
    identity: spec.identity,
    shutdownGraceTime: SHUTDOWN_GRACE_MS,
    ...spec.tuning,
  });
  return { worker, close: () => provisioner.close() };
}

async function main(): Promise<void> {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error('worker-process: missing the worker spec argument');
  const spec = JSON.parse(raw) as BenchWorkerSpec;
  // Warnings and errors only: state changes at INFO would bury the benchmark's table.
  Runtime.install({ logger: new DefaultLogger('WARN') });

  let peakRss = 0;
  let peakHeap = 0;
  const sample = (): NodeJS.MemoryUsage => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
    return m;
  };
  const sampler = setInterval(sample, SAMPLE_INTERVAL_MS);

  const connection = await NativeConnection.connect({ address: spec.address });
  try {
    const { worker, close } = await createWorker(spec, connection);
    try {
      process.on('message', (message: ToWorker) => {
        if (message.type === 'stop') {
          if (worker.getState() === 'RUNNING') worker.shutdown();
          return;
        }
        if (message.gc) global.gc?.();
        const m = sample();
        send({
          type: 'memory',
          rssBytes: m.rss,
          heapUsedBytes: m.heapUsed,
          peakRssBytes: peakRss,
          peakHeapUsedBytes: peakHeap,
          cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
        });
        if (message.reset) {
          peakRss = m.rss;
          peakHeap = m.heapUsed;
        }
      });
      process.once('disconnect', () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
      });
      const running = worker.run();
      send({ type: 'ready', maxCachedWorkflows: worker.options.maxCachedWorkflows });
      await running;
    } finally {
      await close();
    }
  } finally {
    clearInterval(sampler);
    await connection.close();
  }
}

main().then(
  () => {
    send({ type: 'stopped' });
    process.exit(0);
  },
  (err: unknown) => {
    send({ type: 'failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    console.error('benchmark worker failed:', err);
    process.exit(1);
  },
);
