/**
 * Tracing with OpenTelemetry: one trace from the HTTP request that starts a checkout to each Stripe
 * call the checkout makes.
 *
 *   POST /v1/checkouts (server span, `traceHttpIntake`)
 *     └ StartWorkflow:checkout (client interceptor on the intake's Temporal client)
 *         └ RunWorkflow:checkout (workflow interceptors, bundled; exported through a sink)
 *             └ StartActivity:confirmPaymentIntent (workflow outbound interceptor)
 *                 └ RunActivity:confirmPaymentIntent (activity interceptor, in the worker)
 *                     └ Stripe POST /v1/payment_intents/{id}/confirm (`TracedStripeHttpClient`)
 *
 * The context crosses Temporal in headers (W3C trace context), so the intake and the worker may be
 * different processes. `startTracing` registers the process-wide provider, context manager
 * (AsyncLocalStorage) and propagator; without it every instrument here is a cheap no-op, and the
 * workflow spans go to a processor that drops them.
 *
 * Export: OTLP over HTTP (`OTEL_TRACES_EXPORTER=otlp`, endpoint from `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), or none. Tests pass their own processor (in memory).
 */
import { SpanKind, SpanStatusCode, context, propagation, trace, type Span } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, NoopSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { ClientInterceptors } from '@temporalio/client';
import {
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
  makeWorkflowExporter,
} from '@temporalio/interceptors-opentelemetry';
import type { ActivityInterceptorsFactory, InjectedSinks } from '@temporalio/worker';
import type { OpenTelemetryWorkflowExporter } from '@temporalio/interceptors-opentelemetry/lib/workflow/definitions';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Stripe from 'stripe';
import { redactText } from './logging';

export interface TracingConfig {
  readonly exporter: 'otlp' | 'none';
  /** The OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`. */
  readonly otlpEndpoint: string;
  readonly serviceName: string;
}

export interface Tracing {
  readonly provider: NodeTracerProvider;
  readonly resource: Resource;
  /** Where finished spans go; the worker hands it to the workflow span sink too. */
  readonly spanProcessor: SpanProcessor;
  /** Flushes and stops export; the provider stays registered (no-op afterwards). */
  shutdown(): Promise<void>;
}

let active: Tracing | undefined;

/**
 * Registers the process-wide tracer provider. Once per process: a second call returns the first
 * one unchanged (OpenTelemetry's global API cannot be registered twice).
 */
export function startTracing(
  config: TracingConfig,
  options: { readonly spanProcessor?: SpanProcessor } = {},
): Tracing {
  if (active !== undefined) return active;
  const resource = new Resource({ [ATTR_SERVICE_NAME]: config.serviceName });
  const spanProcessor =
    options.spanProcessor ??
    (config.exporter === 'otlp'
      ? new BatchSpanProcessor(new OTLPTraceExporter({ url: config.otlpEndpoint }))
      : new NoopSpanProcessor());
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register();
  active = {
    provider,
    resource,
    spanProcessor,
    shutdown: () => provider.shutdown(),
  };
  return active;
}

/** The tracing this process registered, if any. */
export function activeTracing(): Tracing | undefined {
  return active;
}

/** Client interceptors that open a span per workflow start, signal, update or query and pass it on. */
export function clientTracingInterceptors(): ClientInterceptors {
  return { workflow: [new OpenTelemetryWorkflowClientInterceptor()] };
}

/** Activity interceptors that continue the workflow's trace in the worker. */
export const activityTracingInterceptor: ActivityInterceptorsFactory = (ctx) => ({
  inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
  outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
});

/**
 * Whether this process exports spans: `startTracing` ran with an OTLP exporter or a processor of the
 * caller's. Without it the process registers no tracing activity interceptor, its Stripe clients
 * use the SDK's own HTTP client, and the checkouts it starts are not traced runs (their workflows
 * skip OpenTelemetry's workflow interceptors: workflow-tracing.ts).
 */
export function tracingExports(): boolean {
  return active !== undefined && !(active.spanProcessor instanceof NoopSpanProcessor);
}

/** The sink workflow spans leave the sandbox through; a dropping one when tracing is off. */
export function workflowTracingSinks(): InjectedSinks<{ exporter: OpenTelemetryWorkflowExporter }> {
  const tracing = active;
  return {
    exporter: makeWorkflowExporter(
      tracing?.spanProcessor ?? new NoopSpanProcessor(),
      tracing?.resource ?? new Resource({}),
    ),
  };
}

/**
 * A server span per intake request. The span is opened on arrival (continuing a `traceparent` the
 * caller sent) and made the active context for the route handler, so the Temporal client calls the
 * handler makes (the workflow start) become its children. Call before routes are added.
 */
export function traceHttpIntake(app: FastifyInstance): void {
  const tracer = trace.getTracer('checkout-http-intake');
  const spans = new WeakMap<FastifyRequest, Span>();
  app.addHook('onRequest', (request, _reply, done) => {
    const parent = propagation.extract(context.active(), request.headers);
    const span = tracer.startSpan(
      `HTTP ${request.method}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': request.method,
          'url.path': request.url.split('?')[0] ?? '',
        },
      },
      parent,
    );
    spans.set(request, span);
    done();
  });
  // The last hook before the handler: running the rest of the request inside the span's context
  // makes it the parent of everything the handler awaits.
  app.addHook('preHandler', (request, _reply, done) => {
    const span = spans.get(request);
    if (span === undefined) return done();
    context.with(trace.setSpan(context.active(), span), done);
  });
  app.addHook('onError', (request, _reply, error, done) => {
    spans.get(request)?.recordException({ name: error.name, message: redactText(error.message) });
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const span = spans.get(request);
    if (span !== undefined) {
      const route = request.routeOptions.url;
      if (route !== undefined) {
        span.updateName(`${request.method} ${route}`);
        span.setAttribute('http.route', route);
      }
      span.setAttribute('http.response.status_code', reply.statusCode);
      if (reply.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      spans.delete(request);
    }
    done();
  });
}

/**
 * `/v1/payment_intents/pi_123/confirm` → `/v1/payment_intents/{id}/confirm`: a bounded span name.
 * Stripe's path words are lowercase snake_case (`payment_intents`); an object id is a lowercase
 * prefix, an underscore and mixed-case alphanumerics, so it has an uppercase letter or a digit.
 * (A digit alone is not enough: about one random 24-character id in 70 has none.)
 */
export function stripePathTemplate(path: string): string {
  const bare = path.split('?')[0] ?? '';
  return bare
    .split('/')
    .map((segment) => (/^[a-z]+_[A-Za-z0-9_]+$/.test(segment) && /[A-Z0-9]/.test(segment) ? '{id}' : segment))
    .join('/');
}

function header(headers: Record<string, unknown>, name: string): string | undefined {
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name && typeof v === 'string') return v;
  }
  return undefined;
}

/**
 * The Stripe SDK's HTTP client with a client span around each request. The activity's span is the
 * active context when the activity calls the SDK, so each Stripe call nests under its activity.
 * Recorded: method, path (no query), host, status, Stripe's request id and the idempotency key
 * (derived from the workflow id and step; never a secret). Never recorded: headers or bodies.
 */
export class TracedStripeHttpClient extends Stripe.HttpClient {
  private readonly tracer = trace.getTracer('checkout-stripe');

  constructor(private readonly inner: Stripe.HttpClient = Stripe.createNodeHttpClient()) {
    super();
  }

  override getClientName(): string {
    return this.inner.getClientName();
  }

  override async makeRequest(
    host: string,
    port: string,
    path: string,
    method: string,
    headers: Parameters<Stripe.HttpClient['makeRequest']>[4],
    requestData: string,
    protocol: string,
    timeout: number,
  ): ReturnType<Stripe.HttpClient['makeRequest']> {
    const template = stripePathTemplate(path);
    const idempotencyKey = header(headers, 'idempotency-key');
    return this.tracer.startActiveSpan(
      `Stripe ${method} ${template}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'http.request.method': method,
          'url.path': path.split('?')[0] ?? '',
          'url.template': template,
          'server.address': host,
          'server.port': Number(port),
          ...(idempotencyKey === undefined ? {} : { 'stripe.idempotency_key': idempotencyKey }),
        },
      },
      async (span) => {
        try {
          const res = await this.inner.makeRequest(
            host,
            port,
            path,
            method,
            headers,
            requestData,
            protocol,
            timeout,
          );
          const status = res.getStatusCode();
          span.setAttribute('http.response.status_code', status);
          const requestId = header(res.getHeaders(), 'request-id');
          if (requestId !== undefined) span.setAttribute('stripe.request_id', requestId);
          if (status >= 400) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
          return res;
        } catch (err) {
          const message = redactText(err instanceof Error ? err.message : String(err));
          span.recordException({ name: err instanceof Error ? err.name : 'Error', message });
          span.setStatus({ code: SpanStatusCode.ERROR, message });
          throw err;
        } finally {
          span.end();
        }
      },
    );
  }
}
