/**
 * `npm run bench -- [--quick] [--scale] [--out results.json] [--checkouts N] [--concurrency 1,10,100,500]
 *  [--warmup N] [--workflow-slots 20] [--activity-slots 20] [--waiting 10000] [--waiting-poll-ms N]
 *  [--waiting-timeout-ms N] [--modes floor,checkout,direct] [--floor-kind auto|activity|local]`
 *
 * The checkout benchmark (issue 6). In one process tree and one run, on one pinned Temporal dev
 * server (in memory) and one local Stripe server (a worker thread of this process), it runs at each
 * concurrency level:
 *
 *   floor     a workflow with the checkout's three activity calls, doing no work (floor-workflows.ts);
 *   checkout  the product's card happy path: `startCheckout`, the real workflow and activities, the
 *             Stripe SDK against the local Stripe server, SQLite provisioning;
 *   direct    the same Stripe requests and provisioning from a plain loop, without Temporal.
 *
 * and prints checkouts per second, p50/p95/p99 latency (start call to completed result), Stripe
 * requests per checkout (the Stripe server's own request counts), the worker processes' peak RSS and
 * heap (each worker is a child process: worker-process.ts), the dev server's peak RSS, and the
 * checkout-to-floor ratios against the targets (throughput ≥ 0.9×, p99 ≤ 1.2×). Every checkout's
 * PaymentIntents are read back from the Stripe ledger: each order must show exactly one charge.
 *
 * The floor makes the same number and kind of activity calls as the checkout: the kind (ordinary or
 * local) is read from a warm-up checkout's history and checked against a floor's (`--floor-kind`
 * forces it).
 *
 * `--quick` runs concurrency 1 and 10 with fewer checkouts (well under two minutes); `--scale` adds
 * one-versus-two worker processes and `--waiting` checkouts held in 3-D Secure at once (scale.ts).
 * `--out` writes everything as JSON. Exit code 1 if any checkout failed or was not charged exactly once.
 */
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startBenchEnvironment, type BenchEnvironment } from './environment';
import {
  DEFAULT_MODES,
  MODES,
  ratios,
  ratiosTable,
  liveHeader,
  liveRow,
  mergeRounds,
  roundOrder,
  runsTable,
  type Mode,
  type RoundResult,
  type Ratio,
  type RunFigures,
} from './figures';
import {
  activityCallsOf,
  floorWorkflowId,
  runMode,
  runModeRound,
  type ActivityCalls,
  type Progress,
} from './runs';
import {
  DEFAULT_MAX_CONCURRENT_ACTIVITY_TASKS,
  DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS,
  DEFAULT_WORKFLOW_THREADS,
} from '../src/config';
import { checkoutWorkflowId } from '../src/workflows/definitions';
import type { FloorActivityKind } from './floor-activities';
import { runScale, type ScaleOptions, type ScaleReport } from './scale';
import type { BenchWorker, WorkerTuning } from './worker-host';

export interface Level {
  readonly concurrency: number;
  readonly checkouts: number;
}

export interface BenchOptions {
  readonly levels: readonly Level[];
  readonly modes: readonly Mode[];
  /** Unmeasured checkouts per mode before the first level (JIT, bundles, caches). */
  readonly warmup: number;
  /**
   * Each level's checkouts are split into this many rounds, the modes taking turns in mirrored
   * order (`roundOrder`); each mode's rounds are merged into one row (`mergeRounds`). Default 2.
   */
  readonly rounds: number;
  readonly tuning: WorkerTuning;
  readonly scale: ScaleOptions | undefined;
  /**
   * The kind of activity the floor's three calls are. `auto` (the default) reads it from a warm-up
   * checkout's history, so the floor always makes the same number and kind of calls as the product.
   */
  readonly floorKind: FloorActivityKind | 'auto';
}

/** The activity calls one checkout and one floor made (from their histories); they must match. */
export interface ActivityCallsReport {
  readonly floorKind: FloorActivityKind;
  readonly checkout: ActivityCalls | undefined;
  readonly floor: ActivityCalls | undefined;
}

export interface MachineInfo {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly totalMemoryGiB: number;
  readonly freeMemoryGiB: number;
  readonly node: string;
  readonly platform: string;
  readonly loadAverageAtStart: readonly number[];
  readonly loadAverageAtEnd: readonly number[];
}

export interface BenchReport {
  readonly startedAt: string;
  readonly command: string;
  readonly machine: MachineInfo;
  readonly options: BenchOptions;
  readonly runs: readonly RunFigures[];
  readonly ratios: readonly Ratio[];
  readonly activityCalls: ActivityCallsReport;
  readonly scale: ScaleReport | undefined;
}

/** The checkout's worker defaults (src/worker.ts); the floor runs with the same. */
export const DEFAULT_TUNING: WorkerTuning = {
  maxConcurrentWorkflowTaskExecutions: DEFAULT_MAX_CONCURRENT_WORKFLOW_TASKS,
  maxConcurrentActivityTaskExecutions: DEFAULT_MAX_CONCURRENT_ACTIVITY_TASKS,
  workflowThreadPoolSize: DEFAULT_WORKFLOW_THREADS,
};

export const FULL_LEVELS: readonly Level[] = [
  { concurrency: 1, checkouts: 50 },
  { concurrency: 10, checkouts: 600 },
  { concurrency: 100, checkouts: 1_000 },
  { concurrency: 500, checkouts: 2_000 },
];

export const QUICK_LEVELS: readonly Level[] = [
  { concurrency: 1, checkouts: 20 },
  { concurrency: 10, checkouts: 100 },
];

const USAGE =
  'usage: npm run bench -- [--quick] [--scale] [--out FILE] [--checkouts N] [--concurrency 1,10,100,500] ' +
  '[--modes floor,checkout,direct] [--floor-kind auto|activity|local] [--warmup N] [--rounds N] [--workflow-slots N] ' +
  '[--activity-slots N] [--workflow-threads N] [--waiting N] [--waiting-poll-ms N] [--waiting-timeout-ms N]';

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`--${name} must be a non-negative integer, got '${value}'`);
  return n;
}

export function parseOptions(argv: readonly string[]): { options: BenchOptions; out: string | undefined } {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      quick: { type: 'boolean' },
      scale: { type: 'boolean' },
      out: { type: 'string' },
      checkouts: { type: 'string' },
      concurrency: { type: 'string' },
      modes: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      'workflow-slots': { type: 'string' },
      'activity-slots': { type: 'string' },
      'workflow-threads': { type: 'string' },
      waiting: { type: 'string' },
      'waiting-poll-ms': { type: 'string' },
      'waiting-timeout-ms': { type: 'string' },
      'floor-kind': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  let levels = quick ? QUICK_LEVELS : FULL_LEVELS;
  if (values.concurrency !== undefined) {
    levels = values.concurrency.split(',').map((c) => {
      const concurrency = positive('concurrency', c.trim(), 1);
      if (concurrency < 1) throw new Error('--concurrency levels must be at least 1');
      const known = [...FULL_LEVELS, ...QUICK_LEVELS].find((l) => l.concurrency === concurrency);
      return { concurrency, checkouts: known?.checkouts ?? concurrency * 5 };
    });
  }
  if (values.checkouts !== undefined) {
    const checkouts = positive('checkouts', values.checkouts, 1);
    if (checkouts < 1) throw new Error('--checkouts must be at least 1');
    levels = levels.map((l) => ({ ...l, checkouts }));
  }
  const modes = (values.modes ?? DEFAULT_MODES.join(',')).split(',').map((m) => {
    const mode = MODES.find((known) => known === m.trim());
    if (!mode) throw new Error(`--modes takes ${MODES.join(', ')}; got '${m}'`);
    return mode;
  });
  const tuning: WorkerTuning = {
    maxConcurrentWorkflowTaskExecutions: positive(
      'workflow-slots',
      values['workflow-slots'],
      DEFAULT_TUNING.maxConcurrentWorkflowTaskExecutions,
    ),
    maxConcurrentActivityTaskExecutions: positive(
      'activity-slots',
      values['activity-slots'],
      DEFAULT_TUNING.maxConcurrentActivityTaskExecutions,
    ),
    workflowThreadPoolSize: positive(
      'workflow-threads',
      values['workflow-threads'],
      DEFAULT_TUNING.workflowThreadPoolSize,
    ),
  };
  if (tuning.workflowThreadPoolSize < 1) throw new Error('--workflow-threads must be at least 1');
  const scale: ScaleOptions | undefined = values.scale
    ? {
        waiting: positive('waiting', values.waiting, 10_000),
        waitingPollMs:
          values['waiting-poll-ms'] === undefined
            ? undefined
            : positive('waiting-poll-ms', values['waiting-poll-ms'], 0),
        waitingTimeoutMs:
          values['waiting-timeout-ms'] === undefined
            ? undefined
            : positive('waiting-timeout-ms', values['waiting-timeout-ms'], 0),
        workersConcurrency: 100,
        workersCheckouts: quick ? 300 : 600,
      }
    : undefined;
  const rounds = positive('rounds', values.rounds, 2);
  if (rounds < 1) throw new Error('--rounds must be at least 1');
  // A round smaller than its level's concurrency never has that many checkouts in flight: the
  // level would be measured at a lower concurrency than it says.
  const short = levels.find((l) => Math.floor(l.checkouts / rounds) < l.concurrency);
  if (short) {
    throw new Error(
      `--rounds ${rounds}: at concurrency ${short.concurrency}, ${short.checkouts} checkouts make rounds of ` +
        `${Math.floor(short.checkouts / rounds)}, too few to keep ${short.concurrency} in flight; ` +
        `give --checkouts at least ${short.concurrency * rounds} or fewer rounds`,
    );
  }
  const floorKind = values['floor-kind'] ?? 'auto';
  if (floorKind !== 'auto' && floorKind !== 'activity' && floorKind !== 'local') {
    throw new Error(`--floor-kind takes auto, activity or local; got '${floorKind}'`);
  }
  return {
    options: {
      levels,
      modes,
      warmup: positive('warmup', values.warmup, quick ? 10 : 50),
      rounds,
      tuning,
      scale,
      floorKind,
    },
    out: values.out,
  };
}

function machine(loadAtStart: readonly number[]): MachineInfo {
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    totalMemoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    freeMemoryGiB: Math.round((freemem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAverageAtStart: loadAtStart.map((l) => Math.round(l * 100) / 100),
    loadAverageAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** Progress on one rewritten line on a terminal, a line every 10 s otherwise. */
function progressLine(label: string, write: (line: string) => void): Progress {
  const tty = process.stdout.isTTY;
  let lastPrinted = 0;
  return (done, failed, total, elapsedMs) => {
    const rate = elapsedMs > 0 ? (done / elapsedMs) * 1000 : 0;
    const text = `  ${label}: ${done}/${total}${failed > 0 ? ` (${failed} failed)` : ''}  ${rate.toFixed(1)}/s  ${(elapsedMs / 1000).toFixed(0)} s`;
    if (tty) process.stdout.write(`\r${text.padEnd(70)}`);
    else if (elapsedMs - lastPrinted >= 10_000 || done + failed === total) {
      lastPrinted = elapsedMs;
      write(text);
    }
  };
}

function clearProgress(): void {
  if (process.stdout.isTTY) process.stdout.write(`\r${' '.repeat(72)}\r`);
}

/**
 * The benchmark's core: starts the environment, runs every mode at every level (interleaved per
 * level, so drifting background load hits every mode alike), optionally the scale runs, and returns
 * the report. `log` receives the progress and the table rows as they complete.
 */
export async function runBenchmark(options: BenchOptions, log: (line: string) => void): Promise<BenchReport> {
  const loadAtStart = loadavg();
  const startedAt = new Date().toISOString();
  const env: BenchEnvironment = await startBenchEnvironment(log);
  try {
    const queues = { checkout: `${env.runId}-checkout`, floor: `${env.runId}-floor` } as const;
    const workers: Record<Mode, BenchWorker[]> = {
      checkout: [],
      floor: [],
      direct: [],
      'shaped-floor': [],
      'local-floor': [],
      'working-floor': [],
    };
    log('starting one worker process per workflow kind (bundling the workflows)');
    if (options.modes.includes('checkout')) {
      workers.checkout = await env.startWorkers('checkout', 1, queues.checkout, options.tuning);
    }
    if (options.modes.some((m) => m.endsWith('floor'))) {
      workers.floor = await env.startWorkers('floor', 1, queues.floor, options.tuning);
    }
    workers['shaped-floor'] = workers.floor;
    workers['local-floor'] = workers.floor;
    workers['working-floor'] = workers.floor;
    const taskQueue = (mode: Mode): string => (mode.endsWith('floor') ? queues.floor : queues.checkout);

    // Warm-ups, the checkout's first: its history says which kind of activity the floor must use.
    let floorKind: FloorActivityKind = options.floorKind === 'auto' ? 'activity' : options.floorKind;
    const activityCalls: { checkout?: ActivityCalls; floor?: ActivityCalls } = {};
    const warmupModes = [...options.modes].sort(
      (a, b) => Number(b === 'checkout') - Number(a === 'checkout'),
    );
    for (const mode of warmupModes) {
      // The checkout and the floor warm up at least once: their first histories are compared.
      const count = mode === 'checkout' || mode === 'floor' ? Math.max(1, options.warmup) : options.warmup;
      if (count === 0) continue;
      const label = `${env.runId}-warmup-${mode}`;
      await runMode(
        env,
        {
          mode,
          floorKind,
          concurrency: Math.min(10, count),
          count,
          label,
          taskQueue: taskQueue(mode),
          workers: workers[mode],
        },
        progressLine(`warm-up ${mode}`, log),
      );
      clearProgress();
      if (mode === 'checkout') {
        activityCalls.checkout = await activityCallsOf(env.client, checkoutWorkflowId(`${label}-0`));
        if (options.floorKind === 'auto')
          floorKind = activityCalls.checkout.localActivities > 0 ? 'local' : 'activity';
      }
      if (mode === 'floor')
        activityCalls.floor = await activityCallsOf(env.client, floorWorkflowId(`${label}-0`));
    }
    const describeCalls = (c: ActivityCalls | undefined): string =>
      c === undefined ? '-' : `${c.activities} ordinary + ${c.localActivities} local`;
    log(
      `activity calls per run: checkout ${describeCalls(activityCalls.checkout)}, floor ` +
        `${describeCalls(activityCalls.floor)} (floor kind: ${floorKind})`,
    );
    const { checkout: checkoutCalls, floor: floorCalls } = activityCalls;
    if (
      checkoutCalls &&
      floorCalls &&
      (checkoutCalls.activities !== floorCalls.activities ||
        checkoutCalls.localActivities !== floorCalls.localActivities)
    ) {
      throw new Error(
        `the floor does not make the checkout's activity calls (checkout ${describeCalls(checkoutCalls)}, ` +
          `floor ${describeCalls(floorCalls)}): the comparison would not be fair`,
      );
    }

    log(`\n${liveHeader()}`);
    const runs: RunFigures[] = [];
    for (const level of options.levels) {
      const done = new Map<Mode, RoundResult[]>(options.modes.map((m) => [m, []]));
      for (let round = 0; round < options.rounds; round++) {
        // Split as evenly as the count allows; every round gets at least one checkout.
        const count =
          Math.floor(level.checkouts / options.rounds) + (round < level.checkouts % options.rounds ? 1 : 0);
        for (const mode of roundOrder(options.modes, round)) {
          const result = await runModeRound(
            env,
            {
              mode,
              floorKind,
              concurrency: level.concurrency,
              count,
              label: `${env.runId}-${mode}-c${level.concurrency}-r${round}`,
              taskQueue: taskQueue(mode),
              workers: workers[mode],
            },
            progressLine(
              `${mode} at ${level.concurrency}${options.rounds > 1 ? `, round ${round + 1}/${options.rounds}` : ''}`,
              log,
            ),
          );
          clearProgress();
          done.get(mode)?.push(result);
          if (result.figures.firstFailure) log(`    first failure: ${result.figures.firstFailure}`);
        }
      }
      for (const mode of options.modes) {
        const figures = mergeRounds(done.get(mode) ?? []);
        runs.push(figures);
        log(liveRow(figures));
      }
    }

    let scale: ScaleReport | undefined;
    if (options.scale) {
      scale = await runScale(env, options.scale, {
        tuning: options.tuning,
        checkoutWorkers: workers.checkout,
        log,
        progress: (label) => progressLine(label, log),
        clearProgress,
      });
    }

    return {
      startedAt,
      command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
      machine: machine(loadAtStart),
      options,
      runs,
      ratios: ratios(runs),
      activityCalls: { floorKind, checkout: activityCalls.checkout, floor: activityCalls.floor },
      scale,
    };
  } finally {
    await env.close();
  }
}

/** True when every checkout completed and every charged order was charged exactly once. */
export function allGood(report: BenchReport): boolean {
  const runsOk = report.runs.every(
    (r) => r.failed === 0 && (r.chargedExactlyOnce === undefined || r.chargedExactlyOnce === r.completed),
  );
  return runsOk && (report.scale === undefined || report.scale.ok);
}

async function main(): Promise<void> {
  const { options, out } = parseOptions(process.argv.slice(2));
  const report = await runBenchmark(options, (line) => console.log(line));
  console.log(`\nAll runs\n${runsTable(report.runs)}`);
  console.log(`\nCheckout against the floor\n${ratiosTable(report.ratios)}`);
  const m = report.machine;
  console.log(
    `\n${m.nproc} CPUs (${m.cpuModel}), ${m.totalMemoryGiB} GiB, node ${m.node}; ` +
      `load average ${m.loadAverageAtStart.join(' ')} at start, ${m.loadAverageAtEnd.join(' ')} at end`,
  );
  if (out !== undefined) {
    writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`wrote ${out}`);
  }
  if (!allGood(report)) {
    console.error('some checkouts failed or were not charged exactly once (see the table)');
    process.exitCode = 1;
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    console.error(USAGE);
    process.exit(1);
  });
}
