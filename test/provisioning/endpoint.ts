/**
 * A user's provisioning endpoint for the tests: a real HTTP server that meets the contract in
 * docs/provisioning.md and stores by `Idempotency-Key`, the way a careful user's service would. A
 * grant under a key already seen grants nothing and answers with that entitlement as it now stands; a refund under a key already seen is
 * not recorded again; a grant for a checkout whose full refund is recorded is born revoked. Requests with the same key while one is in flight get a 409.
 *
 * Faults are queued per route and consumed one per request, before the request is handled:
 * `500`, `400`, `429` (with a Retry-After), `drop` (the connection is destroyed, no answer),
 * `slow` (the request takes effect, the answer comes `slowMs` later, after the client gave up),
 * `garbage` (a 200 whose body is not an entitlement). Every request is logged with its headers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Entitlement } from '../../src/workflows/definitions';

export type EndpointFault = '500' | '400' | '429' | 'drop' | 'slow' | 'garbage';

export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly idempotencyKey: string | undefined;
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  readonly body: unknown;
}

export interface TestEndpoint {
  /** The base URL to configure (`…/provisioning/`). */
  readonly url: string;
  readonly requests: LoggedRequest[];
  /** Faults for the next requests to `POST entitlements` or `POST refunds`, in order. */
  readonly faults: { entitlements: EndpointFault[]; refunds: EndpointFault[] };
  readonly entitlements: Map<string, Entitlement>;
  /** Refunds recorded per workflow id, oldest first. */
  readonly refunds: Map<string, { refundId: string; amount: number; full: boolean }[]>;
  /** How many entitlements were ever created (a replay creates none). */
  granted(): number;
  close(): Promise<void>;
}

export interface TestEndpointOptions {
  /** When set, requests without `Authorization: Bearer <token>` get a 401. */
  readonly token?: string;
  /** How long a `slow` fault holds the answer. Default 3 s. */
  readonly slowMs?: number;
  /** Hold every grant this long before it takes effect (to open an in-flight window). Default 0. */
  readonly grantDelayMs?: number;
}

const BASE_PATH = '/provisioning/';

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export async function startTestEndpoint(options: TestEndpointOptions = {}): Promise<TestEndpoint> {
  const requests: LoggedRequest[] = [];
  const faults = { entitlements: [] as EndpointFault[], refunds: [] as EndpointFault[] };
  const entitlements = new Map<string, Entitlement>();
  const refunds = new Map<string, { refundId: string; amount: number; full: boolean }[]>();
  const grantAnswers = new Map<string, { status: number; body: unknown }>();
  const refundKeys = new Set<string>();
  const inFlight = new Set<string>();
  let created = 0;
  const slowMs = options.slowMs ?? 3_000;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  /** Applies a fault; returns true when the request has been dealt with. */
  async function applyFault(
    fault: EndpointFault | undefined,
    req: IncomingMessage,
    res: ServerResponse,
    act: () => { status: number; body: unknown },
    settled: () => void,
  ): Promise<boolean> {
    switch (fault) {
      case undefined:
        return false;
      case '500':
        send(res, 500, { error: { message: 'the provisioning service is having a bad day' } });
        return true;
      case '400':
        send(res, 400, { error: { message: 'sku course-101 is not sold here' } });
        return true;
      case '429':
        send(res, 429, { error: { message: 'slow down' } }, { 'retry-after': '7' });
        return true;
      case 'drop':
        req.socket.destroy();
        return true;
      case 'garbage':
        send(res, 200, { ok: true });
        return true;
      case 'slow': {
        const answer = act();
        // Committed: a retry now is a replay, not a request in flight; only the answer is late.
        settled();
        await later(slowMs);
        if (!res.destroyed) send(res, answer.status, answer.body);
        return true;
      }
    }
  }

  function grant(key: string, body: Record<string, unknown>): { status: number; body: unknown } {
    const stored = grantAnswers.get(key);
    // A replay answers with the entitlement as it now stands (revoked since, perhaps); nothing new.
    if (stored?.status === 201) return { status: 200, body: entitlements.get(key) };
    if (stored) return stored;
    const workflowId = String(body.workflowId);
    const orderId = String(body.orderId);
    let answer: { status: number; body: unknown };
    if (key !== workflowId) {
      answer = { status: 400, body: { error: { message: 'Idempotency-Key must be the workflow id' } } };
    } else if ([...entitlements.values()].some((e) => e.orderId === orderId)) {
      answer = { status: 422, body: { error: { message: `order ${orderId} is provisioned already` } } };
    } else {
      created += 1;
      const createdAt = new Date().toISOString();
      // The contract: a grant after a recorded full refund is born revoked.
      const refunded = (refunds.get(workflowId) ?? []).some((r) => r.full);
      const e: Entitlement = {
        entitlementId: `ent_${created}_${orderId}`,
        workflowId,
        orderId,
        paymentIntentId: String(body.paymentIntentId),
        sku: String(body.sku),
        quantity: Number(body.quantity),
        createdAt,
        ...(refunded ? { revokedAt: createdAt } : {}),
      };
      entitlements.set(workflowId, e);
      answer = { status: 201, body: e };
    }
    grantAnswers.set(key, answer);
    return answer;
  }

  function refund(key: string, body: Record<string, unknown>): { status: number; body: unknown } {
    const workflowId = String(body.workflowId);
    if (!refundKeys.has(key)) {
      refundKeys.add(key);
      const list = refunds.get(workflowId) ?? [];
      list.push({ refundId: String(body.refundId), amount: Number(body.amount), full: body.full === true });
      refunds.set(workflowId, list);
      const e = entitlements.get(workflowId);
      if (body.full === true && e && e.revokedAt === undefined) {
        entitlements.set(workflowId, { ...e, revokedAt: new Date().toISOString() });
      }
    }
    return { status: 200, body: { entitlement: entitlements.get(workflowId) ?? null } };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://endpoint');
    const text = await readBody(req);
    let body: unknown;
    try {
      body = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      send(res, 400, { error: { message: 'body is not JSON' } });
      return;
    }
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return Array.isArray(v) ? v.join(',') : v;
    };
    const key = header('idempotency-key');
    requests.push({
      method: req.method ?? '',
      path: url.pathname,
      idempotencyKey: key,
      authorization: header('authorization'),
      contentType: header('content-type'),
      body,
    });
    if (options.token !== undefined && header('authorization') !== `Bearer ${options.token}`) {
      send(res, 401, { error: { message: 'missing or wrong bearer token' } });
      return;
    }
    if (!url.pathname.startsWith(BASE_PATH)) {
      send(res, 404, { error: { message: 'not here' } });
      return;
    }
    const route = url.pathname.slice(BASE_PATH.length);
    const record = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;

    if (req.method === 'POST' && (route === 'entitlements' || route === 'refunds')) {
      if (key === undefined) {
        send(res, 400, { error: { message: 'Idempotency-Key is required' } });
        return;
      }
      if (inFlight.has(key)) {
        send(res, 409, { error: { message: 'a request with this Idempotency-Key is in flight' } });
        return;
      }
      const act = (): { status: number; body: unknown } =>
        route === 'entitlements' ? grant(key, record) : refund(key, record);
      inFlight.add(key);
      try {
        if (await applyFault(faults[route].shift(), req, res, act, () => inFlight.delete(key))) return;
        if (route === 'entitlements' && options.grantDelayMs) await later(options.grantDelayMs);
        const answer = act();
        send(res, answer.status, answer.body);
      } finally {
        inFlight.delete(key);
      }
      return;
    }
    if (req.method === 'GET' && route === 'entitlements') {
      send(res, 200, { data: [...entitlements.values()] });
      return;
    }
    if (req.method === 'GET' && route.startsWith('entitlements/')) {
      const e = entitlements.get(decodeURIComponent(route.slice('entitlements/'.length)));
      if (e) send(res, 200, e);
      else send(res, 404, { error: { message: 'no such entitlement' } });
      return;
    }
    send(res, 404, { error: { message: `no route ${req.method} ${url.pathname}` } });
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) send(res, 500, { error: { message: String(err) } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}${BASE_PATH}`,
    requests,
    faults,
    entitlements,
    refunds,
    granted: () => created,
    async close(): Promise<void> {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
