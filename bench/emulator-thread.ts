/**
 * The local Stripe server on a worker thread of the benchmark's process: its own event loop, so the
 * benchmark's client loop and the Stripe server do not queue behind each other. Everything the
 * benchmark needs from it goes through its HTTP control API (`/_emulator/stats`, `/_emulator/ledger`,
 * `/_emulator/payment_intents/:id/authenticate`, `/_emulator/webhook_endpoints`), exactly as an
 * out-of-process emulator would be used.
 */
import { Worker } from 'node:worker_threads';
import type { WebhookDelivery } from '../src/stripe-emulator/webhooks';
import type { Ledger, RequestStats } from '../src/stripe-emulator';

export interface EmulatorThread {
  readonly url: URL;
  stats(): Promise<RequestStats>;
  /** The delivery records the emulator keeps (`GET /_emulator/webhook_deliveries`, newest 10 000). */
  webhookDeliveries(): Promise<WebhookDelivery[]>;
  ledger(): Promise<Ledger>;
  /** Completes 3-D Secure for a PaymentIntent in `requires_action`, as the customer would. */
  authenticate(paymentIntentId: string): Promise<void>;
  /** Registers a webhook endpoint for the given event types, signed with `secret`. */
  /** `retry`: the endpoint's delivery retries (`max_attempts`, `retry_base_delay_ms`, doubling). */
  addWebhookEndpoint(
    url: string,
    secret: string,
    events: readonly string[],
    retry?: { readonly maxAttempts: number; readonly baseDelayMs: number },
  ): Promise<void>;
  stop(): Promise<void>;
}

async function call<T>(url: URL, path: string, init?: { method: string; body: unknown }): Promise<T> {
  const res = await fetch(new URL(path, url), {
    method: init?.method ?? 'GET',
    ...(init ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`Stripe emulator ${path} answered ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

export async function startEmulatorThread(): Promise<EmulatorThread> {
  const emulatorModule = require.resolve('../src/stripe-emulator');
  const source = `
    require('tsx/cjs/api').register();
    const { parentPort } = require('node:worker_threads');
    const { startStripeEmulator } = require(${JSON.stringify(emulatorModule)});
    startStripeEmulator({ quiet: true }).then((emulator) => {
      parentPort.on('message', (message) => {
        if (message === 'stop') emulator.stop().then(() => parentPort.postMessage({ stopped: true }));
      });
      parentPort.postMessage({ url: emulator.url });
    }, (error) => parentPort.postMessage({ error: String(error) }));
  `;
  const worker = new Worker(source, { eval: true });
  const started = await new Promise<string>((resolve, reject) => {
    worker.once('message', (message: { url?: string; error?: string }) =>
      message.url === undefined
        ? reject(new Error(message.error ?? 'the Stripe emulator did not start'))
        : resolve(message.url),
    );
    worker.once('error', reject);
  });
  const url = new URL(started);
  return {
    url,
    stats: () => call<RequestStats>(url, '/_emulator/stats'),
    ledger: () => call<Ledger>(url, '/_emulator/ledger'),
    authenticate: async (paymentIntentId) => {
      await call<unknown>(
        url,
        `/_emulator/payment_intents/${encodeURIComponent(paymentIntentId)}/authenticate`,
        {
          method: 'POST',
          body: { outcome: 'succeed' },
        },
      );
    },
    webhookDeliveries: async () =>
      (await call<{ data: WebhookDelivery[] }>(url, '/_emulator/webhook_deliveries')).data,
    addWebhookEndpoint: async (endpointUrl, secret, events, retry) => {
      await call<unknown>(url, '/_emulator/webhook_endpoints', {
        method: 'POST',
        body: {
          url: endpointUrl,
          secret,
          enabled_events: events,
          description: 'checkout benchmark',
          ...(retry ? { max_attempts: retry.maxAttempts, retry_base_delay_ms: retry.baseDelayMs } : {}),
        },
      });
    },
    stop: async () => {
      const stopped = new Promise<void>((resolve) => worker.once('message', () => resolve()));
      worker.postMessage('stop');
      await stopped;
      await worker.terminate();
    },
  };
}

/** Difference between two stats snapshots: the requests made in between, by route. */
export function statsDelta(before: RequestStats, after: RequestStats): RequestStats {
  const byRoute: Record<string, number> = {};
  for (const [route, count] of Object.entries(after.by_route)) {
    const delta = count - (before.by_route[route] ?? 0);
    if (delta > 0) byRoute[route] = delta;
  }
  return { total: after.total - before.total, by_route: byRoute };
}
