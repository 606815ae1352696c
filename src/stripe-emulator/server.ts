/**
 * The emulator's HTTP front: `node:http`, no framework, so a request costs little more than the
 * resource work itself. Each request goes through one pipeline:
 *
 *   read the body (at most 1 MiB, else a Stripe-shaped 413) → route →
 *   raw routes (`/_emulator/…`, pages): the handler answers as it likes →
 *   API routes: API key (401) → route (404) → decode form/query (`qs`) → Idempotency-Key length (400)
 *   → fault selection → faults that answer before execution (reset, 429s, transient 500)
 *   → idempotency lock or replay (409, 400 idempotency_error, replay) → stored 500 fault
 *   → execute → store the outcome unless it is a validation error → answer (or lose/truncate it).
 *
 * Anything unexpected inside a handler becomes a stored 500 `api_error` with
 * `Stripe-Should-Retry: false` (contract I6, I13) and is reported through `onError`; nothing a
 * client sends can crash the process.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo } from 'node:net';
import qs from 'qs';
import { StripeApiError, type StripeErrorBody, internalError, paramError, unrecognizedUrl } from './errors';
import { STRIPE_API_VERSION } from './events';
import { type FaultRule, DEFAULT_SLOW_DELAY_MS } from './faults';
import { newRequestId } from './ids';
import {
  IdempotencyStore,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  idempotencyEndpointMessage,
  idempotencyInUseMessage,
  idempotencyParamsMessage,
} from './idempotency';
import { canonicalParams } from './params';
import {
  type ApiRoute,
  type FormParams,
  type HttpMethod,
  type PathParams,
  type RawRoute,
  type Router,
} from './router';
import { type EmulatorState } from './state';

export const MAX_BODY_BYTES = 1024 * 1024;
/** Beyond this the emulator stops draining an oversized body and drops the connection. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;
const HTTP_METHODS: readonly HttpMethod[] = ['GET', 'POST', 'DELETE'];

const QS_OPTIONS = {
  depth: 10,
  arrayLimit: 1000,
  parameterLimit: 5000,
  allowPrototypes: false,
  plainObjects: true,
} as const;

type BodyResult =
  | { readonly kind: 'ok'; readonly body: Buffer }
  | { readonly kind: 'too_large' }
  | { readonly kind: 'aborted' };

/** What an API request produced: serialized once, so a replay is byte-identical. */
interface Outcome {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string>;
  readonly storable: boolean;
}

interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly requestId: string;
  readonly body: Buffer;
}

export class EmulatorHttpServer {
  readonly server: http.Server;
  private readonly sleeps = new Set<() => void>();

  constructor(
    private readonly state: EmulatorState,
    private readonly router: Router,
    private readonly onError: (error: unknown) => void,
  ) {
    this.server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        this.onError(error);
        if (!res.headersSent) {
          sendJson(res, 500, { 'Request-Id': newRequestId() }, errorJson(internalError().body));
        } else {
          res.destroy();
        }
      });
    });
    // Requests Node's HTTP parser rejects (bad bytes in the path or headers) never reach a handler;
    // they still get a Stripe-shaped answer.
    this.server.on('clientError', (_error, socket) => {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      const body = errorJson({
        type: 'invalid_request_error',
        message: 'The request could not be parsed as HTTP.',
      });
      socket.end(
        `HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\nRequest-Id: ${newRequestId()}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Ends pending `slow` waits, then closes every connection and the listener. */
  close(): Promise<void> {
    for (const wake of this.sleeps) wake();
    this.sleeps.clear();
    return new Promise((resolve, reject) => {
      this.server.close((error) => (error ? reject(error) : resolve()));
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = newRequestId();
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    const queryIndex = rawUrl.indexOf('?');
    const path = queryIndex < 0 ? rawUrl : rawUrl.slice(0, queryIndex);
    const query = queryIndex < 0 ? '' : rawUrl.slice(queryIndex + 1);

    const bodyResult = await readBody(req);
    if (bodyResult.kind === 'aborted') return;
    if (bodyResult.kind === 'too_large') {
      const error = new StripeApiError(
        413,
        'invalid_request_error',
        `Request body too large: the emulator accepts at most ${MAX_BODY_BYTES} bytes.`,
      );
      sendJson(res, 413, { 'Request-Id': requestId, Connection: 'close' }, errorJson(error.body, requestId));
      return;
    }
    const ctx: RequestContext = { req, res, method, path, query, requestId, body: bodyResult.body };
    this.state.paymentIntents.settleDue();

    const knownMethod = HTTP_METHODS.find((candidate) => candidate === method);
    const match = knownMethod === undefined ? undefined : this.router.match(knownMethod, path);
    if (match?.route.kind === 'raw') {
      await this.handleRaw(ctx, match.route, match.pathParams);
      return;
    }
    this.state.countRequest(`${method} ${match?.route.pattern ?? '<unmatched>'}`);
    await this.handleApi(ctx, match?.route.kind === 'api' ? match.route : undefined, match?.pathParams ?? {});
  }

  private async handleRaw(ctx: RequestContext, route: RawRoute, pathParams: PathParams): Promise<void> {
    try {
      const response = await route.handler({
        method: route.method,
        path: ctx.path,
        pathParams,
        query: new URLSearchParams(ctx.query),
        headers: ctx.req.headers,
        body: ctx.body,
      });
      const body = typeof response.body === 'string' ? Buffer.from(response.body) : response.body;
      ctx.res.writeHead(response.status, {
        'Content-Type': 'application/json',
        ...response.headers,
        'Content-Length': body.length,
        'Request-Id': ctx.requestId,
      });
      ctx.res.end(body);
    } catch (error) {
      const apiError = error instanceof StripeApiError ? error : undefined;
      if (!apiError) this.onError(error);
      const body = apiError?.body ?? internalError().body;
      sendJson(ctx.res, apiError?.status ?? 500, { 'Request-Id': ctx.requestId }, errorJson(body));
    }
  }

  private async handleApi(
    ctx: RequestContext,
    route: ApiRoute | undefined,
    pathParams: PathParams,
  ): Promise<void> {
    const { req, res, method, path, requestId } = ctx;
    const version = headerValue(req, 'stripe-version') ?? STRIPE_API_VERSION;
    const headers: Record<string, string> = { 'Request-Id': requestId, 'Stripe-Version': version };
    const fail = (error: StripeApiError): void => {
      sendJson(res, error.status, { ...headers, ...error.headers }, errorJson(error.body, requestId));
    };

    // Only Stripe's API paths need a key; anything else unknown is simply not there.
    if (!route && !path.startsWith('/v1/')) return fail(unrecognizedUrl(method, path));
    const authError = this.authenticate(req);
    if (authError) return fail(authError);
    if (!route) return fail(unrecognizedUrl(method, path));

    let params: FormParams;
    try {
      params = parseForm(route.method === 'POST' ? ctx.body.toString('utf8') : ctx.query);
    } catch {
      return fail(
        paramError('The request body could not be decoded as application/x-www-form-urlencoded.', undefined),
      );
    }

    const idempotencyKey = route.method === 'POST' ? headerValue(req, 'idempotency-key') : undefined;
    if (idempotencyKey !== undefined) {
      headers['Idempotency-Key'] = idempotencyKey;
      if (idempotencyKey.length < 1 || idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
        return fail(
          paramError(
            `Invalid Idempotency-Key: keys must be between 1 and ${MAX_IDEMPOTENCY_KEY_LENGTH} characters long, got ${idempotencyKey.length}.`,
            undefined,
          ),
        );
      }
    }

    const fault = this.state.faults.select({ method, path, idempotencyKey, params });
    const early = fault === undefined ? undefined : earlyFaultResponse(fault);
    if (fault?.fault === 'reset_before_execution') {
      req.socket.destroy();
      return;
    }
    if (early) return fail(early);

    const account = headerValue(req, 'stripe-account') ?? '';
    let namespace: string | undefined;
    let canonical = '';
    if (idempotencyKey !== undefined) {
      namespace = IdempotencyStore.namespace(account, idempotencyKey);
      canonical = canonicalParams(params);
      const lookup = this.state.idempotency.begin(namespace, method, path, canonical);
      switch (lookup.kind) {
        case 'in_flight':
          return fail(
            new StripeApiError(409, 'invalid_request_error', idempotencyInUseMessage(idempotencyKey), {
              code: 'idempotency_key_in_use',
            }),
          );
        case 'other_endpoint':
          return fail(
            new StripeApiError(
              400,
              'idempotency_error',
              idempotencyEndpointMessage(idempotencyKey, lookup.stored.path, path),
            ),
          );
        case 'other_params':
          return fail(new StripeApiError(400, 'idempotency_error', idempotencyParamsMessage(idempotencyKey)));
        case 'replay':
          // A replay is this request's answer, so faults on the answer (lost, truncated) apply.
          this.respond(
            ctx,
            fault,
            lookup.stored.status,
            {
              ...headers,
              ...lookup.stored.headers,
              'Idempotent-Replayed': 'true',
              'Original-Request': lookup.stored.originalRequestId,
            },
            lookup.stored.body,
          );
          return;
        case 'acquired':
          headers['Original-Request'] = requestId;
          break;
      }
    }

    let outcome: Outcome | undefined;
    try {
      if (fault?.fault === 'stored_500') {
        const error = internalError();
        outcome = {
          status: 500,
          body: errorJson(error.body, requestId),
          headers: { ...error.headers },
          storable: true,
        };
      } else {
        outcome = await this.execute(route, {
          pathParams,
          params,
          requestId,
          idempotencyKey,
          account,
          headers: req.headers,
          path,
        });
      }
      if (fault?.fault === 'slow') await this.sleep(fault.delayMs ?? DEFAULT_SLOW_DELAY_MS);
    } finally {
      if (namespace !== undefined) {
        if (outcome?.storable) {
          this.state.idempotency.complete(namespace, {
            status: outcome.status,
            body: outcome.body,
            headers: outcome.headers,
            originalRequestId: requestId,
            method,
            path,
            canonicalParams: canonical,
          });
        } else {
          this.state.idempotency.release(namespace);
        }
      }
    }

    if (!outcome) return;
    this.respond(ctx, fault, outcome.status, { ...headers, ...outcome.headers }, outcome.body);
  }

  /** Sends an API answer, or loses or truncates it when a fault says so. */
  private respond(
    ctx: RequestContext,
    fault: FaultRule | undefined,
    status: number,
    headers: Record<string, string>,
    body: string,
  ): void {
    const { req, res } = ctx;
    if (fault?.fault === 'lose_response_after_commit') {
      req.socket.destroy();
      return;
    }
    if (fault?.fault === 'truncated_body') {
      const bytes = Buffer.from(body);
      res.writeHead(status, {
        ...headers,
        'Content-Type': 'application/json',
        'Content-Length': bytes.length,
      });
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => req.socket.destroy());
      return;
    }
    sendRaw(res, status, headers, body);
  }

  private async execute(
    route: ApiRoute,
    input: {
      pathParams: PathParams;
      params: FormParams;
      requestId: string;
      idempotencyKey: string | undefined;
      account: string;
      headers: IncomingMessage['headers'];
      path: string;
    },
  ): Promise<Outcome> {
    try {
      const result = await route.handler({
        method: route.method,
        path: input.path,
        pathParams: input.pathParams,
        params: input.params,
        headers: input.headers,
        eventRequest: { id: input.requestId, idempotency_key: input.idempotencyKey ?? null },
        requestId: input.requestId,
        idempotencyKey: input.idempotencyKey,
        account: input.account,
      });
      return { status: result.status, body: toJson(result.body), headers: {}, storable: true };
    } catch (error) {
      const apiError = error instanceof StripeApiError ? error : undefined;
      if (!apiError) this.onError(error);
      const thrown = apiError ?? internalError();
      return {
        status: thrown.status,
        body: errorJson(thrown.body, input.requestId),
        headers: { ...thrown.headers },
        storable: thrown.storable,
      };
    }
  }

  private authenticate(req: IncomingMessage): StripeApiError | undefined {
    const key = apiKeyFrom(headerValue(req, 'authorization'));
    if (key === undefined || key === '') {
      return new StripeApiError(
        401,
        'invalid_request_error',
        "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
      );
    }
    const valid = this.state.apiKey === undefined ? /^sk_test_\S+$/.test(key) : key === this.state.apiKey;
    if (!valid) {
      return new StripeApiError(401, 'invalid_request_error', `Invalid API Key provided: ${maskKey(key)}`, {
        code: 'api_key_invalid',
      });
    }
    return undefined;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleeps.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleeps.add(wake);
    });
  }
}

function earlyFaultResponse(fault: FaultRule): StripeApiError | undefined {
  switch (fault.fault) {
    case 'rate_limit_429':
      return new StripeApiError(
        429,
        'invalid_request_error',
        'Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.',
        { code: 'rate_limit' },
      );
    case 'lock_timeout_429':
      return new StripeApiError(
        429,
        'invalid_request_error',
        'This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request. If you see this error frequently and are making multiple concurrent requests to a single object, make your requests serially or at a lower rate.',
        { code: 'lock_timeout', headers: { 'Stripe-Should-Retry': 'true' } },
      );
    case 'transient_500':
      return new StripeApiError(500, 'api_error', 'An unknown error occurred');
    default:
      return undefined;
  }
}

function readBody(req: IncomingMessage): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    const settle = (result: BodyResult): void => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    req.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total > MAX_DRAIN_BYTES) {
        req.socket.destroy();
        settle({ kind: 'aborted' });
      } else if (total <= MAX_BODY_BYTES) {
        chunks.push(chunk);
      }
    });
    req.on('end', () => {
      settle(
        total > MAX_BODY_BYTES ? { kind: 'too_large' } : { kind: 'ok', body: Buffer.concat(chunks, total) },
      );
    });
    req.on('error', () => settle({ kind: 'aborted' }));
    req.on('close', () => settle({ kind: 'aborted' }));
  });
}

function parseForm(text: string): FormParams {
  if (text === '') return {};
  return qs.parse(text, QS_OPTIONS) as FormParams;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `Bearer sk_test_…`, or HTTP Basic with the key as the user name (curl `-u sk_test_…:`). */
function apiKeyFrom(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const [scheme, credentials = ''] = authorization.trim().split(/\s+/, 2);
  if (scheme?.toLowerCase() === 'bearer') return credentials;
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    return decoded.split(':')[0];
  }
  return undefined;
}

function maskKey(key: string): string {
  if (key.length <= 12) return '*'.repeat(key.length);
  return `${key.slice(0, 8)}${'*'.repeat(key.length - 12)}${key.slice(-4)}`;
}

/** Compact JSON: the SDK does not mind, and stored replays keep these exact bytes, so smaller is cheaper. */
function toJson(body: unknown): string {
  return JSON.stringify(body);
}

function errorJson(error: StripeErrorBody, requestId?: string): string {
  const body: StripeErrorBody =
    requestId === undefined
      ? error
      : { ...error, request_log_url: `https://dashboard.stripe.com/test/logs/${requestId}` };
  return toJson({ error: body });
}

function sendRaw(res: ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  sendRaw(res, status, headers, body);
}
