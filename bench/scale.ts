/**
 * `--scale`: two questions the per-level runs do not answer.
 *
 * 1. One worker process or two: the checkout at one concurrency level with the one worker process
 *    the main runs used, then again with a second worker process polling the same task queue.
 *
 * 2. Many checkouts waiting on 3-D Secure at once. `waiting` checkouts start with Stripe's
 *    authentication-required test card, so each confirm leaves its PaymentIntent in
 *    `requires_action` and the workflow waits (a timer, polling Stripe as the product does). Once
 *    Temporal's visibility shows all of them waiting, the worker (a fresh process, garbage-collected
 *    before each reading) and the dev server report their memory, compared with before the first
 *    start. Then every PaymentIntent is authenticated, the Stripe server delivers a signed
 *    `payment_intent.succeeded` webhook to the product's HTTP intake (src/http/server.ts), which
 *    signals the checkout; each must then complete and be charged exactly once.
 */
import { randomBytes } from 'node:crypto';
import type { WebhookDelivery } from '../src/stripe-emulator/webhooks';
import { performance } from 'node:perf_hooks';
import { startCheckout } from '../src/client';
import { STRIPE_WEBHOOK_PATH, startHttpIntake } from '../src/http/server';
import { checkoutWorkflowType } from '../src/workflows/definitions';
import { statsDelta } from './emulator-thread';
import type { BenchEnvironment } from './environment';
import { toMiB, type RunFigures } from './figures';
import { chargedExactlyOnce, checkoutInput, closedLoop, runMode, type Progress } from './runs';
import type { BenchWorker, WorkerTuning } from './worker-host';

export interface ScaleOptions {
  /** Checkouts held in 3-D Secure at once. */
  readonly waiting: number;
  /** `paymentPollIntervalMs` for the waiting checkouts; undefined keeps the product's default (5 s). */
  readonly waitingPollMs: number | undefined;
  /**
   * `paymentActionTimeoutMs` for the waiting checkouts; undefined keeps the product's default (1 h).
   * At 10 000 the whole run can take longer than an hour on a small machine, and a checkout past its
   * deadline is canceled (expired), which is the product working, not the measurement.
   */
  readonly waitingTimeoutMs: number | undefined;
  readonly workersConcurrency: number;
  readonly workersCheckouts: number;
}

/** What the emulator did to deliver the waiting run's webhooks (from its delivery records). */
export interface WebhookDeliveryFigures {
  readonly records: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly pending: number;
  readonly attempts: number;
  /** Attempts the intake answered 503 (shed, or its signal was slow). */
  readonly answered503: number;
  /** Attempts with no answer within the emulator's timeout, or a dropped connection. */
  readonly noAnswer: number;
  readonly maxAttemptsForOneDelivery: number;
}

export function webhookDeliveryFigures(deliveries: readonly WebhookDelivery[]): WebhookDeliveryFigures {
  const attempts = deliveries.flatMap((d) => d.attempts);
  return {
    records: deliveries.length,
    succeeded: deliveries.filter((d) => d.status === 'succeeded').length,
    failed: deliveries.filter((d) => d.status === 'failed').length,
    pending: deliveries.filter((d) => d.status !== 'succeeded' && d.status !== 'failed').length,
    attempts: attempts.length,
    answered503: attempts.filter((a) => a.status_code === 503).length,
    noAnswer: attempts.filter((a) => a.status_code === null).length,
    maxAttemptsForOneDelivery: Math.max(0, ...deliveries.map((d) => d.attempts.length)),
  };
}

export interface WaitingReport {
  readonly checkouts: number;
  readonly webhookDeliveries: WebhookDeliveryFigures;
  readonly paymentPollIntervalMs: number | 'default (5000)';
  readonly paymentActionTimeoutMs: number | 'default (3600000)';
  readonly startMs: number;
  readonly allWaitingAfterMs: number;
  readonly worker: {
    readonly measured: 'worker child process, after a forced GC';
    readonly maxCachedWorkflows: number;
    readonly baselineRssMiB: number;
    readonly waitingRssMiB: number;
    readonly baselineHeapUsedMiB: number;
    readonly waitingHeapUsedMiB: number;
    readonly rssKiBPerWaitingCheckout: number;
    readonly heapKiBPerWaitingCheckout: number;
  };
  readonly server: {
    readonly measured: 'dev server process RSS (/proc)';
    readonly baselineRssMiB: number | undefined;
    readonly waitingRssMiB: number | undefined;
    readonly rssKiBPerWaitingCheckout: number | undefined;
  };
  /** Stripe requests from the first start until all were waiting (creates, confirms, polls). */
  readonly stripeRequestsUntilWaiting: Readonly<Record<string, number>>;
  /** Stripe requests from the first authentication until all completed. */
  readonly stripeRequestsToComplete: Readonly<Record<string, number>>;
  readonly authenticateMs: number;
  readonly allCompletedAfterAuthenticationMs: number;
  readonly completed: number;
  readonly notCompleted: number;
  readonly chargedExactlyOnce: number;
}

export interface ScaleReport {
  readonly ok: boolean;
  readonly workers: {
    readonly oneProcess: RunFigures;
    readonly twoProcesses: RunFigures;
    /** two ÷ one, checkouts per second. */
    readonly throughputGain: number;
  };
  readonly waiting: WaitingReport;
}

export interface ScaleContext {
  readonly tuning: WorkerTuning;
  /** The checkout worker process the main runs used (its task queue is `<runId>-checkout`). */
  readonly checkoutWorkers: readonly BenchWorker[];
  readonly log: (line: string) => void;
  readonly progress: (label: string) => Progress;
  readonly clearProgress: () => void;
}

/** Per phase (all waiting, all completed); 10 000 checkouts on two loaded cores take a while. */
const WAIT_TIMEOUT_MS = 120 * 60 * 1000;
const START_CONCURRENCY = 50;
const AUTHENTICATE_CONCURRENCY = 20;
const WARMUP_CHECKOUTS = 50;

async function countWorkflows(env: BenchEnvironment, query: string): Promise<number> {
  return (await env.client.workflow.count(query)).count;
}

async function waitForCount(
  env: BenchEnvironment,
  query: string,
  target: number,
  progress: Progress,
): Promise<number> {
  const started = performance.now();
  for (;;) {
    const n = await countWorkflows(env, query);
    const elapsed = performance.now() - started;
    progress(n, 0, target, elapsed);
    if (n >= target) return elapsed;
    if (elapsed > WAIT_TIMEOUT_MS) throw new Error(`only ${n} of ${target} reached "${query}" in time`);
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

const kib = (bytes: number, n: number): number => Math.round((bytes / 1024 / n) * 10) / 10;

async function workersScale(
  env: BenchEnvironment,
  opts: ScaleOptions,
  ctx: ScaleContext,
): Promise<ScaleReport['workers']> {
  const first = ctx.checkoutWorkers[0];
  if (!first) throw new Error('--scale needs the checkout mode (its worker process)');
  const queue = first.spec.taskQueue;
  const run = (workers: readonly BenchWorker[]): Promise<RunFigures> =>
    runMode(
      env,
      {
        mode: 'checkout',
        concurrency: opts.workersConcurrency,
        count: opts.workersCheckouts,
        label: `${env.runId}-scale-w${workers.length}`,
        taskQueue: queue,
        workers,
      },
      ctx.progress(`checkout with ${workers.length} worker process(es)`),
    );
  const oneProcess = await run([first]);
  ctx.clearProgress();
  ctx.log(
    `one worker process:  ${oneProcess.checkoutsPerSecond.toFixed(1)}/s, p99 ${oneProcess.latencyMs.p99.toFixed(0)} ms`,
  );
  const [second] = await env.startWorkers('checkout', 1, queue, ctx.tuning);
  if (!second) throw new Error('the second worker process did not start');
  try {
    const twoProcesses = await run([first, second]);
    ctx.clearProgress();
    ctx.log(
      `two worker processes: ${twoProcesses.checkoutsPerSecond.toFixed(1)}/s, p99 ${twoProcesses.latencyMs.p99.toFixed(0)} ms`,
    );
    return {
      oneProcess,
      twoProcesses,
      throughputGain: twoProcesses.checkoutsPerSecond / oneProcess.checkoutsPerSecond,
    };
  } finally {
    await second.stop();
  }
}

/** Delivery retries of the waiting run's webhook endpoint (see `waitingScale`). */
export const WAITING_WEBHOOK_RETRY = { maxAttempts: 30, baseDelayMs: 1_000 } as const;

async function waitingScale(
  env: BenchEnvironment,
  opts: ScaleOptions,
  ctx: ScaleContext,
): Promise<WaitingReport> {
  const queue = `${env.runId}-waiting`;
  const secret = `whsec_${randomBytes(24).toString('hex')}`;
  const intake = await startHttpIntake({
    host: '127.0.0.1',
    port: 0,
    client: env.client,
    taskQueue: queue,
    webhookSecrets: [secret],
  });
  const [worker] = await env.startWorkers('checkout', 1, queue, ctx.tuning);
  try {
    if (!worker) throw new Error('the waiting worker process did not start');
    // Stripe retries a failed delivery for up to three days; this endpoint retries 30 times from 1 s,
    // doubling (capped at an hour), so a burst the intake sheds (503) still arrives within the run.
    await env.emulator.addWebhookEndpoint(
      `${intake.url}${STRIPE_WEBHOOK_PATH}`,
      secret,
      ['payment_intent.succeeded'],
      WAITING_WEBHOOK_RETRY,
    );
    // A fresh worker grows on its first workflows (the bundle's context, JIT, buffers); warm it so
    // the baseline holds only what the waiting checkouts add.
    await runMode(
      env,
      {
        mode: 'checkout',
        concurrency: 10,
        count: WARMUP_CHECKOUTS,
        label: `${env.runId}-waiting-warmup`,
        taskQueue: queue,
        workers: [worker],
      },
      ctx.progress('warming the waiting worker'),
    );
    ctx.clearProgress();
    const baseline = await worker.memory({ gc: true, reset: true });
    const baselineServer = env.serverRssBytes();
    const statsAtStart = await env.emulator.stats();
    const n = opts.waiting;
    // Visibility counts below look only at checkouts started from here on, not the warm-up's.
    const startedAfter = new Date().toISOString();
    ctx.log(`starting ${n} checkouts that wait on 3-D Secure (task queue ${queue})`);

    const orderIdOf = (i: number): string => `${env.runId}-waiting-${i}`;
    const started = await closedLoop(
      n,
      START_CONCURRENCY,
      orderIdOf,
      async (orderId) => {
        const input = checkoutInput(env, orderId, 'pm_card_threeDSecure2Required');
        const options = {
          ...(opts.waitingPollMs === undefined ? {} : { paymentPollIntervalMs: opts.waitingPollMs }),
          ...(opts.waitingTimeoutMs === undefined ? {} : { paymentActionTimeoutMs: opts.waitingTimeoutMs }),
        };
        await startCheckout(env.client, Object.keys(options).length === 0 ? input : { ...input, options }, {
          taskQueue: queue,
        });
      },
      ctx.progress('starting'),
    );
    ctx.clearProgress();
    if (started.failed > 0) throw new Error(`${started.failed} starts failed: ${started.firstFailure ?? ''}`);
    const base = `WorkflowType = '${checkoutWorkflowType}' AND TaskQueue = '${queue}' AND StartTime >= '${startedAfter}'`;
    const waitingFor = await waitForCount(
      env,
      `${base} AND CheckoutState = 'awaiting_customer_action'`,
      n,
      ctx.progress('waiting on 3-D Secure'),
    );
    ctx.clearProgress();
    const statsWaiting = await env.emulator.stats();
    const waiting = await worker.memory({ gc: true });
    const waitingServer = env.serverRssBytes();
    ctx.log(
      `all ${n} waiting: worker RSS ${toMiB(waiting.rssBytes)} MiB (was ${toMiB(baseline.rssBytes)}), ` +
        `heap ${toMiB(waiting.heapUsedBytes)} MiB (was ${toMiB(baseline.heapUsedBytes)}), server RSS ` +
        `${toMiB(waitingServer ?? 0)} MiB (was ${toMiB(baselineServer ?? 0)})`,
    );

    const ids = new Set(started.orderIds);
    const toAuthenticate = (await env.emulator.ledger()).payment_intents
      .filter((pi) => ids.has(pi.metadata.order_id ?? '') && pi.status === 'requires_action')
      .map((pi) => pi.id);
    const authStart = performance.now();
    const authenticated = await closedLoop(
      toAuthenticate.length,
      AUTHENTICATE_CONCURRENCY,
      (i) => toAuthenticate[i] ?? '',
      (id) => env.emulator.authenticate(id),
      ctx.progress('authenticating'),
    );
    ctx.clearProgress();
    if (authenticated.failed > 0) {
      throw new Error(`${authenticated.failed} authentications failed: ${authenticated.firstFailure ?? ''}`);
    }
    const completedWait = await waitForCount(
      env,
      `${base} AND ExecutionStatus = 'Completed'`,
      n,
      ctx.progress('completing'),
    );
    ctx.clearProgress();
    const allCompletedAfterAuthenticationMs = performance.now() - authStart;
    const completed = await countWorkflows(env, `${base} AND ExecutionStatus = 'Completed'`);
    const statsDone = await env.emulator.stats();
    const exact = await chargedExactlyOnce(env, started.orderIds);
    const deliveries = webhookDeliveryFigures(await env.emulator.webhookDeliveries());
    ctx.log(
      `webhook deliveries (last ${deliveries.records} records): ${deliveries.succeeded} succeeded, ` +
        `${deliveries.failed} failed, ${deliveries.pending} pending; ${deliveries.attempts} attempts, ` +
        `${deliveries.answered503} answered 503, ${deliveries.noAnswer} unanswered, at most ` +
        `${deliveries.maxAttemptsForOneDelivery} for one delivery`,
    );
    ctx.log(
      `authenticated ${toAuthenticate.length} in ${(authenticated.elapsedMs / 1000).toFixed(1)} s; all completed ` +
        `${(completedWait / 1000).toFixed(1)} s after the first authentication; ${exact} charged exactly once`,
    );
    return {
      checkouts: n,
      webhookDeliveries: deliveries,
      paymentPollIntervalMs: opts.waitingPollMs ?? 'default (5000)',
      paymentActionTimeoutMs: opts.waitingTimeoutMs ?? 'default (3600000)',
      startMs: Math.round(started.elapsedMs),
      allWaitingAfterMs: Math.round(started.elapsedMs + waitingFor),
      worker: {
        measured: 'worker child process, after a forced GC',
        maxCachedWorkflows: worker.maxCachedWorkflows,
        baselineRssMiB: toMiB(baseline.rssBytes),
        waitingRssMiB: toMiB(waiting.rssBytes),
        baselineHeapUsedMiB: toMiB(baseline.heapUsedBytes),
        waitingHeapUsedMiB: toMiB(waiting.heapUsedBytes),
        rssKiBPerWaitingCheckout: kib(waiting.rssBytes - baseline.rssBytes, n),
        heapKiBPerWaitingCheckout: kib(waiting.heapUsedBytes - baseline.heapUsedBytes, n),
      },
      server: {
        measured: 'dev server process RSS (/proc)',
        baselineRssMiB: baselineServer === undefined ? undefined : toMiB(baselineServer),
        waitingRssMiB: waitingServer === undefined ? undefined : toMiB(waitingServer),
        rssKiBPerWaitingCheckout:
          baselineServer === undefined || waitingServer === undefined
            ? undefined
            : kib(waitingServer - baselineServer, n),
      },
      stripeRequestsUntilWaiting: statsDelta(statsAtStart, statsWaiting).by_route,
      stripeRequestsToComplete: statsDelta(statsWaiting, statsDone).by_route,
      authenticateMs: Math.round(authenticated.elapsedMs),
      allCompletedAfterAuthenticationMs: Math.round(allCompletedAfterAuthenticationMs),
      completed,
      notCompleted: Math.max(0, n - completed),
      chargedExactlyOnce: exact,
    };
  } finally {
    await worker?.stop();
    await intake.close();
  }
}

export async function runScale(
  env: BenchEnvironment,
  opts: ScaleOptions,
  ctx: ScaleContext,
): Promise<ScaleReport> {
  ctx.log('\nscale: one versus two worker processes');
  const workers = await workersScale(env, opts, ctx);
  ctx.log(`\nscale: ${opts.waiting} checkouts waiting on 3-D Secure at once`);
  const waiting = await waitingScale(env, opts, ctx);
  const ok =
    workers.oneProcess.failed === 0 &&
    workers.twoProcesses.failed === 0 &&
    waiting.notCompleted === 0 &&
    waiting.chargedExactlyOnce === waiting.checkouts;
  return { ok, workers, waiting };
}
