import assert from 'node:assert/strict';
import { defaultDeadlineMs, runChaos, type ChaosReport } from '../../src/chaos/harness';
import { buildSchedule, scheduleHash } from '../../src/chaos/schedule';

const CHECKOUTS = 30;
const SEED = 1;
/** The run's own deadline plus time to start and stop the stack on a loaded machine. */
const TEST_TIMEOUT_MS = defaultDeadlineMs(CHECKOUTS) + 5 * 60_000;

function summary(report: ChaosReport): string {
  return JSON.stringify({ violations: report.violations.slice(0, 10), finalStates: report.finalStates });
}

describe('chaos harness (N=30, embedded stack, two worker processes)', function () {
  this.timeout(TEST_TIMEOUT_MS);
  it('charges at most once per order under every fault: zero violations', async () => {
    const correct = await runChaos({ checkouts: CHECKOUTS, seed: SEED, workers: 2, variant: 'correct' });
    assert.equal(
      correct.scheduleHash,
      scheduleHash(buildSchedule({ checkouts: CHECKOUTS, seed: SEED, workers: 2 })),
    );
    assert.equal(correct.violations.length, 0, summary(correct));
    assert.equal(correct.passed, true);
    const settled = Object.values(correct.finalStates).reduce((a, b) => a + b, 0);
    assert.equal(settled, CHECKOUTS);
    for (const kind of [
      'lose_response_after_commit',
      'stored_500',
      'transient_500',
      'slow',
      'rate_limit_429',
      'lock_timeout_429',
      'truncated_body',
      'reset_before_execution',
      'worker_sigkill',
      'temporal_restart',
      'clock_advance_25h',
      'webhook_duplicated',
      'decline_then_new_card',
      'three_ds_succeed',
    ]) {
      assert.ok(
        (correct.faults[kind]?.injected ?? 0) > 0,
        `${kind} was never injected: ${JSON.stringify(correct.faults)}`,
      );
    }
  });

  it('catches the broken variant (random key per attempt) double charging under the same schedule', async () => {
    // The schedule is the same one the correct run used: lost and slow answers on confirms of cards that pay.
    const schedule = buildSchedule({ checkouts: CHECKOUTS, seed: SEED, workers: 2 });
    assert.ok(
      schedule.orders.some(
        (o) =>
          o.card === 'succeeds' &&
          o.faults.some(
            (f) =>
              f.step === 'confirm' &&
              ['lose_response_after_commit', 'slow', 'truncated_body'].includes(f.fault),
          ),
      ),
    );
    const broken = await runChaos({ checkouts: CHECKOUTS, seed: SEED, workers: 2, variant: 'random-key' });
    assert.equal(broken.scheduleHash, scheduleHash(schedule));
    assert.equal(broken.passed, false);
    assert.ok((broken.violationsByKind['double_charge'] ?? 0) > 0, summary(broken));
    assert.ok(
      broken.violations.some((v) => v.kind === 'double_charge' && /successful charges: pi_/.test(v.detail)),
    );
  });
});
