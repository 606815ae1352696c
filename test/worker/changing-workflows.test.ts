/**
 * The procedure of docs/changing-workflows.md, on the real checkout workflow: the same change (a
 * timer before anything else, which changes the first command of every path) made three ways, each
 * bundled from a copy of src/workflows with only that edit.
 *
 * - unversioned: every recorded history fails to replay, which is what the replay gate catches;
 * - behind `patched()`: every recorded history still replays, and a checkout run with it on the dev
 *   server takes the new path, charges once and records the patch marker;
 * - with `deprecatePatch()`: the new histories replay, the old ones do not (so the old fixtures go
 *   only once no checkout started before the patch is still running).
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { temporal } from '@temporalio/proto';
import { Worker, bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';
import { startCheckout, waitForCheckoutResult } from '../../src/client';
import { workerSinks } from '../../src/observability';
import { createActivities } from '../../src/activities';
import { checkoutWorkflowId } from '../../src/workflows/definitions';
import { checkoutBundleOptions } from '../../src/worker';
import {
  HISTORIES_DIR,
  historyFromFixture,
  newOrder,
  startHarness,
  successfulCharges,
  provisionedCount,
  type CheckoutHarness,
} from '../workflows/support';

const ROOT = path.resolve(__dirname, '..', '..');
const PATCH_ID = 'docs-example-timer-first';
const ENTRY = 'export async function checkout(';

type Variant = 'unversioned' | 'patched' | 'deprecated';
const CHANGE: Record<Variant, string> = {
  unversioned: 'await __changeSleep(1);',
  patched: `if (__changePatched('${PATCH_ID}')) await __changeSleep(1);`,
  deprecated: `__changeDeprecatePatch('${PATCH_ID}'); await __changeSleep(1);`,
};

/**
 * src copied with the change at the top of the checkout workflow's body (all of src, because the
 * workflows import a few pure modules beside them, e.g. the metric names).
 */
async function bundleVariant(dir: string, variant: Variant): Promise<WorkflowBundle> {
  const copy = path.join(dir, variant, 'src');
  cpSync(path.join(ROOT, 'src'), copy, { recursive: true });
  const file = path.join(copy, 'workflows', 'checkout.ts');
  const source = readFileSync(file, 'utf8');
  const at = source.indexOf(ENTRY);
  assert.ok(at >= 0, `src/workflows/checkout.ts declares ${ENTRY}`);
  // The first "{" that ends a line after the signature opens the body (the signature has none).
  const bodyStart = source.indexOf('{\n', at) + 2;
  const changed =
    "import { sleep as __changeSleep, patched as __changePatched, deprecatePatch as __changeDeprecatePatch } from '@temporalio/workflow';\n" +
    source.slice(0, bodyStart) +
    `  ${CHANGE[variant]}\n` +
    source.slice(bodyStart);
  writeFileSync(file, changed);
  const { code } = await bundleWorkflowCode({
    // Bundled as the product bundles its own workflows (interceptors, preloaded modules).
    ...checkoutBundleOptions(path.join(copy, 'workflows', 'index.ts')),
    // The copy lives outside the repository; its packages are the repository's.
    webpackConfigHook: (config) => ({
      ...config,
      resolve: { ...config.resolve, modules: [path.join(ROOT, 'node_modules'), 'node_modules'] },
    }),
  });
  return { code };
}

interface NamedHistory {
  readonly workflowId: string;
  readonly history: temporal.api.history.v1.IHistory;
}

/** The recorded histories of the card checkout (the workflow this test changes). */
function recordedHistories(): NamedHistory[] {
  return readdirSync(HISTORIES_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => historyFromFixture(readFileSync(path.join(HISTORIES_DIR, f), 'utf8')))
    .filter((history) => {
      const type = history.events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name;
      return type === 'checkout';
    })
    .map((history, i) => {
      const f = `fixture ${i}`;
      const data = history.events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
      assert.ok(data, `${f} starts with the checkout input`);
      const { orderId } = JSON.parse(Buffer.from(data).toString('utf8')) as { orderId: string };
      return { workflowId: checkoutWorkflowId(orderId), history };
    });
}

/** The workflow ids whose replay failed, with the reason. */
async function replayFailures(bundle: WorkflowBundle, histories: readonly NamedHistory[]): Promise<string[]> {
  const failures: string[] = [];
  let replayed = 0;
  for await (const r of Worker.runReplayHistories(
    { workflowBundle: bundle, sinks: workerSinks() },
    histories,
  )) {
    replayed += 1;
    if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
  }
  assert.equal(replayed, histories.length);
  return failures;
}

describe('changing the checkout workflow (docs/changing-workflows.md)', function () {
  this.timeout(600_000);
  let dir: string;
  let h: CheckoutHarness;
  const bundles = {} as Record<Variant, WorkflowBundle>;
  let recorded: NamedHistory[];

  before(async function () {
    this.timeout(600_000);
    dir = mkdtempSync(path.join(tmpdir(), 'changing-workflows-'));
    recorded = recordedHistories();
    assert.ok(recorded.length >= 10, 'the recorded fixtures');
    for (const v of ['unversioned', 'patched', 'deprecated'] as const)
      bundles[v] = await bundleVariant(dir, v);
    h = await startHarness();
  });
  after(async () => {
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('fails the replay gate on every recorded history when the change is not versioned', async () => {
    const failures = await replayFailures(bundles.unversioned, recorded);
    assert.equal(failures.length, recorded.length, failures.join('\n'));
    for (const f of failures) assert.match(f, /[Nn]ondetermin/);
  });

  it('passes the replay gate with the change behind patched(), and new checkouts take the new path', async function () {
    assert.deepEqual(await replayFailures(bundles.patched, recorded), []);

    const { input, taskQueue } = newOrder(h, this.test?.title ?? 'patched');
    const worker = await Worker.create({
      connection: h.nativeConnection,
      namespace: h.namespace,
      taskQueue,
      workflowBundle: bundles.patched,
      activities: createActivities({ stripe: h.stripe, provisioner: h.provisioner, temporal: h.client }),
      sinks: workerSinks(),
    });
    const history = await worker.runUntil(async () => {
      await startCheckout(h.client, input, { taskQueue });
      const result = await waitForCheckoutResult(h.client, input.orderId);
      assert.equal(result.outcome, 'completed');
      return h.client.workflow.getHandle(checkoutWorkflowId(input.orderId)).fetchHistory();
    });
    assert.equal(successfulCharges(h, input.orderId), 1);
    assert.equal(await provisionedCount(h, input.orderId), 1);
    const events = history.events ?? [];
    // The first workflow task's commands hold the patch marker and the new timer; the recorded
    // histories' first tasks have neither.
    const commandsOfFirstTask = (all: readonly temporal.api.history.v1.IHistoryEvent[]) => {
      const done = all.findIndex((e) => e.workflowTaskCompletedEventAttributes);
      const next = all.findIndex((e, k) => k > done && e.workflowTaskScheduledEventAttributes);
      return all.slice(done + 1, next < 0 ? undefined : next);
    };
    const first = commandsOfFirstTask(events);
    assert.ok(
      first.some((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch'),
      'the patch marker',
    );
    assert.ok(
      first.some((e) => e.timerStartedEventAttributes),
      'the new timer',
    );
    for (const r of recorded) {
      assert.ok(!commandsOfFirstTask(r.history.events ?? []).some((e) => e.timerStartedEventAttributes));
    }

    const fresh = { workflowId: checkoutWorkflowId(input.orderId), history };
    // Later, with deprecatePatch(): new histories replay, pre-patch ones no longer do.
    assert.deepEqual(await replayFailures(bundles.deprecated, [fresh]), []);
    assert.equal((await replayFailures(bundles.deprecated, recorded)).length, recorded.length);
    // And the patched code replays both kinds, which is why it ships first.
    assert.deepEqual(await replayFailures(bundles.patched, [...recorded, fresh]), []);
  });
});
