/**
 * The operator CLI's `reconcile` and `resolve-case` against the dev server and the emulator.
 */
import assert from 'node:assert/strict';
import { EXIT, parseCommand, runCli, UsageError, type CliIo } from '../../src/cli/main';
import { loadConfig, type AppConfig } from '../../src/config';
import { ensureReconcilerSchedule, type ReconcileRun } from '../../src/reconciler/schedule';
import {
  RECONCILER_SCHEDULE_ID,
  checkoutWorkflowId,
  reconciliationCaseWorkflowId,
} from '../../src/workflows/definitions';
import { uniqueName } from '../support/temporal';
import { newOrder, suiteHarness } from '../workflows/support';

function capture(): { io: CliIo; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t) => out.push(t), err: (t) => err.push(t) }, out, err };
}

describe('operator CLI reconcile', function () {
  this.timeout(120_000);
  const h = suiteHarness();

  it('refuses bad usage naming the argument, before contacting Temporal', () => {
    assert.throws(
      () => parseCommand(['reconcile', '--dry-run']),
      (e: unknown) => {
        return e instanceof UsageError && e.problems.some((p) => p.startsWith('--dry-run'));
      },
    );
    assert.throws(
      () => parseCommand(['resolve-case', '--outcome', 'refunded']),
      (e: unknown) => {
        return e instanceof UsageError && e.problems.some((p) => p.startsWith('PAYMENT_INTENT_ID: missing'));
      },
    );
    assert.throws(
      () => parseCommand(['resolve-case', 'pi_1', '--outcome', 'recheck', '--actor', 'a', '--reason', 'b']),
      (e: unknown) => e instanceof UsageError && e.problems.some((p) => p.startsWith('--outcome')),
    );
    assert.deepEqual(parseCommand(['reconcile', '--now', '--dry-run', '--json']), {
      name: 'reconcile',
      now: true,
      dryRun: true,
      json: true,
    });
  });

  it('runs the reconciler now, shows a case for a planted charge, and resolves it once', async function () {
    const { taskQueue } = newOrder(h, this.test?.title ?? 'cli');
    const config: AppConfig = loadConfig({ TEMPORAL_TASK_QUEUE: taskQueue });
    const cli = async (argv: string[]) => {
      const c = capture();
      const code = await runCli(argv, { io: c.io, client: h.client, config: () => config });
      return { ...c, code };
    };
    const orderId = uniqueName('cli-charged-without-checkout');
    const pi = await h.stripe.paymentIntents.create({
      amount: 990,
      currency: 'usd',
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      payment_method: 'pm_card_visa',
      confirm: true,
      metadata: { order_id: orderId, checkout_workflow_id: checkoutWorkflowId(orderId), generation: '1' },
    });

    // The shared dev server may hold the schedule from another test; point it at this worker.
    await ensureReconcilerSchedule(h.client, { taskQueue, intervalMs: 24 * 60 * 60 * 1000 });
    await h
      .withWorker(taskQueue, async () => {
        const dry = await cli(['reconcile', '--now', '--dry-run', '--json']);
        assert.equal(dry.code, EXIT.ok, dry.err.join('\n'));
        const dryRun = JSON.parse(dry.out.join('')) as ReconcileRun;
        const reported = dryRun.result?.findings.find((f) => f.paymentIntentId === pi.id);
        assert.equal(reported?.outcome, 'reported');

        const now = await cli(['reconcile', '--now']);
        assert.equal(now.code, EXIT.ok, now.err.join('\n'));
        const text = now.out.join('\n');
        assert.match(text, new RegExp(`charged_without_checkout\\s+${pi.id}`));
        assert.match(text, new RegExp(reconciliationCaseWorkflowId(pi.id)));

        const resolve = [
          'resolve-case',
          pi.id,
          '--outcome',
          'no_action',
          '--actor',
          'ops',
          '--reason',
          'test',
        ];
        const first = await cli(resolve);
        assert.equal(first.code, EXIT.ok, first.err.join('\n'));
        assert.match(first.out.join('\n'), /resolved \(no_action\) by ops/);
        const second = await cli(resolve);
        assert.equal(second.code, EXIT.failed);
        assert.match(second.err.join('\n'), /already resolved/);

        const shown = await cli(['reconcile', '--json']);
        assert.equal(shown.code, EXIT.ok, shown.err.join('\n'));
        const latest = JSON.parse(shown.out.join('')) as { run: ReconcileRun };
        assert.equal(latest.run.result?.counts.charged_without_checkout, 1);
      })
      .finally(() => h.client.schedule.getHandle(RECONCILER_SCHEDULE_ID).delete());
  });
});
