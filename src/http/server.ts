/**
 * The HTTP intake (Fastify): start and inspect checkouts, remediate them, and receive Stripe
 * webhooks. Every route goes through the same client functions as the CLI and the demo, so the
 * rules (validation, one checkout per order, update validators) live in one place.
 *
 * - `POST /v1/checkouts` is safe to fire twice (a no-code automation that double-fires, a browser
 *   retry): the order id is the workflow id, so a repeat finds the same checkout. The first request
 *   answers 201, later ones 200 with the same body. Duplicates racing into one intake process are
 *   queued per order, so exactly one sees 201; two intake processes racing may both answer 201, and
 *   still share the one checkout and at most one charge (the client's start is what dedupes).
 * - Validation happens before anything is started; each bad field is named in the 400.
 * - Remediation routes are Temporal updates: 200 once the workflow applied the request, 409 when its
 *   validator refused (e.g. cancelling a paid checkout), 404 for an unknown order.
 * - `refund` takes an `Idempotency-Key` header (required with `amount`): the same key again answers
 *   the first refund and refunds nothing new; with another amount, 409 `idempotency_conflict`.
 * - `GET /v1/checkouts/{orderId}/payment-action` hands the customer's browser what it needs to
 *   finish 3-D Secure (the PaymentIntent's client secret and next action), read from Stripe on
 *   demand while the checkout waits for the customer; 409 when there is nothing to do.
 * - `POST /webhooks/stripe` reads the raw bytes (its own content-type parser, scoped to that route),
 *   verifies the signature against each configured secret, and only then signals the checkout. A bad
 *   or stale signature is a 400 and nothing is signaled. An event for no checkout, or for one that
 *   has ended, is acknowledged with 200 so Stripe stops retrying; only when Temporal is unreachable
 *   does it answer 503, so Stripe delivers again later.
 */
import { type AddressInfo } from 'node:net';
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { DestinationStream } from 'pino';
import type Stripe from 'stripe';
import {
  cancelCheckout,
  getCheckoutHandle,
  getCheckoutStatus,
  getCheckoutStatusWithRefunds,
  listCheckouts,
  refundCheckout,
  resolveCheckout,
  retryPayment,
  retryProvisioning,
  startCheckout,
  startHostedCheckout,
} from '../client';
import {
  ORDER_ID_MAX_LENGTH,
  SEARCHABLE_STATES,
  WORKFLOW_ID_PREFIX,
  stripeEventSignal,
  validateCancelRequest,
  validateCheckoutInput,
  validateHostedCheckoutInput,
  refundRequestIdProblem,
  validateRefundRequest,
  validateResolveRequest,
  validateRetryPaymentRequest,
  validateRetryProvisioningRequest,
  type CheckoutInput,
  type CheckoutState,
  type HostedCheckoutInput,
  type RefundRequest,
  type Validation,
} from '../workflows/definitions';
import { createLogger, traceHttpIntake } from '../observability';
import { getPaymentAction } from '../payment-action';
import { httpErrorFor, invalidRequest, notFound, type HttpError } from './errors';
import { openApiDocument } from './openapi';
import { routeStripeEvent, verifyStripeWebhook } from './stripe-webhook';

export const STRIPE_WEBHOOK_PATH = '/webhooks/stripe';
/** Stripe's own events are well under this; anything larger is not from Stripe. */
const WEBHOOK_BODY_LIMIT = 1024 * 1024;
const JSON_BODY_LIMIT = 64 * 1024;
/**
 * Longest path parameter the router matches. Fastify's default (100) answered 414 to every route
 * of a valid order id of 101 to 200 characters; this is above any valid id, so a longer one
 * reaches the route and its validation names `orderId`.
 */
const PATH_PARAM_MAX_LENGTH = 4 * ORDER_ID_MAX_LENGTH;

export interface HttpIntakeOptions {
  readonly client: Client;
  /** The task queue checkouts are started on (the worker polls it). */
  readonly taskQueue: string;
  /** Webhook signing secrets; during a rotation, both the old and the new one. */
  readonly webhookSecrets: readonly string[];
  /**
   * Log level of the intake's own log (JSON lines on stdout): refused webhook signatures and
   * failures to reach Temporal are warnings, unexpected errors are errors; `info` adds Fastify's
   * request lines. Default: no log.
   */
  readonly logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Where that log's lines go. Default: stdout. Tests pass a stream that collects them. */
  readonly logDestination?: DestinationStream;
  /**
   * The Stripe client `GET /v1/checkouts/{orderId}/payment-action` reads the PaymentIntent with (the
   * same account the worker charges). Without it that route answers 503 `not_configured`.
   */
  readonly stripe?: Stripe;
  /**
   * Webhook deliveries being handed to checkouts at once; beyond it a delivery is answered 503 at
   * once (with `Retry-After`) and Stripe delivers it again later. Default 256.
   */
  readonly webhookMaxInFlight?: number;
  /**
   * How long a delivery may wait for its signal to be accepted before it is answered 503 (the
   * signal may still land; the redelivery is then a duplicate, which the checkout ignores by event
   * id). Below Stripe's own wait for an answer. Default 8000 ms.
   */
  readonly webhookSignalTimeoutMs?: number;
  /**
   * How long a hosted `POST /v1/checkouts` waits for the Checkout Session; past it the answer is 202
   * (the checkout exists and is still creating it; poll `Location`, `Retry-After` seconds apart).
   * Default `HOSTED_SESSION_WAIT_MS` (15 s).
   */
  readonly hostedSessionWaitMs?: number;
}

/** Defaults of `HttpIntakeOptions.webhookMaxInFlight` / `webhookSignalTimeoutMs`. */
export const WEBHOOK_MAX_IN_FLIGHT = 256;
export const WEBHOOK_SIGNAL_TIMEOUT_MS = 8_000;
/** Seconds a hosted start's 202 (session still being created) asks the caller to wait. */
const HOSTED_RETRY_AFTER_S = 2;
/** Seconds a shed or slow delivery's 503 asks the sender to wait. */
const WEBHOOK_RETRY_AFTER_S = 5;

/** A webhook delivery not taken now: 503 with `Retry-After`, so the sender retries with backoff. */
function retryLater(reply: FastifyReply, code: string, message: string): FastifyReply {
  return reply
    .code(503)
    .header('retry-after', String(WEBHOOK_RETRY_AFTER_S))
    .send({ error: { code, message } });
}

export interface HttpIntake {
  readonly url: string;
  readonly port: number;
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

/** The body of both the 201 and every later 200 for the same order: only stable facts. */
export interface CheckoutCreated {
  readonly orderId: string;
  readonly workflowId: string;
  readonly amount: number;
  readonly currency: string;
  readonly customerId: string;
  readonly provision: { readonly sku: string; readonly quantity: number };
  readonly links: { readonly status: string };
}

/** The body of a hosted checkout's 201 and later 200s: the card body's facts plus the session. */
export interface HostedCheckoutCreated {
  readonly orderId: string;
  readonly workflowId: string;
  readonly mode: 'hosted';
  readonly amount: number;
  readonly currency: string;
  readonly customerId: string | undefined;
  readonly provision: { readonly sku: string; readonly quantity: number };
  readonly state: CheckoutState;
  /** `url` is the hosted payment page while the session is open, null once it closed. */
  readonly checkoutSession: { readonly id: string | undefined; readonly url: string | null };
  readonly links: { readonly status: string };
}

/**
 * `mode` picks the checkout: absent or `"card"` is the card checkout (a `paymentMethodId`),
 * `"hosted"` the hosted one (`successUrl`, `cancelUrl`; the customer pays on Stripe's page).
 */
function checkoutMode(body: unknown): Validation<{ mode: 'card' | 'hosted'; rest: unknown }> {
  if (!isRecord(body) || body.mode === undefined) return { ok: true, value: { mode: 'card', rest: body } };
  const { mode, ...rest } = body;
  if (mode !== 'card' && mode !== 'hosted') {
    return { ok: false, problems: ['mode: must be "card" or "hosted"'] };
  }
  return { ok: true, value: { mode, rest } };
}

/** Runs tasks with the same key one after another (different keys run in parallel). */
class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    try {
      return await result;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

function statusPath(orderId: string): string {
  return `/v1/checkouts/${encodeURIComponent(orderId)}`;
}

function sendError(reply: FastifyReply, error: HttpError): FastifyReply {
  return reply.code(error.status).send(error.body);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The shared validators check the fields they know; the intake also refuses fields it does not
 * know, so a misspelt `reason` is an error rather than a silently missing audit entry.
 */
function validateBody<T>(
  body: unknown,
  known: readonly string[],
  validate: (input: unknown) => Validation<T>,
): Validation<T> {
  const unknownFields = isRecord(body)
    ? Object.keys(body)
        .filter((k) => !known.includes(k))
        .map((k) => `${k}: unknown field`)
    : [];
  const result = validate(body ?? {});
  if (!result.ok) return { ok: false, problems: [...result.problems, ...unknownFields] };
  if (unknownFields.length > 0) return { ok: false, problems: unknownFields };
  return result;
}

export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';

/** How many times a header was sent, from Node's `rawHeaders` (name, value, name, value, ...). */
function headerCount(rawHeaders: readonly string[], name: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name) count += 1;
  }
  return count;
}

/**
 * The refund's request id from `Idempotency-Key`: printable ASCII, 1 to 255 characters, sent once.
 * Required when `amount` is given (a partial refund repeated without it would refund again);
 * optional for a refund of everything left, which a repeat cannot exceed (it is refused: nothing
 * left). Node joins a repeated header into one value ("a, b"), which would pass as one key, so
 * repeats are counted in `rawHeaders`.
 */
export function refundRequestIdFromHeaders(
  headers: Readonly<Record<string, unknown>>,
  body: RefundRequest | undefined,
  rawHeaders: readonly string[] = [],
): Validation<RefundRequest> {
  const raw = headers[IDEMPOTENCY_KEY_HEADER.toLowerCase()];
  const field = IDEMPOTENCY_KEY_HEADER;
  const sentTwice = Array.isArray(raw) || headerCount(rawHeaders, field.toLowerCase()) > 1;
  if (raw === undefined) {
    if (body?.amount !== undefined) {
      return {
        ok: false,
        problems: [
          `${field}: required for a partial refund (with amount), so a repeated request refunds once; ` +
            'send the same value when you retry',
        ],
      };
    }
    return body ? { ok: true, value: body } : { ok: false, problems: [] };
  }
  const problem = sentTwice
    ? `${field}: sent more than once; send it once`
    : refundRequestIdProblem(raw, field);
  if (problem !== undefined) return { ok: false, problems: [problem] };
  return body ? { ok: true, value: { ...body, requestId: raw as string } } : { ok: false, problems: [] };
}

async function checkoutExists(client: Client, orderId: string): Promise<boolean> {
  try {
    await getCheckoutHandle(client, orderId).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

function createdBody(input: CheckoutInput, workflowId: string): CheckoutCreated {
  return {
    orderId: input.orderId,
    workflowId,
    amount: input.amount,
    currency: input.currency,
    customerId: input.customerId,
    provision: { sku: input.provision.sku, quantity: input.provision.quantity },
    links: { status: statusPath(input.orderId) },
  };
}

function parseListQuery(
  query: unknown,
): Validation<{ state?: string; needsAttention?: boolean; limit: number }> {
  const q = isRecord(query) ? query : {};
  const problems: string[] = [];
  for (const k of Object.keys(q)) {
    if (!['state', 'needsAttention', 'limit'].includes(k)) problems.push(`${k}: unknown query parameter`);
  }
  let state: string | undefined;
  if (q.state !== undefined) {
    const found = SEARCHABLE_STATES.find((s) => s === q.state);
    if (found === undefined) problems.push(`state: must be one of ${SEARCHABLE_STATES.join(', ')}`);
    state = found;
  }
  let needsAttention: boolean | undefined;
  if (q.needsAttention !== undefined) {
    if (q.needsAttention === 'true') needsAttention = true;
    else if (q.needsAttention === 'false') needsAttention = false;
    else problems.push('needsAttention: must be "true" or "false"');
  }
  let limit = 100;
  if (q.limit !== undefined) {
    limit = typeof q.limit === 'string' && /^\d{1,4}$/.test(q.limit) ? Number(q.limit) : NaN;
    if (!(limit >= 1 && limit <= 1000)) problems.push('limit: must be an integer from 1 to 1000');
  }
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    value: {
      limit,
      ...(state === undefined ? {} : { state }),
      ...(needsAttention === undefined ? {} : { needsAttention }),
    },
  };
}

export interface RegisteredRoute {
  readonly method: string;
  readonly url: string;
}

const registered = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Every route the intake registered (HEAD twins of GET routes left out); the OpenAPI test uses it. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return registered.get(app) ?? [];
}

/** Builds the app without listening (tests use `inject`, the stack uses `startHttpIntake`). */
export function buildHttpIntake(options: HttpIntakeOptions): FastifyInstance {
  const { client, taskQueue, webhookSecrets } = options;
  const maxInFlight = options.webhookMaxInFlight ?? WEBHOOK_MAX_IN_FLIGHT;
  const signalTimeoutMs = options.webhookSignalTimeoutMs ?? WEBHOOK_SIGNAL_TIMEOUT_MS;
  let webhooksInFlight = 0;
  // JSON lines with secrets redacted by field and by value (src/observability/logging.ts).
  const loggerInstance: FastifyBaseLogger | undefined =
    options.logLevel === undefined
      ? undefined
      : createLogger({
          level: options.logLevel,
          name: 'http',
          knownSecrets: options.webhookSecrets,
          ...(options.logDestination === undefined ? {} : { destination: options.logDestination }),
        });
  const app = Fastify({
    ...(loggerInstance === undefined ? { logger: false } : { loggerInstance }),
    bodyLimit: JSON_BODY_LIMIT,
    routerOptions: { maxParamLength: PATH_PARAM_MAX_LENGTH },
  });
  // A server span per request, the parent of the workflow start (src/observability/tracing.ts).
  traceHttpIntake(app);
  const routes: RegisteredRoute[] = [];
  registered.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD') routes.push({ method, url: route.url });
    }
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(reply, notFound(`No route ${request.method} ${request.url.split('?')[0] ?? ''}`)),
  );
  app.setErrorHandler((err: unknown, request, reply) => {
    const known = httpErrorFor(err, undefined);
    if (known) return sendError(reply, known);
    const statusCode =
      isRecord(err) && typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500
        ? err.statusCode
        : undefined;
    if (statusCode !== undefined) {
      // Fastify's own client errors: bad JSON, wrong content type, body too large.
      const message = err instanceof Error ? err.message : 'Bad request';
      const code = isRecord(err) && typeof err.code === 'string' ? err.code : 'bad_request';
      return reply.code(statusCode).send({ error: { code, message } });
    }
    request.log.error(err);
    return reply
      .code(500)
      .send({ error: { code: 'internal_error', message: 'Internal error; the request may be retried' } });
  });

  app.get('/openapi.json', (_request, reply) => reply.send(openApiDocument()));

  const perOrder = new KeyedQueue();
  const startHosted = async (input: HostedCheckoutInput, reply: FastifyReply): Promise<FastifyReply> => {
    try {
      const started = await perOrder.run(input.orderId, () =>
        startHostedCheckout(client, input, {
          taskQueue,
          ...(options.hostedSessionWaitMs === undefined
            ? {}
            : { sessionWaitMs: options.hostedSessionWaitMs }),
        }),
      );
      const body: HostedCheckoutCreated = {
        orderId: input.orderId,
        workflowId: started.workflowId,
        mode: 'hosted',
        amount: input.amount,
        currency: input.currency,
        customerId: input.customerId,
        provision: { sku: input.provision.sku, quantity: input.provision.quantity },
        state: started.state,
        checkoutSession: { id: started.sessionId, url: started.url },
        links: { status: statusPath(input.orderId) },
      };
      if (started.sessionPending) {
        // Stripe is slow or down: the checkout exists and keeps creating the session.
        return reply
          .code(202)
          .header('location', statusPath(input.orderId))
          .header('retry-after', String(HOSTED_RETRY_AFTER_S))
          .send(body);
      }
      return reply
        .code(started.created ? 201 : 200)
        .header('location', statusPath(input.orderId))
        .send(body);
    } catch (err) {
      const known = httpErrorFor(err, input.orderId);
      if (known) return sendError(reply, known);
      throw err;
    }
  };

  app.post('/v1/checkouts', async (request, reply) => {
    const mode = checkoutMode(request.body ?? {});
    if (!mode.ok) return sendError(reply, invalidRequest(mode.problems));
    if (mode.value.mode === 'hosted') {
      const hosted = validateHostedCheckoutInput(mode.value.rest);
      if (!hosted.ok) return sendError(reply, invalidRequest(hosted.problems));
      return startHosted(hosted.value, reply);
    }
    const checked = validateCheckoutInput(mode.value.rest ?? {});
    if (!checked.ok) return sendError(reply, invalidRequest(checked.problems));
    const input = checked.value;
    try {
      // "Did it exist?" and the start run one at a time per order, so of two duplicates that reach
      // this process together exactly one is told 201.
      const { existed, workflowId } = await perOrder.run(input.orderId, async () => {
        const before = await checkoutExists(client, input.orderId);
        const started = await startCheckout(client, input, { taskQueue });
        return { existed: before, workflowId: started.workflowId };
      });
      return reply
        .code(existed ? 200 : 201)
        .header('location', statusPath(input.orderId))
        .send(createdBody(input, workflowId));
    } catch (err) {
      const known = httpErrorFor(err, input.orderId);
      if (known) return sendError(reply, known);
      throw err;
    }
  });

  app.get('/v1/checkouts', async (request, reply) => {
    const parsed = parseListQuery(request.query);
    if (!parsed.ok) return sendError(reply, invalidRequest(parsed.problems));
    return { checkouts: await listCheckouts(client, parsed.value) };
  });

  app.get<{ Params: { orderId: string } }>('/v1/checkouts/:orderId', async (request, reply) => {
    const { orderId } = request.params;
    try {
      // With every refund of the order, including those made after it completed.
      return await getCheckoutStatusWithRefunds(client, orderId);
    } catch (err) {
      const known = httpErrorFor(err, orderId);
      if (known) return sendError(reply, known);
      throw err;
    }
  });

  // The 3-D Secure handoff (src/payment-action.ts): the PaymentIntent's client secret, read from
  // Stripe now, for the customer's browser only. Never cached, never logged (Fastify's request lines
  // carry the URL and the status, not the body).
  app.get<{ Params: { orderId: string } }>(
    '/v1/checkouts/:orderId/payment-action',
    async (request, reply) => {
      const { orderId } = request.params;
      if (options.stripe === undefined) {
        return reply.code(503).send({
          error: {
            code: 'not_configured',
            message: 'This intake has no Stripe client to read payment actions with',
          },
        });
      }
      try {
        const action = await getPaymentAction(client, options.stripe, orderId);
        return reply.header('cache-control', 'no-store').send(action);
      } catch (err) {
        const known = httpErrorFor(err, orderId);
        if (known) {
          if (known.status >= 500) {
            request.log.warn({ orderId, error: known.body.error }, 'could not read the payment action');
          }
          return sendError(reply, known);
        }
        throw err;
      }
    },
  );

  const remediation = <T>(
    path: string,
    known: readonly string[],
    validate: (input: unknown) => Validation<T>,
    run: (orderId: string, request: T) => Promise<unknown>,
    /** Adds what the route reads from headers; its problems join the body's in one 400. */
    fromHeaders?: (
      headers: Readonly<Record<string, unknown>>,
      body: T | undefined,
      rawHeaders: readonly string[],
    ) => Validation<T>,
  ): void => {
    app.post<{ Params: { orderId: string } }>(`/v1/checkouts/:orderId/${path}`, async (request, reply) => {
      const { orderId } = request.params;
      let checked = validateBody(request.body, known, validate);
      if (fromHeaders) {
        const withHeaders = fromHeaders(
          request.headers,
          checked.ok ? checked.value : undefined,
          request.raw.rawHeaders,
        );
        const problems = [
          ...(checked.ok ? [] : checked.problems),
          ...(withHeaders.ok ? [] : withHeaders.problems),
        ];
        checked = problems.length > 0 ? { ok: false, problems } : withHeaders;
      }
      if (!checked.ok) return sendError(reply, invalidRequest(checked.problems));
      try {
        return await run(orderId, checked.value);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError && (await checkoutExists(client, orderId))) {
          // Updates cannot reach a closed workflow; say so instead of "not found".
          const status = await getCheckoutStatus(client, orderId);
          return reply.code(409).send({
            error: {
              code: 'not_allowed_in_current_state',
              message: `the checkout already ended (${status.state})`,
            },
          });
        }
        const mapped = httpErrorFor(err, orderId);
        if (mapped) return sendError(reply, mapped);
        throw err;
      }
    });
  };
  remediation(
    'retry-payment',
    ['paymentMethodId', 'actor', 'reason'],
    validateRetryPaymentRequest,
    (orderId, req) => retryPayment(client, orderId, req),
  );
  remediation('cancel', ['actor', 'reason'], validateCancelRequest, (orderId, req) =>
    cancelCheckout(client, orderId, req),
  );
  remediation('resolve', ['actor', 'reason', 'outcome'], validateResolveRequest, (orderId, req) =>
    resolveCheckout(client, orderId, req),
  );
  // The open checkout refunds itself; a completed one through its refunds workflow (the client routes).
  // The Idempotency-Key header is the request id: a repeat answers the first refund.
  remediation(
    'refund',
    ['amount', 'actor', 'reason'],
    validateRefundRequest,
    (orderId, req) => refundCheckout(client, orderId, req, { taskQueue }),
    refundRequestIdFromHeaders,
  );
  remediation('retry-provisioning', ['actor', 'reason'], validateRetryProvisioningRequest, (orderId, req) =>
    retryProvisioning(client, orderId, req),
  );

  void app.register((scope, _opts, done) => {
    // Signatures cover the exact bytes Stripe sent: keep them, whatever the content type says.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT },
      (_req, body, done) => done(null, body),
    );
    scope.post(STRIPE_WEBHOOK_PATH, async (request, reply) => {
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const header = request.headers['stripe-signature'];
      const verified = verifyStripeWebhook(
        raw,
        typeof header === 'string' ? header : undefined,
        webhookSecrets,
      );
      if (!verified.ok) {
        request.log.warn({ reason: verified.reason }, 'refused a Stripe webhook: bad signature');
        return reply.code(400).send({ error: { code: 'invalid_signature', message: verified.reason } });
      }
      const event = verified.event;
      const routed = routeStripeEvent(event);
      const paymentIntentId = routed === undefined ? undefined : paymentIntentOf(event.data.object);
      // A Checkout Session's events matter to a hosted checkout before the session has a
      // PaymentIntent (an expiry, say); every other event is routed only through its PaymentIntent.
      const isSessionEvent = event.type.startsWith('checkout.session.');
      if (
        routed === undefined ||
        (paymentIntentId === undefined && !isSessionEvent) ||
        !routed.workflowId.startsWith(WORKFLOW_ID_PREFIX)
      ) {
        return { received: true, eventId: event.id, signaled: false };
      }
      // Under a burst (thousands of customers finishing 3-D Secure at once) an answer that waits
      // for Temporal would hold Stripe's connection past its timeout, and every timed-out attempt
      // comes back as more load. Shed instead: a fast 503 is retried by Stripe with backoff.
      if (webhooksInFlight >= maxInFlight) {
        return retryLater(reply, 'overloaded', 'Too many deliveries in progress; retry later');
      }
      webhooksInFlight += 1;
      const signaled = client.workflow
        .getHandle(routed.workflowId)
        .signal(stripeEventSignal, {
          eventId: routed.eventId,
          type: routed.type,
          objectId: routed.objectId,
          ...(paymentIntentId === undefined ? {} : { paymentIntentId }),
        })
        .finally(() => {
          webhooksInFlight -= 1;
        });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), signalTimeoutMs);
      });
      try {
        const first = await Promise.race([signaled, deadline]);
        if (first === 'timeout') {
          // The signal is still on its way and may land; its failure is no longer anyone's answer.
          signaled.catch(() => undefined);
          request.log.warn({ eventId: event.id }, 'signalling the checkout is slow; asked Stripe to retry');
          return retryLater(
            reply,
            'temporal_slow',
            'The checkout did not take the event in time; retry later',
          );
        }
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) {
          // The checkout ended (or never existed here): nothing left to wake.
          return { received: true, eventId: event.id, workflowId: routed.workflowId, signaled: false };
        }
        request.log.warn({ err, eventId: event.id }, 'could not signal the checkout; Stripe will retry');
        return reply.code(503).send({
          error: { code: 'temporal_unavailable', message: 'Could not reach the checkout; retry later' },
        });
      } finally {
        clearTimeout(timer);
      }
      return { received: true, eventId: event.id, workflowId: routed.workflowId, signaled: true };
    });
    done();
  });

  return app;
}

/** The PaymentIntent an event's object is, or refers to (charges, refunds, Checkout Sessions). */
function paymentIntentOf(object: unknown): string | undefined {
  if (!isRecord(object)) return undefined;
  if (object.object === 'payment_intent' && typeof object.id === 'string') return object.id;
  return typeof object.payment_intent === 'string' ? object.payment_intent : undefined;
}

export async function startHttpIntake(
  options: HttpIntakeOptions & { readonly host: string; readonly port: number },
): Promise<HttpIntake> {
  const app = buildHttpIntake(options);
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    app,
    close: () => {
      closing ??= app.close();
      return closing;
    },
  };
}
