import assert from 'node:assert/strict';
import { checkoutRefOf, classify, type CheckoutView, type Observation } from '../../src/reconciler/classify';
import type { PaymentIntentStatus } from '../../src/workflows/definitions';

const NOW_MS = Date.UTC(2026, 10, 27, 12, 0, 0);
const HOUR_MS = 60 * 60 * 1000;
const GRACE_MS = HOUR_MS;
const TWO_HOURS_AGO = Math.floor((NOW_MS - 2 * HOUR_MS) / 1000);
const A_MINUTE_AGO = Math.floor((NOW_MS - 60_000) / 1000);

function obs(
  status: PaymentIntentStatus,
  checkout: CheckoutView,
  extra: Partial<Omit<Observation, 'paymentIntent'>> & { created?: number; id?: string } = {},
): Observation {
  return {
    paymentIntent: {
      id: extra.id ?? 'pi_1',
      status,
      amount: 4200,
      currency: 'usd',
      created: extra.created ?? TWO_HOURS_AGO,
    },
    ref: { orderId: 'order-1', workflowId: 'checkout-order-1' },
    checkout,
    entitlement: extra.entitlement,
    refunded: extra.refunded ?? 0,
  };
}

const ABSENT: CheckoutView = { kind: 'absent' };
const COMPLETED: CheckoutView = { kind: 'closed', status: 'COMPLETED' };

describe('reconciler classify', () => {
  describe('checkoutRefOf', () => {
    it('reads the order and workflow id a checkout sets', () => {
      assert.deepEqual(
        checkoutRefOf({ order_id: 'o-1', checkout_workflow_id: 'checkout-o-1', generation: '1' }),
        { orderId: 'o-1', workflowId: 'checkout-o-1' },
      );
    });

    it('ignores PaymentIntents without checkout metadata or with metadata no checkout could set', () => {
      assert.equal(checkoutRefOf({}), undefined);
      assert.equal(checkoutRefOf({ order_id: 'o-1' }), undefined);
      assert.equal(checkoutRefOf({ order_id: 'o-1', checkout_workflow_id: 'checkout-o-2' }), undefined);
      assert.equal(checkoutRefOf({ order_id: 'o 1', checkout_workflow_id: 'checkout-o 1' }), undefined);
    });
  });

  describe('unconfirmed PaymentIntents', () => {
    for (const status of ['requires_payment_method', 'requires_confirmation'] as const) {
      it(`${status} past the grace is an orphan when the checkout is closed or absent`, () => {
        assert.equal(classify(obs(status, COMPLETED), NOW_MS, GRACE_MS)?.kind, 'orphan');
        assert.equal(classify(obs(status, ABSENT), NOW_MS, GRACE_MS)?.kind, 'orphan');
      });
    }

    it('is never an orphan inside the grace', () => {
      assert.equal(
        classify(obs('requires_payment_method', ABSENT, { created: A_MINUTE_AGO }), NOW_MS, GRACE_MS),
        undefined,
      );
    });

    it('is left alone while a running checkout follows it', () => {
      const running: CheckoutView = { kind: 'running', state: 'declined', paymentIntentId: 'pi_1' };
      assert.equal(classify(obs('requires_payment_method', running), NOW_MS, GRACE_MS), undefined);
    });

    it('is an orphan when a running checkout follows another PaymentIntent', () => {
      const running: CheckoutView = { kind: 'running', state: 'declined', paymentIntentId: 'pi_2' };
      const f = classify(obs('requires_payment_method', running), NOW_MS, GRACE_MS);
      assert.equal(f?.kind, 'orphan');
      assert.match(f?.detail ?? '', /follows pi_2/);
    });

    it('is left alone while a running checkout follows no PaymentIntent yet (an open hosted session)', () => {
      const running: CheckoutView = {
        kind: 'running',
        state: 'awaiting_customer_action',
        paymentIntentId: undefined,
      };
      assert.equal(classify(obs('requires_payment_method', running), NOW_MS, GRACE_MS), undefined);
    });

    it('is left alone while a running checkout may still adopt what it created', () => {
      for (const state of ['validating', 'reconciling', 'creating_payment', undefined]) {
        const running: CheckoutView = { kind: 'running', state, paymentIntentId: undefined };
        assert.equal(classify(obs('requires_confirmation', running), NOW_MS, GRACE_MS), undefined, state);
      }
    });

    it('is left alone while a checkout indexed as processing follows an earlier PaymentIntent (a new card after a decline)', () => {
      // `processing` covers creating_payment: the checkout may be about to adopt this one.
      for (const state of ['processing', 'validating', 'reconciling', 'creating_payment']) {
        const running: CheckoutView = { kind: 'running', state, paymentIntentId: 'pi_earlier' };
        assert.equal(classify(obs('requires_confirmation', running), NOW_MS, GRACE_MS), undefined, state);
      }
      const resting: CheckoutView = { kind: 'running', state: 'declined', paymentIntentId: 'pi_earlier' };
      assert.equal(classify(obs('requires_confirmation', resting), NOW_MS, GRACE_MS)?.kind, 'orphan');
    });
  });

  describe('succeeded PaymentIntents', () => {
    it('are healthy when the entitlement names them, even after the checkout history is gone', () => {
      const entitlement = { paymentIntentId: 'pi_1' };
      assert.equal(classify(obs('succeeded', COMPLETED, { entitlement }), NOW_MS, GRACE_MS), undefined);
      assert.equal(classify(obs('succeeded', ABSENT, { entitlement }), NOW_MS, GRACE_MS), undefined);
    });

    it('are paid but not provisioned when the closed checkout provisioned nothing', () => {
      const f = classify(obs('succeeded', { kind: 'closed', status: 'FAILED' }), NOW_MS, GRACE_MS);
      assert.equal(f?.kind, 'paid_not_provisioned');
      assert.equal(f?.checkout, 'failed');
      assert.equal(f?.amount, 4200);
    });

    it('are charged without a checkout when no workflow exists and nothing was provisioned', () => {
      assert.equal(classify(obs('succeeded', ABSENT), NOW_MS, GRACE_MS)?.kind, 'charged_without_checkout');
    });

    it('are a duplicate payment when the checkout provisioned another PaymentIntent', () => {
      const f = classify(
        obs('succeeded', COMPLETED, { entitlement: { paymentIntentId: 'pi_0' } }),
        NOW_MS,
        GRACE_MS,
      );
      assert.equal(f?.kind, 'duplicate_payment');
    });

    it('are healthy once fully refunded; a partial refund is still a finding and says so', () => {
      assert.equal(classify(obs('succeeded', ABSENT, { refunded: 4200 }), NOW_MS, GRACE_MS), undefined);
      const f = classify(obs('succeeded', ABSENT, { refunded: 1000 }), NOW_MS, GRACE_MS);
      assert.equal(f?.kind, 'charged_without_checkout');
      assert.equal(f?.refunded, 1000);
      assert.match(f?.detail ?? '', /1000 of 4200 refunded/);
    });

    it('are left to a running checkout, which provisions them or parks itself', () => {
      const running: CheckoutView = { kind: 'running', state: 'provisioning', paymentIntentId: 'pi_1' };
      assert.equal(classify(obs('succeeded', running), NOW_MS, GRACE_MS), undefined);
    });
  });

  it('leaves every other status alone', () => {
    for (const status of ['requires_action', 'processing', 'requires_capture', 'canceled'] as const) {
      assert.equal(classify(obs(status, ABSENT), NOW_MS, GRACE_MS), undefined, status);
    }
  });
});
