/**
 * Provisioning through the user's own HTTP endpoint (`PROVISIONING_HTTP_URL`). The endpoint grants
 * what was bought; this client makes every call safe to repeat by sending an `Idempotency-Key`
 * derived from the workflow id, the same on every retry, so the endpoint can answer a repeat with
 * the entitlement it granted the first time. The contract the endpoint must meet is in
 * docs/provisioning.md; in short, relative to the configured base URL:
 *
 *   POST entitlements   {workflowId, orderId, paymentIntentId, sku, quantity}
 *                       Idempotency-Key: <workflow id>             -> 200/201 entitlement
 *   POST refunds        {workflowId, refundId, amount, full}
 *                       Idempotency-Key: <workflow id>/refund/<refund id>
 *                                                                  -> 200 {entitlement: … | null}
 *   GET  entitlements/<workflow id>                                -> 200 entitlement, 404 none
 *   GET  entitlements                                              -> 200 {data: [entitlement…]}
 *
 * Failures are classified here (./errors.ts): no answer (connection refused or dropped, the
 * timeout), 5xx, 409 and 429 are retried by Temporal with the same key; any other 4xx, or a
 * redirect, is a request the endpoint will never take and is not retried; a 2xx whose body is not
 * an entitlement for this checkout is retried (the grant may have happened; the key returns it).
 *
 * Requests go through Node's fetch (undici) with a timeout per call; redirects are not followed (a
 * POST must not turn into a GET, and the bearer token must not travel to another origin).
 */
import { z } from 'zod';
import type { Entitlement, ProvisionRequest } from '../workflows/definitions';
import { ProvisioningRejectedError, ProvisioningResponseError, ProvisioningUnavailableError } from './errors';
import type { Provisioner, RefundRecordRequest } from './index';

export interface HttpProvisionerOptions {
  /** Base URL of the user's endpoint; `entitlements` and `refunds` are resolved against it. */
  readonly url: string;
  /** Sent as `Authorization: Bearer <token>` when set. A secret: never logged or echoed. */
  readonly token?: string | undefined;
  /** Per request, answer included. Default 10 s, below the activity's 30 s start-to-close. */
  readonly timeoutMs?: number;
}

export const DEFAULT_HTTP_TIMEOUT_MS = 10_000;
/** The most of an error body quoted in an error message. */
const QUOTED_BODY_MAX = 300;

/** The key for a grant: the workflow id, so every attempt of one checkout sends the same one. */
export function provisionIdempotencyKey(workflowId: string): string {
  return workflowId;
}

/** The key for recording one refund of a checkout. */
export function refundIdempotencyKey(workflowId: string, refundId: string): string {
  return `${workflowId}/refund/${refundId}`;
}

const isoTimestamp = z.iso.datetime({ offset: true });

const entitlementSchema = z.object({
  entitlementId: z.string().min(1).max(500),
  workflowId: z.string().min(1),
  orderId: z.string().min(1),
  paymentIntentId: z.string().min(1),
  sku: z.string().min(1),
  quantity: z.number().int().positive(),
  createdAt: isoTimestamp,
  revokedAt: isoTimestamp.nullable().optional(),
});

const refundAnswerSchema = z.object({ entitlement: entitlementSchema.nullable() });
const listAnswerSchema = z.object({ data: z.array(entitlementSchema) });

function toEntitlement(e: z.infer<typeof entitlementSchema>): Entitlement {
  const { revokedAt, ...rest } = e;
  return revokedAt === null || revokedAt === undefined ? rest : { ...rest, revokedAt };
}

function problemsOf(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(body)'}: ${i.message}`)
    .join('; ');
}

/** Milliseconds from a Retry-After header (seconds or an HTTP date); undefined if absent or bad. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1_000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
}

/** The innermost code or message of a fetch failure ("ECONNRESET", "other side closed"). */
function networkReason(err: unknown): string {
  let e: unknown = err;
  let reason = err instanceof Error ? err.message : String(err);
  while (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    reason = typeof code === 'string' ? code : e.message;
    e = e.cause;
  }
  return reason;
}

export class HttpProvisioner implements Provisioner {
  private readonly base: URL;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: HttpProvisionerOptions) {
    const base = new URL(options.url);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new Error(`provisioning endpoint must be http or https, not ${base.protocol}`);
    }
    if (base.username || base.password) {
      throw new Error('provisioning endpoint URL must not carry credentials; use the bearer token');
    }
    if (!base.pathname.endsWith('/')) base.pathname = `${base.pathname}/`;
    this.base = base;
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
  }

  async provision(request: ProvisionRequest): Promise<Entitlement> {
    const body = await this.call('POST', 'entitlements', {
      idempotencyKey: provisionIdempotencyKey(request.workflowId),
      payload: {
        workflowId: request.workflowId,
        orderId: request.orderId,
        paymentIntentId: request.paymentIntentId,
        sku: request.item.sku,
        quantity: request.item.quantity,
      },
    });
    const parsed = entitlementSchema.safeParse(body);
    if (!parsed.success) throw this.badAnswer('POST entitlements', problemsOf(parsed.error));
    const e = parsed.data;
    if (e.workflowId !== request.workflowId || e.orderId !== request.orderId) {
      throw this.badAnswer(
        'POST entitlements',
        `answered with the entitlement of workflow ${e.workflowId} / order ${e.orderId}, not ${request.workflowId} / ${request.orderId}`,
      );
    }
    return toEntitlement(e);
  }

  async recordRefund(refund: RefundRecordRequest): Promise<Entitlement | undefined> {
    const body = await this.call('POST', 'refunds', {
      idempotencyKey: refundIdempotencyKey(refund.workflowId, refund.refundId),
      payload: {
        workflowId: refund.workflowId,
        refundId: refund.refundId,
        amount: refund.amount,
        full: refund.full,
      },
    });
    const parsed = refundAnswerSchema.safeParse(body);
    if (!parsed.success) throw this.badAnswer('POST refunds', problemsOf(parsed.error));
    const e = parsed.data.entitlement;
    if (e !== null && e.workflowId !== refund.workflowId) {
      throw this.badAnswer('POST refunds', `answered with the entitlement of workflow ${e.workflowId}`);
    }
    return e === null ? undefined : toEntitlement(e);
  }

  async get(workflowId: string): Promise<Entitlement | undefined> {
    const body = await this.call('GET', `entitlements/${encodeURIComponent(workflowId)}`, {
      notFoundIsNone: true,
    });
    if (body === undefined) return undefined;
    const parsed = entitlementSchema.safeParse(body);
    if (!parsed.success) throw this.badAnswer('GET entitlements/…', problemsOf(parsed.error));
    return toEntitlement(parsed.data);
  }

  async list(): Promise<readonly Entitlement[]> {
    const parsed = listAnswerSchema.safeParse(await this.call('GET', 'entitlements'));
    if (!parsed.success) throw this.badAnswer('GET entitlements', problemsOf(parsed.error));
    return parsed.data.data.map(toEntitlement);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The endpoint by origin and path, for messages (no query string, no credentials). */
  private where(relative: string): string {
    const u = new URL(relative, this.base);
    return `${u.origin}${u.pathname}`;
  }

  private badAnswer(what: string, problem: string): ProvisioningResponseError {
    return new ProvisioningResponseError(
      `provisioning endpoint ${this.base.origin}${this.base.pathname}: ${what} answered 2xx with an invalid body: ${problem}`,
    );
  }

  /**
   * One request. Resolves to the parsed JSON body of a 2xx, or undefined for a 404 when
   * `notFoundIsNone` (reading one entitlement); throws a classified `ProvisioningError` otherwise.
   */
  private async call(
    method: 'GET' | 'POST',
    relative: string,
    options: { idempotencyKey?: string; payload?: unknown; notFoundIsNone?: boolean } = {},
  ): Promise<unknown> {
    const { idempotencyKey, payload } = options;
    const url = new URL(relative, this.base);
    const where = `${method} ${this.where(relative)}`;
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': 'exactly-once-checkout provisioning',
    };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;

    let status: number;
    let text: string;
    let retryAfter: string | null;
    try {
      const res = await fetch(url, {
        method,
        headers,
        body: payload === undefined ? undefined : JSON.stringify(payload),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      // Reading the body is inside the same timeout: a response that stalls half-way times out.
      text = await res.text();
    } catch (err) {
      if (isTimeout(err)) {
        throw new ProvisioningUnavailableError(
          `provisioning endpoint ${where}: no answer within ${this.timeoutMs} ms`,
          undefined,
          undefined,
          { cause: err },
        );
      }
      throw new ProvisioningUnavailableError(
        `provisioning endpoint ${where}: request failed (${networkReason(err)})`,
        undefined,
        undefined,
        { cause: err },
      );
    }

    if (status >= 200 && status < 300) {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new ProvisioningResponseError(
          `provisioning endpoint ${where}: answered ${status} with a body that is not JSON`,
        );
      }
    }
    if (status === 404 && options.notFoundIsNone === true) return undefined;

    const quoted = text.length > QUOTED_BODY_MAX ? `${text.slice(0, QUOTED_BODY_MAX)}…` : text;
    const detail = `provisioning endpoint ${where}: answered ${status}${quoted ? `: ${quoted}` : ''}`;
    if (status >= 500 || status === 409 || status === 429 || status === 408) {
      throw new ProvisioningUnavailableError(detail, status, parseRetryAfter(retryAfter));
    }
    if (status >= 300 && status < 400) {
      throw new ProvisioningRejectedError(
        `${detail} (a redirect; set PROVISIONING_HTTP_URL to the final address)`,
        status,
      );
    }
    throw new ProvisioningRejectedError(detail, status);
  }
}
