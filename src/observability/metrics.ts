/**
 * Metrics: one Prometheus endpoint per worker process, served by the Temporal runtime. It carries
 * the SDK's own metrics (`temporal_*`: task slots, poll and schedule latencies, activity outcomes)
 * and the product's (`checkout_*`, see `metric-names.ts` and docs/observability.md), all emitted
 * through the runtime's metric meter:
 *
 * - counters from the workflow (state changes, charges, reconciliations), by `StateMetrics` in
 *   src/workflows/common.ts, suppressed during replay;
 * - refunds, by an activity interceptor when `createRefund` returns Stripe's answer;
 * - gauges read from Temporal visibility (`VisibilityGauges`): open checkouts by state, how many wait
 *   for an operator and how long the oldest has waited.
 *
 * `Runtime.install` must run once per process, before the first connection (a `NativeConnection`
 * creates the default runtime otherwise); `installRuntime` says so clearly if it is too late.
 */
import type { Client } from '@temporalio/client';
import type { MetricMeter } from '@temporalio/common';
import {
  Runtime,
  makeTelemetryFilterString,
  type ActivityInboundCallsInterceptor,
  type ActivityInterceptorsFactory,
  type LogLevel,
} from '@temporalio/worker';
import {
  SEARCHABLE_STATES,
  CHECKOUT_WORKFLOW_TYPES,
  CheckoutStateAttr,
  NeedsAttentionSinceAttr,
  reconciliationCaseWorkflowType,
} from '../workflows/definitions';
import { temporalLogger, type LogLevelName, type Logger } from './logging';
import { ProductMetric } from './metric-names';

export interface MetricsConfig {
  /** The Prometheus endpoint (`http://host:port/metrics`); undefined: no endpoint. */
  readonly prometheus: { readonly host: string; readonly port: number } | undefined;
  /** How often the worker refreshes the visibility gauges; 0 turns them off. */
  readonly visibilityIntervalMs: number;
}

const CORE_LEVEL: Record<LogLevelName, LogLevel> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARN',
  error: 'ERROR',
};

let installed = false;

/**
 * Installs the process's Temporal runtime: its log goes to `logger`, its metrics (and ours) to the
 * Prometheus endpoint when one is configured. Call once, before any Temporal connection.
 */
export function installRuntime(options: {
  readonly logger: Logger;
  readonly logLevel: LogLevelName;
  readonly metrics: MetricsConfig;
}): Runtime {
  if (installed) throw new Error('installRuntime: the Temporal runtime is already installed in this process');
  const { prometheus } = options.metrics;
  try {
    const runtime = Runtime.install({
      logger: temporalLogger(options.logger),
      telemetryOptions: {
        logging: {
          forward: {},
          filter: makeTelemetryFilterString({ core: CORE_LEVEL[options.logLevel], other: 'ERROR' }),
        },
        ...(prometheus === undefined
          ? {}
          : {
              metrics: {
                prometheus: {
                  bindAddress: `${prometheus.host}:${prometheus.port}`,
                  useSecondsForDurations: true,
                },
              },
            }),
      },
    });
    installed = true;
    return runtime;
  } catch (err) {
    throw new Error(
      'Could not install the Temporal runtime (metrics and log routing). It must be installed once, ' +
        'before the first Temporal connection of the process',
      { cause: err },
    );
  }
}

/** Counts refunds when `createRefund` returns: Stripe has answered with a refund object. */
export const activityMetricsInterceptor: ActivityInterceptorsFactory = (ctx) => {
  const inbound: ActivityInboundCallsInterceptor = {
    async execute(input, next) {
      const result = await next(input);
      if (ctx.info.activityType === 'createRefund') {
        const status =
          typeof result === 'object' && result !== null && 'status' in result
            ? String(result.status)
            : 'unknown';
        ctx.metricMeter
          .createCounter(ProductMetric.refunds, '1', 'Refunds Stripe answered (createRefund completed)')
          .add(1, { status });
      }
      return result;
    },
  };
  return { inbound };
};

export interface VisibilitySnapshot {
  /** Open checkouts (card and hosted) per `CheckoutState`. */
  readonly openByState: Readonly<Record<string, number>>;
  /** Open workflows with `NeedsAttentionSince` set, per workflow type (checkouts and reconciler cases). */
  readonly needsAttentionByType: Readonly<Record<string, number>>;
  readonly oldestNeedsAttentionAgeSeconds: number;
}

/** The workflow types that can wait for an operator. */
export const NEEDS_ATTENTION_WORKFLOW_TYPES: readonly string[] = [
  ...CHECKOUT_WORKFLOW_TYPES,
  reconciliationCaseWorkflowType,
];

function typeIn(types: readonly string[]): string {
  return `WorkflowType IN (${types.map((t) => `'${t}'`).join(', ')})`;
}

/** How many open checkouts waiting for an operator one refresh reads to find the oldest. */
export const NEEDS_ATTENTION_SCAN_LIMIT = 1000;

/**
 * Reads Temporal visibility: per state one count query (`CountWorkflowExecutions`) over open card
 * and hosted checkouts, plus one list of the open workflows with `NeedsAttentionSince` set (at most
 * `NEEDS_ATTENTION_SCAN_LIMIT`; beyond it the counts come from count queries and the age from the
 * ones scanned). Visibility is eventually consistent: a change shows after a second or so.
 */
export async function readVisibility(client: Client, now: Date = new Date()): Promise<VisibilitySnapshot> {
  const running = `ExecutionStatus = 'Running'`;
  const openCheckouts = `${typeIn(CHECKOUT_WORKFLOW_TYPES)} AND ${running}`;
  const openByState: Record<string, number> = {};
  for (const state of SEARCHABLE_STATES) {
    const { count } = await client.workflow.count(
      `${openCheckouts} AND ${CheckoutStateAttr.name} = '${state}'`,
    );
    openByState[state] = count;
  }
  const needsAttentionByType: Record<string, number> = Object.fromEntries(
    NEEDS_ATTENTION_WORKFLOW_TYPES.map((t) => [t, 0]),
  );
  const waiting = `${typeIn(NEEDS_ATTENTION_WORKFLOW_TYPES)} AND ${running} AND ${NeedsAttentionSinceAttr.name} IS NOT NULL`;
  let scanned = 0;
  let oldest: number | undefined;
  for await (const wf of client.workflow.list({ query: waiting })) {
    scanned += 1;
    needsAttentionByType[wf.type] = (needsAttentionByType[wf.type] ?? 0) + 1;
    const since = wf.typedSearchAttributes.get(NeedsAttentionSinceAttr);
    if (since !== undefined && (oldest === undefined || since.getTime() < oldest)) oldest = since.getTime();
    if (scanned >= NEEDS_ATTENTION_SCAN_LIMIT) {
      for (const t of NEEDS_ATTENTION_WORKFLOW_TYPES) {
        const q = `WorkflowType = '${t}' AND ${running} AND ${NeedsAttentionSinceAttr.name} IS NOT NULL`;
        needsAttentionByType[t] = (await client.workflow.count(q)).count;
      }
      break;
    }
  }
  return {
    openByState,
    needsAttentionByType,
    oldestNeedsAttentionAgeSeconds:
      oldest === undefined ? 0 : Math.max(0, Math.round((now.getTime() - oldest) / 1000)),
  };
}

/**
 * Refreshes the visibility gauges every `intervalMs` on the runtime's metric meter. A failed refresh
 * is logged and the gauges keep their last values (`checkout_visibility_refreshed_timestamp_seconds`
 * shows how old they are).
 */
export class VisibilityGauges {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private busy = false;
  private readonly open;
  private readonly needsAttention;
  private readonly oldestAge;
  private readonly refreshed;

  constructor(
    private readonly client: Client,
    private readonly logger: Logger,
    meter: MetricMeter = Runtime.instance().metricMeter,
  ) {
    this.open = meter.createGauge(ProductMetric.open, 'int', '1', 'Open checkouts by state (visibility)');
    this.needsAttention = meter.createGauge(
      ProductMetric.needsAttention,
      'int',
      '1',
      'Open checkouts and reconciler cases waiting for an operator, by workflow type',
    );
    this.oldestAge = meter.createGauge(
      ProductMetric.needsAttentionOldestAge,
      'float',
      's',
      'Age of the oldest open checkout or reconciler case waiting for an operator',
    );
    this.refreshed = meter.createGauge(
      ProductMetric.visibilityRefreshed,
      'float',
      's',
      'When the visibility gauges were last refreshed',
    );
  }

  /** One refresh now; resolves when the gauges hold the new values. */
  async refresh(): Promise<VisibilitySnapshot> {
    const snapshot = await readVisibility(this.client);
    for (const [state, count] of Object.entries(snapshot.openByState)) this.open.set(count, { state });
    for (const [workflowType, count] of Object.entries(snapshot.needsAttentionByType)) {
      this.needsAttention.set(count, { workflow_type: workflowType });
    }
    this.oldestAge.set(snapshot.oldestNeedsAttentionAgeSeconds);
    this.refreshed.set(Date.now() / 1000);
    return snapshot;
  }

  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.timer !== undefined) return;
    const tick = (): void => {
      // A slow visibility store must not stack refreshes on top of each other.
      if (this.busy) return;
      this.busy = true;
      this.running = this.refresh()
        .then(
          () => undefined,
          (err: unknown) => this.logger.warn({ err }, 'refreshing the visibility gauges failed'),
        )
        .finally(() => {
          this.busy = false;
        });
    };
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
