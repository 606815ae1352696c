import assert from 'node:assert/strict';
import { Client } from '@temporalio/client';
import {
  EXAMPLE_CANCEL_REQUEST,
  EXAMPLE_CHECKOUT_REQUEST,
  EXAMPLE_HOSTED_CHECKOUT_REQUEST,
  EXAMPLE_PAYMENT_ACTION,
  EXAMPLE_REFUND_REQUEST,
  EXAMPLE_RESOLVE_REQUEST,
  EXAMPLE_RETRY_PROVISIONING_REQUEST,
  EXAMPLE_RETRY_REQUEST,
  openApiDocument,
} from '../../src/http/openapi';
import { buildHttpIntake, registeredRoutes } from '../../src/http/server';
import {
  AMOUNT_MAX,
  ORDER_ID_MAX_LENGTH,
  QUANTITY_MAX,
  validateCancelRequest,
  validateCheckoutInput,
  validateHostedCheckoutInput,
  validateRefundRequest,
  validateResolveRequest,
  validateRetryPaymentRequest,
  validateRetryProvisioningRequest,
} from '../../src/workflows/definitions';

interface Schema {
  properties?: Record<string, Schema>;
  required?: string[];
  maximum?: number;
  maxLength?: number;
}

interface Doc {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, Schema> };
}

const doc = openApiDocument() as unknown as Doc;
const schema = (name: string): Schema => {
  const s = doc.components.schemas[name];
  assert.ok(s, `schema ${name}`);
  return s;
};

describe('OpenAPI description', () => {
  it('describes exactly the routes the intake registers', async () => {
    // No Temporal call is made: routes exist as soon as the app is ready.
    const app = buildHttpIntake({ client: new Client(), taskQueue: 'unused', webhookSecrets: [] });
    await app.ready();
    try {
      const served = registeredRoutes(app)
        .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z]+)/g, '{$1}')}`)
        .sort();
      const described = Object.entries(doc.paths)
        .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
        .sort();
      assert.deepEqual(described, served);
    } finally {
      await app.close();
    }
  });

  it('gives examples that the shared validation accepts', () => {
    assert.equal(validateCheckoutInput(EXAMPLE_CHECKOUT_REQUEST).ok, true);
    assert.equal(validateRetryPaymentRequest(EXAMPLE_RETRY_REQUEST).ok, true);
    assert.equal(validateCancelRequest(EXAMPLE_CANCEL_REQUEST).ok, true);
    assert.equal(validateResolveRequest(EXAMPLE_RESOLVE_REQUEST).ok, true);
    assert.equal(validateRefundRequest(EXAMPLE_REFUND_REQUEST).ok, true);
    assert.equal(validateRetryProvisioningRequest(EXAMPLE_RETRY_PROVISIONING_REQUEST).ok, true);
  });

  it('names only fields the validation accepts, and marks as required those it requires', () => {
    const request = schema('CheckoutRequest');
    const properties = Object.keys(request.properties ?? {});
    const full = { ...EXAMPLE_CHECKOUT_REQUEST, options: { paymentPollIntervalMs: 1000 } };
    assert.deepEqual(properties.sort(), Object.keys(full).sort());
    assert.equal(validateCheckoutInput(full).ok, true);
    for (const field of request.required ?? []) {
      const without: Record<string, unknown> = { ...EXAMPLE_CHECKOUT_REQUEST };
      delete without[field];
      const v = validateCheckoutInput(without);
      assert.ok(!v.ok && v.problems.some((p) => p.startsWith(`${field}:`)), `${field} is required`);
    }
    const options = Object.keys(request.properties?.options?.properties ?? {});
    for (const option of options) {
      assert.equal(
        validateCheckoutInput({ ...EXAMPLE_CHECKOUT_REQUEST, options: { [option]: 1000 } }).ok,
        true,
        option,
      );
    }
    assert.equal(validateCheckoutInput({ ...EXAMPLE_CHECKOUT_REQUEST, options: { nope: 1 } }).ok, false);
  });

  it('describes the hosted request with exactly the fields its validation accepts', () => {
    const request = schema('HostedCheckoutRequest');
    const { mode, ...example } = EXAMPLE_HOSTED_CHECKOUT_REQUEST;
    assert.equal(mode, 'hosted');
    assert.equal(validateHostedCheckoutInput(example).ok, true);
    const full = {
      ...example,
      customerId: 'cus_Demo123',
      paymentMethodTypes: ['card'],
      options: { sessionTimeoutMs: 60_000 },
    };
    assert.equal(validateHostedCheckoutInput(full).ok, true);
    assert.deepEqual(Object.keys(request.properties ?? {}).sort(), ['mode', ...Object.keys(full)].sort());
    for (const field of (request.required ?? []).filter((f) => f !== 'mode')) {
      const without: Record<string, unknown> = { ...example };
      delete without[field];
      const v = validateHostedCheckoutInput(without);
      assert.ok(!v.ok && v.problems.some((p) => p.startsWith(`${field}:`)), `${field} is required`);
    }
    for (const option of Object.keys(request.properties?.options?.properties ?? {})) {
      assert.equal(
        validateHostedCheckoutInput({ ...example, options: { [option]: 60_000 } }).ok,
        true,
        option,
      );
    }
  });

  it('states the same limits as the shared constants', () => {
    const p = schema('CheckoutRequest').properties ?? {};
    assert.equal(p.amount?.maximum, AMOUNT_MAX);
    assert.equal(p.orderId?.maxLength, ORDER_ID_MAX_LENGTH);
    assert.equal(p.provision?.properties?.quantity?.maximum, QUANTITY_MAX);
    assert.equal(validateCheckoutInput({ ...EXAMPLE_CHECKOUT_REQUEST, amount: AMOUNT_MAX + 1 }).ok, false);
    assert.equal(
      validateCheckoutInput({ ...EXAMPLE_CHECKOUT_REQUEST, orderId: 'x'.repeat(ORDER_ID_MAX_LENGTH + 1) }).ok,
      false,
    );
  });

  it('describes the payment action with the fields the route answers, none of them optional but the redirect', () => {
    const s = schema('PaymentAction');
    const keys = Object.keys(EXAMPLE_PAYMENT_ACTION).sort();
    assert.deepEqual(Object.keys(s.properties ?? {}).sort(), keys);
    assert.deepEqual([...(s.required ?? [])].sort(), keys);
    assert.deepEqual(Object.keys(s.properties?.nextAction?.properties ?? {}).sort(), [
      'redirectToUrl',
      'type',
    ]);
    assert.deepEqual(s.properties?.nextAction?.required, ['type']);
    const op = doc.paths['/v1/checkouts/{orderId}/payment-action']?.get as
      { responses: Record<string, unknown> } | undefined;
    assert.deepEqual(Object.keys(op?.responses ?? {}).sort(), ['200', '400', '404', '409', '502', '503']);
  });

  it('lists the remediation bodies with the fields their validators require', () => {
    const cases: [string, Record<string, unknown>, (i: unknown) => { ok: boolean }][] = [
      ['RetryPaymentRequest', EXAMPLE_RETRY_REQUEST, validateRetryPaymentRequest],
      ['CancelRequest', EXAMPLE_CANCEL_REQUEST, validateCancelRequest],
      ['ResolveRequest', EXAMPLE_RESOLVE_REQUEST, validateResolveRequest],
      ['RefundRequest', EXAMPLE_REFUND_REQUEST, validateRefundRequest],
      ['RetryProvisioningRequest', EXAMPLE_RETRY_PROVISIONING_REQUEST, validateRetryProvisioningRequest],
    ];
    for (const [name, example, validate] of cases) {
      const s = schema(name);
      assert.deepEqual(Object.keys(s.properties ?? {}).sort(), Object.keys(example).sort(), name);
      for (const field of s.required ?? []) {
        const without = { ...example };
        delete without[field];
        assert.equal(validate(without).ok, false, `${name}.${field} is required`);
      }
    }
  });
});
