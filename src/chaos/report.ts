/**
 * The chaos report as text: faults by type (planned and injected), checkouts by final state,
 * violations (which must all be zero) and the run's duration and schedule hash.
 */
import type { ChaosReport } from './harness';

function table(title: string, header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [title, line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function formatReport(report: ChaosReport): string {
  const faults = Object.entries(report.faults).map(([kind, c]) => [
    kind,
    String(c.planned),
    String(c.injected),
  ]);
  const cards = Object.entries(report.cardPlans).map(([plan, n]) => [plan, String(n)]);
  const states = Object.entries(report.finalStates)
    .sort((a, b) => b[1] - a[1])
    .map(([state, n]) => [state, String(n)]);
  const violations = Object.entries(report.violationsByKind).map(([kind, n]) => [kind, String(n)]);
  const total = report.violations.length;
  const parts = [
    `Chaos run: ${report.checkouts} checkouts, seed ${report.seed}, ${report.workers} workers, variant ${report.variant}`,
    `Schedule sha256 ${report.scheduleHash}`,
    '',
    table('Faults by type', ['fault', 'planned', 'injected'], faults),
    '',
    table('Checkouts by card plan', ['plan', 'checkouts'], cards),
    '',
    table('Checkouts by final state', ['state', 'checkouts'], states),
    '',
    table('Violations', ['invariant', 'violations'], violations),
    '',
  ];
  for (const v of report.violations.slice(0, 20)) parts.push(`  ${v.kind} ${v.orderId ?? '-'}: ${v.detail}`);
  if (report.violations.length > 20)
    parts.push(`  … ${report.violations.length - 20} more in the JSON report`);
  parts.push(
    `Warnings: ${report.warnings} (uncharged orphan PaymentIntents)`,
    `Workers started ${report.stack.workerStarts} times, ${report.stack.unexpectedWorkerExits} unplanned exits; Temporal restarts took ${report.stack.temporalRestartMs.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(', ') || 'none'}`,
    `Duration ${(report.durationMs / 1000).toFixed(1)} s (deadline ${(report.deadlineMs / 1000).toFixed(0)} s)`,
    `Violations: ${total}. ${report.passed ? 'PASS' : 'FAIL'}`,
  );
  return parts.join('\n');
}
