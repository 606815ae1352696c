import assert from 'node:assert/strict';
import { parseArgs, UsageError } from '../../src/chaos/main';
import { createPrng } from '../../src/chaos/prng';
import { buildSchedule, plannedCounts, scheduleHash } from '../../src/chaos/schedule';
import { FAULT_KINDS } from '../../src/stripe-emulator/faults';

describe('chaos schedule', () => {
  it('is a pure function of checkouts, seed and workers: same arguments, same hash', () => {
    const a = buildSchedule({ checkouts: 200, seed: 42, workers: 2 });
    const b = buildSchedule({ checkouts: 200, seed: 42, workers: 2 });
    assert.deepEqual(a, b);
    assert.equal(scheduleHash(a), scheduleHash(b));
    assert.match(scheduleHash(a), /^[0-9a-f]{64}$/);
    assert.notEqual(scheduleHash(buildSchedule({ checkouts: 200, seed: 43, workers: 2 })), scheduleHash(a));
  });

  it('deals every Stripe fault kind at least 10 times at N=200, at most two per order', () => {
    const s = buildSchedule({ checkouts: 200, seed: 7, workers: 2 });
    const planned = plannedCounts(s);
    for (const kind of FAULT_KINDS) assert.ok((planned[kind] ?? 0) >= 10, `${kind}: ${planned[kind]}`);
    for (const kind of ['worker_sigkill', 'temporal_restart', 'clock_advance_25h']) {
      assert.ok((planned[kind] ?? 0) >= 10, `${kind}: ${planned[kind]}`);
    }
    assert.ok(s.orders.every((o) => o.faults.length <= 2));
  });

  it('exercises every fault kind on a confirm even at N=30', () => {
    const s = buildSchedule({ checkouts: 30, seed: 1, workers: 2 });
    for (const kind of FAULT_KINDS) {
      assert.ok(
        s.orders.some((o) => o.faults.some((f) => f.fault === kind && f.step === 'confirm')),
        `${kind} never aimed at a confirm`,
      );
    }
  });

  it('fires stack events in order, inside the run, on existing worker slots', () => {
    const s = buildSchedule({ checkouts: 100, seed: 3, workers: 3 });
    const points = s.events.map((e) => e.beforeOrder);
    assert.deepEqual(
      points,
      [...points].sort((x, y) => x - y),
    );
    assert.ok(s.events.every((e) => e.beforeOrder >= 1 && e.beforeOrder < 100));
    assert.ok(s.events.every((e) => e.worker >= 0 && e.worker < 3));
  });

  it('rejects fewer than two workers and non-integer sizes', () => {
    assert.throws(() => buildSchedule({ checkouts: 10, seed: 1, workers: 1 }), /workers/);
    assert.throws(() => buildSchedule({ checkouts: 0, seed: 1, workers: 2 }), /checkouts/);
  });
});

describe('chaos PRNG', () => {
  it('repeats its sequence for a seed and forks independent streams', () => {
    const a = createPrng(9);
    const b = createPrng(9);
    const seqA = Array.from({ length: 5 }, () => a.next());
    assert.deepEqual(
      seqA,
      Array.from({ length: 5 }, () => b.next()),
    );
    assert.ok(seqA.every((x) => x >= 0 && x < 1));
    const r = createPrng(1);
    for (let i = 0; i < 1000; i++) {
      const n = r.int(3, 5);
      assert.ok(n >= 3 && n <= 5 && Number.isInteger(n));
    }
    assert.deepEqual([...createPrng(2).shuffle([1, 2, 3, 4])].sort(), [1, 2, 3, 4]);
  });
});

describe('chaos CLI arguments', () => {
  it('parses a full command line', () => {
    const { options, out } = parseArgs([
      '--checkouts',
      '30',
      '--seed',
      '5',
      '--workers',
      '3',
      '--variant',
      'random-key',
      '--out',
      'r.json',
    ]);
    assert.equal(out, 'r.json');
    assert.deepEqual(
      { ...options },
      { checkouts: 30, seed: 5, workers: 3, variant: 'random-key', keepDir: false },
    );
  });

  it('names every bad argument at once', () => {
    assert.throws(
      () => parseArgs(['--checkouts', 'x', '--workers', '1', '--variant', 'nope', '--bogus']),
      (err: unknown) => {
        assert.ok(err instanceof UsageError);
        assert.deepEqual(err.problems, [
          '--bogus: unknown argument',
          '--checkouts: must be an integer of at least 1 (got "x")',
          '--seed: required',
          '--workers: must be an integer of at least 2 (got "1")',
          '--variant: must be one of correct, random-key, no-key',
        ]);
        return true;
      },
    );
  });
});
