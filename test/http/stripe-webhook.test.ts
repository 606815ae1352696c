import assert from 'node:assert/strict';
import Stripe from 'stripe';
import { routeStripeEvent, verifyStripeWebhook } from '../../src/http/stripe-webhook';

const SECRET = 'whsec_unitTestSecret1';

function signed(payload: string, secret = SECRET, timestamp = Math.floor(Date.now() / 1000)): string {
  return Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
}

function event(object: Record<string, unknown>, type = 'payment_intent.succeeded'): Stripe.Event {
  const payload = JSON.stringify({ id: 'evt_1', object: 'event', type, data: { object } });
  const v = verifyStripeWebhook(Buffer.from(payload), signed(payload), [SECRET]);
  assert.ok(v.ok);
  return v.event;
}

describe('Stripe webhook verification and routing', () => {
  it('verifies the raw bytes and tries each secret in turn', () => {
    const payload = '{"id":"evt_2","object":"event","type":"x","data":{"object":{}}}';
    const header = signed(payload, 'whsec_second2');
    const v = verifyStripeWebhook(Buffer.from(payload), header, [SECRET, 'whsec_second2']);
    assert.ok(v.ok);
    assert.equal(v.event.id, 'evt_2');
  });

  it('says why it refused: no secret, no header, a forged or a stale signature', () => {
    const payload = '{"id":"evt_3"}';
    const reasons = [
      verifyStripeWebhook(Buffer.from(payload), signed(payload), []),
      verifyStripeWebhook(Buffer.from(payload), undefined, [SECRET]),
      verifyStripeWebhook(Buffer.from(payload), signed(payload, 'whsec_other3'), [SECRET]),
      verifyStripeWebhook(
        Buffer.from(payload),
        signed(payload, SECRET, Math.floor(Date.now() / 1000) - 301),
        [SECRET],
      ),
    ].map((v) => (v.ok ? 'accepted' : v.reason));
    assert.match(reasons[0] ?? '', /no webhook signing secret/);
    assert.match(reasons[1] ?? '', /missing Stripe-Signature/);
    assert.match(reasons[2] ?? '', /No signatures found matching/);
    assert.match(reasons[3] ?? '', /tolerance/);
  });

  it('routes by metadata.checkout_workflow_id first, then client_reference_id', () => {
    assert.deepEqual(
      routeStripeEvent(
        event({ id: 'pi_1', object: 'payment_intent', metadata: { checkout_workflow_id: 'checkout-o1' } }),
      ),
      { workflowId: 'checkout-o1', eventId: 'evt_1', type: 'payment_intent.succeeded', objectId: 'pi_1' },
    );
    assert.equal(
      routeStripeEvent(
        event(
          { id: 'cs_1', object: 'checkout.session', client_reference_id: 'checkout-o2', metadata: {} },
          'checkout.session.completed',
        ),
      )?.workflowId,
      'checkout-o2',
    );
    assert.equal(routeStripeEvent(event({ id: 'cus_1', object: 'customer', metadata: {} })), undefined);
  });
});
