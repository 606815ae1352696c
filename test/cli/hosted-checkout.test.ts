import assert from 'node:assert/strict';
import { EXIT, parseCommand, runCli, type CliIo } from '../../src/cli/main';
import { loadConfig, type AppConfig } from '../../src/config';
import { type StartedHostedCheckout } from '../../src/client';
import { uniqueName } from '../support/temporal';
import { checkoutExists, startIntakeFixture, type IntakeFixture } from '../http/fixture';

describe('operator CLI: start-hosted', function () {
  this.timeout(90_000);
  let f: IntakeFixture;
  let config: AppConfig;

  before(async function () {
    this.timeout(180_000);
    f = await startIntakeFixture('cli hosted');
    config = loadConfig({ TEMPORAL_TASK_QUEUE: f.taskQueue });
  });
  after(async () => {
    await f?.close();
  });

  const cli = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
    const code = await runCli(argv, { io, client: f.client, config: () => config });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
  const args = (orderId: string): string[] => [
    'start-hosted',
    '--order-id',
    orderId,
    '--amount',
    '1500',
    '--currency',
    'usd',
    '--sku',
    'pro-plan',
    '--success-url',
    'https://shop.example.com/thanks',
    '--cancel-url',
    'https://shop.example.com/cart',
  ];

  it('parses a full start-hosted line into the shared hosted input', () => {
    assert.deepEqual(
      parseCommand([
        ...args('o-9'),
        '--customer',
        'cus_A1',
        '--quantity',
        '2',
        '--payment-method-types',
        'card,us_bank_account',
      ]),
      {
        name: 'start-hosted',
        json: false,
        input: {
          orderId: 'o-9',
          amount: 1500,
          currency: 'usd',
          customerId: 'cus_A1',
          provision: { sku: 'pro-plan', quantity: 2 },
          successUrl: 'https://shop.example.com/thanks',
          cancelUrl: 'https://shop.example.com/cart',
          paymentMethodTypes: ['card', 'us_bank_account'],
          options: {},
        },
      },
    );
  });

  const bad: [string, (a: string[]) => string[], RegExp][] = [
    [
      '--success-url',
      (a) => a.map((x) => (x === 'https://shop.example.com/thanks' ? 'thanks' : x)),
      /--success-url/,
    ],
    [
      '--cancel-url',
      (a) => a.filter((x, i) => x !== '--cancel-url' && a[i - 1] !== '--cancel-url'),
      /--cancel-url/,
    ],
    ['--amount', (a) => a.map((x) => (x === '1500' ? 'lots' : x)), /--amount: must be a whole number/],
    ['--currency', (a) => a.map((x) => (x === 'usd' ? 'US' : x)), /--currency/],
    ['--customer', (a) => [...a, '--customer', 'bob'], /--customer/],
    [
      '--payment-method-types',
      (a) => [...a, '--payment-method-types', 'card,cash'],
      /--payment-method-types/,
    ],
    [
      '--payment-method',
      (a) => [...a, '--payment-method', 'pm_card_visa'],
      /--payment-method: not an option/,
    ],
  ];
  for (const [flag, mutate, pattern] of bad) {
    it(`exits 2 naming ${flag} and starts nothing`, async () => {
      const orderId = uniqueName(`cli-hosted-bad-${flag}`).slice(-60).replace(/^-+/, '');
      const r = await cli(mutate(args(orderId)));
      assert.equal(r.code, EXIT.usage, r.err);
      assert.match(r.err, pattern);
      assert.equal(r.out, '');
      assert.equal(await checkoutExists(f, orderId), false);
    });
  }

  it('prints the payment page URL, the same one on a repeat, and status shows the session', async function () {
    const orderId = uniqueName(this.test?.title ?? 'cli hosted')
      .slice(-60)
      .replace(/^-+/, '');
    const first = await cli(args(orderId));
    assert.equal(first.code, EXIT.ok, first.err);
    const url = /Pay here: (\S+)/.exec(first.out)?.[1];
    assert.match(url ?? '', /\/checkout\/pay\/cs_test_/);
    assert.match(first.out, /started, state awaiting_customer_action/);

    const again = await cli([...args(orderId), '--json']);
    assert.equal(again.code, EXIT.ok, again.err);
    const json = JSON.parse(again.out) as StartedHostedCheckout;
    assert.equal(json.created, false);
    assert.equal(json.url, url);

    const status = await cli(['status', orderId]);
    assert.equal(status.code, EXIT.ok, status.err);
    assert.match(status.out, /mode\s+hosted/);
    assert.match(status.out, new RegExp(`payment page\\s+${(url ?? '').replace(/[.?]/g, '\\$&')}`));

    const cancel = await cli(['cancel', orderId, '--actor', 'ops:cli', '--reason', 'test cleanup']);
    assert.equal(cancel.code, EXIT.ok, cancel.err);
    assert.match(cancel.out, /state\s+canceled/);
  });
});
