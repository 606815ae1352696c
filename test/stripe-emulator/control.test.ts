/**
 * The `/_emulator/` control API over HTTP, and the command-line entry point as a real process.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { type StripeEmulator, startStripeEmulator } from '../../src/stripe-emulator';
import { parseCliArgs } from '../../src/stripe-emulator/main';
import { cardPayment, control, emulatorClient, rawRequest } from './target';

const ROOT = path.resolve(__dirname, '../..');

describe('Stripe emulator control API', function () {
  this.timeout(30_000);
  let emulator: StripeEmulator;

  before(async () => {
    emulator = await startStripeEmulator({ quiet: true });
  });

  beforeEach(() => {
    emulator.control.reset();
  });

  after(async () => {
    await emulator.stop();
  });

  it('adds, lists with hit counts, and deletes fault rules', async () => {
    const added = await control(emulator, 'POST', '/_emulator/faults', {
      fault: 'rate_limit_429',
      path: '/v1/customers',
      times: 1,
    });
    assert.equal(added.status, 200);
    const rule = added.json as { id: string; fault: string; hits: number };
    assert.match(rule.id, /^fault_/);
    await control(emulator, 'POST', '/_emulator/faults', { fault: 'transient_500', path: '/v1/refunds' });
    const stripe = emulatorClient(emulator);
    await assert.rejects(stripe.customers.create({}));
    const listed = (await control(emulator, 'GET', '/_emulator/faults')).json as {
      data: { id: string; hits: number; matched: number }[];
    };
    assert.deepEqual(
      listed.data.map((r) => [r.hits, r.matched]),
      [
        [1, 1],
        [0, 0],
      ],
    );
    const deleted = await control(emulator, 'DELETE', `/_emulator/faults?id=${rule.id}`);
    assert.deepEqual(deleted.json, { deleted: 1 });
    assert.deepEqual(
      ((await control(emulator, 'DELETE', '/_emulator/faults')).json as { deleted: number }).deleted,
      1,
    );
  });

  it('rejects a malformed fault rule with a 400 that names the field', async () => {
    const response = await control(emulator, 'POST', '/_emulator/faults', { fault: 'slow', nth: 0 });
    assert.equal(response.status, 400);
    assert.match((response.json as { error: { message: string } }).error.message, /nth/);
    const notJson = await rawRequest(emulator, {
      method: 'POST',
      path: '/_emulator/faults',
      headers: { 'Content-Type': 'application/json' },
      body: '{nope',
    });
    assert.equal(notJson.status, 400);
  });

  it('reads and advances the clock', async () => {
    const before = (await control(emulator, 'GET', '/_emulator/clock')).json as {
      now: number;
      offset_seconds: number;
    };
    assert.equal(before.offset_seconds, 0);
    const advanced = await control(emulator, 'POST', '/_emulator/clock/advance', { seconds: 3600 });
    assert.equal((advanced.json as { offset_seconds: number }).offset_seconds, 3600);
    assert.ok((advanced.json as { now: number }).now >= before.now + 3600);
    assert.equal((await control(emulator, 'POST', '/_emulator/clock/advance', { seconds: -5 })).status, 400);
  });

  it('reads and changes settings, rejecting unknown keys and negative values', async () => {
    const current = await control(emulator, 'GET', '/_emulator/config');
    assert.deepEqual(current.json, {
      searchLagSeconds: 0,
      asyncSettleSeconds: 3,
      idempotencyTtlSeconds: 86_400,
    });
    const changed = await control(emulator, 'POST', '/_emulator/config', { searchLagSeconds: 5 });
    assert.equal((changed.json as { searchLagSeconds: number }).searchLagSeconds, 5);
    assert.equal((await control(emulator, 'POST', '/_emulator/config', { lag: 5 })).status, 400);
    assert.equal(
      (await control(emulator, 'POST', '/_emulator/config', { asyncSettleSeconds: -1 })).status,
      400,
    );
    emulator.control.configure({ searchLagSeconds: 0 });
  });

  it('serves the ledger and per-route request counts, and reset clears them', async () => {
    const stripe = emulatorClient(emulator);
    const pi = await stripe.paymentIntents.create(
      cardPayment('pm_card_visa', { metadata: { order_id: 'L-1' } }),
    );
    await stripe.paymentIntents.retrieve(pi.id);
    const ledger = (await control(emulator, 'GET', '/_emulator/ledger')).json as {
      payment_intents: { id: string; successful_charges: number; metadata: Record<string, string> }[];
      refunds: unknown[];
    };
    assert.deepEqual(
      ledger.payment_intents.map((entry) => [entry.id, entry.successful_charges, entry.metadata['order_id']]),
      [[pi.id, 1, 'L-1']],
    );
    assert.deepEqual(ledger.refunds, []);
    const stats = (await control(emulator, 'GET', '/_emulator/stats')).json as {
      total: number;
      by_route: Record<string, number>;
    };
    assert.equal(stats.total, 2);
    assert.deepEqual(stats.by_route, { 'POST /v1/payment_intents': 1, 'GET /v1/payment_intents/:id': 1 });
    await control(emulator, 'POST', '/_emulator/reset');
    assert.deepEqual((await control(emulator, 'GET', '/_emulator/ledger')).json, {
      payment_intents: [],
      refunds: [],
    });
    assert.equal(((await control(emulator, 'GET', '/_emulator/stats')).json as { total: number }).total, 0);
  });

  it('an unknown control path is a 404 without asking for an API key', async () => {
    const response = await rawRequest(emulator, { method: 'GET', path: '/_emulator/nothing' });
    assert.equal(response.status, 404);
  });
});

describe('Stripe emulator command line', function () {
  this.timeout(30_000);

  it('parses and validates its options', () => {
    assert.deepEqual(parseCliArgs(['--port', '12111', '--search-lag-seconds', '2.5', '--quiet']), {
      port: 12111,
      searchLagSeconds: 2.5,
      quiet: true,
    });
    assert.throws(() => parseCliArgs(['--port', 'abc']), /--port must be a non-negative integer/);
    assert.throws(() => parseCliArgs(['--port', '70000']), /at most 65535/);
    assert.throws(() => parseCliArgs(['--async-settle-seconds=-1']), /non-negative/);
    assert.throws(() => parseCliArgs(['--colour']), /Unknown option/);
  });

  it('prints its URL, serves, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/stripe-emulator/main.ts', '--port', '0'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        const match = /listening on (http:\/\/\S+)/.exec(out);
        if (match?.[1]) resolve(match[1]);
      });
      child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
    });
    const response = await fetch(`${url}/_emulator/clock`);
    assert.equal(response.status, 200);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });

  it('exits 1 naming the problem when the port is taken', async () => {
    const occupant = await startStripeEmulator({ quiet: true });
    try {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/stripe-emulator/main.ts', '--port', String(occupant.port)],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let err = '';
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      assert.equal(code, 1);
      assert.match(err, /EADDRINUSE/);
    } finally {
      await occupant.stop();
    }
  });

  it('exits 1 with the usage on a bad argument', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/stripe-emulator/main.ts', '--port', 'x'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    assert.equal(code, 1);
    assert.match(err, /--port must be a non-negative integer/);
    assert.match(err, /usage: stripe:emulator/);
  });
});
