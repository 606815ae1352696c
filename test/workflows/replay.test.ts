/**
 * Replays every recorded checkout history (test/fixtures/histories/*.json) against the current
 * workflow code. A change that would make a running checkout non-deterministic fails here, in CI,
 * instead of in production. Record fresh fixtures with `RECORD_HISTORIES=1 npx mocha
 * test/workflows/checkout.test.ts test/workflows/worker-process.test.ts` after a deliberate,
 * versioned change.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { workerSinks } from '../../src/observability';
import { checkoutWorkflowBundle } from '../../src/worker';
import { checkoutWorkflowId } from '../../src/workflows/definitions';
import { HISTORIES_DIR, historyFromFixture } from './support';

const EXPECTED = [
  'cancel-during-confirm-refused',
  'cancel-during-create',
  'debit-settled-after-deadline',
  'declined',
  'declined-then-retried',
  'expired',
  'hosted-expired',
  'hosted-paid',
  'hosted-paid-indexed-at-rest',
  'hosted-parked-paid-on-webhook',
  'idempotency-mismatch',
  'key-budget-spent',
  'lost-response-after-commit',
  'paid',
  'paid-indexed-at-rest',
  'past-24h-pruned-key',
  'provisioning-failed-refunded',
  'provisioning-kept-refunded-in-part-retried',
  'reset-after-paid',
  'reset-search-failed',
  'stored-500-on-confirm',
  'three-d-secure',
  'three-d-secure-indexed-at-rest',
  'worker-killed-during-confirm',
];

/** The workflow checks its id against the order, so replay must use the recorded one. */
function workflowIdOf(history: ReturnType<typeof historyFromFixture>): string {
  const data = history.events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
  assert.ok(data, 'the first event carries the checkout input');
  const input = JSON.parse(Buffer.from(data).toString('utf8')) as { orderId: string };
  return checkoutWorkflowId(input.orderId);
}

describe('checkout workflow replay', function () {
  this.timeout(120_000);

  it('has a recorded history for every failure scenario', () => {
    const names = readdirSync(HISTORIES_DIR)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.replace(/\.json$/, ''))
      .sort();
    assert.deepEqual(names, EXPECTED);
  });

  it('replays every recorded history deterministically', async () => {
    const histories = EXPECTED.map((name) => {
      const history = historyFromFixture(readFileSync(path.join(HISTORIES_DIR, `${name}.json`), 'utf8'));
      return { workflowId: workflowIdOf(history), history };
    });
    const workflowBundle = await checkoutWorkflowBundle();
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories(
      { workflowBundle, sinks: workerSinks() },
      histories,
    )) {
      replayed += 1;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    assert.equal(replayed, EXPECTED.length);
    assert.deepEqual(failures, []);
  });
});
