/**
 * The checkout worker: runs the checkout workflow and its activities on one task queue.
 *
 * The workflow code is bundled once per process (bundling takes seconds) and reused by every worker
 * this process creates. Shutdown is graceful: on SIGINT or SIGTERM the SDK stops polling, lets
 * in-flight activities finish within `shutdownGraceTime`, and `run()` resolves; `main()` then
 * closes the connection and the provisioning database and exits 0. Any startup or run error exits
 * non-zero. A worker killed outright (SIGKILL) loses nothing: Temporal times the activity out and
 * retries it elsewhere with the same idempotency key.
 *
 * Run it as `tsx src/worker.ts`; configuration comes from `src/config` (TEMPORAL_ADDRESS,
 * TEMPORAL_TASK_QUEUE, STRIPE_SECRET_KEY, STRIPE_API_BASE, PROVISIONING_SQLITE_PATH, ...).
 */
import { NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';
import type Stripe from 'stripe';
import { createActivities } from './activities';
import { loadConfig, redactConfig, type AppConfig } from './config';
import { SqliteProvisioner, type Provisioner } from './provisioning';
import { stripeClientFromConfig } from './stripe/client';

let bundle: Promise<WorkflowBundle> | undefined;

/** The workflow bundle, built on first use and shared by every worker in this process. */
export function checkoutWorkflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('./workflows'),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
  }).then((b) => ({ code: b.code }));
  return bundle;
}

export interface CheckoutWorkerOptions {
  readonly connection: NativeConnection;
  readonly namespace: string;
  readonly taskQueue: string;
  readonly stripe: Stripe;
  readonly provisioner: Provisioner;
  /** Default: `checkoutWorkflowBundle()`. */
  readonly workflowBundle?: WorkflowBundle;
  /** Default 20: Stripe calls are I/O-bound, but Stripe rate-limits bursts (25 writes/s in test mode). */
  readonly maxConcurrentActivityTaskExecutions?: number;
  /** Default 20. */
  readonly maxConcurrentWorkflowTaskExecutions?: number;
  /** How long in-flight activities may run after a shutdown signal. Default 10 s. */
  readonly shutdownGraceTimeMs?: number;
  readonly identity?: string;
}

export async function createCheckoutWorker(options: CheckoutWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    workflowBundle: options.workflowBundle ?? (await checkoutWorkflowBundle()),
    activities: createActivities({ stripe: options.stripe, provisioner: options.provisioner }),
    maxConcurrentActivityTaskExecutions: options.maxConcurrentActivityTaskExecutions ?? 20,
    maxConcurrentWorkflowTaskExecutions: options.maxConcurrentWorkflowTaskExecutions ?? 20,
    shutdownGraceTime: options.shutdownGraceTimeMs ?? 10_000,
    ...(options.identity ? { identity: options.identity } : {}),
  });
}

/** Connects the worker's native connection from validated config (envconfig when external). */
export async function connectWorker(config: AppConfig): Promise<NativeConnection> {
  if (config.temporal.mode === 'external' && config.temporal.connect) {
    return NativeConnection.connect(config.temporal.connect.connectionOptions);
  }
  return NativeConnection.connect({ address: `127.0.0.1:${config.temporal.embedded.port}` });
}

export async function main(config: AppConfig = loadConfig()): Promise<void> {
  console.log('checkout worker starting', JSON.stringify(redactConfig(config)));
  const provisioner = new SqliteProvisioner(config.provisioning.sqlitePath);
  let connection: NativeConnection | undefined;
  try {
    connection = await connectWorker(config);
    const worker = await createCheckoutWorker({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      stripe: stripeClientFromConfig(config.stripe),
      provisioner,
    });
    console.log(`checkout worker polling ${config.temporal.namespace}/${config.temporal.taskQueue}`);
    // The SDK's runtime turns SIGINT/SIGTERM into worker.shutdown(); run() resolves once drained.
    await worker.run();
    console.log('checkout worker stopped');
  } finally {
    await connection?.close();
    await provisioner.close();
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error('checkout worker failed:', err);
      process.exit(1);
    },
  );
}
