/**
 * One trace from the HTTP intake to the Stripe call: a checkout started with `POST /v1/checkouts`
 * (a real listening intake, a real worker, the dev server and the emulator) produces spans that
 * share the caller's trace id, and the Stripe confirm span's parents lead, link by link, through the
 * activity, the workflow and the workflow start back to the intake's request span.
 */
import assert from 'node:assert/strict';
import { context, propagation, trace, type Span } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Client } from '@temporalio/client';
import { waitForCheckoutResult } from '../../src/client';
import { startHttpIntake, type HttpIntake } from '../../src/http/server';
import { activeTracing, clientTracingInterceptors, startTracing } from '../../src/observability';
import { stripePathTemplate } from '../../src/observability/tracing';
import { orderInput, startIntakeFixture, type IntakeFixture } from '../http/fixture';

describe('tracing from the HTTP intake to Stripe', function () {
  this.timeout(180_000);
  const exporter = new InMemorySpanExporter();
  let f: IntakeFixture;
  let intake: HttpIntake;

  before(async function () {
    this.timeout(180_000);
    // Before the worker exists: the worker hands the active processor to its workflow span sink.
    assert.equal(activeTracing(), undefined, 'no other test registered tracing in this process');
    startTracing(
      { exporter: 'none', otlpEndpoint: 'http://127.0.0.1:1/v1/traces', serviceName: 'checkout-test' },
      { spanProcessor: new SimpleSpanProcessor(exporter) },
    );
    f = await startIntakeFixture('tracing');
    const client = new Client({
      connection: f.client.connection,
      namespace: f.client.options.namespace,
      interceptors: clientTracingInterceptors(),
    });
    intake = await startHttpIntake({
      host: '127.0.0.1',
      port: 0,
      client,
      taskQueue: f.taskQueue,
      webhookSecrets: [],
    });
  });

  after(async () => {
    await intake?.close();
    await f?.close();
    // Stop collecting: later test files in this process would otherwise fill the exporter.
    await activeTracing()?.shutdown();
  });

  it('links the intake request, the workflow start, the workflow, the activity and the Stripe call in one trace', async function () {
    const input = orderInput(f, this.test?.title ?? 'trace');
    // The caller has a trace of its own; the intake continues it (W3C traceparent).
    const caller: Span = trace.getTracer('test-caller').startSpan('caller');
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    propagation.inject(trace.setSpan(context.active(), caller), headers);
    const res = await fetch(`${intake.url}/v1/checkouts`, {
      method: 'POST',
      headers,
      body: JSON.stringify(input),
    });
    caller.end();
    assert.equal(res.status, 201);
    assert.equal((await waitForCheckoutResult(f.client, input.orderId)).outcome, 'completed');

    const traceId = caller.spanContext().traceId;
    let spans: ReadableSpan[] = [];
    const complete = (): boolean => {
      spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
      return (
        spans.some((s) => s.name.startsWith('RunWorkflow:')) &&
        spans.some((s) => s.name === 'Stripe POST /v1/payment_intents/{id}/confirm')
      );
    };
    const deadline = Date.now() + 30_000;
    while (!complete()) {
      if (Date.now() > deadline) {
        throw new Error(`incomplete trace: ${spans.map((s) => s.name).join(', ')}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }

    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const confirm = spans.find((s) => s.name === 'Stripe POST /v1/payment_intents/{id}/confirm');
    assert.ok(confirm);
    const chain: string[] = [];
    for (let s: ReadableSpan | undefined = confirm; s !== undefined;) {
      chain.push(s.name);
      const parent = s.parentSpanId;
      if (parent === undefined || parent === caller.spanContext().spanId) break;
      const next = byId.get(parent);
      assert.ok(next, `the parent of ${s.name} is in the trace (chain so far: ${chain.join(' <- ')})`);
      s = next;
    }
    assert.deepEqual(chain, [
      'Stripe POST /v1/payment_intents/{id}/confirm',
      'RunActivity:confirmPaymentIntent',
      'StartActivity:confirmPaymentIntent',
      'RunWorkflow:checkout',
      'StartWorkflow:checkout',
      'POST /v1/checkouts',
    ]);
    const server = spans.find((s) => s.name === 'POST /v1/checkouts');
    assert.equal(server?.parentSpanId, caller.spanContext().spanId, 'the intake continues the caller trace');
    assert.equal(server?.attributes['http.response.status_code'], 201);
    assert.equal(confirm.attributes['http.response.status_code'], 200);
    assert.match(String(confirm.attributes['stripe.idempotency_key']), /\/confirm$/);
    // Every Stripe call of the checkout is in the trace, each under its own activity.
    const stripeSpans = spans.filter((s) => s.name.startsWith('Stripe '));
    assert.ok(stripeSpans.length >= 2, stripeSpans.map((s) => s.name).join(', '));
    for (const s of stripeSpans) {
      assert.match(
        byId.get(s.parentSpanId ?? '')?.name ?? '',
        /^RunActivity:/,
        `${s.name} under an activity`,
      );
    }
    // Nothing secret on any span.
    const dump = JSON.stringify(spans.map((s) => ({ n: s.name, a: s.attributes, e: s.events })));
    assert.ok(!dump.includes('sk_test_'), 'no API key on a span');
  });

  it('names Stripe spans by a bounded path template', () => {
    assert.equal(
      stripePathTemplate('/v1/payment_intents/pi_3AbC123/confirm'),
      '/v1/payment_intents/{id}/confirm',
    );
    // An id without a digit (the local Stripe server made this one; the trace test above once got it).
    assert.equal(
      stripePathTemplate('/v1/payment_intents/pi_qOJwlhBCLyntqlzQNTKLHAmO/confirm'),
      '/v1/payment_intents/{id}/confirm',
    );
    assert.equal(
      stripePathTemplate('/v1/checkout/sessions/cs_test_a1B2c3/expire'),
      '/v1/checkout/sessions/{id}/expire',
    );
    assert.equal(stripePathTemplate('/v1/payment_intents/search?query=x'), '/v1/payment_intents/search');
    assert.equal(stripePathTemplate('/v1/payment_methods'), '/v1/payment_methods');
    assert.equal(stripePathTemplate('/v1/refunds'), '/v1/refunds');
  });
});
