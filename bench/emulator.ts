/**
 * `npm run bench:emulator -- [--url http://127.0.0.1:12111] [--clients 50] [--duration 10]
 *  [--count N] [--mode both|sdk|raw] [--warmup 500] [--same-thread]`
 *
 * Load test of the local Stripe server: `--clients` concurrent clients each loop on PaymentIntent
 * create with `confirm: true` (`pm_card_visa`) and a unique idempotency key per request, for
 * `--duration` seconds or `--count` requests in total, then print requests per second and latency
 * percentiles. Two client kinds, so the SDK's own cost is visible:
 *
 *   sdk  the real `stripe` SDK (maxNetworkRetries 0: a failure is counted, not hidden by a retry);
 *   raw  node:http with a keep-alive agent and the same form body, headers and idempotency keys.
 *
 * Without `--url` the emulator starts in this process, on a worker thread so that server and
 * clients each get one of the machine's cores (`--same-thread` shares the main thread instead).
 * Traffic goes to loopback only, and every loop stops by itself at the deadline or count.
 *
 * Exit code 1 if any request failed or got a status other than 200.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import qs from 'qs';
import Stripe from 'stripe';
import { startEmulatorThread } from './emulator-thread';

const API_KEY = 'sk_test_bench';
const CREATE_PARAMS = {
  amount: 2000,
  currency: 'usd',
  confirm: true,
  payment_method: 'pm_card_visa',
  automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
  metadata: { source: 'bench' },
} as const;

const MODES = ['sdk', 'raw'] as const;
type Mode = (typeof MODES)[number];

interface BenchOptions {
  readonly url: string | undefined;
  readonly clients: number;
  readonly durationSeconds: number;
  readonly count: number | undefined;
  readonly modes: readonly Mode[];
  readonly warmup: number;
  readonly sameThread: boolean;
}

interface Target {
  readonly url: URL;
  stop(): Promise<void>;
}

interface RunResult {
  readonly mode: Mode;
  readonly ok: number;
  readonly failed: number;
  readonly firstFailure: string | undefined;
  readonly elapsedMs: number;
  readonly latenciesMs: Float64Array;
}

const USAGE =
  'usage: bench:emulator [--url http://127.0.0.1:12111] [--clients 50] [--duration 10] [--count N] [--mode both|sdk|raw] [--warmup 500] [--same-thread]';

function positiveInteger(
  name: string,
  value: string | undefined,
  fallback: number | undefined,
): number | undefined {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0)
    throw new Error(`--${name} must be a non-negative integer, got '${value}'`);
  return parsed;
}

function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      url: { type: 'string' },
      clients: { type: 'string' },
      duration: { type: 'string' },
      count: { type: 'string' },
      mode: { type: 'string' },
      warmup: { type: 'string' },
      'same-thread': { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const mode = values.mode ?? 'both';
  if (mode !== 'both' && mode !== 'sdk' && mode !== 'raw')
    throw new Error(`--mode must be both, sdk or raw, got '${mode}'`);
  const clients = positiveInteger('clients', values.clients, 50) ?? 50;
  if (clients < 1) throw new Error('--clients must be at least 1');
  return {
    url: values.url,
    clients,
    durationSeconds: positiveInteger('duration', values.duration, 10) ?? 10,
    count: positiveInteger('count', values.count, undefined),
    modes: mode === 'both' ? MODES : [mode],
    warmup: positiveInteger('warmup', values.warmup, 500) ?? 500,
    sameThread: values['same-thread'] ?? false,
  };
}

async function startTarget(options: BenchOptions): Promise<Target> {
  if (options.url !== undefined) return { url: new URL(options.url), stop: () => Promise.resolve() };
  if (!options.sameThread) {
    // On a worker thread: the emulator gets its own event loop and core, the clients the other.
    const thread = await startEmulatorThread();
    return { url: thread.url, stop: () => thread.stop() };
  }
  const { startStripeEmulator } = await import('../src/stripe-emulator');
  const emulator = await startStripeEmulator({ quiet: true });
  return { url: new URL(emulator.url), stop: () => emulator.stop() };
}

type Send = (idempotencyKey: string) => Promise<void>;

function sdkSender(target: Target, clients: number): { send: Send; close: () => void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const stripe = new Stripe(API_KEY, {
    host: target.url.hostname,
    port: Number(target.url.port),
    protocol: 'http',
    maxNetworkRetries: 0,
    httpAgent: agent,
  });
  return {
    send: async (idempotencyKey) => {
      const pi = await stripe.paymentIntents.create(CREATE_PARAMS, { idempotencyKey });
      if (pi.status !== 'succeeded') throw new Error(`PaymentIntent ${pi.id} is ${pi.status}`);
    },
    close: () => agent.destroy(),
  };
}

function rawSender(target: Target, clients: number): { send: Send; close: () => void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const body = Buffer.from(qs.stringify(CREATE_PARAMS, { arrayFormat: 'indices' }));
  const send: Send = (idempotencyKey) =>
    new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: target.url.hostname,
          port: target.url.port,
          method: 'POST',
          path: '/v1/payment_intents',
          agent,
          headers: {
            Authorization: `Bearer ${API_KEY}`,
            'Content-Type': 'application/x-www-form-urlencoded',
            'Content-Length': body.length,
            'Idempotency-Key': idempotencyKey,
            'Stripe-Version': '2026-10-28.endive',
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            if (response.statusCode === 200) resolve();
            else
              reject(
                new Error(
                  `HTTP ${response.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`,
                ),
              );
          });
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  return { send, close: () => agent.destroy() };
}

/** Runs `clients` loops until the deadline or the shared count is reached. */
async function run(
  mode: Mode,
  send: Send,
  options: { clients: number; durationSeconds: number; count: number | undefined; keyPrefix: string },
): Promise<RunResult> {
  const latencies: number[] = [];
  let issued = 0;
  let failed = 0;
  let firstFailure: string | undefined;
  const started = performance.now();
  const deadline = started + options.durationSeconds * 1000;
  const more = (): boolean =>
    options.count !== undefined ? issued < options.count : performance.now() < deadline;
  const client = async (): Promise<void> => {
    while (more()) {
      const key = `${options.keyPrefix}-${issued++}`;
      const t0 = performance.now();
      try {
        await send(key);
        latencies.push(performance.now() - t0);
      } catch (error) {
        failed++;
        firstFailure ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: options.clients }, client));
  return {
    mode,
    ok: latencies.length,
    failed,
    firstFailure,
    elapsedMs: performance.now() - started,
    latenciesMs: Float64Array.from(latencies).sort(),
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function report(result: RunResult, clients: number): string {
  const rps = (result.ok / result.elapsedMs) * 1000;
  const ms = (value: number): string => `${value.toFixed(2)} ms`;
  return [
    `${result.mode.padEnd(4)} ${clients} clients: ${result.ok} ok, ${result.failed} failed in ${(result.elapsedMs / 1000).toFixed(2)} s`,
    `     ${rps.toFixed(0)} create+confirm/s   p50 ${ms(percentile(result.latenciesMs, 50))}   p95 ${ms(
      percentile(result.latenciesMs, 95),
    )}   p99 ${ms(percentile(result.latenciesMs, 99))}   max ${ms(percentile(result.latenciesMs, 100))}`,
    ...(result.firstFailure === undefined ? [] : [`     first failure: ${result.firstFailure}`]),
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const target = await startTarget(options);
  const where =
    options.url !== undefined
      ? options.url
      : `in process (${options.sameThread ? 'main thread' : 'worker thread'})`;
  console.log(`Stripe emulator at ${target.url.origin}, ${where}; node ${process.version}`);
  const runId = Date.now().toString(36);
  let failures = 0;
  try {
    for (const mode of options.modes) {
      const sender = mode === 'sdk' ? sdkSender(target, options.clients) : rawSender(target, options.clients);
      try {
        if (options.warmup > 0) {
          await run(mode, sender.send, {
            clients: options.clients,
            durationSeconds: Number.POSITIVE_INFINITY,
            count: options.warmup,
            keyPrefix: `bench-${runId}-${mode}-warmup`,
          });
        }
        const result = await run(mode, sender.send, {
          clients: options.clients,
          durationSeconds: options.durationSeconds,
          count: options.count,
          keyPrefix: `bench-${runId}-${mode}`,
        });
        failures += result.failed;
        console.log(report(result, options.clients));
      } finally {
        sender.close();
      }
    }
  } finally {
    await target.stop();
  }
  if (failures > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  console.error(USAGE);
  process.exit(1);
});
