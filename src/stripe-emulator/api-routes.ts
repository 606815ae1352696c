/**
 * Stripe's own endpoints that the emulator serves. Handlers only translate between HTTP and the
 * resource classes; authentication, idempotency, faults and serialization are the server's.
 */
import { StripeApiError, paramError, resourceMissing } from './errors';
import { type ExpandableKind, applyExpand, readExpand } from './expand';
import { LIST_PAGING_PARAMS, readListPaging } from './list';
import { ParamReader } from './params';
import { type ApiRoute, type ApiResponse, type FormParams } from './router';
import { type EmulatorState } from './state';

function ok(body: unknown): ApiResponse {
  return { status: 200, body };
}

function id(pathParams: Readonly<Record<string, string>>): string {
  return pathParams['id'] ?? '';
}

/** Validates `expand` first, runs the endpoint, then expands a copy of what it returns. */
function expanded(
  state: EmulatorState,
  kind: ExpandableKind,
  params: FormParams,
  run: () => object,
): ApiResponse {
  const paths = readExpand(params, kind);
  return ok(applyExpand(state, kind, run(), paths));
}

/** Retrieve endpoints take no parameters besides `expand`. */
function noParams(params: FormParams): void {
  new ParamReader(params).allowOnly([]);
}

export function apiRoutes(state: EmulatorState): ApiRoute[] {
  return [
    {
      kind: 'api',
      method: 'POST',
      pattern: '/v1/customers',
      handler: (req) => ok(state.customers.create(req.params, req.eventRequest)),
    },
    {
      kind: 'api',
      method: 'GET',
      pattern: '/v1/customers/:id',
      handler: (req) => {
        noParams(req.params);
        return ok(state.customers.retrieve(id(req.pathParams)));
      },
    },
    {
      kind: 'api',
      method: 'POST',
      pattern: '/v1/payment_intents',
      handler: (req) =>
        expanded(state, 'payment_intent', req.params, () =>
          state.paymentIntents.create(req.params, req.eventRequest),
        ),
    },
    {
      kind: 'api',
      method: 'GET',
      pattern: '/v1/payment_intents',
      handler: (req) => {
        const p = new ParamReader(req.params).allowOnly(['customer', ...LIST_PAGING_PARAMS]);
        const customer = p.optionalString('customer');
        const page = state.paymentIntents.list({
          ...(customer === undefined ? {} : { customer }),
          ...readListPaging(p),
        });
        return ok({ object: 'list', data: page.data, has_more: page.has_more, url: '/v1/payment_intents' });
      },
    },
    {
      kind: 'api',
      method: 'GET',
      pattern: '/v1/payment_intents/search',
      handler: (req) => ok(state.paymentIntents.search(req.params)),
    },
    {
      kind: 'api',
      method: 'GET',
      pattern: '/v1/payment_intents/:id',
      handler: (req) => {
        new ParamReader(req.params).allowOnly(['client_secret']);
        return expanded(state, 'payment_intent', req.params, () =>
          state.paymentIntents.retrieve(id(req.pathParams)),
        );
      },
    },
    {
      kind: 'api',
      method: 'POST',
      pattern: '/v1/payment_intents/:id/confirm',
      handler: (req) =>
        expanded(state, 'payment_intent', req.params, () =>
          state.paymentIntents.confirm(id(req.pathParams), req.params, req.eventRequest),
        ),
    },
    {
      kind: 'api',
      method: 'POST',
      pattern: '/v1/payment_intents/:id/cancel',
      handler: (req) =>
        expanded(state, 'payment_intent', req.params, () =>
          state.paymentIntents.cancel(id(req.pathParams), req.params, req.eventRequest),
        ),
    },
    {
      kind: 'api',
      method: 'POST',
      pattern: '/v1/payment_intents/:id/capture',
      handler: (req) =>
        expanded(state, 'payment_intent', req.params, () =>
          state.paymentIntents.capture(id(req.pathParams), req.params, req.eventRequest),
        ),
    },
    {
      kind: 'api',
      method: 'GET',
      pattern: '/v1/charges/:id',
      handler: (req) => {
        noParams(req.params);
        return expanded(state, 'charge', req.params, () => state.charges.retrieve(id(req.pathParams)));
      },
    },
    {
      kind: 'api',
      method: 'GET',
      pattern: '/v1/payment_methods/:id',
      handler: (req) => {
        noParams(req.params);
        const record = state.paymentMethods.get(id(req.pathParams));
        if (!record) throw resourceMissing('payment_method', id(req.pathParams), 'id');
        return ok(record.object);
      },
    },
    {
      kind: 'api',
      method: 'POST',
      pattern: '/v1/refunds',
      handler: (req) =>
        expanded(state, 'refund', req.params, () => state.refunds.create(req.params, req.eventRequest)),
    },
    {
      kind: 'api',
      method: 'GET',
      pattern: '/v1/refunds',
      handler: (req) => {
        const p = new ParamReader(req.params).allowOnly(['payment_intent', 'charge', ...LIST_PAGING_PARAMS]);
        const paymentIntent = p.optionalString('payment_intent');
        const charge = p.optionalString('charge');
        const page = state.refunds.list({
          ...(paymentIntent === undefined ? {} : { paymentIntent }),
          ...(charge === undefined ? {} : { charge }),
          ...readListPaging(p),
        });
        return ok({ object: 'list', data: page.data, has_more: page.has_more, url: '/v1/refunds' });
      },
    },
    {
      kind: 'api',
      method: 'GET',
      pattern: '/v1/refunds/:id',
      handler: (req) => {
        noParams(req.params);
        return expanded(state, 'refund', req.params, () => state.refunds.retrieve(id(req.pathParams)));
      },
    },
    {
      kind: 'api',
      method: 'GET',
      pattern: '/v1/events/:id',
      handler: (req) => {
        noParams(req.params);
        const event = state.events.get(id(req.pathParams));
        if (!event) throw resourceMissing('event', id(req.pathParams), 'id');
        return ok(event);
      },
    },
    {
      kind: 'api',
      method: 'GET',
      pattern: '/v1/events',
      handler: (req) => {
        const p = new ParamReader(req.params).allowOnly(['type', 'limit', 'starting_after']);
        const type = p.optionalString('type');
        const limit = p.optionalInteger('limit');
        if (limit !== undefined && (limit < 1 || limit > 100)) {
          throw paramError('Invalid limit: must be between 1 and 100', 'limit');
        }
        const startingAfter = p.optionalString('starting_after');
        if (startingAfter !== undefined && !state.events.get(startingAfter)) {
          throw new StripeApiError(400, 'invalid_request_error', `No such event: '${startingAfter}'`, {
            code: 'resource_missing',
            param: 'starting_after',
            storable: false,
          });
        }
        const page = state.events.list({
          ...(type === undefined ? {} : { type }),
          ...(limit === undefined ? {} : { limit }),
          ...(startingAfter === undefined ? {} : { starting_after: startingAfter }),
        });
        return ok({ object: 'list', data: page.data, has_more: page.has_more, url: '/v1/events' });
      },
    },
  ];
}
