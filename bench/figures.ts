/**
 * The benchmark's figures and how they are printed: latency percentiles, the per-run record, the
 * checkout-to-floor ratios with the issue's targets, and the terminal tables. Pure functions, so the
 * test can check them on made-up numbers.
 */
import type { RequestStats } from '../src/stripe-emulator';

export const MODES = ['floor', 'checkout', 'direct', 'shaped-floor', 'local-floor', 'working-floor'] as const;
export type Mode = (typeof MODES)[number];
/** What `npm run bench` runs; the shaped floors are diagnostics, asked for with `--modes`. */
export const DEFAULT_MODES: readonly Mode[] = ['floor', 'checkout', 'direct'];

/** The targets issue 6 sets for the checkout against the floor. */
export const TARGETS = { minThroughputRatio: 0.9, maxP99Ratio: 1.2 } as const;

const MiB = 1024 * 1024;

export interface LatencySummary {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export interface MemoryFigures {
  /** Where it was measured: the worker processes (children of the benchmark), summed. */
  readonly measured: 'worker child processes';
  readonly processes: number;
  readonly peakRssMiB: number;
  readonly peakHeapUsedMiB: number;
}

/**
 * CPU time per completed checkout, by process. On a machine shared with other work this is steadier
 * than throughput: it counts what a checkout costs, not how much CPU it happened to get.
 */
export interface CpuFigures {
  readonly serverMs: number | undefined;
  readonly workerMs: number | undefined;
  /** The benchmark process: the Temporal client, the local Stripe server's thread, the direct loop. */
  readonly benchProcessMs: number;
}

export interface RunFigures {
  readonly mode: Mode;
  readonly concurrency: number;
  readonly workerProcesses: number;
  readonly requested: number;
  readonly completed: number;
  readonly failed: number;
  readonly firstFailure: string | undefined;
  readonly elapsedMs: number;
  readonly checkoutsPerSecond: number;
  readonly latencyMs: LatencySummary;
  readonly stripeRequests: number;
  readonly stripeRequestsPerCheckout: number;
  readonly stripeRequestsByRoute: Readonly<Record<string, number>>;
  /** Undefined for `direct`, which has no worker. */
  readonly workerMemory: MemoryFigures | undefined;
  readonly serverPeakRssMiB: number | undefined;
  readonly cpuMsPerCheckout: CpuFigures;
  /** Orders whose PaymentIntents show exactly one successful charge (the modes that charge). */
  readonly chargedExactlyOnce: number | undefined;
  /** How many interleaved rounds these figures merge (`mergeRounds`). */
  readonly rounds: number;
}

/** One round of one mode at one level: its figures and the latencies they summarize. */
export interface RoundResult {
  readonly figures: RunFigures;
  readonly latenciesMs: readonly number[];
}

/**
 * The order in which round `round` runs the modes of a level: as given in even rounds, reversed in
 * odd ones (floor, checkout, direct, direct, checkout, floor). Every mode then sits at the same
 * average position, so whatever drifts during a run in one direction (the dev server's in-memory
 * database grows with every workflow it keeps, and in a single pass the mode that runs second
 * measured 10 ms of server CPU more per checkout than the same mode run first) weighs on all modes alike.
 */
export function roundOrder<T>(modes: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...modes] : [...modes].reverse();
}

/**
 * Merges the rounds of one mode at one level into the figures of one run: counts and time add up,
 * throughput is all checkouts over all the time spent on them, latency percentiles come from every
 * latency, CPU per checkout is the total over the total, memory is the highest peak.
 */
export function mergeRounds(rounds: readonly RoundResult[]): RunFigures {
  const first = rounds[0];
  if (first === undefined) throw new Error('mergeRounds needs at least one round');
  const figures = rounds.map((r) => r.figures);
  const sum = (f: (r: RunFigures) => number): number => figures.reduce((s, r) => s + f(r), 0);
  const completed = sum((r) => r.completed);
  const elapsedMs = sum((r) => r.elapsedMs);
  const stripeRequests = sum((r) => r.stripeRequests);
  const byRoute: Record<string, number> = {};
  for (const r of figures) {
    for (const [route, n] of Object.entries(r.stripeRequestsByRoute))
      byRoute[route] = (byRoute[route] ?? 0) + n;
  }
  /** Per-checkout CPU back to totals, summed, over all completed checkouts. */
  const cpu = (f: (c: CpuFigures) => number | undefined): number | undefined => {
    if (figures.some((r) => f(r.cpuMsPerCheckout) === undefined)) return undefined;
    const total = figures.reduce(
      (s, r) => s + (r.completed === 0 ? 0 : (f(r.cpuMsPerCheckout) ?? 0) * r.completed),
      0,
    );
    return completed === 0 ? Number.NaN : total / completed;
  };
  const peak = (f: (r: RunFigures) => number | undefined): number | undefined => {
    const values = figures.map(f).filter((v): v is number => v !== undefined);
    return values.length === 0 ? undefined : Math.max(...values);
  };
  const memories = figures.map((r) => r.workerMemory).filter((m): m is MemoryFigures => m !== undefined);
  const charged = figures.map((r) => r.chargedExactlyOnce);
  return {
    mode: first.figures.mode,
    concurrency: first.figures.concurrency,
    workerProcesses: first.figures.workerProcesses,
    requested: sum((r) => r.requested),
    completed,
    failed: sum((r) => r.failed),
    firstFailure: figures.find((r) => r.firstFailure !== undefined)?.firstFailure,
    elapsedMs,
    checkoutsPerSecond: elapsedMs === 0 ? Number.NaN : (completed / elapsedMs) * 1000,
    latencyMs: summarize(rounds.flatMap((r) => r.latenciesMs)),
    stripeRequests,
    stripeRequestsPerCheckout: completed === 0 ? Number.NaN : stripeRequests / completed,
    stripeRequestsByRoute: byRoute,
    workerMemory:
      memories.length === 0
        ? undefined
        : {
            measured: 'worker child processes',
            processes: Math.max(...memories.map((m) => m.processes)),
            peakRssMiB: Math.max(...memories.map((m) => m.peakRssMiB)),
            peakHeapUsedMiB: Math.max(...memories.map((m) => m.peakHeapUsedMiB)),
          },
    serverPeakRssMiB: peak((r) => r.serverPeakRssMiB),
    cpuMsPerCheckout: {
      serverMs: cpu((c) => c.serverMs),
      workerMs: cpu((c) => c.workerMs),
      benchProcessMs: cpu((c) => c.benchProcessMs) ?? Number.NaN,
    },
    chargedExactlyOnce: charged.some((c) => c === undefined)
      ? undefined
      : charged.reduce((s: number, c) => s + (c ?? 0), 0),
    rounds: rounds.length,
  };
}

export interface Ratio {
  readonly concurrency: number;
  /** checkout ÷ floor, server plus worker CPU per checkout. */
  readonly temporalCpu: number | undefined;
  /** checkout checkouts/s ÷ floor checkouts/s: the target is ≥ 0.9. */
  readonly throughput: number;
  /** checkout p99 ÷ floor p99: the target is ≤ 1.2. */
  readonly p99: number;
  readonly p50: number;
  readonly meetsThroughput: boolean;
  readonly meetsP99: boolean;
  /** direct ÷ checkout throughput: what durability costs in checkouts per second. */
  readonly directToCheckoutThroughput: number | undefined;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

export function summarize(latencies: readonly number[]): LatencySummary {
  const sorted = [...latencies].sort((a, b) => a - b);
  const sum = sorted.reduce((s, v) => s + v, 0);
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: percentile(sorted, 100),
    mean: sorted.length === 0 ? Number.NaN : sum / sorted.length,
  };
}

export function requestsPerCheckout(stats: RequestStats, completed: number): number {
  return completed === 0 ? Number.NaN : stats.total / completed;
}

export function toMiB(bytes: number): number {
  return Math.round((bytes / MiB) * 10) / 10;
}

export function ratios(runs: readonly RunFigures[]): Ratio[] {
  const levels = [...new Set(runs.map((r) => r.concurrency))].sort((a, b) => a - b);
  const out: Ratio[] = [];
  for (const concurrency of levels) {
    const at = (mode: Mode): RunFigures | undefined =>
      runs.find((r) => r.mode === mode && r.concurrency === concurrency && r.workerProcesses <= 1);
    const floor = at('floor');
    const checkout = at('checkout');
    const direct = at('direct');
    if (!floor || !checkout) continue;
    const throughput = checkout.checkoutsPerSecond / floor.checkoutsPerSecond;
    const p99 = checkout.latencyMs.p99 / floor.latencyMs.p99;
    const temporalCpu = (r: RunFigures): number | undefined =>
      r.cpuMsPerCheckout.serverMs === undefined || r.cpuMsPerCheckout.workerMs === undefined
        ? undefined
        : r.cpuMsPerCheckout.serverMs + r.cpuMsPerCheckout.workerMs;
    const checkoutCpu = temporalCpu(checkout);
    const floorCpu = temporalCpu(floor);
    out.push({
      concurrency,
      temporalCpu: checkoutCpu === undefined || floorCpu === undefined ? undefined : checkoutCpu / floorCpu,
      throughput,
      p99,
      p50: checkout.latencyMs.p50 / floor.latencyMs.p50,
      meetsThroughput: throughput >= TARGETS.minThroughputRatio,
      meetsP99: p99 <= TARGETS.maxP99Ratio,
      directToCheckoutThroughput: direct
        ? direct.checkoutsPerSecond / checkout.checkoutsPerSecond
        : undefined,
    });
  }
  return out;
}

function fixed(v: number | undefined, digits: number): string {
  return v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits);
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function runRow(r: RunFigures): string[] {
  return [
    r.mode,
    `${r.concurrency}${r.workerProcesses > 1 ? ` (${r.workerProcesses} workers)` : ''}`,
    `${r.completed}${r.failed > 0 ? ` (${r.failed} failed)` : ''}`,
    fixed(r.checkoutsPerSecond, 1),
    fixed(r.latencyMs.p50, 0),
    fixed(r.latencyMs.p95, 0),
    fixed(r.latencyMs.p99, 0),
    fixed(r.stripeRequestsPerCheckout, 2),
    fixed(r.workerMemory?.peakRssMiB, 0),
    fixed(r.workerMemory?.peakHeapUsedMiB, 0),
    fixed(r.serverPeakRssMiB, 0),
    fixed(r.cpuMsPerCheckout.serverMs, 1),
    fixed(r.cpuMsPerCheckout.workerMs, 1),
    fixed(r.cpuMsPerCheckout.benchProcessMs, 1),
  ];
}

export const RUN_HEADER = [
  'mode',
  'concurrency',
  'checkouts',
  'checkouts/s',
  'p50 ms',
  'p95 ms',
  'p99 ms',
  'Stripe req/checkout',
  'worker RSS MiB',
  'worker heap MiB',
  'server RSS MiB',
  'CPU ms/ckout: server',
  'worker',
  'client+Stripe',
] as const;

/** One row padded to the header's widths, for printing rows as their runs finish. */
export function liveRow(r: RunFigures): string {
  return runRow(r)
    .map((c, i) => {
      const w = Math.max(RUN_HEADER[i]?.length ?? 0, 8);
      return i < 2 ? c.padEnd(w) : c.padStart(w);
    })
    .join('  ');
}

export function liveHeader(): string {
  return RUN_HEADER.map((h) => (h.length < 8 ? h.padEnd(8) : h)).join('  ');
}

export function runsTable(runs: readonly RunFigures[]): string {
  return table(RUN_HEADER, runs.map(runRow));
}

export function ratiosTable(rs: readonly Ratio[]): string {
  return table(
    [
      'concurrency',
      'target',
      'throughput ckout/floor',
      'p99 ckout/floor',
      'p50 ckout/floor',
      'server+worker CPU ckout/floor',
      'direct/ckout throughput',
    ],
    rs.map((r) => [
      String(r.concurrency),
      `${r.meetsThroughput ? 'met' : 'MISSED'} / ${r.meetsP99 ? 'met' : 'MISSED'}`,
      `${fixed(r.throughput, 3)} (>= ${TARGETS.minThroughputRatio})`,
      `${fixed(r.p99, 3)} (<= ${TARGETS.maxP99Ratio})`,
      fixed(r.p50, 2),
      fixed(r.temporalCpu, 2),
      fixed(r.directToCheckoutThroughput, 2),
    ]),
  );
}
