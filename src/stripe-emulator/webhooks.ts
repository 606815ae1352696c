/**
 * Signed webhook delivery for the Stripe emulator.
 *
 * Every event the emulator records is POSTed to each registered endpoint whose `enabled_events`
 * match, signed exactly as Stripe signs it: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
 * "<t>.<payload>")>`, so the real `stripe.webhooks.constructEvent` accepts it.
 *
 * The timestamp `t` is real wall-clock time, not the emulator clock: a receiver checks `t` against
 * its own clock (300 s tolerance by default), so signing with an advanced emulator clock would make
 * every delivery look stale or from the future. Each attempt is signed anew with a fresh `t`, as
 * Stripe does, so a retry hours later still verifies.
 *
 * Delivery is at-least-once: a non-2xx answer, a connection error or a timeout is retried with
 * exponential backoff (`retry_base_delay_ms * 2^(attempt-1)`) up to `max_attempts` attempts. To make
 * a receiver prove it tolerates what Stripe does, an endpoint can also ask for duplicates (the same
 * event, same id, delivered twice as two independent deliveries), reordering (deliveries are held
 * for a short window and shuffled; a batch of two or more is never sent in emission order), a fixed
 * delay before the first attempt, and `fail_first` (the first n attempts count as failed whatever the
 * receiver answers). Random choices come from a per-endpoint seeded generator, so a run with the same
 * seed and the same events makes the same choices.
 *
 * Nothing here blocks an API response: the event listener only records and schedules. `stop()`
 * clears every timer and aborts requests in flight; deliveries still pending become `canceled`.
 */
import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import qs from 'qs';
import { z } from 'zod';
import { type RawRequest, type RawResponse, type RawRoute } from './router';
import { mulberry32 } from './prng';

/** The part of an emulator event that delivery needs; the whole event is serialized as the body. */
export interface WebhookEvent {
  readonly id: string;
  readonly type: string;
}

/** Where events come from: the emulator's event log. */
export interface WebhookEventSource {
  subscribe(listener: (event: WebhookEvent) => void): () => void;
}

export interface WebhookDispatcherOptions {
  /** Backoff base for endpoints that do not set `retry_base_delay_ms`. Default 1000 ms. */
  readonly retryBaseDelayMs?: number;
  /** Attempts per delivery (the first plus retries) for endpoints that do not set `max_attempts`.
   * Default 4: Stripe's test mode retries three times. */
  readonly maxAttempts?: number;
  /** How long one attempt may take before it counts as failed. Default 10 000 ms. */
  readonly attemptTimeoutMs?: number;
  /** Wall clock in milliseconds, for signature timestamps. Default `Date.now`. */
  readonly wallClockMs?: () => number;
  /** How many delivery records to keep for `GET /_emulator/webhook_deliveries`. Default 10 000. */
  readonly maxDeliveryRecords?: number;
}

const DEFAULTS = {
  retryBaseDelayMs: 1000,
  maxAttempts: 4,
  attemptTimeoutMs: 10_000,
  maxDeliveryRecords: 10_000,
  reorderWindowMs: 50,
} as const;

const MAX_RETRY_DELAY_MS = 60 * 60 * 1000;

/** A parameter problem in a control request; the server answers 400 with this message. */
export class WebhookParamError extends Error {
  override readonly name = 'WebhookParamError';
  constructor(
    message: string,
    readonly param: string | undefined,
  ) {
    super(message);
  }
}

/** Form bodies carry every value as a string; JSON bodies carry real types. Accept both. */
const numberLike = z.preprocess(
  (value) => (typeof value === 'string' && value.trim() !== '' ? Number(value) : value),
  z.number().finite(),
);
const booleanLike = z.preprocess(
  (value) => (value === 'true' ? true : value === 'false' ? false : value),
  z.boolean(),
);
const stringList = z.preprocess(
  (value) =>
    typeof value === 'string'
      ? [value]
      : value !== null && typeof value === 'object' && !Array.isArray(value)
        ? Object.values(value)
        : value,
  z.array(z.string().min(1)).min(1),
);

const endpointParamsSchema = z
  .object({
    url: z.string().refine(isHttpUrl, 'must be an absolute http:// or https:// URL'),
    enabled_events: stringList.optional(),
    secret: z.string().min(1).optional(),
    description: z.string().optional(),
    duplicate: numberLike.pipe(z.number().min(0).max(1)).optional(),
    reorder: booleanLike.optional(),
    reorder_window_ms: numberLike.pipe(z.number().int().min(1).max(60_000)).optional(),
    delay_ms: numberLike.pipe(z.number().int().min(0).max(3_600_000)).optional(),
    fail_first: numberLike.pipe(z.number().int().min(0)).optional(),
    seed: numberLike.pipe(z.number().int()).optional(),
    max_attempts: numberLike.pipe(z.number().int().min(1).max(100)).optional(),
    retry_base_delay_ms: numberLike.pipe(z.number().int().min(0).max(MAX_RETRY_DELAY_MS)).optional(),
  })
  .strict();

export type WebhookEndpointParams = z.input<typeof endpointParamsSchema>;

/** The endpoint as the control API shows it. */
export interface WebhookEndpoint {
  readonly id: string;
  readonly object: 'webhook_endpoint';
  readonly url: string;
  readonly enabled_events: readonly string[];
  readonly secret: string;
  readonly description: string | null;
  readonly status: 'enabled';
  readonly created: number;
  readonly duplicate: number;
  readonly reorder: boolean;
  readonly reorder_window_ms: number;
  readonly delay_ms: number;
  readonly fail_first: number;
  readonly seed: number;
  readonly max_attempts: number;
  readonly retry_base_delay_ms: number;
}

export interface WebhookDeliveryAttempt {
  readonly attempt: number;
  /** Wall-clock milliseconds when the request started. */
  readonly started_at_ms: number;
  readonly duration_ms: number;
  /** The `t` that was signed, in unix seconds. */
  readonly signature_timestamp: number;
  readonly signature: string;
  /** The receiver's status, or null when no response arrived. */
  readonly status_code: number | null;
  readonly error: string | null;
  /** True when `fail_first` made this attempt count as failed. */
  readonly forced_failure: boolean;
  readonly succeeded: boolean;
}

export type WebhookDeliveryStatus =
  'scheduled' | 'in_flight' | 'retry_scheduled' | 'succeeded' | 'failed' | 'canceled';

export interface WebhookDelivery {
  readonly id: string;
  readonly object: 'webhook_delivery';
  readonly endpoint: string;
  readonly event: string;
  readonly event_type: string;
  /** 1 for the original delivery, 2 for a duplicate the endpoint asked for. */
  readonly copy: number;
  /** Order in which first attempts started across this dispatcher (1-based), null before that. */
  dispatch_seq: number | null;
  status: WebhookDeliveryStatus;
  next_attempt_in_ms: number | null;
  readonly attempts: WebhookDeliveryAttempt[];
}

export interface WebhookDeliveryFilter {
  readonly endpoint?: string;
  readonly event?: string;
}

interface EndpointState {
  readonly endpoint: WebhookEndpoint;
  readonly random: () => number;
  readonly reorderBuffer: Delivery[];
  reorderTimer: NodeJS.Timeout | undefined;
}

interface Delivery {
  readonly record: WebhookDelivery;
  readonly endpoint: EndpointState;
  readonly payload: string;
}

/** Signs a payload exactly as Stripe does; exported for receivers' tests and the docs. */
export function signWebhookPayload(payload: string, secret: string, timestampSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${timestampSeconds}.${payload}`, 'utf8').digest('hex');
  return `t=${timestampSeconds},v1=${v1}`;
}

export class WebhookDispatcher {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly records: WebhookDelivery[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly requests = new Set<http.ClientRequest>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgent = new https.Agent({ keepAlive: true });
  private readonly unsubscribe: () => void;
  private readonly retryBaseDelayMs: number;
  private readonly maxAttempts: number;
  private readonly attemptTimeoutMs: number;
  private readonly wallClockMs: () => number;
  private readonly maxDeliveryRecords: number;
  private pending = 0;
  private dispatchSeq = 0;
  private stopped = false;

  constructor(source: WebhookEventSource, options: WebhookDispatcherOptions = {}) {
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? DEFAULTS.retryBaseDelayMs;
    this.maxAttempts = options.maxAttempts ?? DEFAULTS.maxAttempts;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULTS.attemptTimeoutMs;
    this.wallClockMs = options.wallClockMs ?? Date.now;
    this.maxDeliveryRecords = options.maxDeliveryRecords ?? DEFAULTS.maxDeliveryRecords;
    this.unsubscribe = source.subscribe((event) => this.onEvent(event));
  }

  /** Registers an endpoint; throws `WebhookParamError` for invalid parameters. */
  createEndpoint(params: unknown): WebhookEndpoint {
    if (this.stopped) throw new Error('The webhook dispatcher is stopped.');
    const parsed = endpointParamsSchema.safeParse(params ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const param = issue?.path.map(String).join('.') || undefined;
      const message =
        issue?.code === 'unrecognized_keys'
          ? `Received unknown parameter: ${issue.keys.join(', ')}`
          : param === undefined
            ? (issue?.message ?? 'Invalid parameters.')
            : param === 'url' && issue?.code === 'invalid_type'
              ? 'Missing required param: url.'
              : `Invalid ${param}: ${issue?.message ?? 'invalid value'}`;
      throw new WebhookParamError(message, param);
    }
    const p = parsed.data;
    const seed = p.seed ?? randomBytes(4).readUInt32BE(0);
    const endpoint: WebhookEndpoint = {
      id: `we_${randomId(24)}`,
      object: 'webhook_endpoint',
      url: p.url,
      enabled_events: p.enabled_events ?? ['*'],
      secret: p.secret ?? `whsec_${randomId(32)}`,
      description: p.description ?? null,
      status: 'enabled',
      created: Math.floor(this.wallClockMs() / 1000),
      duplicate: p.duplicate ?? 0,
      reorder: p.reorder ?? false,
      reorder_window_ms: p.reorder_window_ms ?? DEFAULTS.reorderWindowMs,
      delay_ms: p.delay_ms ?? 0,
      fail_first: p.fail_first ?? 0,
      seed,
      max_attempts: p.max_attempts ?? this.maxAttempts,
      retry_base_delay_ms: p.retry_base_delay_ms ?? this.retryBaseDelayMs,
    };
    this.endpoints.set(endpoint.id, {
      endpoint,
      random: mulberry32(seed),
      reorderBuffer: [],
      reorderTimer: undefined,
    });
    return endpoint;
  }

  listEndpoints(): WebhookEndpoint[] {
    return [...this.endpoints.values()].map((state) => state.endpoint);
  }

  getEndpoint(id: string): WebhookEndpoint | undefined {
    return this.endpoints.get(id)?.endpoint;
  }

  /** Removes an endpoint; its scheduled deliveries and retries are canceled. */
  deleteEndpoint(id: string): boolean {
    const state = this.endpoints.get(id);
    if (state === undefined) return false;
    this.endpoints.delete(id);
    if (state.reorderTimer !== undefined) this.clearTimer(state.reorderTimer);
    for (const delivery of state.reorderBuffer.splice(0)) this.finish(delivery, 'canceled');
    return true;
  }

  /** Delivery records, oldest first; retries and duplicates are visible in them. */
  deliveries(filter: WebhookDeliveryFilter = {}): WebhookDelivery[] {
    return this.records.filter(
      (record) =>
        (filter.endpoint === undefined || record.endpoint === filter.endpoint) &&
        (filter.event === undefined || record.event === filter.event),
    );
  }

  /** Resolves once no delivery is scheduled, in flight or waiting for a retry. */
  whenIdle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Removes every endpoint and delivery record (the emulator's reset); pending deliveries end. */
  clear(): void {
    for (const id of [...this.endpoints.keys()]) this.deleteEndpoint(id);
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const record of this.records) record.status = isTerminal(record.status) ? record.status : 'canceled';
    for (const request of this.requests) request.destroy();
    this.requests.clear();
    this.records.length = 0;
    this.pending = 0;
    this.notifyIdle();
  }

  /** Stops delivering: unsubscribes, clears every timer, aborts requests in flight. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const request of this.requests) request.destroy();
    this.requests.clear();
    for (const record of this.records) {
      if (!isTerminal(record.status)) {
        record.status = 'canceled';
        record.next_attempt_in_ms = null;
      }
    }
    this.pending = 0;
    for (const state of this.endpoints.values()) state.reorderBuffer.length = 0;
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.notifyIdle();
  }

  private onEvent(event: WebhookEvent): void {
    if (this.stopped) return;
    let payload: string | undefined;
    for (const state of this.endpoints.values()) {
      const { endpoint } = state;
      if (!endpoint.enabled_events.includes('*') && !endpoint.enabled_events.includes(event.type)) continue;
      payload ??= JSON.stringify(event, null, 2);
      const copies = endpoint.duplicate > 0 && state.random() < endpoint.duplicate ? 2 : 1;
      for (let copy = 1; copy <= copies; copy++) {
        const delivery = this.newDelivery(state, event, payload, copy);
        if (endpoint.reorder) this.holdForReorder(delivery);
        else this.schedule(delivery, endpoint.delay_ms);
      }
    }
  }

  private newDelivery(state: EndpointState, event: WebhookEvent, payload: string, copy: number): Delivery {
    const record: WebhookDelivery = {
      id: `wd_${randomId(24)}`,
      object: 'webhook_delivery',
      endpoint: state.endpoint.id,
      event: event.id,
      event_type: event.type,
      copy,
      dispatch_seq: null,
      status: 'scheduled',
      next_attempt_in_ms: null,
      attempts: [],
    };
    this.records.push(record);
    if (this.records.length > this.maxDeliveryRecords) {
      const dropAt = this.records.findIndex((r) => isTerminal(r.status));
      if (dropAt >= 0) this.records.splice(dropAt, 1);
    }
    this.pending++;
    return { record, endpoint: state, payload };
  }

  private holdForReorder(delivery: Delivery): void {
    const state = delivery.endpoint;
    state.reorderBuffer.push(delivery);
    if (state.reorderTimer !== undefined) return;
    state.reorderTimer = this.setTimer(state.endpoint.reorder_window_ms, () => {
      state.reorderTimer = undefined;
      const batch = state.reorderBuffer.splice(0);
      shuffleNotInOrder(batch, state.random);
      for (const held of batch) this.schedule(held, state.endpoint.delay_ms);
    });
  }

  private schedule(delivery: Delivery, delayMs: number): void {
    delivery.record.next_attempt_in_ms = delayMs;
    this.setTimer(delayMs, () => {
      delivery.record.next_attempt_in_ms = null;
      this.attempt(delivery);
    });
  }

  private attempt(delivery: Delivery): void {
    if (this.stopped || !this.endpoints.has(delivery.endpoint.endpoint.id)) {
      this.finish(delivery, 'canceled');
      return;
    }
    const { record, endpoint: state, payload } = delivery;
    const { endpoint } = state;
    const attemptNo = record.attempts.length + 1;
    if (record.dispatch_seq === null) record.dispatch_seq = ++this.dispatchSeq;
    record.status = 'in_flight';
    const startedAt = this.wallClockMs();
    const timestamp = Math.floor(startedAt / 1000);
    const signature = signWebhookPayload(payload, endpoint.secret, timestamp);
    const body = Buffer.from(payload, 'utf8');
    const url = new URL(endpoint.url);
    const isHttps = url.protocol === 'https:';
    let settled = false;
    const settle = (statusCode: number | null, error: string | null): void => {
      if (settled) return;
      settled = true;
      this.requests.delete(request);
      if (this.stopped || isTerminal(record.status)) return;
      const forced = attemptNo <= endpoint.fail_first;
      const succeeded = !forced && statusCode !== null && statusCode >= 200 && statusCode < 300;
      record.attempts.push({
        attempt: attemptNo,
        started_at_ms: startedAt,
        duration_ms: this.wallClockMs() - startedAt,
        signature_timestamp: timestamp,
        signature,
        status_code: statusCode,
        error,
        forced_failure: forced,
        succeeded,
      });
      if (succeeded) this.finish(delivery, 'succeeded');
      else if (attemptNo >= endpoint.max_attempts) this.finish(delivery, 'failed');
      else {
        record.status = 'retry_scheduled';
        const backoff = Math.min(endpoint.retry_base_delay_ms * 2 ** (attemptNo - 1), MAX_RETRY_DELAY_MS);
        this.schedule(delivery, backoff);
      }
    };
    const request = (isHttps ? https : http).request(
      url,
      {
        method: 'POST',
        agent: isHttps ? this.httpsAgent : this.httpAgent,
        timeout: this.attemptTimeoutMs,
        headers: {
          'Content-Type': 'application/json; charset=utf-8',
          'Content-Length': body.length,
          'User-Agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
          'Stripe-Signature': signature,
        },
      },
      (response) => {
        response.resume();
        response.on('end', () => settle(response.statusCode ?? null, null));
        response.on('error', (error) => settle(response.statusCode ?? null, error.message));
      },
    );
    this.requests.add(request);
    request.on('timeout', () => request.destroy(new Error(`timed out after ${this.attemptTimeoutMs} ms`)));
    request.on('error', (error) => settle(null, error.message));
    request.end(body);
  }

  private finish(delivery: Delivery, status: 'succeeded' | 'failed' | 'canceled'): void {
    if (isTerminal(delivery.record.status)) return;
    delivery.record.status = status;
    delivery.record.next_attempt_in_ms = null;
    this.pending--;
    if (this.pending === 0) this.notifyIdle();
  }

  private notifyIdle(): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private setTimer(delayMs: number, run: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, delayMs);
    this.timers.add(timer);
    return timer;
  }

  private clearTimer(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.timers.delete(timer);
  }
}

function isTerminal(status: WebhookDeliveryStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'canceled';
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomId(length: number): string {
  const bytes = randomBytes(length);
  let id = '';
  for (const byte of bytes) id += ALPHANUMERIC[byte % ALPHANUMERIC.length];
  return id;
}

/** Fisher-Yates with the endpoint's generator; a batch of two or more never stays in order, so a
 * test that asks for reordering always observes it. */
function shuffleNotInOrder<T>(items: T[], random: () => number): void {
  const original = [...items];
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = items[i] as T;
    items[i] = items[j] as T;
    items[j] = a;
  }
  if (items.length >= 2 && items.every((item, index) => item === original[index])) {
    const first = items[0] as T;
    items[0] = items[1] as T;
    items[1] = first;
  }
}

/**
 * The control API for webhooks, under `/_emulator/` (no API key, JSON or form bodies):
 *
 *   POST   /_emulator/webhook_endpoints        register; answers the endpoint with its `secret`
 *   GET    /_emulator/webhook_endpoints        list
 *   GET    /_emulator/webhook_endpoints/:id    one endpoint
 *   DELETE /_emulator/webhook_endpoints/:id    remove; its pending deliveries are canceled
 *   GET    /_emulator/webhook_deliveries       delivery records (`?endpoint=we_…&event=evt_…`)
 */
export function webhookControlRoutes(dispatcher: WebhookDispatcher): RawRoute[] {
  return [
    {
      kind: 'raw',
      method: 'POST',
      pattern: '/_emulator/webhook_endpoints',
      handler: (request) => {
        let params: unknown;
        try {
          params = parseControlBody(request);
        } catch (error) {
          return controlError(400, `Invalid request body: ${(error as Error).message}`, undefined);
        }
        try {
          return json(200, dispatcher.createEndpoint(params));
        } catch (error) {
          if (error instanceof WebhookParamError) return controlError(400, error.message, error.param);
          throw error;
        }
      },
    },
    {
      kind: 'raw',
      method: 'GET',
      pattern: '/_emulator/webhook_endpoints',
      handler: () =>
        json(200, {
          object: 'list',
          url: '/_emulator/webhook_endpoints',
          has_more: false,
          data: dispatcher.listEndpoints(),
        }),
    },
    {
      kind: 'raw',
      method: 'GET',
      pattern: '/_emulator/webhook_endpoints/:id',
      handler: (request) => {
        const id = request.pathParams.id ?? '';
        const endpoint = dispatcher.getEndpoint(id);
        return endpoint === undefined ? noSuchEndpoint(id) : json(200, endpoint);
      },
    },
    {
      kind: 'raw',
      method: 'DELETE',
      pattern: '/_emulator/webhook_endpoints/:id',
      handler: (request) => {
        const id = request.pathParams.id ?? '';
        return dispatcher.deleteEndpoint(id)
          ? json(200, { id, object: 'webhook_endpoint', deleted: true })
          : noSuchEndpoint(id);
      },
    },
    {
      kind: 'raw',
      method: 'GET',
      pattern: '/_emulator/webhook_deliveries',
      handler: (request) => {
        const endpoint = request.query.get('endpoint') ?? undefined;
        const event = request.query.get('event') ?? undefined;
        return json(200, {
          object: 'list',
          url: '/_emulator/webhook_deliveries',
          has_more: false,
          data: dispatcher.deliveries({
            ...(endpoint === undefined ? {} : { endpoint }),
            ...(event === undefined ? {} : { event }),
          }),
        });
      },
    },
  ];
}

function parseControlBody(request: RawRequest): unknown {
  const text = request.body.toString('utf8');
  if (text.trim() === '') return {};
  const contentType = String(request.headers['content-type'] ?? '');
  if (contentType.includes('application/json') || /^\s*[[{]/.test(text)) return JSON.parse(text) as unknown;
  return qs.parse(text);
}

function noSuchEndpoint(id: string): RawResponse {
  return controlError(404, `No such webhook endpoint: '${id}'`, 'id');
}

function controlError(status: number, message: string, param: string | undefined): RawResponse {
  return json(status, {
    error: { type: 'invalid_request_error', message, ...(param === undefined ? {} : { param }) },
  });
}

function json(status: number, body: unknown): RawResponse {
  return { status, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body, null, 2) };
}
