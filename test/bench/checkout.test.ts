/**
 * The checkout benchmark's core at a tiny size: five checkouts per mode at concurrency 1 and 2, on a
 * real dev server, Stripe emulator and worker processes. It checks that every figure is there and
 * well formed, never how fast anything was: the machine running the tests decides that.
 */
import assert from 'node:assert/strict';
import { allGood, parseOptions, runBenchmark, type BenchReport } from '../../bench/checkout';
import {
  DEFAULT_MODES,
  mergeRounds,
  percentile,
  ratios,
  roundOrder,
  summarize,
  type RoundResult,
} from '../../bench/figures';

function finitePositive(v: number | undefined, what: string): void {
  assert.ok(
    v !== undefined && Number.isFinite(v) && v > 0,
    `${what} should be a positive number, got ${String(v)}`,
  );
}

describe('checkout benchmark', function () {
  this.timeout(300_000);
  let report: BenchReport;

  before(async function () {
    const { options } = parseOptions([
      '--quick',
      '--checkouts',
      '5',
      '--concurrency',
      '1,2',
      '--warmup',
      '2',
    ]);
    report = await runBenchmark(options, () => {});
  });

  it('runs every mode at every level and completes every checkout', function () {
    assert.equal(report.runs.length, 2 * DEFAULT_MODES.length);
    for (const run of report.runs) {
      assert.equal(run.requested, 5);
      assert.equal(run.rounds, 2, 'split into two interleaved rounds by default');
      assert.equal(run.completed, 5, `${run.mode} at ${run.concurrency}: ${run.firstFailure ?? ''}`);
      assert.equal(run.failed, 0);
    }
    assert.ok(allGood(report));
  });

  it('reports throughput and ordered latency percentiles for every run', function () {
    for (const run of report.runs) {
      finitePositive(run.checkoutsPerSecond, `${run.mode} checkouts/s`);
      finitePositive(run.latencyMs.p50, `${run.mode} p50`);
      assert.ok(run.latencyMs.p50 <= run.latencyMs.p95);
      assert.ok(run.latencyMs.p95 <= run.latencyMs.p99);
      assert.ok(run.latencyMs.p99 <= run.latencyMs.max);
    }
  });

  it('counts two Stripe requests per card checkout and none for the floor', function () {
    for (const run of report.runs) {
      if (run.mode === 'floor') {
        assert.equal(run.stripeRequests, 0);
      } else {
        assert.equal(run.stripeRequestsPerCheckout, 2);
        assert.deepEqual(run.stripeRequestsByRoute, {
          'POST /v1/payment_intents': 5,
          'POST /v1/payment_intents/:id/confirm': 5,
        });
        assert.equal(run.chargedExactlyOnce, 5);
      }
    }
  });

  it('gives the floor the same number and kind of activity calls as the checkout (read from their histories)', function () {
    const { checkout, floor, floorKind } = report.activityCalls;
    assert.ok(checkout && floor, 'both histories were read');
    assert.deepEqual(floor, checkout);
    assert.equal(checkout.activities + checkout.localActivities, 3, 'create, confirm, provision');
    assert.equal(floorKind, checkout.localActivities > 0 ? 'local' : 'activity');
  });

  it('measures worker memory in the worker processes, and none for the direct loop', function () {
    for (const run of report.runs) {
      if (run.mode === 'direct') {
        assert.equal(run.workerMemory, undefined);
        continue;
      }
      assert.equal(run.workerMemory?.processes, 1);
      finitePositive(run.workerMemory?.peakRssMiB, `${run.mode} worker RSS`);
      finitePositive(run.workerMemory?.peakHeapUsedMiB, `${run.mode} worker heap`);
      finitePositive(run.serverPeakRssMiB, `${run.mode} server RSS`);
      finitePositive(run.cpuMsPerCheckout.workerMs, `${run.mode} worker CPU per checkout`);
    }
  });

  it('gives a checkout-to-floor ratio per level and records the machine', function () {
    assert.deepEqual(
      report.ratios.map((r) => r.concurrency),
      [1, 2],
    );
    for (const r of report.ratios) {
      finitePositive(r.throughput, 'throughput ratio');
      finitePositive(r.p99, 'p99 ratio');
      finitePositive(r.directToCheckoutThroughput, 'direct-to-checkout ratio');
      assert.equal(typeof r.meetsThroughput, 'boolean');
    }
    assert.ok(report.machine.nproc >= 1);
    assert.match(report.machine.node, /^v\d+/);
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(report)) as unknown);
  });
});

describe('checkout benchmark diagnostic floors', function () {
  this.timeout(300_000);
  let report: BenchReport;

  before(async function () {
    const { options } = parseOptions([
      '--checkouts',
      '4',
      '--concurrency',
      '2',
      '--warmup',
      '1',
      '--modes',
      'floor,shaped-floor,local-floor,working-floor',
    ]);
    report = await runBenchmark(options, () => {});
  });

  it('runs each diagnostic floor to completion on the floor worker', function () {
    assert.deepEqual(
      report.runs.map((r) => r.mode),
      ['floor', 'shaped-floor', 'local-floor', 'working-floor'],
    );
    for (const run of report.runs) {
      assert.equal(run.completed, 4, `${run.mode}: ${run.firstFailure ?? ''}`);
      assert.equal(run.workerMemory?.processes, 1);
    }
    assert.ok(allGood(report));
  });

  it("makes the working floor do the checkout's Stripe requests, charging each order once, and the others none", function () {
    for (const run of report.runs) {
      if (run.mode === 'working-floor') {
        assert.deepEqual(run.stripeRequestsByRoute, {
          'POST /v1/payment_intents': 4,
          'POST /v1/payment_intents/:id/confirm': 4,
        });
        assert.equal(run.chargedExactlyOnce, 4);
      } else {
        assert.equal(run.stripeRequests, 0, run.mode);
        assert.equal(run.chargedExactlyOnce, undefined);
      }
    }
  });
});

describe('benchmark figures', function () {
  it('takes percentiles by nearest rank', function () {
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    assert.equal(percentile(sorted, 50), 5);
    assert.equal(percentile(sorted, 99), 10);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.deepEqual(summarize([3, 1, 2]), { p50: 2, p95: 3, p99: 3, max: 3, mean: 2 });
  });

  it('compares the checkout with the floor at the same level against the targets', function () {
    const base = {
      workerProcesses: 1,
      requested: 10,
      completed: 10,
      failed: 0,
      firstFailure: undefined,
      elapsedMs: 1000,
      stripeRequests: 0,
      stripeRequestsPerCheckout: 0,
      stripeRequestsByRoute: {},
      workerMemory: undefined,
      serverPeakRssMiB: undefined,
      cpuMsPerCheckout: { serverMs: 1, workerMs: 1, benchProcessMs: 1 },
      chargedExactlyOnce: undefined,
      rounds: 1,
    };
    const latency = (p99: number) => ({ p50: p99 / 2, p95: p99, p99, max: p99, mean: p99 / 2 });
    const [r] = ratios([
      { ...base, mode: 'floor', concurrency: 10, checkoutsPerSecond: 100, latencyMs: latency(100) },
      { ...base, mode: 'checkout', concurrency: 10, checkoutsPerSecond: 95, latencyMs: latency(130) },
      {
        ...base,
        mode: 'direct',
        workerProcesses: 0,
        concurrency: 10,
        checkoutsPerSecond: 190,
        latencyMs: latency(10),
      },
    ]);
    assert.ok(r);
    assert.equal(r.meetsThroughput, true);
    assert.equal(r.meetsP99, false);
    assert.equal(r.directToCheckoutThroughput, 2);
  });

  it('refuses rounds too small to keep a level at its concurrency, naming the level', function () {
    // 1 500 checkouts in 4 rounds of 375 could never have 500 in flight.
    assert.throws(
      () => parseOptions(['--concurrency', '500', '--checkouts', '1500', '--rounds', '4']),
      /--rounds 4: at concurrency 500, 1500 checkouts make rounds of 375, too few to keep 500 in flight; give --checkouts at least 2000/,
    );
    const { options } = parseOptions(['--concurrency', '500', '--checkouts', '2000', '--rounds', '4']);
    assert.equal(options.rounds, 4);
    // The full run's default levels hold two rounds each.
    assert.equal(parseOptions([]).options.rounds, 2);
  });

  it('mirrors the order of the modes in every other round', function () {
    assert.deepEqual(roundOrder(['floor', 'checkout', 'direct'], 0), ['floor', 'checkout', 'direct']);
    assert.deepEqual(roundOrder(['floor', 'checkout', 'direct'], 1), ['direct', 'checkout', 'floor']);
    assert.deepEqual(roundOrder(['floor', 'checkout'], 2), ['floor', 'checkout']);
  });

  it('merges rounds: totals over totals, percentiles over every latency, highest peaks', function () {
    const round = (
      completed: number,
      elapsedMs: number,
      serverMs: number,
      latenciesMs: number[],
      peakRssMiB: number,
    ): RoundResult => ({
      latenciesMs,
      figures: {
        mode: 'checkout',
        concurrency: 2,
        workerProcesses: 1,
        requested: completed + 1,
        completed,
        failed: 1,
        firstFailure: completed === 2 ? 'first' : 'second',
        elapsedMs,
        checkoutsPerSecond: (completed / elapsedMs) * 1000,
        latencyMs: summarize(latenciesMs),
        stripeRequests: completed * 2,
        stripeRequestsPerCheckout: 2,
        stripeRequestsByRoute: { 'POST /v1/payment_intents': completed },
        workerMemory: { measured: 'worker child processes', processes: 1, peakRssMiB, peakHeapUsedMiB: 10 },
        serverPeakRssMiB: peakRssMiB * 2,
        cpuMsPerCheckout: { serverMs, workerMs: 1, benchProcessMs: 2 },
        chargedExactlyOnce: completed,
        rounds: 1,
      },
    });
    const merged = mergeRounds([
      round(2, 1000, 10, [100, 300], 50),
      round(6, 1000, 30, [1, 2, 3, 4, 5, 6], 70),
    ]);
    assert.equal(merged.completed, 8);
    assert.equal(merged.failed, 2);
    assert.equal(merged.requested, 10);
    assert.equal(merged.firstFailure, 'first');
    assert.equal(merged.elapsedMs, 2000);
    assert.equal(merged.checkoutsPerSecond, 4);
    assert.deepEqual(merged.latencyMs, summarize([100, 300, 1, 2, 3, 4, 5, 6]));
    assert.equal(merged.stripeRequests, 16);
    assert.equal(merged.stripeRequestsPerCheckout, 2);
    assert.deepEqual(merged.stripeRequestsByRoute, { 'POST /v1/payment_intents': 8 });
    // (2 × 10 + 6 × 30) / 8
    assert.equal(merged.cpuMsPerCheckout.serverMs, 25);
    assert.equal(merged.cpuMsPerCheckout.workerMs, 1);
    assert.equal(merged.workerMemory?.peakRssMiB, 70);
    assert.equal(merged.serverPeakRssMiB, 140);
    assert.equal(merged.chargedExactlyOnce, 8);
    assert.equal(merged.rounds, 2);
    assert.throws(() => mergeRounds([]), /at least one round/);
  });
});
