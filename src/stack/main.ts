/**
 * `npm start`: the whole product on its embedded defaults (see ./stack.ts), until SIGINT or SIGTERM.
 *
 * Prints where everything is and how to start a checkout, then waits. A signal closes the stack in
 * reverse start order and exits 0; a second signal while closing exits 130 at once. A signal while
 * the stack is still starting stops the start the same way (what started is closed, exit 0), rather
 * than letting it fail on the dev server that the same Ctrl-C stopped. A configuration
 * error (every problem listed), a port clash or any startup failure prints one clear message and
 * exits 1; so does a part that dies on its own while running.
 */
import { ConfigError, loadConfig } from '../config';
import { EXAMPLE_CHECKOUT_REQUEST } from '../http/openapi';
import { startObservability } from '../observability';
import { stopSignals } from './signals';
import { StackStartStoppedError, startStack, type Stack } from './stack';

/** The cause chain, one line per level, so "port in use" is not hidden under "startup failed". */
export function describeError(err: unknown): string {
  if (err instanceof ConfigError) return err.message;
  const lines: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && depth < 5; depth += 1) {
    const message = current instanceof Error ? current.message : JSON.stringify(current);
    lines.push(depth === 0 ? message : `  caused by: ${message}`);
    current = current instanceof Error ? current.cause : undefined;
  }
  return lines.join('\n');
}

/** The lines `npm start` prints once everything is up. */
export function startupBanner(stack: Stack): string {
  const stripe =
    stack.stripe.mode === 'emulator'
      ? `local emulator at ${stack.stripe.endpoint}`
      : 'real Stripe (test mode)';
  const example = {
    ...EXAMPLE_CHECKOUT_REQUEST,
    customerId: stack.stripe.exampleCustomerId ?? EXAMPLE_CHECKOUT_REQUEST.customerId,
  };
  const customerNote =
    stack.stripe.exampleCustomerId === undefined
      ? 'use a customer that exists in your Stripe test account'
      : `${example.customerId} was created in the emulator for you`;
  const lines = [
    'Checkout stack is up.',
    `  Temporal UI:    ${stack.temporal.uiUrl ?? `(none; Temporal at ${stack.temporal.address})`}`,
    `  Temporal:       ${stack.temporal.address}, namespace ${stack.temporal.namespace}`,
    `  Stripe:         ${stripe}`,
    `  HTTP intake:    ${stack.httpUrl ?? '(off)'}  (OpenAPI at ${stack.httpUrl ?? ''}/openapi.json)`,
    '',
    `Start a checkout (${customerNote}):`,
    `  curl -sS -X POST ${stack.httpUrl ?? 'http://127.0.0.1:3000'}/v1/checkouts \\`,
    `    -H 'content-type: application/json' \\`,
    `    -d '${JSON.stringify(example)}'`,
    `  npm run checkout -- start --order-id ${example.orderId} --amount ${example.amount} \\`,
    `    --currency ${example.currency} --customer ${example.customerId} --payment-method ${example.paymentMethodId} \\`,
    `    --sku ${example.provision.sku} --quantity ${example.provision.quantity}`,
    `  npm run checkout -- status ${example.orderId}`,
    '',
    'Press Ctrl-C to stop.',
  ];
  return lines.join('\n');
}

export async function main(): Promise<void> {
  const config = loadConfig();
  // JSON logs (the worker's included), the metrics endpoint and tracing; before any connection.
  const observability = startObservability(config, { name: 'stack' });
  // Listening before anything starts: a Ctrl-C during the start is a stop too.
  const stop = stopSignals();
  let stack: Stack;
  try {
    stack = await startStack(config, {
      log: (line) => console.log(line),
      observability,
      signal: stop.signal,
    });
  } catch (err) {
    // Flushes the logs; never hides why the start ended.
    await observability.shutdown().catch(() => undefined);
    if (!(err instanceof StackStartStoppedError)) throw err;
    console.log(`\n${await stop.stopped}: stopped while starting; what had started is closed.`);
    console.log('Stopped.');
    return;
  }
  try {
    console.log(startupBanner(stack));
    const signal = await Promise.race([stop.stopped, stack.failure]);
    console.log(`\n${signal}: shutting down (the worker finishes what it is doing)...`);
  } finally {
    await stack.close();
    await observability.shutdown();
  }
  console.log('Stopped.');
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`npm start failed: ${describeError(err)}`);
      process.exit(1);
    },
  );
}
