import assert from 'node:assert/strict';
import http from 'node:http';
import { type AddressInfo } from 'node:net';
import Stripe from 'stripe';
import {
  WebhookDispatcher,
  WebhookParamError,
  type WebhookEvent,
  type WebhookEventSource,
} from '../../src/stripe-emulator/webhooks';

const stripe = new Stripe('sk_test_webhooks');

interface TestEvent extends WebhookEvent {
  readonly object: 'event';
  readonly data: { readonly object: { readonly id: string } };
}

/** The smallest event source: what the emulator's event log offers the dispatcher. */
class FakeEventSource implements WebhookEventSource {
  private readonly listeners = new Set<(event: WebhookEvent) => void>();
  private counter = 0;

  subscribe(listener: (event: WebhookEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  emit(type = 'payment_intent.succeeded'): TestEvent {
    this.counter++;
    const event: TestEvent = {
      id: `evt_test_${this.counter}`,
      object: 'event',
      type,
      data: { object: { id: `pi_test_${this.counter}` } },
    };
    for (const listener of this.listeners) listener(event);
    return event;
  }
}

interface Received {
  readonly payload: string;
  readonly signature: string;
  readonly status: number;
  readonly atMs: number;
}

/** A real HTTP receiver that answers each request with the status `answer` picks. */
async function startReceiver(answer: (index: number) => number = () => 200): Promise<{
  url: string;
  received: Received[];
  close: () => Promise<void>;
}> {
  const received: Received[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const status = answer(received.length);
      received.push({
        payload: Buffer.concat(chunks).toString('utf8'),
        signature: String(request.headers['stripe-signature']),
        status,
        atMs: Date.now(),
      });
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhooks`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function eventIds(received: readonly Received[]): string[] {
  return received.map((r) => (JSON.parse(r.payload) as { id: string }).id);
}

describe('WebhookDispatcher', () => {
  let source: FakeEventSource;
  let dispatcher: WebhookDispatcher;
  let receiver: Awaited<ReturnType<typeof startReceiver>> | undefined;

  beforeEach(() => {
    source = new FakeEventSource();
  });

  afterEach(async () => {
    dispatcher.stop();
    await receiver?.close();
    receiver = undefined;
  });

  it('signs each delivery so that the real stripe.webhooks.constructEvent accepts it', async () => {
    receiver = await startReceiver();
    dispatcher = new WebhookDispatcher(source);
    const endpoint = dispatcher.createEndpoint({ url: receiver.url });
    assert.match(endpoint.secret, /^whsec_/);
    assert.match(endpoint.id, /^we_/);
    const sent = source.emit();
    await dispatcher.whenIdle();
    const [delivery] = receiver.received;
    assert.ok(delivery);
    assert.match(delivery.signature, /^t=\d+,v1=[0-9a-f]{64}$/);
    const event = stripe.webhooks.constructEvent(delivery.payload, delivery.signature, endpoint.secret);
    assert.equal(event.id, sent.id);
    assert.equal(event.type, 'payment_intent.succeeded');
    assert.deepEqual(JSON.parse(delivery.payload), sent);
  });

  it('signs with real wall-clock time, so a stale or tampered delivery is rejected by constructEvent', async () => {
    receiver = await startReceiver();
    dispatcher = new WebhookDispatcher(source);
    const endpoint = dispatcher.createEndpoint({ url: receiver.url, secret: 'whsec_fixed_for_test' });
    source.emit();
    await dispatcher.whenIdle();
    const [delivery] = receiver.received;
    assert.ok(delivery);
    const t = Number(/^t=(\d+)/.exec(delivery.signature)?.[1]);
    assert.ok(Math.abs(t - Date.now() / 1000) < 5, 'the timestamp is the wall clock');
    assert.throws(
      () =>
        stripe.webhooks.constructEvent(
          delivery.payload,
          delivery.signature,
          endpoint.secret,
          300,
          undefined,
          (t + 301) * 1000,
        ),
      (error: Error) =>
        error instanceof Stripe.errors.StripeSignatureVerificationError && /tolerance/i.test(error.message),
    );
    assert.throws(
      () =>
        stripe.webhooks.constructEvent(
          delivery.payload.replace('pi_test_1', 'pi_test_2'),
          delivery.signature,
          endpoint.secret,
        ),
      Stripe.errors.StripeSignatureVerificationError,
    );
    assert.throws(
      () => stripe.webhooks.constructEvent(delivery.payload, delivery.signature, 'whsec_other'),
      Stripe.errors.StripeSignatureVerificationError,
    );
  });

  it('retries a receiver that fails the first attempts, signing every retry anew', async () => {
    receiver = await startReceiver((index) => (index < 2 ? 500 : 200));
    // A wall clock that moves one second per reading makes every attempt's timestamp distinct
    // without slowing the test; the signatures still verify because they stay within tolerance.
    let tick = 0;
    const start = Date.now();
    dispatcher = new WebhookDispatcher(source, { wallClockMs: () => start + 1000 * tick++ });
    const endpoint = dispatcher.createEndpoint({ url: receiver.url, retry_base_delay_ms: 20 });
    const sent = source.emit();
    await dispatcher.whenIdle();
    assert.deepEqual(
      receiver.received.map((r) => r.status),
      [500, 500, 200],
    );
    const signatures = receiver.received.map((r) => r.signature);
    assert.equal(new Set(signatures).size, 3, 'each attempt carries its own signature');
    for (const r of receiver.received) {
      const event = stripe.webhooks.constructEvent(
        r.payload,
        r.signature,
        endpoint.secret,
        300,
        undefined,
        start + 10_000,
      );
      assert.equal(event.id, sent.id);
    }
    const [record] = dispatcher.deliveries({ endpoint: endpoint.id });
    assert.ok(record);
    assert.equal(record.status, 'succeeded');
    assert.deepEqual(
      record.attempts.map((a) => a.status_code),
      [500, 500, 200],
    );
    const gaps = receiver.received.slice(1).map((r, i) => r.atMs - (receiver?.received[i]?.atMs ?? 0));
    assert.ok(
      (gaps[0] ?? 0) >= 15 && (gaps[1] ?? 0) >= 35,
      `exponential backoff, got gaps ${gaps.join(', ')}`,
    );
  });

  it('retries after a connection error and gives up after max_attempts', async () => {
    const closed = await startReceiver();
    const url = closed.url;
    await closed.close();
    dispatcher = new WebhookDispatcher(source);
    const endpoint = dispatcher.createEndpoint({ url, retry_base_delay_ms: 5, max_attempts: 3 });
    source.emit();
    await dispatcher.whenIdle();
    const [record] = dispatcher.deliveries({ endpoint: endpoint.id });
    assert.ok(record);
    assert.equal(record.status, 'failed');
    assert.equal(record.attempts.length, 3);
    for (const attempt of record.attempts) {
      assert.equal(attempt.status_code, null);
      assert.match(attempt.error ?? '', /ECONNREFUSED/);
    }
  });

  it('treats the first fail_first attempts as failed whatever the receiver answers', async () => {
    receiver = await startReceiver();
    dispatcher = new WebhookDispatcher(source);
    const endpoint = dispatcher.createEndpoint({ url: receiver.url, fail_first: 2, retry_base_delay_ms: 5 });
    source.emit();
    await dispatcher.whenIdle();
    assert.equal(receiver.received.length, 3, 'the receiver sees every attempt');
    const [record] = dispatcher.deliveries({ endpoint: endpoint.id });
    assert.deepEqual(
      record?.attempts.map((a) => [a.status_code, a.forced_failure, a.succeeded]),
      [
        [200, true, false],
        [200, true, false],
        [200, false, true],
      ],
    );
  });

  it('delivers an event twice when the endpoint asks for duplicates, with the same event id', async () => {
    receiver = await startReceiver();
    dispatcher = new WebhookDispatcher(source);
    const endpoint = dispatcher.createEndpoint({ url: receiver.url, duplicate: 1 });
    const sent = source.emit();
    await dispatcher.whenIdle();
    assert.deepEqual(eventIds(receiver.received), [sent.id, sent.id]);
    assert.deepEqual(
      dispatcher
        .deliveries({ endpoint: endpoint.id })
        .map((d) => d.copy)
        .sort(),
      [1, 2],
    );
  });

  it('makes the same duplicate choices for the same seed', async () => {
    receiver = await startReceiver();
    const choices: number[][] = [];
    for (let run = 0; run < 2; run++) {
      const runSource = new FakeEventSource();
      const runDispatcher = new WebhookDispatcher(runSource);
      const endpoint = runDispatcher.createEndpoint({ url: receiver.url, duplicate: 0.5, seed: 42 });
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push(runSource.emit().id);
      await runDispatcher.whenIdle();
      const deliveries = runDispatcher.deliveries({ endpoint: endpoint.id });
      choices.push(ids.map((id) => deliveries.filter((d) => d.event === id).length));
      runDispatcher.stop();
    }
    dispatcher = new WebhookDispatcher(source);
    assert.deepEqual(choices[0], choices[1]);
    assert.ok(
      choices[0]?.includes(1) && choices[0].includes(2),
      `a mix of single and double: ${choices[0]?.join()}`,
    );
  });

  it('holds deliveries for the reorder window and sends them out of emission order', async () => {
    receiver = await startReceiver();
    dispatcher = new WebhookDispatcher(source);
    const endpoint = dispatcher.createEndpoint({
      url: receiver.url,
      reorder: true,
      reorder_window_ms: 30,
      seed: 7,
    });
    const emitted = [source.emit().id, source.emit().id, source.emit().id, source.emit().id];
    await dispatcher.whenIdle();
    const dispatchOrder = dispatcher
      .deliveries({ endpoint: endpoint.id })
      .sort((a, b) => (a.dispatch_seq ?? 0) - (b.dispatch_seq ?? 0))
      .map((d) => d.event);
    assert.notDeepEqual(dispatchOrder, emitted);
    assert.deepEqual([...dispatchOrder].sort(), [...emitted].sort());
    assert.deepEqual([...eventIds(receiver.received)].sort(), [...emitted].sort());
  });

  it('waits delay_ms before the first attempt', async () => {
    receiver = await startReceiver();
    dispatcher = new WebhookDispatcher(source);
    dispatcher.createEndpoint({ url: receiver.url, delay_ms: 150 });
    const emittedAt = Date.now();
    source.emit();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(receiver.received.length, 0, 'nothing arrives inside the delay');
    await dispatcher.whenIdle();
    assert.ok((receiver.received[0]?.atMs ?? 0) - emittedAt >= 140);
  });

  it('delivers only the enabled event types', async () => {
    receiver = await startReceiver();
    dispatcher = new WebhookDispatcher(source);
    dispatcher.createEndpoint({ url: receiver.url, enabled_events: ['charge.refunded'] });
    source.emit('payment_intent.succeeded');
    const wanted = source.emit('charge.refunded');
    await dispatcher.whenIdle();
    assert.deepEqual(eventIds(receiver.received), [wanted.id]);
  });

  it('rejects invalid endpoint parameters with a named parameter', () => {
    dispatcher = new WebhookDispatcher(source);
    assert.throws(() => dispatcher.createEndpoint({}), /Missing required param: url/);
    assert.throws(
      () => dispatcher.createEndpoint({ url: 'ftp://x' }),
      (error: unknown) => error instanceof WebhookParamError && error.param === 'url',
    );
    assert.throws(
      () => dispatcher.createEndpoint({ url: 'http://127.0.0.1/', duplicate: 2 }),
      (error: unknown) => error instanceof WebhookParamError && error.param === 'duplicate',
    );
    assert.throws(
      () => dispatcher.createEndpoint({ url: 'http://127.0.0.1/', colour: 'red' }),
      /unknown parameter: colour/,
    );
    const fromForm = dispatcher.createEndpoint({
      url: 'http://127.0.0.1/',
      duplicate: '0.25',
      reorder: 'true',
      enabled_events: { 0: 'a.b', 1: 'c.d' },
    });
    assert.equal(fromForm.duplicate, 0.25);
    assert.equal(fromForm.reorder, true);
    assert.deepEqual(fromForm.enabled_events, ['a.b', 'c.d']);
  });

  it('cancels retries on delete and on stop, clearing every timer', async () => {
    receiver = await startReceiver(() => 500);
    dispatcher = new WebhookDispatcher(source);
    const kept = dispatcher.createEndpoint({ url: receiver.url, retry_base_delay_ms: 60_000 });
    const removed = dispatcher.createEndpoint({ url: receiver.url, retry_base_delay_ms: 60_000 });
    source.emit();
    while (receiver.received.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(dispatcher.deleteEndpoint(removed.id));
    assert.equal(dispatcher.deleteEndpoint(removed.id), false);
    assert.deepEqual(
      dispatcher.listEndpoints().map((e) => e.id),
      [kept.id],
    );
    dispatcher.stop();
    await dispatcher.whenIdle();
    assert.equal(source.listenerCount, 0);
    assert.ok(dispatcher.deliveries().every((d) => d.status === 'canceled'));
  });
});
