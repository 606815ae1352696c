/**
 * Observability for a process that runs checkouts: structured, redacted logs (`logging.ts`), the
 * Prometheus endpoint with Temporal's and the product's metrics (`metrics.ts`), and OpenTelemetry
 * tracing from the HTTP intake to each Stripe call (`tracing.ts`). docs/observability.md lists
 * every metric, span and log field.
 *
 * A process calls `startObservability(config)` once, first thing, before any Temporal connection:
 * it installs the Temporal runtime (log routing and the metrics endpoint) and registers tracing.
 * Workers get their interceptors and sinks from `workerInterceptors()` / `workerSinks()`, and the
 * workflow bundle its interceptor modules from `WORKFLOW_INTERCEPTOR_MODULES`.
 */
import type { Client } from '@temporalio/client';
import type { Runtime, WorkerInterceptors } from '@temporalio/worker';
import type { DestinationStream } from 'pino';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { AppConfig } from '../config';
import { createLogger, type Logger } from './logging';
import { VisibilityGauges, activityMetricsInterceptor, installRuntime } from './metrics';
import {
  activityTracingInterceptor,
  startTracing,
  tracingExports,
  workflowTracingSinks,
  type Tracing,
} from './tracing';

export { createLogger, redactText, temporalLogger, type Logger } from './logging';
export { ProductMetric } from './metric-names';
export { VisibilityGauges, readVisibility } from './metrics';
export {
  TracedStripeHttpClient,
  activeTracing,
  clientTracingInterceptors,
  startTracing,
  traceHttpIntake,
  tracingExports,
} from './tracing';

/**
 * Workflow interceptor modules for `bundleWorkflowCode`: one, which gives the runs that are traced
 * OpenTelemetry's workflow interceptors (workflow spans, context into activity headers) and the
 * others nothing (src/observability/workflow-tracing.ts). Which runs are traced is decided by each
 * run's start, never by the worker, because a run must replay with the interceptors it ran with.
 * (The product's state counters are counted by the workflows themselves: `StateMetrics` in
 * src/workflows/common.ts.)
 */
export const WORKFLOW_INTERCEPTOR_MODULES: readonly string[] = [require.resolve('./workflow-tracing')];

/**
 * Activity interceptors: the tracing span outermost (when `tracing`: default, whether this process
 * exports spans), the product counters inside it.
 */
export function workerInterceptors(tracing: boolean = tracingExports()): WorkerInterceptors {
  return {
    activity: tracing
      ? [activityTracingInterceptor, activityMetricsInterceptor]
      : [activityMetricsInterceptor],
  };
}

/** The sink the workflow spans leave the sandbox through (dropped when tracing is off). */
export function workerSinks(): ReturnType<typeof workflowTracingSinks> {
  return workflowTracingSinks();
}

/** The secret values in the configuration: the logger removes each wherever it appears. */
export function secretsOf(config: AppConfig): string[] {
  const apiKey: unknown = config.temporal.connect?.connectionOptions.apiKey;
  return [
    config.stripe.secretKey,
    ...config.stripe.webhookSecrets,
    ...(typeof apiKey === 'string' ? [apiKey] : []),
    ...(config.provisioning.databaseUrl === undefined ? [] : [config.provisioning.databaseUrl]),
    ...(config.provisioning.http?.token === undefined ? [] : [config.provisioning.http.token]),
  ];
}

export interface Observability {
  readonly logger: Logger;
  readonly runtime: Runtime;
  readonly tracing: Tracing;
  /**
   * Starts the visibility gauges on `client` (a worker's own connection will do), unless they are
   * off (`METRICS_VISIBILITY_INTERVAL_MS=0`) or there is no metrics endpoint to show them.
   */
  startVisibilityGauges(client: Client): VisibilityGauges | undefined;
  /** Stops the gauges, flushes spans and logs. */
  shutdown(): Promise<void>;
}

export interface StartObservabilityOptions {
  /** `name` on every log line (`worker`, `stack`). */
  readonly name?: string;
  /** Where log lines go; default stdout. */
  readonly logDestination?: DestinationStream;
  /** Where spans go instead of the configured exporter (tests: an in-memory exporter). */
  readonly spanProcessor?: SpanProcessor;
}

export function startObservability(
  config: AppConfig,
  options: StartObservabilityOptions = {},
): Observability {
  const logger = createLogger({
    level: config.logLevel,
    knownSecrets: secretsOf(config),
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.logDestination === undefined ? {} : { destination: options.logDestination }),
  });
  const tracing = startTracing(config.observability.tracing, {
    ...(options.spanProcessor === undefined ? {} : { spanProcessor: options.spanProcessor }),
  });
  const runtime = installRuntime({
    logger,
    logLevel: config.logLevel,
    metrics: {
      prometheus: config.observability.prometheus,
      visibilityIntervalMs: config.observability.visibilityIntervalMs,
    },
  });
  const gauges: VisibilityGauges[] = [];
  return {
    logger,
    runtime,
    tracing,
    startVisibilityGauges(client) {
      const interval = config.observability.visibilityIntervalMs;
      if (interval <= 0 || config.observability.prometheus === undefined) return undefined;
      const g = new VisibilityGauges(client, logger, runtime.metricMeter);
      g.start(interval);
      gauges.push(g);
      return g;
    },
    async shutdown() {
      await Promise.all(gauges.map((g) => g.stop()));
      await tracing.spanProcessor.forceFlush();
      logger.flush();
    },
  };
}
