/**
 * `npm run demo`: starts the whole stack on free ports in a throwaway data folder (so it never
 * clashes with a running `npm start`), always on the embedded Temporal and the local Stripe
 * emulator whatever the environment says, runs a handful of checkouts and prints what happened:
 *
 *   paid              a good card: completed, one successful charge, provisioned;
 *   declined          a declined card and a short retry window: ends declined, nothing charged;
 *   declined+retried  a decline, then `retryPayment` with a new card: completed, one charge;
 *   double submit     the same order POSTed twice at once to the intake: one checkout, one charge.
 *
 * Successful charges come from the emulator's ledger (what Stripe would show), not from the
 * workflow's own account of itself. Exits 0 when every row is what it should be, 1 otherwise.
 *
 * Ctrl-C (or SIGTERM) stops it wherever it is, starting or running checkouts: it closes its stack,
 * removes its data folder and exits 130 (143 for SIGTERM) without a table. The checkouts it
 * abandons are throwaway, like the stack they ran on.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Client } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { getCheckoutStatus, retryPayment, startCheckout, waitForCheckoutResult } from '../client';
import { loadConfig } from '../config';
import { checkoutWorkflowId, type CheckoutInput, type CheckoutStatus } from '../workflows/definitions';
import { describeError } from './main';
import { stopSignals } from './signals';
import { StackStartStoppedError, startStack, type Stack } from './stack';

export interface DemoRow {
  readonly scenario: string;
  readonly orderId: string;
  readonly state: string;
  readonly paymentIntentId: string;
  readonly successfulCharges: number;
  readonly provisioned: boolean;
  readonly uiUrl: string;
  /** Empty when the row is what it should be; else what is wrong. */
  readonly problems: readonly string[];
}

const SCENARIO_TIMEOUT_MS = 60_000;
/** Last resort if closing hangs too; scenarios have their own, shorter, timeouts. */
const DEMO_TIMEOUT_MS = 150_000;
const POLL_MS = 200;

async function waitForState(
  client: Client,
  orderId: string,
  wanted: CheckoutStatus['state'],
): Promise<CheckoutStatus> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const status = await getCheckoutStatus(client, orderId);
      if (status.state === wanted) return status;
    } catch (err) {
      // A query can race the first workflow task; keep polling until the deadline.
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`order ${orderId} never reached state ${wanted}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function successfulChargesFor(stack: Stack, orderId: string): number {
  const ledger = stack.stripe.emulator?.control.ledger();
  if (!ledger) return 0;
  return ledger.payment_intents
    .filter((pi) => pi.metadata.order_id === orderId)
    .reduce((sum, pi) => sum + pi.successful_charges, 0);
}

interface Expected {
  readonly state: CheckoutStatus['state'];
  readonly charges: number;
  readonly provisioned: boolean;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs one scenario and compares what Temporal and the emulator's ledger show with what should be.
 * A scenario that throws or hangs still yields a row (saying so), so one broken case never hides
 * the others.
 */
async function scenario(
  stack: Stack,
  name: string,
  orderId: string,
  expected: Expected,
  run: () => Promise<readonly string[]>,
): Promise<DemoRow> {
  const problems: string[] = [];
  try {
    problems.push(...(await withTimeout(run(), SCENARIO_TIMEOUT_MS, name)));
  } catch (err) {
    problems.push(describeError(err).split('\n')[0] ?? 'failed');
  }
  let status: CheckoutStatus | undefined;
  try {
    status = await withTimeout(getCheckoutStatus(stack.temporal.client, orderId), 10_000, 'status query');
  } catch (err) {
    problems.push(`no status: ${describeError(err).split('\n')[0] ?? ''}`);
  }
  const charges = successfulChargesFor(stack, orderId);
  const provisioned = status?.entitlement !== undefined;
  if (status !== undefined && status.state !== expected.state) {
    problems.push(`state ${status.state}, expected ${expected.state}`);
  }
  if (charges !== expected.charges) problems.push(`${charges} charges, expected ${expected.charges}`);
  if (provisioned !== expected.provisioned) {
    problems.push(expected.provisioned ? 'not provisioned' : 'provisioned without payment');
  }
  return {
    scenario: name,
    orderId,
    state: status?.state ?? 'unknown',
    paymentIntentId: status?.paymentIntentId ?? '-',
    successfulCharges: charges,
    provisioned,
    uiUrl: stack.workflowUrl(checkoutWorkflowId(orderId)) ?? '-',
    problems,
  };
}

/** Runs every scenario concurrently against a running stack; each yields one row. */
export async function runDemoScenarios(stack: Stack): Promise<DemoRow[]> {
  const client = stack.temporal.client;
  const customerId = stack.stripe.exampleCustomerId;
  const httpUrl = stack.httpUrl;
  if (customerId === undefined || httpUrl === undefined) {
    throw new Error('The demo needs the Stripe emulator and the HTTP intake');
  }
  const taskQueue = stack.config.temporal.taskQueue;
  const run = Date.now().toString(36);
  const input = (orderId: string, paymentMethodId: string, options = {}): CheckoutInput => ({
    orderId: `demo-${run}-${orderId}`,
    amount: 4200,
    currency: 'usd',
    customerId,
    paymentMethodId,
    provision: { sku: 'pro-plan', quantity: 1 },
    options,
  });
  const paidOutcome: Expected = { state: 'completed', charges: 1, provisioned: true };

  const paid = input('paid', 'pm_card_visa');
  const declined = input('declined', 'pm_card_chargeDeclined', { paymentRetryWindowMs: 1_000 });
  const retried = input('retried', 'pm_card_chargeDeclinedInsufficientFunds');
  const twice = input('twice', 'pm_card_visa');

  return Promise.all([
    scenario(stack, 'paid', paid.orderId, paidOutcome, async () => {
      await startCheckout(client, paid, { taskQueue });
      await waitForCheckoutResult(client, paid.orderId);
      return [];
    }),
    scenario(
      stack,
      'declined',
      declined.orderId,
      { state: 'declined', charges: 0, provisioned: false },
      async () => {
        await startCheckout(client, declined, { taskQueue });
        await waitForCheckoutResult(client, declined.orderId);
        return [];
      },
    ),
    scenario(stack, 'declined, then new card', retried.orderId, paidOutcome, async () => {
      await startCheckout(client, retried, { taskQueue });
      await waitForState(client, retried.orderId, 'declined');
      await retryPayment(client, retried.orderId, {
        paymentMethodId: 'pm_card_mastercard',
        actor: 'demo',
        reason: 'customer entered a new card',
      });
      await waitForCheckoutResult(client, retried.orderId);
      return [];
    }),
    scenario(stack, 'same order POSTed twice', twice.orderId, paidOutcome, async () => {
      const post = (): Promise<Response> =>
        fetch(`${httpUrl}/v1/checkouts`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(twice),
        });
      const answers = await Promise.all([post(), post()]);
      const bodies = await Promise.all(answers.map((a) => a.text()));
      const problems: string[] = [];
      const statuses = answers.map((a) => a.status).sort();
      if (statuses[0] !== 200 || statuses[1] !== 201) {
        problems.push(`intake answered ${statuses.join(' and ')}, expected one 201 and one 200`);
      }
      if (bodies[0] !== bodies[1]) problems.push('the two answers differ');
      await waitForCheckoutResult(client, twice.orderId);
      return problems;
    }),
  ]);
}

export function formatTable(rows: readonly DemoRow[]): string {
  const header = [
    'scenario',
    'order',
    'state',
    'PaymentIntent',
    'charges',
    'provisioned',
    'check',
    'Temporal UI',
  ];
  const cells = rows.map((r) => [
    r.scenario,
    r.orderId,
    r.state,
    r.paymentIntentId,
    String(r.successfulCharges),
    r.provisioned ? 'yes' : 'no',
    r.problems.length === 0 ? 'ok' : `WRONG: ${r.problems.join('; ')}`,
    r.uiUrl,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** The exit code for a demo a signal stopped: 128 plus the signal's number, as a shell reports it. */
function stoppedExitCode(signal: NodeJS.Signals): number {
  return signal === 'SIGINT' ? 130 : 143;
}

export async function main(): Promise<number> {
  // The worker's INFO lines would bury the table; warnings and errors still show.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const stop = stopSignals();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'checkout-demo-'));
  let stack: Stack | undefined;
  const timer = setTimeout(() => {
    console.error(`The demo did not finish within ${DEMO_TIMEOUT_MS / 1000} s`);
    process.exit(1);
  }, DEMO_TIMEOUT_MS);
  try {
    console.log(`Starting the stack in ${dataDir} (free ports, embedded Temporal, Stripe emulator)...`);
    stack = await startStack(loadConfig({ DATA_DIR: dataDir }), { ports: 'free', signal: stop.signal });
    console.log(`Temporal UI: ${stack.temporal.uiUrl ?? '-'}   Stripe emulator: ${stack.stripe.endpoint}`);
    console.log('Running checkouts...\n');
    const scenarios = runDemoScenarios(stack);
    const outcome = await Promise.race([scenarios, stop.stopped]);
    if (typeof outcome === 'string') {
      console.log(`\n${outcome}: stopped before the checkouts finished; closing the demo's stack.`);
      return stoppedExitCode(outcome);
    }
    const rows = outcome;
    console.log(formatTable(rows));
    const wrong = rows.filter((r) => r.problems.length > 0).length;
    console.log(
      wrong === 0
        ? '\nEvery checkout ended as it should, and no order was charged more than once.'
        : `\n${wrong} row(s) are not what they should be.`,
    );
    return wrong === 0 ? 0 : 1;
  } catch (err) {
    if (!(err instanceof StackStartStoppedError)) throw err;
    const signal = await stop.stopped;
    console.log(`\n${signal}: stopped while the demo's stack was starting.`);
    return stoppedExitCode(signal);
  } finally {
    clearTimeout(timer);
    await stack?.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`npm run demo failed: ${describeError(err)}`);
      process.exit(1);
    },
  );
}
