/**
 * The whole product in one process, on embedded defaults: the pinned Temporal dev server (unless
 * Temporal is external), the local Stripe server (unless a real key is configured), the checkout
 * worker and the HTTP intake. `npm start`, `npm run demo` and the stack tests all go through here.
 *
 * Start order is dependency order, and every part that started is pushed onto a list of closers;
 * `close()` runs them in reverse (intake first so no new work arrives, then the worker drains, then
 * Stripe and Temporal go away). A failure half-way through start closes what already started and
 * rethrows, so a port clash never leaves an orphaned dev server behind. `close()` is idempotent: the
 * signal handler, a `finally` and a test may all call it.
 *
 * Stopping a start (`signal`, i.e. Ctrl-C while `npm start` is still starting) and a part that dies
 * during the start end it the same way: a step ends at its own result, the stop or the failure of a
 * part already started, whichever comes first; what already started is closed, what a step was still
 * creating is closed when it arrives, and the start rejects (`StackStartStoppedError` for the stop).
 * One call is let finish first: creating the worker, which holds its connection until it has run.
 * Without this a Ctrl-C, which a terminal also sends to the dev server, left the start retrying the
 * dead server for up to a minute and then reporting that as the failure.
 *
 * Ports: `configured` uses the ports from config and first checks that every one is free, so the
 * error names each clash by its variable instead of surfacing whichever server failed first; `free`
 * lets each server pick an unused port (the demo and tests, which must never clash with a running
 * `npm start`).
 *
 * Webhooks: in emulator mode the stack registers the intake's `/webhooks/stripe` as a webhook
 * endpoint on the emulator, signed with the first configured secret or, if none is configured, a
 * secret made up for this process, so signed delivery works end to end with no setup.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Client, type Connection } from '@temporalio/client';
import { type NativeConnection, type Worker } from '@temporalio/worker';
import { type AppConfig } from '../config';
import { createTemporalConnection } from '../client';
import { STRIPE_WEBHOOK_PATH, startHttpIntake, type HttpIntake } from '../http/server';
import { clientTracingInterceptors, type Observability } from '../observability';
import { createProvisioner, describeProvisioning } from '../provisioning';
import { stripeClientFromConfig } from '../stripe/client';
import { startStripeEmulator, type StripeEmulator } from '../stripe-emulator';
import { startDevServer, type DevServer } from '../temporal/dev-server';
import { ensureReconcilerSchedule, type ReconcilerScheduleOptions } from '../reconciler/schedule';
import { checkoutWorkflowBundle, connectWorker, createCheckoutWorker } from '../worker';
import { SEARCH_ATTRIBUTE_TYPES } from '../workflows/definitions';

export interface StackOptions {
  /** `configured` (default): the ports in config, checked first; `free`: any unused port. */
  readonly ports?: 'configured' | 'free';
  /** Progress lines ("Temporal dev server up on …"). Default: silent. */
  readonly log?: (line: string) => void;
  /** Run the HTTP intake. Default true. */
  readonly http?: boolean;
  /** The process's observability (`startObservability`): the stack runs its visibility gauges. */
  readonly observability?: Observability;
  /**
   * The reconciler's Temporal Schedule (docs/reconciler.md), created or updated at startup. Default:
   * every 15 minutes with the reconciler's own defaults; `false` leaves the schedule alone.
   */
  readonly reconciler?: false | Omit<ReconcilerScheduleOptions, 'taskQueue'>;
  /** Stops the start: what started is closed and `startStack` rejects with `StackStartStoppedError`. */
  readonly signal?: AbortSignal;
}

export interface Stack {
  /** The configuration as actually running: bound ports, the emulator's address, the webhook secret. */
  readonly config: AppConfig;
  readonly temporal: {
    readonly address: string;
    readonly namespace: string;
    /** The Temporal Web UI, when this stack runs one. */
    readonly uiUrl: string | undefined;
    readonly client: Client;
    /** The embedded dev server; undefined when Temporal is external. */
    readonly devServer: DevServer | undefined;
  };
  readonly stripe: {
    readonly mode: AppConfig['stripe']['mode'];
    /** Where Stripe API calls go: the emulator's URL, or Stripe's own API. */
    readonly endpoint: string;
    readonly emulator: StripeEmulator | undefined;
    /** A customer created at startup in emulator mode, so the printed examples work as they are. */
    readonly exampleCustomerId: string | undefined;
  };
  /** The intake's base URL, e.g. `http://127.0.0.1:3000`; undefined with `http: false`. */
  readonly httpUrl: string | undefined;
  /** The reconciler's schedule id, unless `reconciler: false`. */
  readonly reconcilerScheduleId: string | undefined;
  /** Link to a workflow in the Temporal UI, when this stack runs one. */
  workflowUrl(workflowId: string): string | undefined;
  /** Rejects if a part dies on its own (the worker fails, the dev server exits) while running. */
  readonly failure: Promise<never>;
  close(): Promise<void>;
}

/** A configured port that is already taken, named by the variable that sets it. */
export class PortsInUseError extends Error {
  constructor(readonly ports: readonly { readonly variable: string; readonly port: number }[]) {
    super(
      `Port${ports.length > 1 ? 's' : ''} already in use: ` +
        ports.map((p) => `${p.port} (${p.variable})`).join(', ') +
        '. Stop whatever holds them (another "npm start"?) or set the variables to free ports.',
    );
    this.name = 'PortsInUseError';
  }
}

/** `startStack` was stopped through `StackOptions.signal`; everything it had started is closed. */
export class StackStartStoppedError extends Error {
  constructor(options?: ErrorOptions) {
    super('Stopped while the stack was starting', options);
    this.name = 'StackStartStoppedError';
  }
}

const REAL_STRIPE_ENDPOINT = 'https://api.stripe.com';

function isPortFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

async function checkConfiguredPorts(config: AppConfig, withHttp: boolean): Promise<void> {
  const wanted: { variable: string; host: string; port: number }[] = [];
  if (config.temporal.mode === 'embedded') {
    wanted.push({
      variable: 'TEMPORAL_EMBEDDED_PORT',
      host: '127.0.0.1',
      port: config.temporal.embedded.port,
    });
    wanted.push({
      variable: 'TEMPORAL_EMBEDDED_UI_PORT',
      host: '127.0.0.1',
      port: config.temporal.embedded.uiPort,
    });
  }
  if (config.stripe.mode === 'emulator') {
    wanted.push({ variable: 'STRIPE_EMULATOR_PORT', host: '127.0.0.1', port: config.stripe.emulatorPort });
  }
  if (withHttp) wanted.push({ variable: 'HTTP_PORT', host: config.http.host, port: config.http.port });
  const taken = [];
  for (const w of wanted) {
    if (!(await isPortFree(w.host, w.port))) taken.push({ variable: w.variable, port: w.port });
  }
  if (taken.length > 0) throw new PortsInUseError(taken);
}

export async function startStack(config: AppConfig, opts: StackOptions = {}): Promise<Stack> {
  const log = opts.log ?? ((): void => {});
  const free = opts.ports === 'free';
  const withHttp = opts.http ?? true;
  if (!free) await checkConfiguredPorts(config, withHttp);

  const closers: { name: string; close: () => Promise<void> }[] = [];
  let failedWith: Error | undefined;
  let rejectFailure: (err: Error) => void = () => {};
  const failure = new Promise<never>((_, reject) => {
    rejectFailure = reject;
  });
  const failed = (err: Error): void => {
    failedWith ??= err;
    rejectFailure(err);
  };
  // Nobody may be listening yet; an unobserved rejection must not crash the process.
  failure.catch(() => {});
  const { signal } = opts;
  const stopped = new Promise<never>((_, reject) => {
    if (signal?.aborted) reject(new StackStartStoppedError());
    signal?.addEventListener('abort', () => reject(new StackStartStoppedError()), { once: true });
  });
  stopped.catch(() => {});
  /** Between steps that are not raced: throws if the start was stopped or a started part died. */
  const checkpoint = (): void => {
    if (signal?.aborted) throw new StackStartStoppedError();
    if (failedWith !== undefined) throw failedWith;
  };
  /**
   * One start-up step: its result, unless the start is stopped or a started part dies first. What
   * the step still brings after that is handed to `discard` (a connection to close).
   */
  const step = async <T>(work: Promise<T>, discard?: (late: T) => Promise<void>): Promise<T> => {
    try {
      return await Promise.race([work, stopped, failure]);
    } catch (err) {
      if (discard !== undefined) {
        work.then(discard, () => undefined).catch(() => undefined);
      }
      throw err;
    }
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const errors: unknown[] = [];
      for (const closer of closers.reverse()) {
        try {
          await closer.close();
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length > 0) throw new AggregateError(errors, 'Some parts of the stack failed to close');
    })();
    return closing;
  };

  try {
    let effective: AppConfig = config;

    let temporalAddress: string;
    let uiUrl: string | undefined;
    let devServer: DevServer | undefined;
    if (config.temporal.mode === 'embedded') {
      log(`Starting the Temporal dev server (history in ${config.temporal.embedded.dbFile})`);
      // Stopped through its own signal, it kills the server it spawned before rejecting.
      devServer = await startDevServer({
        port: free ? 0 : config.temporal.embedded.port,
        uiPort: free ? undefined : config.temporal.embedded.uiPort,
        dbFile: config.temporal.embedded.dbFile,
        namespace: config.temporal.namespace,
        searchAttributes: SEARCH_ATTRIBUTE_TYPES,
        startupTimeoutMs: 120_000,
        ...(signal !== undefined ? { signal } : {}),
      });
      const server = devServer;
      closers.push({ name: 'Temporal dev server', close: () => server.stop() });
      server.process.once('exit', (code, signal) => {
        if (closing === undefined) {
          failed(new Error(`The Temporal dev server exited unexpectedly (code ${code}, signal ${signal})`));
        }
      });
      temporalAddress = server.address;
      uiUrl = server.uiUrl;
      const port = server.port;
      const uiPort = uiUrl ? Number(new URL(uiUrl).port) : config.temporal.embedded.uiPort;
      effective = {
        ...effective,
        temporal: { ...effective.temporal, embedded: { ...effective.temporal.embedded, port, uiPort } },
      };
    } else {
      temporalAddress = config.temporal.connect?.connectionOptions.address ?? '(envconfig default)';
    }

    let emulator: StripeEmulator | undefined;
    let endpoint = REAL_STRIPE_ENDPOINT;
    if (config.stripe.mode === 'emulator') {
      if (config.stripe.apiBase === undefined) {
        emulator = await step(
          startStripeEmulator({
            host: '127.0.0.1',
            port: free ? 0 : config.stripe.emulatorPort,
            quiet: true,
          }),
          (late) => late.stop(),
        );
        const started = emulator;
        closers.push({ name: 'Stripe emulator', close: () => started.stop() });
        endpoint = emulator.url;
        effective = {
          ...effective,
          stripe: {
            ...effective.stripe,
            emulatorPort: emulator.port,
            apiBase: { host: emulator.host, port: emulator.port, protocol: 'http' },
          },
        };
      } else {
        const base = config.stripe.apiBase;
        endpoint = `${base.protocol}://${base.host}:${base.port}`;
      }
      if (effective.stripe.webhookSecrets.length === 0) {
        const secret = `whsec_${randomBytes(24).toString('hex')}`;
        effective = { ...effective, stripe: { ...effective.stripe, webhookSecrets: [secret] } };
      }
    } else {
      if (config.stripe.apiBase !== undefined) {
        const base = config.stripe.apiBase;
        endpoint = `${base.protocol}://${base.host}:${base.port}`;
      }
      if (withHttp && config.stripe.webhookSecrets.length === 0) {
        log(
          `STRIPE_WEBHOOK_SECRETS is not set: ${STRIPE_WEBHOOK_PATH} will refuse every delivery ` +
            '(checkouts still finish; they read Stripe themselves, only less promptly)',
        );
      }
    }

    const connection: Connection = await step(createTemporalConnection(effective.temporal), (late) =>
      late.close(),
    );
    closers.push({ name: 'Temporal client connection', close: () => connection.close() });
    // The tracing interceptor carries the intake's request span into the workflow (a no-op untraced).
    const client = new Client({
      connection,
      namespace: effective.temporal.namespace,
      interceptors: clientTracingInterceptors(),
    });
    const gauges = opts.observability?.startVisibilityGauges(client);
    if (gauges !== undefined) closers.push({ name: 'visibility gauges', close: () => gauges.stop() });

    const provisioner = createProvisioner(effective.provisioning);
    closers.push({ name: 'provisioning', close: () => provisioner.close() });
    log(`Provisioning: ${describeProvisioning(effective.provisioning)}`);
    const stripe = stripeClientFromConfig(effective.stripe);
    let exampleCustomerId: string | undefined;
    if (emulator !== undefined) {
      const customer = await step(
        stripe.customers.create(
          { name: 'Example customer', description: 'Created by the stack for the printed examples' },
          { idempotencyKey: `stack-example-customer-${randomBytes(8).toString('hex')}` },
        ),
      );
      exampleCustomerId = customer.id;
    }

    const workerConnection: NativeConnection = await step(
      connectWorker(effective, signal !== undefined ? { signal } : {}),
      (late) => late.close(),
    );
    closers.push({ name: 'worker connection', close: () => workerConnection.close() });
    // Bundling takes seconds and holds nothing, so a stop during it returns at once.
    const workflowBundle = await step(checkoutWorkflowBundle());
    // Not raced: a worker holds its connection until it has run, so a stop waits for this call
    // (short while Temporal answers), and the worker is then run and shut down by its closer.
    const worker: Worker = await createCheckoutWorker({
      connection: workerConnection,
      workflowBundle,
      namespace: effective.temporal.namespace,
      taskQueue: effective.temporal.taskQueue,
      stripe,
      provisioner,
      shutdownGraceTimeMs: effective.worker.shutdownGraceMs,
      maxConcurrentActivityTaskExecutions: effective.worker.maxConcurrentActivityTaskExecutions,
      maxConcurrentWorkflowTaskExecutions: effective.worker.maxConcurrentWorkflowTaskExecutions,
      workflowThreadPoolSize: effective.worker.workflowThreadPoolSize,
    });
    const running = worker.run();
    running.catch((err: unknown) => {
      if (closing === undefined) {
        failed(new Error('The checkout worker stopped with an error', { cause: err }));
      }
    });
    closers.push({
      name: 'checkout worker',
      close: async () => {
        // The SDK's own SIGINT/SIGTERM hook may already have begun the shutdown.
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running;
      },
    });
    checkpoint();
    log(`Checkout worker polling task queue ${effective.temporal.taskQueue}`);

    let reconcilerScheduleId: string | undefined;
    if (opts.reconciler !== false) {
      // Raced like the rest: closing the client connection under this call is safe
      // (src/temporal/connection-guard.ts).
      const ensured = await step(
        ensureReconcilerSchedule(client, { ...opts.reconciler, taskQueue: effective.temporal.taskQueue }),
      );
      reconcilerScheduleId = ensured.scheduleId;
      log(`Reconciler schedule ${ensured.scheduleId} ${ensured.created ? 'created' : 'updated'}`);
    }

    let httpUrl: string | undefined;
    if (withHttp) {
      const intake: HttpIntake = await step(
        startHttpIntake({
          host: effective.http.host,
          port: free ? 0 : effective.http.port,
          client,
          taskQueue: effective.temporal.taskQueue,
          webhookSecrets: effective.stripe.webhookSecrets,
          stripe,
          logLevel:
            effective.logLevel === 'debug' || effective.logLevel === 'info' ? 'warn' : effective.logLevel,
        }),
        (late) => late.close(),
      );
      closers.push({ name: 'HTTP intake', close: () => intake.close() });
      httpUrl = intake.url;
      effective = { ...effective, http: { ...effective.http, port: intake.port } };
      if (emulator !== undefined) {
        await step(registerWebhookEndpoint(emulator.url, `${intake.url}${STRIPE_WEBHOOK_PATH}`, effective));
      }
    }

    const namespace = effective.temporal.namespace;
    return {
      config: effective,
      temporal: { address: temporalAddress, namespace, uiUrl, client, devServer },
      stripe: { mode: effective.stripe.mode, endpoint, emulator, exampleCustomerId },
      httpUrl,
      reconcilerScheduleId,
      workflowUrl: (workflowId) =>
        uiUrl === undefined
          ? undefined
          : `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`,
      failure,
      close,
    };
  } catch (err) {
    try {
      await close();
    } catch (closeErr) {
      log(`Cleaning up after a failed start also failed: ${String(closeErr)}`);
    }
    if (signal?.aborted && !(err instanceof StackStartStoppedError)) {
      throw new StackStartStoppedError({ cause: err });
    }
    throw err;
  }
}

/** Asks the emulator to deliver every event to the intake, signed with the intake's first secret. */
async function registerWebhookEndpoint(emulatorUrl: string, url: string, config: AppConfig): Promise<void> {
  const secret = config.stripe.webhookSecrets[0];
  if (secret === undefined) return;
  const res = await fetch(`${emulatorUrl}/_emulator/webhook_endpoints`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url, secret, description: 'HTTP intake of this stack' }),
  });
  if (!res.ok) {
    throw new Error(`The Stripe emulator refused the webhook endpoint (${res.status}): ${await res.text()}`);
  }
}
