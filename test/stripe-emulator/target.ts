/**
 * Where the Stripe conformance tests run. With `STRIPE_SECRET_KEY` holding a test-mode key
 * (`sk_test_…`) they run against real Stripe and skip only what real Stripe cannot do (fault
 * injection, the emulator clock, control endpoints); without it (CI) they run against an emulator
 * started in-process, with no skips. This is the one place the tests read that variable.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import Stripe from 'stripe';
import { type StripeEmulator, startStripeEmulator } from '../../src/stripe-emulator';

export const EMULATOR_KEY = 'sk_test_emulator_conformance';

export interface StripeTarget {
  readonly kind: 'emulator' | 'stripe';
  readonly secretKey: string;
  /** Present only when the target is the emulator. */
  readonly emulator: StripeEmulator | undefined;
  /** An SDK client for the target; `maxNetworkRetries` defaults to 0 so retries never hide behaviour. */
  client(config?: Stripe.StripeConfig): Stripe;
}

export function realStripeKey(): string | undefined {
  const key = process.env['STRIPE_SECRET_KEY'];
  return key !== undefined && key.startsWith('sk_test_') ? key : undefined;
}

export async function startTarget(): Promise<StripeTarget> {
  const realKey = realStripeKey();
  if (realKey !== undefined) {
    return {
      kind: 'stripe',
      secretKey: realKey,
      emulator: undefined,
      client: (config = {}) => new Stripe(realKey, { maxNetworkRetries: 0, ...config }),
    };
  }
  const emulator = await startStripeEmulator({ quiet: true });
  return {
    kind: 'emulator',
    secretKey: EMULATOR_KEY,
    emulator,
    client: (config = {}) => emulatorClient(emulator, config),
  };
}

export function emulatorClient(
  emulator: StripeEmulator,
  config: Stripe.StripeConfig = {},
  key = EMULATOR_KEY,
): Stripe {
  return new Stripe(key, {
    host: emulator.host,
    port: emulator.port,
    protocol: 'http',
    maxNetworkRetries: 0,
    ...config,
  });
}

/**
 * The emulator behind the target, or skip the test when the target is real Stripe (which has no
 * fault injection, clock or control API). Against the emulator this never skips.
 */
export function emulatorOnly(context: Mocha.Context, target: StripeTarget): StripeEmulator {
  if (!target.emulator) context.skip();
  return target.emulator;
}

/** A fresh idempotency key whose prefix says which test used it. */
export function freshKey(label: string): string {
  return `${label}-${randomUUID()}`;
}

/** A card PaymentIntent that confirms without redirects on both targets. */
export function cardPayment(
  paymentMethod: string,
  extra: Partial<Stripe.PaymentIntentCreateParams> = {},
): Stripe.PaymentIntentCreateParams {
  return {
    amount: 2000,
    currency: 'usd',
    allowed_payment_method_types: ['card'],
    payment_method: paymentMethod,
    confirm: true,
    ...extra,
  };
}

/** Runs `fn` and returns the error it throws; fails if it does not throw. */
export async function captureError(fn: () => Promise<unknown>): Promise<Stripe.errors.StripeError> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof Stripe.errors.StripeError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

export interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** A plain HTTP request to the emulator, for what the SDK would never send. */
export function rawRequest(
  emulator: StripeEmulator,
  options: {
    method: string;
    path: string;
    headers?: http.OutgoingHttpHeaders;
    body?: string | Buffer;
  },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: emulator.host,
        port: emulator.port,
        method: options.method,
        path: options.path,
        headers: {
          ...(options.body === undefined ? {} : { 'Content-Length': Buffer.byteLength(options.body) }),
          ...options.headers,
        },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** JSON control call to `/_emulator/…`. */
export async function control(
  emulator: StripeEmulator,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const response = await rawRequest(emulator, {
    method,
    path,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } }),
  });
  return { status: response.status, json: JSON.parse(response.body) as unknown };
}

/** Polls `read` until `accept` holds or the deadline passes (real Stripe's search and events lag). */
export async function eventually<T>(
  read: () => Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs = 90_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (accept(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
