import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { EXIT, parseCommand, runCli, UsageError, type CliIo } from '../../src/cli/main';
import { loadConfig, type AppConfig } from '../../src/config';
import { getRefundsStatus } from '../../src/client';
import { MONEY_TAKEN_STATES, type CheckoutStatus, type RefundResult } from '../../src/workflows/definitions';
import {
  checkoutExists,
  orderInput,
  startIntakeFixture,
  successfulCharges,
  waitForStatus,
  type IntakeFixture,
} from '../http/fixture';

interface Captured {
  readonly io: CliIo;
  readonly out: string[];
  readonly err: string[];
}

function capture(): Captured {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t) => out.push(t), err: (t) => err.push(t) }, out, err };
}

describe('operator CLI', function () {
  this.timeout(90_000);
  let f: IntakeFixture;
  let config: AppConfig;

  before(async function () {
    this.timeout(180_000);
    f = await startIntakeFixture('operator cli');
    config = loadConfig({ TEMPORAL_TASK_QUEUE: f.taskQueue });
  });
  after(async () => {
    await f?.close();
  });

  const cli = async (argv: string[]): Promise<Captured & { code: number }> => {
    const c = capture();
    const code = await runCli(argv, { io: c.io, client: f.client, config: () => config });
    return { ...c, code };
  };
  const startArgs = (orderId: string, paymentMethod: string, customerId: string): string[] => [
    'start',
    '--order-id',
    orderId,
    '--amount',
    '4200',
    '--currency',
    'usd',
    '--customer',
    customerId,
    '--payment-method',
    paymentMethod,
    '--sku',
    'pro-plan',
  ];

  describe('bad input', () => {
    const cases: [string, string[], RegExp[]][] = [
      ['an unknown command', ['refund-everything'], [/unknown command "refund-everything"/]],
      ['an unknown flag', ['status', 'o-1', '--colour', 'red'], [/--colour/]],
      [
        'a flag of another command',
        ['status', 'o-1', '--amount', '5'],
        [/--amount: not an option of "status"/],
      ],
      ['a missing order id', ['cancel', '--actor', 'me', '--reason', 'why'], [/ORDER_ID: missing/]],
      [
        'a non-numeric amount and a bad currency together',
        [
          'start',
          '--order-id',
          'o-2',
          '--amount',
          '12x',
          '--currency',
          'USD',
          '--customer',
          'cus_A1',
          '--payment-method',
          'pm_card_visa',
          '--sku',
          'pro',
        ],
        [/--amount: must be a whole number/, /--currency:/],
      ],
      [
        'every missing start flag',
        ['start'],
        [/--order-id/, /--amount/, /--currency/, /--customer/, /--payment-method/, /--sku/],
      ],
      [
        'a missing actor and reason',
        ['retry-payment', 'o-3', '--payment-method', 'pm_card_visa'],
        [/--actor/, /--reason/],
      ],
      [
        'a bad payment method',
        ['retry-payment', 'o-3', '--payment-method', 'card_1', '--actor', 'a', '--reason', 'r'],
        [/--payment-method/],
      ],
      [
        'a bad resolve outcome',
        ['resolve', 'o-4', '--outcome', 'maybe', '--actor', 'a', '--reason', 'r'],
        [/--outcome/],
      ],
      [
        'a bad list state and limit',
        ['list', '--state', 'happy', '--limit', '0'],
        [/--state: must be one of/, /--limit/],
      ],
      ['a refund without actor and reason', ['refund', 'o-6'], [/--actor/, /--reason/]],
      [
        'a non-numeric refund amount',
        ['refund', 'o-6', '--amount', '10.5', '--actor', 'a', '--reason', 'r'],
        [/--amount: must be a whole number/],
      ],
      [
        'a zero refund amount',
        ['refund', 'o-6', '--amount', '0', '--actor', 'a', '--reason', 'r'],
        [/--amount: must be an integer from 1/],
      ],
      ['a refund without an order id', ['refund', '--actor', 'a', '--reason', 'r'], [/ORDER_ID: missing/]],
      [
        'a refund request id too long',
        ['refund', 'o-6', '--request-id', 'k'.repeat(256), '--actor', 'a', '--reason', 'r'],
        [/--request-id: must be 1 to 255 printable ASCII characters/],
      ],
      [
        'an empty refund request id',
        ['refund', 'o-6', '--request-id', '', '--actor', 'a', '--reason', 'r'],
        [/--request-id/],
      ],
      [
        'retry-provisioning with a flag of another command',
        ['retry-provisioning', 'o-7', '--amount', '5', '--actor', 'a', '--reason', 'r'],
        [/--amount: not an option of "retry-provisioning"/],
      ],
      ['retry-provisioning without a reason', ['retry-provisioning', 'o-7', '--actor', 'a'], [/--reason/]],
    ];
    for (const [what, argv, patterns] of cases) {
      it(`exits 2 naming the problem for ${what}`, async () => {
        const r = await cli(argv);
        assert.equal(r.code, EXIT.usage);
        const text = r.err.join('\n');
        for (const p of patterns) assert.match(text, p);
        assert.match(text, /Usage: npm run checkout/);
        assert.deepEqual(r.out, []);
      });
    }

    it('exits 2 naming ORDER_ID for an order id the intake would refuse, on every command that takes one, with nothing sent to Temporal', async () => {
      const actorReason = ['--actor', 'ops', '--reason', 'r'];
      const commands: [string, string[]][] = [
        ['status', []],
        ['cancel', actorReason],
        ['resolve', ['--outcome', 'abandon', ...actorReason]],
        ['retry-payment', ['--payment-method', 'pm_card_visa', ...actorReason]],
        ['refund', actorReason],
        ['retry-provisioning', actorReason],
      ];
      const badIds = ['a b', 'o/../x', '', 'ö-1', 'x'.repeat(201)];
      // Any use of the client or the configuration would mean something was sent.
      const touched: string[] = [];
      const client = new Proxy({} as Client, {
        get(_, key) {
          touched.push(`client.${String(key)}`);
          throw new Error('the CLI used the Temporal client');
        },
      });
      const config = (): AppConfig => {
        touched.push('config');
        throw new Error('the CLI loaded its configuration');
      };
      for (const [name, flags] of commands) {
        for (const id of badIds) {
          const c = capture();
          const code = await runCli([name, id, ...flags], { io: c.io, client, config });
          const what = `${name} ${JSON.stringify(id.slice(0, 20))}`;
          assert.equal(code, EXIT.usage, what);
          assert.match(
            c.err.join('\n'),
            /ORDER_ID: must be letters, digits, "_" or "-", at most 200 characters/,
            what,
          );
          assert.deepEqual(c.out, [], what);
        }
      }
      assert.deepEqual(touched, []);
      // The intake's rule, not a stricter one: the longest and oddest valid ids still parse.
      for (const id of ['x'.repeat(200), 'A_b-9', '-', '_']) {
        assert.deepEqual(parseCommand(['status', id]), { name: 'status', orderId: id, json: false });
      }
    });

    it('starts nothing when start has a bad argument', async function () {
      const orderId = `cli-bad-${Date.now().toString(36)}`;
      const r = await cli([...startArgs(orderId, 'pm_card_visa', f.customerId), '--quantity', '-3']);
      assert.equal(r.code, EXIT.usage);
      assert.match(r.err.join('\n'), /--quantity/);
      assert.equal(await checkoutExists(f, orderId), false);
    });

    it('prints the usage with help and exits 0', async () => {
      const r = await cli(['help']);
      assert.equal(r.code, EXIT.ok);
      assert.match(r.out.join('\n'), /retry-payment ORDER_ID/);
    });

    it('parses a full start line into the shared checkout input', () => {
      const command = parseCommand([
        ...startArgs('o-5', 'pm_card_visa', 'cus_A1'),
        '--quantity',
        '3',
        '--json',
      ]);
      assert.deepEqual(command, {
        name: 'start',
        json: true,
        input: {
          orderId: 'o-5',
          amount: 4200,
          currency: 'usd',
          customerId: 'cus_A1',
          paymentMethodId: 'pm_card_visa',
          provision: { sku: 'pro-plan', quantity: 3 },
          options: {},
        },
      });
      assert.throws(() => parseCommand(['status']), UsageError);
    });
  });

  describe('against Temporal', () => {
    it('starts a checkout, prints its status table, and a repeat shows the same checkout with one charge', async function () {
      const { orderId } = orderInput(f, this.test?.title ?? 'start');
      const first = await cli(startArgs(orderId, 'pm_card_visa', f.customerId));
      assert.equal(first.code, EXIT.ok, first.err.join('\n'));
      assert.match(first.out.join('\n'), new RegExp(`order\\s+${orderId}`));
      assert.match(first.out.join('\n'), /Audit trail:/);
      await waitForStatus(f, orderId, (s) => MONEY_TAKEN_STATES.includes(s.state));
      const again = await cli([...startArgs(orderId, 'pm_card_visa', f.customerId), '--json']);
      assert.equal(again.code, EXIT.ok);
      const status = JSON.parse(again.out.join('\n')) as CheckoutStatus;
      assert.equal(status.orderId, orderId);
      assert.equal(successfulCharges(f, orderId), 1);
    });

    it('shows status as a table or JSON, and exits 1 for an unknown order', async function () {
      const { orderId } = orderInput(f, this.test?.title ?? 'status');
      await cli(startArgs(orderId, 'pm_card_visa', f.customerId));
      await waitForStatus(f, orderId, (s) => MONEY_TAKEN_STATES.includes(s.state));
      const table = await cli(['status', orderId]);
      assert.equal(table.code, EXIT.ok);
      assert.match(table.out.join('\n'), /PaymentIntent\s+pi_/);
      const json = await cli(['status', orderId, '--json']);
      assert.equal((JSON.parse(json.out.join('\n')) as CheckoutStatus).orderId, orderId);
      const unknown = await cli(['status', 'no-such-order-anywhere']);
      assert.equal(unknown.code, EXIT.failed);
      assert.match(unknown.err.join('\n'), /No checkout for order no-such-order-anywhere/);
    });

    it('lists checkouts, filtered by state', async function () {
      const { orderId } = orderInput(f, this.test?.title ?? 'list');
      await cli(startArgs(orderId, 'pm_card_visa', f.customerId));
      await waitForStatus(f, orderId, (s) => s.state === 'completed');
      const deadline = Date.now() + 20_000;
      let listed: { orderId?: string; state?: string }[] = [];
      while (Date.now() < deadline && !listed.some((e) => e.orderId === orderId)) {
        const r = await cli(['list', '--state', 'completed', '--limit', '100', '--json']);
        assert.equal(r.code, EXIT.ok, r.err.join('\n'));
        listed = JSON.parse(r.out.join('\n')) as typeof listed;
        if (!listed.some((e) => e.orderId === orderId)) await new Promise((res) => setTimeout(res, 300));
      }
      assert.ok(
        listed.some((e) => e.orderId === orderId),
        'the completed checkout is listed',
      );
      assert.ok(listed.every((e) => e.state === 'completed'));
      const table = await cli(['list', '--state', 'completed']);
      assert.match(table.out.join('\n'), /^order\s+state\s+PaymentIntent/);
    });

    it('retries a declined checkout with a new card, and refuses a second retry once paid (exit 1)', async function () {
      const input = orderInput(f, this.test?.title ?? 'retry', 'pm_card_chargeDeclined');
      const started = await cli(startArgs(input.orderId, 'pm_card_chargeDeclined', f.customerId));
      assert.equal(started.code, EXIT.ok, started.err.join('\n'));
      await waitForStatus(f, input.orderId, (s) => s.state === 'declined');
      const retry = [
        'retry-payment',
        input.orderId,
        '--payment-method',
        'pm_card_visa',
        '--actor',
        'ops',
        '--reason',
        'new card',
      ];
      const ok = await cli(retry);
      assert.equal(ok.code, EXIT.ok, ok.err.join('\n'));
      assert.match(ok.out.join('\n'), /Retry accepted/);
      await waitForStatus(f, input.orderId, (s) => MONEY_TAKEN_STATES.includes(s.state));
      assert.equal(successfulCharges(f, input.orderId), 1);
      const refused = await cli(retry);
      assert.equal(refused.code, EXIT.failed);
      assert.match(refused.err.join('\n'), /Refused by the checkout|already ended/);
    });

    it('refunds a completed order in part (table) and the rest (--json), refuses more than is left naming it, and starts nothing for a bad amount', async function () {
      const { orderId } = orderInput(f, this.test?.title ?? 'refund');
      await cli(startArgs(orderId, 'pm_card_visa', f.customerId));
      await waitForStatus(f, orderId, (s) => s.state === 'completed');
      const bad = await cli(['refund', orderId, '--amount', '-5', '--actor', 'ops', '--reason', 'why']);
      assert.equal(bad.code, EXIT.usage);
      assert.equal(await getRefundsStatus(f.client, orderId), undefined, 'nothing started for a bad amount');

      const part = await cli([
        'refund',
        orderId,
        '--amount',
        '1000',
        '--actor',
        'ops:dee',
        '--reason',
        'one seat',
      ]);
      assert.equal(part.code, EXIT.ok, part.err.join('\n'));
      const text = part.out.join('\n');
      assert.match(text, /Refunded 1000 usd of order/);
      assert.match(text, /3200 left/);
      assert.match(text, /at\s+refund\s+amount\s+full\s+actor\s+reason/);

      const over = await cli([
        'refund',
        orderId,
        '--amount',
        '3201',
        '--actor',
        'ops',
        '--reason',
        'too much',
      ]);
      assert.equal(over.code, EXIT.failed);
      assert.match(
        over.err.join('\n'),
        /Refused by the checkout: amount: 3201 is more than the 3200 usd left/,
      );

      const rest = await cli(['refund', orderId, '--actor', 'ops:eve', '--reason', 'canceled', '--json']);
      assert.equal(rest.code, EXIT.ok, rest.err.join('\n'));
      const result = JSON.parse(rest.out.join('\n')) as RefundResult;
      assert.equal(result.refund.amount, 3200);
      assert.equal(result.refund.full, true);
      assert.equal(result.remainingAmount, 0);

      const status = await cli(['status', orderId]);
      assert.match(status.out.join('\n'), /refunded\s+4200 of 4200 usd/);
      assert.match(status.out.join('\n'), /Refunds:/);
      assert.equal(successfulCharges(f, orderId), 1);

      const retry = await cli(['retry-provisioning', orderId, '--actor', 'ops', '--reason', 'try']);
      assert.equal(retry.code, EXIT.failed);
      assert.match(retry.err.join('\n'), /already ended \(completed\)/);
    });

    it('refunds once when run again with the same --request-id (the printed one when none was given), and exits 1 naming amount for another', async function () {
      const { orderId } = orderInput(f, this.test?.title ?? 'refund request id');
      await cli(startArgs(orderId, 'pm_card_visa', f.customerId));
      await waitForStatus(f, orderId, (s) => s.state === 'completed');
      const args = ['refund', orderId, '--amount', '600', '--actor', 'ops', '--reason', 'lost answer'];
      const first = await cli([...args, '--json']);
      assert.equal(first.code, EXIT.ok, first.err.join('\n'));
      const printed =
        /Refund request id: (\S+) \(if no answer arrives, run again with --request-id \1\)/.exec(
          first.err.join('\n'),
        );
      assert.ok(printed?.[1], `the made request id is printed: ${first.err.join('\n')}`);
      const made = JSON.parse(first.out.join('\n')) as RefundResult;

      const again = await cli([...args, '--request-id', printed[1]]);
      assert.equal(again.code, EXIT.ok, again.err.join('\n'));
      assert.ok(again.out.join('\n').includes(made.refund.refundId), 'the same refund is shown');
      assert.equal(again.err.length, 0, 'no new id is made when one is given');

      const other = await cli([
        'refund',
        orderId,
        '--amount',
        '601',
        '--request-id',
        printed[1],
        '--actor',
        'ops',
        '--reason',
        'r',
      ]);
      assert.equal(other.code, EXIT.failed);
      assert.match(
        other.err.join('\n'),
        /Refund request conflict .*amount: this request id was already used/,
      );
      assert.equal(
        f.emulator.control.ledger().refunds.filter((r) => r.metadata.order_id === orderId).length,
        1,
        'one refund in Stripe',
      );
    });

    it('cancels a checkout waiting for 3-D Secure and refuses resolve outside needs_attention', async function () {
      const { orderId } = orderInput(f, this.test?.title ?? 'cancel');
      await cli(startArgs(orderId, 'pm_card_threeDSecure2Required', f.customerId));
      await waitForStatus(f, orderId, (s) => s.state === 'awaiting_customer_action');
      const resolve = await cli([
        'resolve',
        orderId,
        '--outcome',
        'recheck',
        '--actor',
        'ops',
        '--reason',
        'look again',
      ]);
      assert.equal(resolve.code, EXIT.failed);
      assert.match(resolve.err.join('\n'), /Refused by the checkout: nothing to resolve/);
      const cancel = await cli([
        'cancel',
        orderId,
        '--actor',
        'customer:web',
        '--reason',
        'closed the window',
        '--json',
      ]);
      assert.equal(cancel.code, EXIT.ok, cancel.err.join('\n'));
      assert.equal((JSON.parse(cancel.out.join('\n')) as CheckoutStatus).state, 'canceled');
      assert.equal(successfulCharges(f, orderId), 0);
    });
  });
});
