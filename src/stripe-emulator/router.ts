/**
 * A small method-and-path router. Patterns are literal segments and `:name` parameters
 * (`/v1/payment_intents/:id/confirm`); literal segments win over parameters, so
 * `/v1/payment_intents/search` is never taken for a PaymentIntent id.
 *
 * Two kinds of routes exist. `api` routes are Stripe's own endpoints: the server authenticates them,
 * decodes the form body or query string, applies idempotency and fault injection, and serializes what
 * the handler returns (or the `StripeApiError` it throws). `raw` routes (the `/_emulator/` control
 * API, the 3-D Secure page, the hosted checkout page) get the request as it came and answer as they
 * like, without an API key.
 */
import { type IncomingHttpHeaders } from 'node:http';
import { type EventRequest } from './events';

export type HttpMethod = 'GET' | 'POST' | 'DELETE';

export type PathParams = Readonly<Record<string, string>>;

/** A decoded form or query tree, as `qs` produces it. */
export type FormValue = string | FormValue[] | { [key: string]: FormValue };
export type FormParams = Record<string, FormValue>;

export interface ApiRequest {
  readonly method: HttpMethod;
  readonly path: string;
  readonly pathParams: PathParams;
  readonly params: FormParams;
  readonly headers: IncomingHttpHeaders;
  /** This request's id and idempotency key, for events it causes (contract I18). */
  readonly eventRequest: EventRequest;
  readonly requestId: string;
  readonly idempotencyKey: string | undefined;
  /** The `Stripe-Account` header, or '' for the platform account. */
  readonly account: string;
}

export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
}

export interface RawRequest {
  readonly method: HttpMethod;
  readonly path: string;
  readonly pathParams: PathParams;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface RawResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: string | Buffer;
}

export interface ApiRoute {
  readonly kind: 'api';
  readonly method: HttpMethod;
  readonly pattern: string;
  readonly handler: (request: ApiRequest) => ApiResponse | Promise<ApiResponse>;
}

export interface RawRoute {
  readonly kind: 'raw';
  readonly method: HttpMethod;
  readonly pattern: string;
  readonly handler: (request: RawRequest) => RawResponse | Promise<RawResponse>;
}

export type Route = ApiRoute | RawRoute;

export interface RouteMatch {
  readonly route: Route;
  readonly pathParams: PathParams;
}

interface CompiledRoute {
  readonly route: Route;
  readonly segments: readonly string[];
  /** Count of literal segments: more literals is a more specific route. */
  readonly literals: number;
}

export class Router {
  private readonly bySegmentCount = new Map<number, CompiledRoute[]>();

  constructor(routes: readonly Route[] = []) {
    for (const route of routes) this.add(route);
  }

  add(route: Route): void {
    if (!route.pattern.startsWith('/'))
      throw new Error(`route pattern must start with '/': ${route.pattern}`);
    const segments = route.pattern.split('/').slice(1);
    const compiled: CompiledRoute = {
      route,
      segments,
      literals: segments.filter((segment) => !segment.startsWith(':')).length,
    };
    const list = this.bySegmentCount.get(segments.length) ?? [];
    list.push(compiled);
    list.sort((a, b) => b.literals - a.literals);
    this.bySegmentCount.set(segments.length, list);
  }

  /** The route for this method and path; `undefined` when nothing matches both. */
  match(method: string, path: string): RouteMatch | undefined {
    const segments = path.split('/').slice(1);
    const candidates = this.bySegmentCount.get(segments.length);
    if (!candidates) return undefined;
    for (const candidate of candidates) {
      if (candidate.route.method !== method) continue;
      const params = matchSegments(candidate.segments, segments);
      if (params) return { route: candidate.route, pathParams: params };
    }
    return undefined;
  }
}

function matchSegments(pattern: readonly string[], actual: readonly string[]): PathParams | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const expected = pattern[i] ?? '';
    const segment = actual[i] ?? '';
    if (expected.startsWith(':')) {
      if (segment === '') return undefined;
      let decoded: string;
      try {
        decoded = decodeURIComponent(segment);
      } catch {
        return undefined;
      }
      params[expected.slice(1)] = decoded;
    } else if (expected !== segment) {
      return undefined;
    }
  }
  return params;
}
