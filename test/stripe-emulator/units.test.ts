/**
 * The emulator's building blocks on their own: router, clock, event log, idempotency store,
 * fault selection, parameter canonicalization and the search query parser.
 */
import assert from 'node:assert/strict';
import { Clock } from '../../src/stripe-emulator/clock';
import { StripeApiError } from '../../src/stripe-emulator/errors';
import { EventLog, type StripeEvent } from '../../src/stripe-emulator/events';
import { FaultInjector } from '../../src/stripe-emulator/faults';
import { IdempotencyStore } from '../../src/stripe-emulator/idempotency';
import { canonicalParams } from '../../src/stripe-emulator/params';
import { parseSearchQuery } from '../../src/stripe-emulator/payment-intents';
import { type Route, Router } from '../../src/stripe-emulator/router';

function route(method: 'GET' | 'POST', pattern: string): Route {
  return { kind: 'raw', method, pattern, handler: () => ({ status: 200, body: pattern }) };
}

describe('Stripe emulator building blocks', () => {
  describe('Router', () => {
    const router = new Router([
      route('GET', '/v1/payment_intents/:id'),
      route('GET', '/v1/payment_intents/search'),
      route('POST', '/v1/payment_intents/:id/confirm'),
    ]);

    it('prefers a literal segment over a parameter, whatever the order routes were added in', () => {
      assert.equal(
        router.match('GET', '/v1/payment_intents/search')?.route.pattern,
        '/v1/payment_intents/search',
      );
      assert.deepEqual(router.match('GET', '/v1/payment_intents/pi_1')?.pathParams, { id: 'pi_1' });
    });

    it('decodes path parameters and refuses undecodable ones', () => {
      assert.deepEqual(router.match('POST', '/v1/payment_intents/pi%5F2/confirm')?.pathParams, {
        id: 'pi_2',
      });
      assert.equal(router.match('GET', '/v1/payment_intents/%E0%A4%A'), undefined);
    });

    it('matches method and segment count exactly', () => {
      assert.equal(router.match('POST', '/v1/payment_intents/pi_1'), undefined);
      assert.equal(router.match('GET', '/v1/payment_intents/pi_1/confirm'), undefined);
      assert.equal(router.match('GET', '/v1/payment_intents/'), undefined);
    });
  });

  describe('Clock', () => {
    it('is real time plus an offset that only moves forward', () => {
      let real = 1_000_000;
      const clock = new Clock(() => real);
      assert.equal(clock.nowMs(), 1_000_000);
      clock.advance(60);
      real += 500;
      assert.equal(clock.nowMs(), 1_060_500);
      assert.equal(clock.unix(), 1060);
      assert.equal(clock.offsetSeconds(), 60);
      assert.throws(() => clock.advance(-1), RangeError);
      clock.resetOffset();
      assert.equal(clock.nowMs(), 1_000_500);
    });
  });

  describe('EventLog', () => {
    it('snapshots objects, lists newest first by type with paging, and notifies subscribers', () => {
      const errors: unknown[] = [];
      const log = new EventLog(new Clock(), (error) => errors.push(error));
      const seen: StripeEvent[] = [];
      const unsubscribe = log.subscribe((event) => seen.push(event));
      log.subscribe(() => {
        throw new Error('a broken subscriber');
      });
      const object = { id: 'pi_1', status: 'processing' };
      const first = log.emit('payment_intent.processing', object, { id: 'req_1', idempotency_key: 'k1' });
      object.status = 'succeeded';
      log.emit('payment_intent.succeeded', object);
      log.emit('charge.succeeded', { id: 'ch_1' });
      assert.equal(first.data.object['status'], 'processing');
      assert.deepEqual(first.request, { id: 'req_1', idempotency_key: 'k1' });
      assert.equal(seen.length, 3);
      assert.equal(errors.length, 3);

      const page = log.list({ type: 'payment_intent.*', limit: 1 });
      assert.deepEqual(
        page.data.map((event) => event.type),
        ['payment_intent.succeeded'],
      );
      assert.equal(page.has_more, true);
      const next = log.list({ type: 'payment_intent.*', starting_after: page.data[0]?.id ?? '' });
      assert.deepEqual(
        next.data.map((event) => event.id),
        [first.id],
      );
      assert.equal(next.has_more, false);
      assert.equal(log.get(first.id), first);

      unsubscribe();
      log.emit('charge.refunded', { id: 'ch_1' });
      assert.equal(seen.length, 3);
      log.clear();
      assert.equal(log.list().data.length, 0);
    });
  });

  describe('IdempotencyStore', () => {
    const stored = {
      status: 200,
      body: '{}',
      headers: {},
      originalRequestId: 'req_1',
      method: 'POST',
      path: '/v1/customers',
      canonicalParams: '{}',
    };

    it('locks, stores, replays, detects other endpoints and parameters, and expires on the clock', () => {
      const clock = new Clock(() => 0);
      const store = new IdempotencyStore(clock, () => 100);
      const ns = IdempotencyStore.namespace('', 'k');
      assert.equal(store.begin(ns, 'POST', '/v1/customers', '{}').kind, 'acquired');
      assert.equal(store.begin(ns, 'POST', '/v1/refunds', '{"x":1}').kind, 'in_flight');
      store.complete(ns, stored);
      assert.equal(store.begin(ns, 'POST', '/v1/customers', '{}').kind, 'replay');
      assert.equal(store.begin(ns, 'POST', '/v1/refunds', '{}').kind, 'other_endpoint');
      assert.equal(store.begin(ns, 'POST', '/v1/customers', '{"a":"1"}').kind, 'other_params');
      assert.equal(
        store.begin(IdempotencyStore.namespace('acct_1', 'k'), 'POST', '/v1/x', '{}').kind,
        'acquired',
      );
      clock.advance(100);
      assert.equal(store.begin(ns, 'POST', '/v1/customers', '{"a":"1"}').kind, 'acquired');
    });

    it('releases the lock without storing', () => {
      const store = new IdempotencyStore(new Clock(), () => 100);
      assert.equal(store.begin('n', 'POST', '/v1/customers', '{}').kind, 'acquired');
      store.release('n');
      assert.equal(store.begin('n', 'POST', '/v1/customers', '{"other":"1"}').kind, 'acquired');
    });
  });

  describe('FaultInjector', () => {
    const candidate = (key: string, orderId = 'o1') => ({
      method: 'POST',
      path: '/v1/payment_intents',
      idempotencyKey: key,
      params: { metadata: { order_id: orderId } },
    });

    it('fires on the nth match only, counting matches and hits', () => {
      const faults = new FaultInjector();
      const rule = faults.add({ fault: 'transient_500', path: '/v1/payment_*', nth: 2 });
      const fired = [1, 2, 3].map((i) => faults.select(candidate(`k${i}`))?.id);
      assert.deepEqual(fired, [undefined, rule.id, undefined]);
      assert.deepEqual(
        faults.list().map((r) => [r.matched, r.hits]),
        [[3, 1]],
      );
    });

    it('filters by method, key prefix and metadata, and applies `times` times', () => {
      const faults = new FaultInjector();
      faults.add({
        fault: 'rate_limit_429',
        method: 'post',
        idempotencyKey: 'order-*',
        metadata: { order_id: 'o9' },
        times: 2,
      });
      assert.equal(faults.select(candidate('order-1', 'o1')), undefined);
      assert.equal(faults.select(candidate('other-1', 'o9')), undefined);
      assert.equal(faults.select(candidate('order-1', 'o9'))?.fault, 'rate_limit_429');
      assert.equal(faults.select(candidate('order-2', 'o9'))?.fault, 'rate_limit_429');
      assert.equal(faults.select(candidate('order-3', 'o9')), undefined);
    });

    it('draws probabilities from a seeded generator, so the same seed repeats the same choices', () => {
      const run = (): boolean[] => {
        const faults = new FaultInjector();
        faults.add({ fault: 'transient_500', probability: 0.5, seed: 42 });
        return Array.from({ length: 40 }, (_, i) => faults.select(candidate(`k${i}`)) !== undefined);
      };
      const first = run();
      assert.deepEqual(run(), first);
      assert.ok(first.includes(true) && first.includes(false));
    });

    it('rejects malformed rules with a message naming the field', () => {
      const faults = new FaultInjector();
      assert.throws(() => faults.add({ fault: 'explode' }), /fault/);
      assert.throws(() => faults.add({ fault: 'slow', delayMs: -1 }), /delayMs/);
      assert.throws(() => faults.add({ fault: 'slow', colour: 'red' }), /colour|unrecognized/i);
      assert.equal(faults.remove('fault_unknown'), 0);
    });
  });

  describe('parameters and search', () => {
    it('canonicalizes parameter trees regardless of key order', () => {
      assert.equal(
        canonicalParams({ b: '1', a: { y: '2', x: ['3', '4'] } }),
        canonicalParams({ a: { x: ['3', '4'], y: '2' }, b: '1' }),
      );
      assert.notEqual(canonicalParams({ a: ['1', '2'] }), canonicalParams({ a: ['2', '1'] }));
    });

    it('parses metadata, status, currency and customer clauses joined by AND', () => {
      assert.deepEqual(
        parseSearchQuery(`metadata['order_id']:'o-1' AND status:"succeeded" and currency:'usd'`),
        [
          { field: 'metadata', key: 'order_id', value: 'o-1' },
          { field: 'status', value: 'succeeded' },
          { field: 'currency', value: 'usd' },
        ],
      );
      assert.throws(() => parseSearchQuery('amount>100'), StripeApiError);
      assert.throws(() => parseSearchQuery(`status:'succeeded' OR status:'canceled'`), StripeApiError);
    });
  });
});
