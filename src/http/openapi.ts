/**
 * The intake's OpenAPI 3.1 description, served at `/openapi.json`.
 *
 * Written by hand from the shared validation in `src/workflows/definitions.ts` (which is plain code,
 * not a schema library, so nothing can be generated from it). It is kept honest by
 * test/http/openapi.test.ts: every route the server registers is described here and nothing else
 * is; every example request passes the shared validation; every field the schemas name is one the
 * validation accepts, and every limit matches the exported constants.
 */
import {
  AMOUNT_MAX,
  CHECKOUT_STATES,
  SEARCHABLE_STATES,
  HOSTED_PAYMENT_METHOD_TYPES,
  ORDER_ID_MAX_LENGTH,
  QUANTITY_MAX,
  RESOLVE_OUTCOMES,
  RETURN_URL_MAX_LENGTH,
  HOSTED_ORDER_ID_MAX_LENGTH,
} from '../workflows/definitions';
import type { PaymentAction } from '../payment-action';

type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json };

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const jsonBody = (schema: Json, example?: Json): Json => ({
  required: true,
  content: { 'application/json': example === undefined ? { schema } : { schema, example } },
});
const jsonResponse = (description: string, schema: Json): Json => ({
  description,
  content: { 'application/json': { schema } },
});
const errorResponse = (description: string): Json => jsonResponse(description, ref('Error'));

const orderIdParam: Json = {
  name: 'orderId',
  in: 'path',
  required: true,
  description: 'The order id the checkout was started with.',
  schema: { type: 'string', maxLength: ORDER_ID_MAX_LENGTH, pattern: '^[A-Za-z0-9_-]+$' },
};

const actorReason: { readonly [key: string]: Json } = {
  actor: { type: 'string', minLength: 1, maxLength: 200, description: 'Who asks (operator, system).' },
  reason: { type: 'string', minLength: 1, maxLength: 1000, description: 'Why, for the audit trail.' },
};

export const EXAMPLE_CHECKOUT_REQUEST = {
  orderId: 'order-1001',
  amount: 4200,
  currency: 'usd',
  customerId: 'cus_Demo123',
  paymentMethodId: 'pm_card_visa',
  provision: { sku: 'pro-plan', quantity: 1 },
} as const;

/** A hosted checkout: the customer pays on Stripe's page; the answer carries its URL. */
export const EXAMPLE_HOSTED_CHECKOUT_REQUEST = {
  mode: 'hosted',
  orderId: 'order-1002',
  amount: 4200,
  currency: 'usd',
  provision: { sku: 'pro-plan', quantity: 1 },
  successUrl: 'https://shop.example.com/thanks?session_id={CHECKOUT_SESSION_ID}',
  cancelUrl: 'https://shop.example.com/cart',
} as const;

export const EXAMPLE_RETRY_REQUEST = {
  paymentMethodId: 'pm_card_mastercard',
  actor: 'ops@example.com',
  reason: 'customer supplied a new card',
} as const;

export const EXAMPLE_CANCEL_REQUEST = { actor: 'ops@example.com', reason: 'customer asked' } as const;

export const EXAMPLE_RESOLVE_REQUEST = {
  actor: 'ops@example.com',
  reason: 'Stripe dashboard shows the payment succeeded',
  outcome: 'recheck',
} as const;

export const EXAMPLE_REFUND_REQUEST = {
  amount: 1000,
  actor: 'ops@example.com',
  reason: 'customer returned one seat',
} as const;

export const EXAMPLE_RETRY_PROVISIONING_REQUEST = {
  actor: 'ops@example.com',
  reason: 'the provisioning backend is back',
} as const;

/** The answer of `GET /v1/checkouts/{orderId}/payment-action` (the secret is made up). */
export const EXAMPLE_PAYMENT_ACTION = {
  orderId: 'order-1001',
  paymentIntentId: 'pi_3Demo123',
  status: 'requires_action',
  clientSecret: 'pi_3Demo123_secret_Example',
  nextAction: { type: 'use_stripe_sdk' },
} as const satisfies PaymentAction;

const refundEntrySchema: Json = {
  type: 'object',
  required: ['refundId', 'amount', 'actor', 'reason', 'at', 'full'],
  properties: {
    refundId: { type: 'string', description: 'Stripe refund id (re_…).' },
    amount: { type: 'integer' },
    idempotencyKey: {
      type: 'string',
      description: 'The key it was made under, `<workflow id>/refund/r<n>`; absent for one found in Stripe.',
    },
    actor: { type: 'string' },
    reason: { type: 'string' },
    at: { type: 'string', format: 'date-time' },
    full: { type: 'boolean', description: 'It left nothing of the payment: the entitlement is revoked.' },
    requested: {
      type: 'object',
      description:
        'The request id it was made for (as a digest of the order id and the Idempotency-Key) and the amount ' +
        'that request asked for (`null`: everything left); absent when the request had no id.',
      required: ['digest', 'amount'],
      properties: {
        digest: { type: 'string', pattern: '^[0-9a-f]{32}$' },
        amount: { type: ['integer', 'null'] },
      },
    },
  },
};

const idempotencyKeyParam: Json = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'The request id: the same key with the same body answers the first refund (`replayed: true`) and refunds ' +
    'nothing new; with another `amount` it is a 409 `idempotency_conflict`. Printable ASCII, 1 to 255 characters, ' +
    'an opaque value (a UUID), never personal data. Required when the body has `amount`; optional for a refund ' +
    'of everything left, which a repeat cannot exceed (it answers 409 nothing left).',
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x20-\\x7e]+$' },
};

const remediation = (summary: string, description: string, schema: string, example: Json): Json => ({
  post: {
    summary,
    description,
    parameters: [orderIdParam],
    requestBody: jsonBody(ref(schema), example),
    responses: {
      '200': jsonResponse(
        'The checkout after the workflow accepted and applied the request.',
        ref('CheckoutStatus'),
      ),
      '400': errorResponse('A field is missing or invalid; `fields` names each one.'),
      '404': errorResponse('No checkout for this order.'),
      '409': errorResponse('The checkout is in a state that does not allow this (the message says which).'),
    },
  },
});

export function openApiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Checkout intake',
      version: '1.0.0',
      description:
        'Starts and inspects checkouts that cannot charge a customer twice: one Temporal workflow per ' +
        'order id, so repeating a request for the same order returns the same checkout.',
    },
    paths: {
      '/v1/checkouts': {
        post: {
          summary: 'Start the checkout for an order, or return the one that exists',
          description:
            'Idempotent by `orderId`: the first request answers 201, a repeat with the same terms 200 ' +
            'with the same body, and nothing is charged twice. A repeat with other terms is a 409. ' +
            'Without `mode` (or with `"card"`) the checkout charges the given payment method; with ' +
            '`mode: "hosted"` it creates a Stripe Checkout Session and the answer carries its `url`, ' +
            'where the customer pays (a repeat answers the same url while the session is open).',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: { oneOf: [ref('CheckoutRequest'), ref('HostedCheckoutRequest')] },
                examples: {
                  card: { value: EXAMPLE_CHECKOUT_REQUEST },
                  hosted: { value: EXAMPLE_HOSTED_CHECKOUT_REQUEST },
                },
              },
            },
          },
          responses: {
            '201': jsonResponse('The checkout was started by this request.', {
              oneOf: [ref('Checkout'), ref('HostedCheckout')],
            }),
            '200': jsonResponse('The checkout already existed; same body as the first answer.', {
              oneOf: [ref('Checkout'), ref('HostedCheckout')],
            }),
            '202': jsonResponse(
              'Hosted only: Stripe did not create the Checkout Session in time. The checkout exists and ' +
                'keeps creating it (`checkoutSession.url` is null); poll `Location` after `Retry-After` seconds.',
              ref('HostedCheckout'),
            ),
            '400': errorResponse(
              'A field is missing or invalid; `fields` names each one. Nothing was started.',
            ),
            '409': errorResponse('The order already has a checkout with other terms; `fields` names them.'),
          },
        },
        get: {
          summary: 'List checkouts (Temporal visibility, eventually consistent)',
          parameters: [
            {
              name: 'state',
              in: 'query',
              description:
                'The CheckoutState search attribute: `processing` while a checkout works through its steps, else the state it rests in (docs/checkout.md).',
              schema: { type: 'string', enum: [...SEARCHABLE_STATES] },
            },
            {
              name: 'needsAttention',
              in: 'query',
              description: 'Only checkouts parked for an operator (`true`) or only the others (`false`).',
              schema: { type: 'string', enum: ['true', 'false'] },
            },
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            },
          ],
          responses: {
            '200': jsonResponse('Matching checkouts, newest first.', {
              type: 'object',
              required: ['checkouts'],
              properties: { checkouts: { type: 'array', items: ref('CheckoutListEntry') } },
            }),
            '400': errorResponse('A query parameter is invalid.'),
          },
        },
      },
      '/v1/checkouts/{orderId}': {
        get: {
          summary: "The checkout's status, read from the workflow",
          parameters: [orderIdParam],
          responses: {
            '200': jsonResponse('Current status, with the audit trail.', ref('CheckoutStatus')),
            '404': errorResponse('No checkout for this order.'),
          },
        },
      },
      '/v1/checkouts/{orderId}/payment-action': {
        get: {
          summary: 'What the customer needs to finish 3-D Secure (the client secret and next action)',
          description:
            'While the card checkout waits in `awaiting_customer_action`, reads its PaymentIntent from Stripe ' +
            "and answers its `client_secret` and `next_action`. Call it from the merchant's backend and pass the " +
            "answer to that customer's browser only: it runs Stripe.js `handleNextAction({ clientSecret })` " +
            '(`use_stripe_sdk`), or sends the customer to `nextAction.redirectToUrl` (`redirect_to_url`). The ' +
            'checkout notices the outcome by itself (webhook or polling). The client secret is never stored, ' +
            'logged or cached (`Cache-Control: no-store`); ask again rather than keeping it.',
          parameters: [orderIdParam],
          responses: {
            '200': {
              description: 'The PaymentIntent waits for the customer.',
              headers: { 'Cache-Control': { schema: { type: 'string', const: 'no-store' } } },
              content: {
                'application/json': { schema: ref('PaymentAction'), example: EXAMPLE_PAYMENT_ACTION },
              },
            },
            '400': errorResponse('The order id is malformed (`fields` names it).'),
            '404': errorResponse('No checkout for this order.'),
            '409': errorResponse(
              'Nothing for the customer to do: a hosted checkout, a checkout in another state (named in the ' +
                'message), or a PaymentIntent that has moved on from `requires_action` (also named).',
            ),
            '502': errorResponse('Stripe refused to read the PaymentIntent (`stripe_error`).'),
            '503': errorResponse(
              'Stripe could not be reached (`stripe_unavailable`; retry shortly), or this intake has no ' +
                'Stripe client (`not_configured`).',
            ),
          },
        },
      },
      '/v1/checkouts/{orderId}/retry-payment': remediation(
        'Retry a declined checkout with a new payment method',
        'Allowed after a decline, or in needs_attention when Stripe shows nothing was charged.',
        'RetryPaymentRequest',
        EXAMPLE_RETRY_REQUEST,
      ),
      '/v1/checkouts/{orderId}/cancel': remediation(
        'Cancel an unpaid checkout',
        'Cancels its PaymentIntent too. Refused once paid.',
        'CancelRequest',
        EXAMPLE_CANCEL_REQUEST,
      ),
      '/v1/checkouts/{orderId}/resolve': remediation(
        'Resolve a checkout in needs_attention',
        '`recheck` reads Stripe again and continues from what it shows; `abandon` ends it canceled without ' +
          'charging. After provisioning failed for good (reason `provisioning_failed`) only `keep_payment` ' +
          'applies: it stops the automatic refund, and the checkout waits for retry-provisioning or a refund.',
        'ResolveRequest',
        EXAMPLE_RESOLVE_REQUEST,
      ),
      '/v1/checkouts/{orderId}/refund': {
        post: {
          summary: 'Refund (part of) a paid order',
          description:
            'Without `amount`, everything not yet refunded. While the checkout is open (paid, provisioning, ' +
            'or parked after provisioning failed) the checkout refunds itself; once it completed, the ' +
            "order's refunds workflow (`refunds-<orderId>`) does, started if needed. Keyed " +
            '`<workflow id>/refund/r<n>`, so a lost Stripe response never refunds twice; the ' +
            '`Idempotency-Key` header makes the request itself safe to send again. A refund that leaves ' +
            'nothing revokes the entitlement.',
          parameters: [orderIdParam, idempotencyKeyParam],
          requestBody: jsonBody(ref('RefundRequest'), EXAMPLE_REFUND_REQUEST),
          responses: {
            '200': jsonResponse('The refund made, with what is left.', ref('RefundResult')),
            '400': errorResponse(
              'A field or the `Idempotency-Key` header is missing or invalid; `fields` names each one. ' +
                'Nothing was refunded.',
            ),
            '404': errorResponse('No checkout for this order.'),
            '409': errorResponse(
              'Not refundable now: nothing was paid, it is refunded already, the amount is more than is left ' +
                '(the message names what is left), or another refund is in progress; or ' +
                '`idempotency_conflict`: the Idempotency-Key was used with another `amount` (named in `fields`).',
            ),
          },
        },
      },
      '/v1/checkouts/{orderId}/retry-provisioning': remediation(
        'Retry provisioning after it failed for good',
        'Only in needs_attention with reason provisioning_failed. A new bounded effort; if it fails again, ' +
          'a new grace period starts before the automatic refund.',
        'RetryProvisioningRequest',
        EXAMPLE_RETRY_PROVISIONING_REQUEST,
      ),
      '/webhooks/stripe': {
        post: {
          summary: 'Stripe webhook receiver',
          description:
            'Verifies `Stripe-Signature` on the raw body against each configured secret (two during a ' +
            'rotation), with the standard 300 s tolerance, then tells the checkout named in the ' +
            "object's `metadata.checkout_workflow_id` (or `client_reference_id`) that its PaymentIntent " +
            'changed. The workflow always reads Stripe itself; the event carries no authority.',
          parameters: [
            { name: 'Stripe-Signature', in: 'header', required: true, schema: { type: 'string' } },
          ],
          requestBody: { required: true, content: { 'application/json': { schema: { type: 'object' } } } },
          responses: {
            '200': jsonResponse('Received (whether or not it concerned a checkout).', ref('WebhookReceipt')),
            '400': errorResponse('Missing, forged or stale signature; nothing was signaled.'),
            '503': errorResponse('Temporal could not be reached; Stripe will deliver again.'),
          },
        },
      },
      '/openapi.json': {
        get: {
          summary: 'This document',
          responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': {} } } },
        },
      },
    },
    components: {
      schemas: {
        CheckoutRequest: {
          type: 'object',
          additionalProperties: false,
          required: ['orderId', 'amount', 'currency', 'customerId', 'paymentMethodId', 'provision'],
          properties: {
            orderId: {
              type: 'string',
              minLength: 1,
              maxLength: ORDER_ID_MAX_LENGTH,
              pattern: '^[A-Za-z0-9_-]+$',
              description: 'Your order id: the dedupe key. One order, one checkout, at most one charge.',
            },
            amount: {
              type: 'integer',
              minimum: 1,
              maximum: AMOUNT_MAX,
              description: 'In the currency minor unit (cents for usd).',
            },
            currency: { type: 'string', pattern: '^[a-z]{3}$', description: 'Lowercase ISO 4217, e.g. usd.' },
            customerId: { type: 'string', pattern: '^cus_[A-Za-z0-9]{1,200}$' },
            paymentMethodId: { type: 'string', pattern: '^pm_[A-Za-z0-9_]{1,200}$' },
            provision: {
              type: 'object',
              additionalProperties: false,
              required: ['sku', 'quantity'],
              properties: {
                sku: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
                quantity: { type: 'integer', minimum: 1, maximum: QUANTITY_MAX },
              },
            },
            options: {
              type: 'object',
              additionalProperties: false,
              description: 'Durations in milliseconds that shorten the production defaults (tests, demos).',
              properties: {
                paymentActionTimeoutMs: { type: 'integer', minimum: 1 },
                paymentPollIntervalMs: { type: 'integer', minimum: 1 },
                paymentRetryWindowMs: { type: 'integer', minimum: 0 },
                stripeKeyBudgetMs: { type: 'integer', minimum: 1 },
                stripeCallTimeoutMs: { type: 'integer', minimum: 1 },
                reconcileIntervalMs: { type: 'integer', minimum: 1 },
                provisioningTimeoutMs: { type: 'integer', minimum: 1 },
                provisioningGraceMs: { type: 'integer', minimum: 0 },
              },
            },
          },
        },
        HostedCheckoutRequest: {
          type: 'object',
          additionalProperties: false,
          required: ['mode', 'orderId', 'amount', 'currency', 'provision', 'successUrl', 'cancelUrl'],
          properties: {
            mode: { const: 'hosted' },
            orderId: {
              type: 'string',
              minLength: 1,
              maxLength: HOSTED_ORDER_ID_MAX_LENGTH,
              pattern: '^[A-Za-z0-9_-]+$',
              description: 'Your order id: the dedupe key, shared with card checkouts.',
            },
            amount: { type: 'integer', minimum: 1, maximum: AMOUNT_MAX },
            currency: { type: 'string', pattern: '^[a-z]{3}$' },
            customerId: {
              type: 'string',
              pattern: '^cus_[A-Za-z0-9]{1,200}$',
              description: 'Optional: without it the hosted page asks for an email.',
            },
            provision: {
              type: 'object',
              additionalProperties: false,
              required: ['sku', 'quantity'],
              properties: {
                sku: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
                quantity: { type: 'integer', minimum: 1, maximum: QUANTITY_MAX },
              },
            },
            successUrl: {
              type: 'string',
              format: 'uri',
              maxLength: RETURN_URL_MAX_LENGTH,
              description: 'http(s) URL the page sends the customer to after paying.',
            },
            cancelUrl: {
              type: 'string',
              format: 'uri',
              maxLength: RETURN_URL_MAX_LENGTH,
              description: "http(s) URL of the page's cancel link.",
            },
            paymentMethodTypes: {
              type: 'array',
              minItems: 1,
              uniqueItems: true,
              items: { type: 'string', enum: [...HOSTED_PAYMENT_METHOD_TYPES] },
              description: 'Methods offered on the page. Default ["card"].',
            },
            options: {
              type: 'object',
              additionalProperties: false,
              description: 'Durations in milliseconds that shorten the production defaults (tests, demos).',
              properties: {
                sessionTimeoutMs: { type: 'integer', minimum: 1000, maximum: 24 * 60 * 60 * 1000 },
                provisioningTimeoutMs: { type: 'integer', minimum: 1 },
                provisioningGraceMs: { type: 'integer', minimum: 0 },
                asyncPaymentTimeoutMs: { type: 'integer', minimum: 1 },
                paymentPollIntervalMs: { type: 'integer', minimum: 1 },
                stripeKeyBudgetMs: { type: 'integer', minimum: 1 },
                stripeCallTimeoutMs: { type: 'integer', minimum: 1 },
                reconcileIntervalMs: { type: 'integer', minimum: 1 },
              },
            },
          },
        },
        HostedCheckout: {
          type: 'object',
          required: [
            'orderId',
            'workflowId',
            'mode',
            'amount',
            'currency',
            'provision',
            'state',
            'checkoutSession',
            'links',
          ],
          properties: {
            orderId: { type: 'string' },
            workflowId: { type: 'string' },
            mode: { const: 'hosted' },
            amount: { type: 'integer' },
            currency: { type: 'string' },
            customerId: { type: 'string' },
            provision: {
              type: 'object',
              properties: { sku: { type: 'string' }, quantity: { type: 'integer' } },
            },
            state: { type: 'string', enum: [...CHECKOUT_STATES] },
            checkoutSession: {
              type: 'object',
              required: ['url'],
              properties: {
                id: { type: 'string', description: 'cs_…' },
                url: {
                  type: ['string', 'null'],
                  description: 'The hosted payment page while the session is open; null once it closed.',
                },
              },
            },
            links: {
              type: 'object',
              required: ['status'],
              properties: { status: { type: 'string', description: 'Path of the status resource.' } },
            },
          },
        },
        Checkout: {
          type: 'object',
          required: ['orderId', 'workflowId', 'amount', 'currency', 'customerId', 'provision', 'links'],
          properties: {
            orderId: { type: 'string' },
            workflowId: { type: 'string' },
            amount: { type: 'integer' },
            currency: { type: 'string' },
            customerId: { type: 'string' },
            provision: {
              type: 'object',
              properties: { sku: { type: 'string' }, quantity: { type: 'integer' } },
            },
            links: {
              type: 'object',
              required: ['status'],
              properties: { status: { type: 'string', description: 'Path of the status resource.' } },
            },
          },
        },
        CheckoutStatus: {
          type: 'object',
          description: 'The workflow status query, as is.',
          required: [
            'workflowId',
            'orderId',
            'state',
            'generation',
            'amount',
            'currency',
            'paymentIntentIds',
            'audit',
          ],
          properties: {
            workflowId: { type: 'string' },
            orderId: { type: 'string' },
            state: { type: 'string', enum: [...CHECKOUT_STATES] },
            generation: { type: 'integer' },
            amount: { type: 'integer' },
            currency: { type: 'string' },
            paymentIntentId: { type: 'string' },
            paymentIntentIds: { type: 'array', items: { type: 'string' } },
            decline: { type: 'object' },
            needsAttention: { type: 'object' },
            entitlement: { type: 'object' },
            audit: { type: 'array', items: { type: 'object' } },
            stripeEvents: {
              type: 'object',
              description: 'Stripe webhook events received (once per event id) and redeliveries ignored.',
              properties: { received: { type: 'integer' }, duplicates: { type: 'integer' } },
            },
            refundedAmount: { type: 'integer', description: 'Minor units refunded so far.' },
            refunds: {
              type: 'array',
              description: 'Every refund of the order, oldest first, with who asked, when and why.',
              items: refundEntrySchema,
            },
            automaticRefund: {
              type: 'object',
              description:
                'After provisioning failed for good: `scheduled` (with `dueAt`), `stopped` by an operator ' +
                '(`keep_payment`), or `done`.',
              properties: {
                status: { type: 'string', enum: ['scheduled', 'stopped', 'done'] },
                dueAt: { type: 'string', format: 'date-time' },
                actor: { type: 'string' },
                reason: { type: 'string' },
                at: { type: 'string', format: 'date-time' },
                refundId: { type: 'string' },
              },
            },
            mode: { const: 'hosted', description: 'Present only on a hosted checkout.' },
            checkoutSession: {
              type: 'object',
              description: "A hosted checkout's Checkout Session, once it exists.",
              properties: {
                id: { type: 'string' },
                url: { type: ['string', 'null'] },
                status: { type: 'string', enum: ['open', 'complete', 'expired'] },
                paymentStatus: { type: 'string', enum: ['paid', 'unpaid', 'no_payment_required'] },
                expiresAt: { type: 'string', format: 'date-time' },
              },
            },
          },
        },
        PaymentAction: {
          type: 'object',
          required: ['orderId', 'paymentIntentId', 'status', 'clientSecret', 'nextAction'],
          properties: {
            orderId: { type: 'string' },
            paymentIntentId: { type: 'string', description: 'pi_…' },
            status: { const: 'requires_action' },
            clientSecret: {
              type: 'string',
              description:
                "The PaymentIntent's client secret, for Stripe.js in the customer's browser only: never store, " +
                'log or put it in a URL.',
            },
            nextAction: {
              type: 'object',
              required: ['type'],
              properties: {
                type: {
                  type: 'string',
                  description:
                    "Stripe's `next_action.type`: `use_stripe_sdk` for a card confirmed on the server.",
                },
                redirectToUrl: {
                  type: 'string',
                  format: 'uri',
                  description: 'Where to send the customer when `type` is `redirect_to_url`.',
                },
              },
            },
          },
        },
        CheckoutListEntry: {
          type: 'object',
          properties: {
            workflowId: { type: 'string' },
            runId: { type: 'string' },
            orderId: { type: 'string' },
            state: { type: 'string' },
            paymentIntentId: { type: 'string' },
            needsAttentionSince: { type: 'string', format: 'date-time' },
            workflowStatus: { type: 'string' },
            startTime: { type: 'string', format: 'date-time' },
          },
        },
        RetryPaymentRequest: {
          type: 'object',
          additionalProperties: false,
          required: ['paymentMethodId', 'actor', 'reason'],
          properties: {
            paymentMethodId: { type: 'string', pattern: '^pm_[A-Za-z0-9_]{1,200}$' },
            ...actorReason,
          },
        },
        CancelRequest: {
          type: 'object',
          additionalProperties: false,
          required: ['actor', 'reason'],
          properties: actorReason,
        },
        ResolveRequest: {
          type: 'object',
          additionalProperties: false,
          required: ['actor', 'reason', 'outcome'],
          properties: { ...actorReason, outcome: { type: 'string', enum: [...RESOLVE_OUTCOMES] } },
        },
        RefundRequest: {
          type: 'object',
          additionalProperties: false,
          required: ['actor', 'reason'],
          properties: {
            amount: {
              type: 'integer',
              minimum: 1,
              maximum: AMOUNT_MAX,
              description: 'Minor units; omit to refund everything not yet refunded.',
            },
            ...actorReason,
          },
        },
        RetryProvisioningRequest: {
          type: 'object',
          additionalProperties: false,
          required: ['actor', 'reason'],
          properties: actorReason,
        },
        RefundResult: {
          type: 'object',
          required: [
            'orderId',
            'workflowId',
            'paymentIntentId',
            'currency',
            'amount',
            'refundedAmount',
            'remainingAmount',
            'refund',
            'refunds',
          ],
          properties: {
            orderId: { type: 'string' },
            workflowId: {
              type: 'string',
              description: 'The workflow that refunded: the checkout while open, else `refunds-<orderId>`.',
            },
            paymentIntentId: { type: 'string' },
            currency: { type: 'string' },
            amount: { type: 'integer', description: 'What was paid.' },
            refundedAmount: { type: 'integer' },
            remainingAmount: { type: 'integer' },
            refund: refundEntrySchema,
            refunds: { type: 'array', items: refundEntrySchema },
            replayed: {
              type: 'boolean',
              description:
                'True when the Idempotency-Key was already used with the same terms: `refund` is that earlier ' +
                'refund and nothing new was refunded.',
            },
          },
        },
        WebhookReceipt: {
          type: 'object',
          required: ['received'],
          properties: {
            received: { type: 'boolean' },
            eventId: { type: 'string' },
            workflowId: { type: 'string', description: 'The checkout the event was routed to, if any.' },
            signaled: { type: 'boolean' },
          },
        },
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: {
                code: { type: 'string' },
                message: { type: 'string' },
                fields: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['field', 'message'],
                    properties: { field: { type: 'string' }, message: { type: 'string' } },
                  },
                },
              },
            },
          },
        },
      },
    },
  };
}
