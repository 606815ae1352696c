/**
 * `npm run stripe:emulator -- --port 12111 [--host 127.0.0.1] [--api-key sk_test_…]
 *  [--search-lag-seconds 0] [--async-settle-seconds 3] [--idempotency-ttl-seconds 86400] [--quiet]`
 *
 * Starts the local Stripe server, prints its base URL, and stops cleanly on SIGINT or SIGTERM.
 * Bad arguments or a port that is taken end the process with a clear message and exit code 1.
 */
import { parseArgs } from 'node:util';
import { type StripeEmulatorOptions, startStripeEmulator } from './index';

const USAGE =
  'usage: stripe:emulator [--host 127.0.0.1] [--port 12111] [--api-key sk_test_...] [--search-lag-seconds N] [--async-settle-seconds N] [--idempotency-ttl-seconds N] [--quiet]';

function numberArg(name: string, value: string | undefined, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (
    value.trim() === '' ||
    !Number.isFinite(parsed) ||
    parsed < 0 ||
    (integer && !Number.isInteger(parsed))
  ) {
    throw new Error(`--${name} must be a non-negative ${integer ? 'integer' : 'number'}, got '${value}'`);
  }
  return parsed;
}

export function parseCliArgs(argv: readonly string[]): StripeEmulatorOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'api-key': { type: 'string' },
      'search-lag-seconds': { type: 'string' },
      'async-settle-seconds': { type: 'string' },
      'idempotency-ttl-seconds': { type: 'string' },
      quiet: { type: 'boolean' },
    },
  });
  const port = numberArg('port', values.port, true);
  if (port !== undefined && port > 65_535) throw new Error(`--port must be at most 65535, got ${port}`);
  const options: StripeEmulatorOptions = {};
  if (values.host !== undefined) options.host = values.host;
  if (port !== undefined) options.port = port;
  if (values['api-key'] !== undefined) options.apiKey = values['api-key'];
  const lag = numberArg('search-lag-seconds', values['search-lag-seconds'], false);
  if (lag !== undefined) options.searchLagSeconds = lag;
  const settle = numberArg('async-settle-seconds', values['async-settle-seconds'], false);
  if (settle !== undefined) options.asyncSettleSeconds = settle;
  const ttl = numberArg('idempotency-ttl-seconds', values['idempotency-ttl-seconds'], false);
  if (ttl !== undefined) options.idempotencyTtlSeconds = ttl;
  if (values.quiet !== undefined) options.quiet = values.quiet;
  return options;
}

async function main(): Promise<void> {
  let options: StripeEmulatorOptions;
  try {
    options = parseCliArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`stripe:emulator: ${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    process.exitCode = 1;
    return;
  }
  const emulator = await startStripeEmulator(options);
  console.log(`Stripe emulator listening on ${emulator.url}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await emulator.stop();
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error('stripe:emulator failed:', error);
    process.exit(1);
  });
}
