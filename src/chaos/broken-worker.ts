/**
 * A checkout worker with deliberately broken Stripe activities (`broken-activities.ts`), started
 * only by the chaos harness to show that its checker catches double charges. Same workflow bundle,
 * task queue and configuration as `src/worker.ts`; only the activity implementations differ.
 *
 * Usage: `node --import tsx src/chaos/broken-worker.ts --variant random-key|no-key`, with the same
 * environment as the real worker.
 */
import { type NativeConnection, Worker } from '@temporalio/worker';
import Stripe from 'stripe';
import { loadConfig } from '../config';
import { workerSinks } from '../observability';
import { SqliteProvisioner } from '../provisioning';
import { STRIPE_API_VERSION, stripeClientFromConfig } from '../stripe/client';
import { checkoutWorkflowBundle, connectWorker } from '../worker';
import { BROKEN_VARIANTS, createBrokenActivities, type BrokenVariant } from './broken-activities';

function parseVariant(argv: readonly string[]): BrokenVariant {
  const i = argv.indexOf('--variant');
  const value = i >= 0 ? argv[i + 1] : undefined;
  const variant = BROKEN_VARIANTS.find((v) => v === value);
  if (!variant) throw new Error(`--variant must be one of ${BROKEN_VARIANTS.join(', ')}`);
  return variant;
}

async function main(): Promise<void> {
  const variant = parseVariant(process.argv.slice(2));
  const config = loadConfig();
  const base = config.stripe.apiBase;
  const stripe =
    variant === 'no-key'
      ? new Stripe(config.stripe.secretKey, {
          apiVersion: STRIPE_API_VERSION,
          maxNetworkRetries: 2,
          timeout: config.stripe.requestTimeoutMs,
          telemetry: false,
          ...(base ? { host: base.host, port: base.port, protocol: base.protocol } : {}),
        })
      : stripeClientFromConfig(config.stripe);
  const provisioner = new SqliteProvisioner(config.provisioning.sqlitePath);
  let connection: NativeConnection | undefined;
  try {
    connection = await connectWorker(config);
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      workflowBundle: await checkoutWorkflowBundle(),
      activities: createBrokenActivities({ stripe, provisioner }, variant),
      // The bundle's tracing interceptors export workflow spans through this sink.
      sinks: workerSinks(),
      maxConcurrentActivityTaskExecutions: 20,
      maxConcurrentWorkflowTaskExecutions: 20,
      shutdownGraceTime: 10_000,
    });
    console.log(
      `checkout worker polling ${config.temporal.namespace}/${config.temporal.taskQueue} (broken: ${variant})`,
    );
    await worker.run();
  } finally {
    await connection?.close();
    await provisioner.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error('broken checkout worker failed:', err);
    process.exit(1);
  },
);
