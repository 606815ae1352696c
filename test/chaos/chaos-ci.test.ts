import assert from 'node:assert/strict';
import { runChaos } from '../../src/chaos/harness';
import { FAULT_KINDS } from '../../src/stripe-emulator/faults';

/**
 * The CI-sized chaos run: N=200 plans every Stripe fault kind, worker SIGKILL, Temporal restart and
 * clock jump at least 10 times (test/chaos/schedule.test.ts proves that of the schedule). Measured
 * at 5.6 min on the 2-core development machine with other suites running (load average about 11);
 * the deadline leaves room for a slower CI box, and hitting it fails the run.
 */
const CHECKOUTS = 200;
const SEED = 200;
const DEADLINE_MS = 15 * 60_000;

describe('chaos harness, CI size (N=200, seed 200)', function () {
  this.timeout(DEADLINE_MS + 5 * 60_000);

  it('ends every checkout finished or parked with a reason, with zero violations and every fault hit', async () => {
    const report = await runChaos({
      checkouts: CHECKOUTS,
      seed: SEED,
      workers: 2,
      variant: 'correct',
      deadlineMs: DEADLINE_MS,
    });
    assert.deepEqual(report.violations, []);
    assert.equal(report.passed, true);
    assert.equal(
      Object.values(report.finalStates).reduce((a, b) => a + b, 0),
      CHECKOUTS,
    );
    for (const kind of [...FAULT_KINDS, 'worker_sigkill', 'temporal_restart', 'clock_advance_25h']) {
      assert.ok(
        (report.faults[kind]?.injected ?? 0) >= 10,
        `${kind}: ${JSON.stringify(report.faults[kind])}`,
      );
    }
    for (const kind of [
      'webhook_duplicated',
      'duplicate_start_concurrent',
      'decline_then_new_card',
      'three_ds_succeed',
    ]) {
      assert.ok(
        (report.faults[kind]?.injected ?? 0) >= 10,
        `${kind}: ${JSON.stringify(report.faults[kind])}`,
      );
    }
  });
});
