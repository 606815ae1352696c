/**
 * `src/worker.ts` as its own operating-system process, configured only through its environment, the
 * way it runs in production. Node runs it with tsx's loader in the same process (`--import tsx`), not
 * through the `tsx` CLI, whose wrapper process would take the signal while the real worker went on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { until } from '../workflows/support';

const ROOT = path.resolve(__dirname, '..', '..');
export const POLLING_LINE = 'checkout worker polling';

export interface WorkerProcess {
  readonly child: ChildProcess;
  /** The SDK's default worker identity is `<pid>@<hostname>`; history events carry it. */
  readonly identityPrefix: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  hasExited(): boolean;
  /** Resolves once the output matches `pattern`; rejects if the process exits first. */
  waitFor(pattern: RegExp, timeoutMs: number, what: string): Promise<void>;
}

/** Starts the worker process without waiting for it (it may be waiting for Temporal). */
export function spawnWorkerProcess(env: Readonly<Record<string, string>>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'worker.ts')], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  let gone = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      gone = true;
      resolve({ code, signal });
    }),
  );
  return {
    child,
    identityPrefix: `${String(child.pid)}@`,
    exited,
    output: () => out,
    hasExited: () => gone,
    async waitFor(pattern: RegExp, timeoutMs: number, what: string): Promise<void> {
      await until(() => pattern.test(out) || gone, timeoutMs, what);
      if (!pattern.test(out)) throw new Error(`worker process exited before ${what}:\n${out}`);
    },
  };
}

/** Starts the worker process and resolves once it polls its task queue. */
export async function startWorkerProcess(env: Readonly<Record<string, string>>): Promise<WorkerProcess> {
  const w = spawnWorkerProcess(env);
  await w.waitFor(new RegExp(POLLING_LINE), 120_000, 'the worker process to poll');
  return w;
}

/** Kills what is still running (after a failed test); each process was started by the test. */
export function killAll(processes: readonly WorkerProcess[]): void {
  for (const w of processes) if (!w.hasExited()) w.child.kill('SIGKILL');
}

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const EventType = temporal.api.enums.v1.EventType;

function millis(t: HistoryEvent['eventTime']): number {
  return Number(t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6);
}

export interface ActivityRun {
  readonly attempt: number;
  /** The identity of the worker that reported the outcome. */
  readonly identity: string;
  readonly outcome: 'completed' | 'failed' | 'timed_out' | 'canceled';
  /** When the server recorded the outcome (ms since the epoch). */
  readonly at: number;
}

/** Each closed run of activities of one type, from a workflow's history, oldest first. */
export function activityRuns(events: readonly HistoryEvent[], activityType: string): ActivityRun[] {
  const scheduled = new Map<string, string>();
  const started = new Map<string, number>();
  const runs: ActivityRun[] = [];
  for (const e of events) {
    const id = String(e.eventId);
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) {
      scheduled.set(id, e.activityTaskScheduledEventAttributes?.activityType?.name ?? '');
    } else if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) {
      const a = e.activityTaskStartedEventAttributes;
      started.set(String(a?.scheduledEventId), a?.attempt ?? 0);
    }
    const closed =
      e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        ? { outcome: 'completed' as const, a: e.activityTaskCompletedEventAttributes }
        : e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
          ? { outcome: 'failed' as const, a: e.activityTaskFailedEventAttributes }
          : e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT
            ? { outcome: 'timed_out' as const, a: e.activityTaskTimedOutEventAttributes }
            : e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED
              ? { outcome: 'canceled' as const, a: e.activityTaskCanceledEventAttributes }
              : undefined;
    if (!closed) continue;
    const scheduledId = String(closed.a?.scheduledEventId);
    if (scheduled.get(scheduledId) !== activityType) continue;
    runs.push({
      attempt: started.get(scheduledId) ?? 0,
      identity: closed.a && 'identity' in closed.a ? (closed.a.identity ?? '') : '',
      outcome: closed.outcome,
      at: millis(e.eventTime),
    });
  }
  return runs;
}

/** The identities of the workers that completed workflow tasks after `afterMs`. */
export function workflowTaskIdentitiesAfter(events: readonly HistoryEvent[], afterMs: number): Set<string> {
  return new Set(
    events
      .filter(
        (e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED && millis(e.eventTime) > afterMs,
      )
      .map((e) => e.workflowTaskCompletedEventAttributes?.identity ?? ''),
  );
}
