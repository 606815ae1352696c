/**
 * The checkout worker: runs the checkout workflow and its activities on one task queue.
 *
 * The workflow code is bundled once per process (bundling takes seconds) and reused by every worker
 * this process creates. Shutdown is graceful: on SIGINT or SIGTERM the SDK stops polling, lets
 * in-flight activities finish (`WORKER_SHUTDOWN_GRACE_MS`, default 15 s, above the Stripe client's
 * timeout), and `run()` resolves; `main()` then closes the connection and the provisioning database
 * and exits 0. Tasks still running 2 s after the grace are left behind: the process exits 1 and
 * Temporal retries them after their timeout. Any startup or run error exits non-zero. A worker
 * killed outright (SIGKILL) loses nothing either: Temporal times the activity out and retries it
 * elsewhere with the same idempotency key.
 *
 * Temporal need not be up first: the first connection is retried with capped exponential backoff
 * for `TEMPORAL_CONNECT_TIMEOUT_MS` (each failed attempt logged with its cause), so workers started
 * alongside the server, or while it restarts, come up on their own. SIGINT/SIGTERM while waiting
 * stops the process with exit code 0.
 *
 * Run it as `tsx src/worker.ts`; configuration comes from `src/config` (TEMPORAL_ADDRESS,
 * TEMPORAL_TASK_QUEUE, STRIPE_SECRET_KEY, STRIPE_API_BASE, PROVISIONING_SQLITE_PATH, ...).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { Client } from '@temporalio/client';
import {
  NativeConnection,
  Worker,
  bundleWorkflowCode,
  type BundleOptions,
  type NativeConnectionOptions,
  type WorkflowBundle,
} from '@temporalio/worker';
import type Stripe from 'stripe';
import { createActivities } from './activities';
import {
  DEFAULT_MAX_CONCURRENT_ACTIVITY_TASKS,
  DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS,
  DEFAULT_WORKFLOW_THREADS,
  loadConfig,
  redactConfig,
  type AppConfig,
} from './config';
import {
  redactText,
  WORKFLOW_INTERCEPTOR_MODULES,
  startObservability,
  workerInterceptors,
  workerSinks,
} from './observability';
import { createProvisioner, describeProvisioning, type Provisioner } from './provisioning';
import { stripeClientFromConfig } from './stripe/client';

let bundle: Promise<WorkflowBundle> | undefined;

/** The bundler's own log lines (webpack progress) stay out of the worker's log. */
export const QUIET_BUNDLER: NonNullable<BundleOptions['logger']> = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
  log() {},
};

/**
 * How the checkout's workflows are bundled: the workflows at `workflowsPath` (a copy of them in
 * tests), the interceptor module, and both preloaded, i.e. shared by every workflow run instead of
 * evaluated once per run, with everything they import.
 *
 * The SDK runs all workflows of a thread in one V8 context and, by default, evaluates a run's
 * modules (here twelve of ours, and the SDK modules they pull in) once per run, so each cached
 * checkout held its own copy. Preloaded, they are evaluated once per thread and deep-frozen: a
 * cached checkout waiting on 3-D Secure holds 104 KiB of heap instead of 168 KiB, 191 KiB of RSS
 * instead of 328 KiB (docs/benchmarks.md).
 *
 * Safe only because these modules keep no state of their own: at the top level they define
 * functions, classes and constants (regular expressions without the `g` or `y` flag, which keep no
 * state between calls), and everything a run changes lives in objects the run creates.
 * `test/workflows/module-state.test.ts` fails on any top-level state in them (a `let` or `var`, a
 * collection, a stateful regular expression, a literal not typed read-only, ...), which would now be
 * shared by every run on the thread. What is still per run: OpenTelemetry's interceptors, which
 * `workflow-tracing.ts` requires lazily from inside a traced run.
 */
export function checkoutBundleOptions(workflowsPath: string = require.resolve('./workflows')): BundleOptions {
  return {
    workflowsPath,
    workflowInterceptorModules: [...WORKFLOW_INTERCEPTOR_MODULES],
    preloadModules: [workflowsPath, ...WORKFLOW_INTERCEPTOR_MODULES],
    logger: QUIET_BUNDLER,
  };
}

/**
 * The workflow bundle, built on first use and shared by every worker in this process. The same
 * whatever this process's tracing: which runs carry the tracing interceptors is decided by each
 * run's start (src/observability/workflow-tracing.ts).
 */
export function checkoutWorkflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode(checkoutBundleOptions()).then((b) => ({ code: b.code }));
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
  /** For the reconciler's activities. Default: a client on `connection`. */
  readonly temporalClient?: Client;
  /** Default `DEFAULT_MAX_CONCURRENT_ACTIVITY_TASKS` (100; why: src/config). */
  readonly maxConcurrentActivityTaskExecutions?: number;
  /** Default `DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS` (20). */
  readonly maxConcurrentWorkflowTaskExecutions?: number;
  /** Threads running workflow code. Default `DEFAULT_WORKFLOW_THREADS`. */
  readonly workflowThreadPoolSize?: number;
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
    activities: createActivities({
      stripe: options.stripe,
      provisioner: options.provisioner,
      // The reconciler's activities read checkouts and open cases through the worker's own connection.
      temporal:
        options.temporalClient ??
        new Client({ connection: options.connection, namespace: options.namespace }),
    }),
    interceptors: workerInterceptors(),
    sinks: workerSinks(),
    maxConcurrentActivityTaskExecutions:
      options.maxConcurrentActivityTaskExecutions ?? DEFAULT_MAX_CONCURRENT_ACTIVITY_TASKS,
    maxConcurrentWorkflowTaskExecutions:
      options.maxConcurrentWorkflowTaskExecutions ?? DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS,
    workflowThreadPoolSize: options.workflowThreadPoolSize ?? DEFAULT_WORKFLOW_THREADS,
    shutdownGraceTime: options.shutdownGraceTimeMs ?? 10_000,
    ...(options.identity ? { identity: options.identity } : {}),
  });
}

/**
 * After the grace the SDK asks in-flight activities to cancel; this long after that, the worker
 * stops waiting for them. The Stripe and provisioning activities do not abort a call in flight, so
 * in practice the grace is how long a stopping worker waits for them.
 */
const SHUTDOWN_CANCEL_MARGIN_MS = 2_000;

/**
 * `worker.run()`, unless a stop signal came and it has not drained `forceAfterMs` later: then it
 * rejects, naming the setting, and leaves the tasks still running to Temporal's timeouts and retries.
 * (The SDK's own `shutdownForceTime` ends in an IllegalStateError from its cleanup instead.)
 *
 * The SDK's runtime turns the first SIGINT/SIGTERM into `worker.shutdown()` and then removes its own
 * listeners. One stop is often delivered more than once (a terminal signals the whole process group,
 * and npm and tsx forward the signal to their child too), and a repeat with no listener left would
 * kill the process mid-drain (Node's default action). So these listeners stay until `run()` is over,
 * and only the first signal starts the clock.
 */
async function runUntilStoppedOrAbandoned(
  worker: Worker,
  forceAfterMs: number,
  onAbandon: () => void,
): Promise<void> {
  const running = worker.run();
  let onStop: (() => void) | undefined;
  let stopping = false;
  const overdue = new Promise<never>((_, reject) => {
    onStop = (): void => {
      if (stopping) return;
      stopping = true;
      setTimeout(() => {
        onAbandon();
        running.catch(() => undefined);
        reject(
          new Error(
            `Tasks were still running ${forceAfterMs} ms after the stop signal (WORKER_SHUTDOWN_GRACE_MS ` +
              'plus the cancel margin); exiting without them. Temporal retries them on another worker ' +
              'after their timeout, under the same idempotency keys.',
          ),
        );
      }, forceAfterMs).unref();
    };
    process.on('SIGINT', onStop);
    process.on('SIGTERM', onStop);
  });
  try {
    await Promise.race([running, overdue]);
  } finally {
    if (onStop) {
      process.off('SIGINT', onStop);
      process.off('SIGTERM', onStop);
    }
  }
}

/** Backoff between connection attempts: 250 ms, doubling, at most 5 s. */
const CONNECT_FIRST_RETRY_MS = 250;
const CONNECT_MAX_RETRY_MS = 5_000;
/** One attempt may outlast the remaining budget by this much (a TLS handshake to a far region). */
const CONNECT_ATTEMPT_FLOOR_MS = 10_000;

export interface ConnectWorkerOptions {
  /** Receives one line per failed attempt. Default: nothing is logged. */
  readonly log?: (line: string) => void;
  /** Stops retrying (SIGTERM while Temporal is still down). */
  readonly signal?: AbortSignal;
}

/** Raised when the connection retry was stopped through `ConnectWorkerOptions.signal`. */
export class ConnectAbortedError extends Error {
  constructor(address: string) {
    super(`Stopped while waiting for Temporal at ${address}`);
    this.name = 'ConnectAbortedError';
  }
}

/**
 * Connects the worker's native connection from validated config (envconfig when external) and
 * checks that the namespace answers, so `Worker.create` does not fail on a server still starting.
 * Retries with capped exponential backoff until `temporal.connectTimeoutMs` has passed (0: one
 * attempt), then fails naming the address, the setting and the last error.
 */
export async function connectWorker(
  config: AppConfig,
  options: ConnectWorkerOptions = {},
): Promise<NativeConnection> {
  const connectionOptions: NativeConnectionOptions =
    config.temporal.mode === 'external' && config.temporal.connect
      ? config.temporal.connect.connectionOptions
      : { address: `127.0.0.1:${config.temporal.embedded.port}` };
  const address = connectionOptions.address ?? 'localhost:7233';
  const { namespace, connectTimeoutMs } = config.temporal;
  const deadline = Date.now() + connectTimeoutMs;
  for (let attempt = 1; ; attempt += 1) {
    if (options.signal?.aborted) throw new ConnectAbortedError(address);
    let lastError: unknown;
    try {
      const budget = Math.max(deadline - Date.now(), CONNECT_ATTEMPT_FLOOR_MS);
      return await connectOnce(connectionOptions, namespace, budget);
    } catch (err) {
      lastError = err;
    }
    const reason = describeError(lastError);
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new Error(
        `Could not connect to Temporal at ${address} (namespace ${namespace}) within ` +
          `TEMPORAL_CONNECT_TIMEOUT_MS=${connectTimeoutMs} after ${attempt} attempt(s); last error: ${reason}`,
        { cause: lastError },
      );
    }
    const delay = Math.min(remaining, CONNECT_MAX_RETRY_MS, CONNECT_FIRST_RETRY_MS * 2 ** (attempt - 1));
    options.log?.(
      `Temporal at ${address} (namespace ${namespace}) not ready, attempt ${attempt}: ${reason}; ` +
        `retrying in ${delay} ms, giving up in ${Math.ceil(remaining / 1000)} s`,
    );
    try {
      await sleep(delay, undefined, options.signal ? { signal: options.signal } : {});
    } catch {
      throw new ConnectAbortedError(address);
    }
  }
}

async function connectOnce(
  connectionOptions: NativeConnectionOptions,
  namespace: string,
  timeoutMs: number,
): Promise<NativeConnection> {
  const attempt = (async () => {
    const connection = await NativeConnection.connect(connectionOptions);
    try {
      await connection.workflowService.describeNamespace({ namespace });
      return connection;
    } catch (err) {
      await connection.close().catch(() => undefined);
      throw err;
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([attempt, timedOut]);
  } catch (err) {
    // A connection that arrives after the timeout is closed, not leaked.
    attempt
      .then(
        (c) => c.close(),
        () => undefined,
      )
      .catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function describeError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s+/g, ' ').slice(0, 300);
}

export async function main(config: AppConfig = loadConfig()): Promise<void> {
  // Logs, metrics endpoint and tracing; before the first connection (it installs the runtime).
  const observability = startObservability(config, { name: 'worker' });
  const logger = observability.logger;
  logger.info({ config: redactConfig(config) }, 'checkout worker starting');
  const provisioner = createProvisioner(config.provisioning);
  logger.info(`checkout worker provisioning: ${describeProvisioning(config.provisioning)}`);
  let connection: NativeConnection | undefined;
  let abandoned = false;
  // Until the worker runs, a stop signal ends the connection retry; then the SDK takes over.
  const stopWaiting = new AbortController();
  const onSignal = (): void => stopWaiting.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    try {
      connection = await connectWorker(config, {
        log: (line) => logger.warn(`checkout worker: ${line}`),
        signal: stopWaiting.signal,
      });
    } catch (err) {
      if (err instanceof ConnectAbortedError) {
        logger.info(`checkout worker stopped before connecting: ${err.message}`);
        return;
      }
      throw err;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    const worker = await createCheckoutWorker({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      stripe: stripeClientFromConfig(config.stripe),
      provisioner,
      shutdownGraceTimeMs: config.worker.shutdownGraceMs,
      maxConcurrentActivityTaskExecutions: config.worker.maxConcurrentActivityTaskExecutions,
      maxConcurrentWorkflowTaskExecutions: config.worker.maxConcurrentWorkflowTaskExecutions,
      workflowThreadPoolSize: config.worker.workflowThreadPoolSize,
    });
    observability.startVisibilityGauges(new Client({ connection, namespace: config.temporal.namespace }));
    logger.info(`checkout worker polling ${config.temporal.namespace}/${config.temporal.taskQueue}`);
    // The SDK's runtime turns SIGINT/SIGTERM into worker.shutdown(); run() resolves once drained.
    await runUntilStoppedOrAbandoned(
      worker,
      config.worker.shutdownGraceMs + SHUTDOWN_CANCEL_MARGIN_MS,
      () => {
        // The tasks still running hold the connection and the store; the process exits without them.
        abandoned = true;
      },
    );
    logger.info('checkout worker stopped');
  } finally {
    await observability.shutdown();
    if (!abandoned) {
      await connection?.close();
      await provisioner.close();
    }
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      // Before the logger exists (a configuration error) this is the only report: redacted too.
      console.error(redactText(`checkout worker failed: ${inspect(err)}`));
      process.exit(1);
    },
  );
}
