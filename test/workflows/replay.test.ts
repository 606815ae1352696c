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
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { workerSinks } from '../../src/observability';
import { checkoutWorkflowBundle } from '../../src/worker';
import { checkoutWorkflowId } from '../../src/workflows/definitions';
import { HISTORIES_DIR, historyFromFixture, historyToFixture } from './support';

const EXPECTED = [
  'cancel-during-confirm-refused',
  'cancel-during-create',
  'debit-settled-after-deadline',
  'debit-settled-after-deadline-before-deadline-timers',
  'debit-settled-after-deadline-before-wake-since-request',
  'declined',
  'declined-then-retried',
  'expired',
  'expired-before-deadline-timers',
  'expired-before-wake-since-request',
  'hosted-expired',
  'hosted-expired-before-deadline-timers',
  'hosted-expired-before-wake-since-request',
  'hosted-paid',
  'hosted-paid-indexed-at-rest',
  'hosted-paid-indexed-at-rest-before-deadline-timers',
  'hosted-paid-indexed-at-rest-before-wake-since-request',
  'hosted-parked-paid-on-webhook',
  'hosted-parked-paid-on-webhook-before-deadline-timers',
  'hosted-parked-paid-on-webhook-before-wake-since-request',
  'idempotency-mismatch',
  'idempotency-mismatch-before-wake-since-request',
  'key-budget-spent',
  'lost-response-after-commit',
  'paid',
  'paid-indexed-at-rest',
  'past-24h-pruned-key',
  'provisioning-failed-refunded',
  'provisioning-failed-refunded-before-deadline-timers',
  'provisioning-kept-refunded-in-part-retried',
  'provisioning-kept-refunded-in-part-retried-before-deadline-timers',
  'reset-after-paid',
  'reset-search-failed',
  'reset-search-failed-before-wake-since-request',
  'stored-500-on-confirm',
  'stored-500-on-confirm-before-wake-since-request',
  'three-d-secure',
  'three-d-secure-before-deadline-timers',
  'three-d-secure-before-wake-since-request',
  'three-d-secure-indexed-at-rest',
  'three-d-secure-indexed-at-rest-before-deadline-timers',
  'three-d-secure-indexed-at-rest-before-wake-since-request',
  'worker-killed-during-confirm',
];

/**
 * Histories whose end a deadline decided: the 3-D Secure wait's, the hosted session's, the
 * provisioning grace's. Recorded with the deadline timers (`Deadline`, src/workflows/common.ts), and,
 * as `<name>-before-deadline-timers`, by the code that compared the clock with the deadline.
 */
const DEADLINE_DECIDED = ['expired', 'hosted-expired', 'provisioning-failed-refunded'];

/**
 * A chaos run's history (N=2000, seed 20261128, order o539; docs/chaos.md): the 3-D Secure wait
 * began in the workflow task that also carried Stripe's answer to the confirm and two webhooks for
 * the PaymentIntent, and that run read the PaymentIntent at once. Recorded before
 * `wake-since-request`, when the wait cleared the wake as it began.
 */
const WEBHOOK_IN_ANSWER_TASK = path.join(
  HISTORIES_DIR,
  '..',
  'ordering',
  'three-d-secure-webhook-in-answer-task.json',
);

type FixtureEvent = Record<string, unknown> & { eventId: string; eventType: string };

/** Shifts every event id from `from` on, and every reference to one, by `by`. */
function shiftEventIds(value: unknown, from: number, by: number): unknown {
  if (Array.isArray(value)) return value.map((v) => shiftEventIds(v, from, by));
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) =>
      (k === 'eventId' || k.endsWith('EventId')) && typeof v === 'string' && Number(v) >= from
        ? [k, String(Number(v) + by)]
        : [k, shiftEventIds(v, from, by)],
    ),
  );
}

/**
 * The same history as if its run had called `patched(id)` right after event `afterId`: the patch's
 * marker and the `TemporalChangeVersion` upsert core writes with it (the ids taken before, then
 * `id`), copied from the history's first patch marker and upsert, later events renumbered.
 */
function withPatchAfter(fixture: string, afterId: number, id: string): temporal.api.history.v1.History {
  const parsed = JSON.parse(fixture) as { events: FixtureEvent[] };
  const encode = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64');
  const marker = parsed.events.find((e) => e.eventType === 'EVENT_TYPE_MARKER_RECORDED');
  const upsert = parsed.events.find((e) => JSON.stringify(e).includes('"TemporalChangeVersion"'));
  assert.ok(marker && upsert, 'the history has a patch marker and its upsert to copy');
  const newMarker = JSON.parse(JSON.stringify(marker)) as {
    markerRecordedEventAttributes: { details: { 'patch-data': { payloads: { data: string }[] } } };
  } & FixtureEvent;
  const patchData = newMarker.markerRecordedEventAttributes.details['patch-data'].payloads[0];
  assert.ok(patchData);
  patchData.data = encode({ id, deprecated: false });
  const newUpsert = JSON.parse(JSON.stringify(upsert)) as {
    upsertWorkflowSearchAttributesEventAttributes: {
      searchAttributes: { indexedFields: { TemporalChangeVersion: { data: string } } };
    };
  } & FixtureEvent;
  const versions = newUpsert.upsertWorkflowSearchAttributesEventAttributes.searchAttributes.indexedFields;
  const taken = JSON.parse(Buffer.from(versions.TemporalChangeVersion.data, 'base64').toString()) as string[];
  versions.TemporalChangeVersion.data = encode([...taken, id]);
  const shifted = shiftEventIds(parsed.events, afterId + 1, 2) as FixtureEvent[];
  const at = shifted.findIndex((e) => Number(e.eventId) === afterId) + 1;
  assert.ok(at > 0, `event ${afterId} is in the history`);
  newMarker.eventId = String(afterId + 1);
  newUpsert.eventId = String(afterId + 2);
  const events = [...shifted.slice(0, at), newMarker, newUpsert, ...shifted.slice(at)];
  return historyFromFixture(JSON.stringify({ ...parsed, events }));
}

function loadFixture(name: string): temporal.api.history.v1.History {
  return historyFromFixture(readFileSync(path.join(HISTORIES_DIR, `${name}.json`), 'utf8'));
}

/**
 * The same history with every workflow task started at the moment the run started: workflow code
 * reading `Date.now()` sees a clock that never moves, as a replay on another task's clock could.
 */
function clockStoppedAtStart(history: temporal.api.history.v1.IHistory): temporal.api.history.v1.History {
  const copy = historyFromFixture(historyToFixture(history));
  const start = copy.events[0]?.eventTime;
  assert.ok(start, 'the first event has a time');
  for (const event of copy.events) {
    if (event.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED) {
      event.eventTime = start;
    }
  }
  return copy;
}

/** Replays each named history, in order: its name and its error message (undefined: it replayed). */
async function replayAll(
  named: readonly { name: string; history: temporal.api.history.v1.History }[],
): Promise<{ name: string; error: string | undefined }[]> {
  const workflowBundle = await checkoutWorkflowBundle();
  const inputs = named.map(({ history }) => ({ workflowId: workflowIdOf(history), history }));
  const results: { name: string; error: string | undefined }[] = [];
  for await (const result of Worker.runReplayHistories({ workflowBundle, sinks: workerSinks() }, inputs)) {
    const i = results.length;
    assert.equal(result.workflowId, inputs[i]?.workflowId, 'replay results come in the order given');
    results.push({ name: named[i]?.name ?? '', error: result.error?.message });
  }
  assert.equal(results.length, named.length, 'every history was replayed');
  return results;
}

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
    const results = await replayAll(EXPECTED.map((name) => ({ name, history: loadFixture(name) })));
    const failures = results.filter((r) => r.error !== undefined).map((r) => `${r.name}: ${r.error ?? ''}`);
    assert.deepEqual(failures, []);
  });

  it('decides each deadline by its timer: a run replays the same on a clock that never moved', async () => {
    const stopped = (name: string): { name: string; history: temporal.api.history.v1.History } => ({
      name,
      history: clockStoppedAtStart(loadFixture(name)),
    });
    const timed = await replayAll(DEADLINE_DECIDED.map(stopped));
    assert.deepEqual(
      timed,
      DEADLINE_DECIDED.map((name) => ({ name, error: undefined })),
    );
    // The runs recorded before the timers compared the clock: the same stopped clock takes each of
    // them down another path than its history (what stalled chaos orders s200-o17 and s200-o119).
    const clock = await replayAll(DEADLINE_DECIDED.map((name) => stopped(`${name}-before-deadline-timers`)));
    for (const { name, error } of clock) assert.match(error ?? 'replayed', /Nondeterminism/, name);
  });

  it("reads at once after a webhook handled in the same task as the confirm's answer, in either order", async () => {
    // Live, that chaos run handled the webhooks after the wait began, so they woke it: it read at
    // once (event 23). On replay the SDK hands the webhooks over first, the old wait cleared them
    // as it began and waited a poll instead: the stall the chaos run reported.
    const recorded = readFileSync(WEBHOOK_IN_ANSWER_TASK, 'utf8');
    const [before] = await replayAll([{ name: 'recorded', history: historyFromFixture(recorded) }]);
    assert.match(
      before?.error ?? 'replayed',
      /Nondeterminism.*Timer machine does not handle this event: HistoryEvent\(id: 23, ActivityTaskScheduled\)/,
    );
    // With the wake counted from the confirm (the patch's marker where the wait begins, after the
    // deadline's timer, event 21), the webhooks wake the wait whichever comes first: the run reads
    // at once on replay too, and goes on to the decline, the new card and the provisioning it ran.
    const [after] = await replayAll([
      { name: 'wake-since-request', history: withPatchAfter(recorded, 21, 'wake-since-request') },
    ]);
    assert.deepEqual(after, { name: 'wake-since-request', error: undefined });
  });
});
