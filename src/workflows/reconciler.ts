/**
 * The reconciler: a Temporal Schedule runs this every 15 minutes (src/reconciler/schedule.ts). It
 * reads, page by page, every PaymentIntent Stripe created in the lookback window (default 48 h),
 * keeps those carrying checkout metadata, and compares each with its checkout and the provisioning
 * store (`inspectPaymentIntentPage`; the rules are in src/reconciler/classify.ts). Then it fixes
 * what is safe to fix and hands the rest to people:
 *
 * - orphan (unconfirmed, past the grace, no open checkout follows it): canceled at Stripe under
 *   `reconcile/<PaymentIntent id>/cancel`. Canceling an unconfirmed PaymentIntent moves no money, and
 *   the key is the same for every run, so overlapping or repeated runs cancel once.
 * - paid but not provisioned, charged without a checkout, or a duplicate payment: a
 *   `reconciliationCase` workflow (`case-<PaymentIntent id>`, CheckoutState=needs_attention) an
 *   operator finds in the Temporal UI and closes with its `resolve` update after acting. Opened at
 *   most once per PaymentIntent; a resolved case is not reopened.
 *
 * How it fails: a page that cannot be read fails the run after its retries (the next scheduled
 * run starts over; nothing was half-done, since each fix stands alone). A fix that fails after its
 * retries is recorded as `failed` in the result and the run goes on; the next run finds it again.
 * A window with very many PaymentIntents continues as new when the history grows, carrying the
 * cursor and the counts. The run's reference time is fixed at its start, so a replay and a
 * continued run measure the window and the grace the same way.
 */
import {
  continueAsNew,
  log,
  proxyActivities,
  setCurrentDetails,
  workflowInfo,
  ApplicationFailure,
} from '@temporalio/workflow';
import type { ReconcilerActivities } from '../activities/reconciler';
import {
  CASE_FINDING_KINDS,
  RECONCILE_FINDINGS_LISTED,
  RECONCILER_FINDING_KINDS,
  reconcileCancelIdempotencyKey,
  validateReconcileOptions,
  type ReconcileInput,
  type ReconcileProgress,
  type ReconcileResult,
  type ReconciledFinding,
  type ReconcilerCounts,
  type ReconcilerFinding,
  type ReconcilerFindingKind,
} from './definitions';
import { ACTIVITY_RETRY as RETRY, HOUR, MINUTE, SECOND, errorMessage } from './common';

export const RECONCILE_DEFAULTS = {
  lookbackMs: 48 * HOUR,
  orphanGraceMs: 1 * HOUR,
  pageSize: 100,
  dryRun: false,
} as const;

/** A page is up to 100 PaymentIntents, each a Temporal describe and a few SQLite reads. */
const { inspectPaymentIntentPage } = proxyActivities<ReconcilerActivities>({
  startToCloseTimeout: 5 * MINUTE,
  scheduleToCloseTimeout: 30 * MINUTE,
  retry: { ...RETRY, maximumAttempts: 10 },
  summary: 'List a page of PaymentIntents and compare each with its checkout',
});

/** A fix that still fails after these retries is reported and left to the next run. */
const fixes = proxyActivities<ReconcilerActivities>({
  startToCloseTimeout: 1 * MINUTE,
  scheduleToCloseTimeout: 10 * MINUTE,
  retry: { ...RETRY, maximumAttempts: 8 },
});

const { recordReconcileRun } = proxyActivities<ReconcilerActivities>({
  startToCloseTimeout: 30 * SECOND,
  retry: { ...RETRY, maximumAttempts: 5 },
  summary: 'Record the run in metrics',
});

function zeroCounts(): Record<ReconcilerFindingKind, number> {
  return { orphan: 0, paid_not_provisioned: 0, charged_without_checkout: 0, duplicate_payment: 0 };
}

function summarize(counts: ReconcilerCounts, fixed: ReconcilerCounts): string {
  const parts = RECONCILER_FINDING_KINDS.filter((k) => counts[k] > 0).map(
    (k) => `${counts[k]} ${k} (${fixed[k]} fixed)`,
  );
  return parts.length === 0 ? 'no findings' : parts.join(', ');
}

export async function reconcile(input: ReconcileInput = {}): Promise<ReconcileResult> {
  const valid = validateReconcileOptions(input.options);
  if (!valid.ok) {
    throw ApplicationFailure.create({
      message: `Invalid reconcile options: ${valid.problems.join('; ')}`,
      type: 'InvalidReconcileInput',
      nonRetryable: true,
    });
  }
  const opts = { ...RECONCILE_DEFAULTS, ...valid.value };
  const info = workflowInfo();
  const progress = input.progress;
  const nowMs = progress?.nowMs ?? Date.now();
  const startedAt = progress?.startedAt ?? new Date(nowMs).toISOString();
  const createdGte = Math.floor((nowMs - opts.lookbackMs) / 1000);
  const openedBy = `${info.workflowId}/${info.firstExecutionRunId}`;

  const counts = { ...zeroCounts(), ...progress?.counts };
  const fixed = { ...zeroCounts(), ...progress?.fixes };
  const findings: ReconciledFinding[] = [...(progress?.findings ?? [])];
  let findingsNotListed = progress?.findingsNotListed ?? 0;
  let scanned = progress?.scanned ?? 0;
  let withCheckoutMetadata = progress?.withCheckoutMetadata ?? 0;
  let cursor = progress?.cursor;

  const report = (f: ReconciledFinding): void => {
    if (findings.length < RECONCILE_FINDINGS_LISTED) findings.push(f);
    else findingsNotListed += 1;
  };

  const act = async (finding: ReconcilerFinding): Promise<ReconciledFinding> => {
    if (opts.dryRun) return { ...finding, outcome: 'reported' };
    try {
      if (finding.kind === 'orphan') {
        const after = await fixes.cancelOrphanPaymentIntent({
          paymentIntentId: finding.paymentIntentId,
          idempotencyKey: reconcileCancelIdempotencyKey(finding.paymentIntentId),
        });
        if (after.status === 'canceled') return { ...finding, outcome: 'canceled' };
        return { ...finding, outcome: 'not_canceled', note: `Stripe shows it ${after.status}` };
      }
      if (CASE_FINDING_KINDS.includes(finding.kind)) {
        const opened = await fixes.openReconciliationCase({
          finding,
          openedAt: new Date().toISOString(),
          openedBy,
          taskQueue: info.taskQueue,
        });
        return { ...finding, outcome: opened.outcome, caseWorkflowId: opened.caseWorkflowId };
      }
      return { ...finding, outcome: 'reported' };
    } catch (err) {
      log.warn('a reconciler fix failed; the next run finds it again', {
        paymentIntentId: finding.paymentIntentId,
        kind: finding.kind,
        error: errorMessage(err),
      });
      return { ...finding, outcome: 'failed', note: errorMessage(err) };
    }
  };

  setCurrentDetails(`Reading PaymentIntents created since ${new Date(createdGte * 1000).toISOString()}`);
  for (;;) {
    const page = await inspectPaymentIntentPage({
      createdGte,
      ...(cursor === undefined ? {} : { startingAfter: cursor }),
      pageSize: opts.pageSize,
      nowMs,
      orphanGraceMs: opts.orphanGraceMs,
    });
    scanned += page.scanned;
    withCheckoutMetadata += page.withCheckoutMetadata;
    for (const finding of page.findings) {
      counts[finding.kind] += 1;
      const done = await act(finding);
      if (done.outcome === 'canceled' || done.outcome === 'case_opened') fixed[finding.kind] += 1;
      report(done);
    }
    setCurrentDetails(
      `Read ${scanned} PaymentIntents (${withCheckoutMetadata} from checkouts): ${summarize(counts, fixed)}`,
    );
    cursor = page.nextStartingAfter;
    if (cursor === undefined) break;
    if (workflowInfo().continueAsNewSuggested) {
      const next: ReconcileProgress = {
        nowMs,
        startedAt,
        cursor,
        scanned,
        withCheckoutMetadata,
        findings,
        findingsNotListed,
        counts,
        fixes: fixed,
      };
      await continueAsNew<typeof reconcile>({ options: valid.value, progress: next });
    }
  }

  await recordReconcileRun({ scanned, counts, fixes: fixed });
  const result: ReconcileResult = {
    startedAt,
    finishedAt: new Date().toISOString(),
    createdGte,
    dryRun: opts.dryRun,
    scanned,
    withCheckoutMetadata,
    counts,
    fixes: fixed,
    findings,
    findingsNotListed,
  };
  setCurrentDetails(
    `Done: read ${scanned} PaymentIntents (${withCheckoutMetadata} from checkouts); ${summarize(counts, fixed)}` +
      (opts.dryRun ? ' (dry run: nothing changed)' : ''),
  );
  return result;
}
