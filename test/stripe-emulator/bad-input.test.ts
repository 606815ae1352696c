/**
 * What a client should never send, and what the emulator answers: malformed and oversized bodies,
 * unknown endpoints and parameters, missing or wrong API keys, and a seeded fuzz run of random
 * requests after which the server must still answer a normal checkout correctly.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import Stripe from 'stripe';
import { type StripeEmulator, startStripeEmulator } from '../../src/stripe-emulator';
import {
  EMULATOR_KEY,
  captureError,
  cardPayment,
  emulatorClient,
  rawRequest,
  type RawResponse,
} from './target';
import { mulberry32 } from '../../src/stripe-emulator/prng';

const FORM = { Authorization: `Bearer ${EMULATOR_KEY}`, 'Content-Type': 'application/x-www-form-urlencoded' };

interface ErrorShape {
  error: { type: string; message: string; code?: string; param?: string };
}

function errorOf(response: RawResponse): ErrorShape['error'] {
  const parsed = JSON.parse(response.body) as ErrorShape;
  assert.equal(typeof parsed.error.type, 'string', response.body);
  assert.equal(typeof parsed.error.message, 'string', response.body);
  return parsed.error;
}

describe('Stripe emulator bad input', function () {
  this.timeout(60_000);
  let emulator: StripeEmulator;
  let stripe: Stripe;

  before(async () => {
    emulator = await startStripeEmulator({ quiet: true });
    stripe = emulatorClient(emulator);
  });

  after(async () => {
    await emulator.stop();
  });

  describe('malformed bodies', () => {
    const bodies: readonly [string, string | Buffer][] = [
      ['broken percent escapes', 'amount=%ZZ&currency=%E0%A4%A'],
      ['unbalanced brackets', 'amount]=1&[currency=usd&metadata[[x]=1&&&=&'],
      ['prototype keys', '__proto__[polluted]=1&constructor[prototype][x]=1&amount=2000&currency=usd'],
      ['deep nesting', `${'a['.repeat(60)}x${']'.repeat(60)}=1`],
      ['binary garbage', Buffer.from([0xff, 0xfe, 0x00, 0x3d, 0x26, 0x80, 0x5b, 0x5d, 0x01])],
      ['JSON instead of a form', '{"amount":2000,"currency":"usd"}'],
      ['thousands of parameters', Array.from({ length: 6000 }, (_, i) => `metadata[k${i}]=v`).join('&')],
    ];
    for (const [name, body] of bodies) {
      it(`${name}: a Stripe-shaped 400, and the server keeps serving`, async () => {
        const response = await rawRequest(emulator, {
          method: 'POST',
          path: '/v1/payment_intents',
          headers: FORM,
          body,
        });
        assert.equal(response.status, 400, response.body);
        assert.equal(errorOf(response).type, 'invalid_request_error');
        assert.match(String(response.headers['request-id']), /^req_[A-Za-z0-9]{14}$/);
        assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
      });
    }

    it('bytes the HTTP parser rejects still get a Stripe-shaped 400', async () => {
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(emulator.port, emulator.host, () => {
          socket.end('GET /v1/\u0001bad HTTP/1.1\r\nHost: x\r\n\r\n');
        });
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      assert.match(raw, /^HTTP\/1\.1 400 /);
      const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
      assert.equal((JSON.parse(body) as ErrorShape).error.type, 'invalid_request_error');
    });

    it('a non-integer amount is parameter_invalid_integer naming amount', async () => {
      const response = await rawRequest(emulator, {
        method: 'POST',
        path: '/v1/payment_intents',
        headers: FORM,
        body: 'amount=twenty&currency=usd',
      });
      const error = errorOf(response);
      assert.equal(response.status, 400);
      assert.equal(error.code, 'parameter_invalid_integer');
      assert.equal(error.param, 'amount');
    });

    it('metadata that is not a hash is rejected', async () => {
      const response = await rawRequest(emulator, {
        method: 'POST',
        path: '/v1/customers',
        headers: FORM,
        body: 'metadata[a][b]=1',
      });
      assert.equal(response.status, 400);
      assert.equal(errorOf(response).param, 'metadata[a]');
    });

    it('a body over 1 MiB is a Stripe-shaped 413, and the next request is served', async () => {
      const response = await rawRequest(emulator, {
        method: 'POST',
        path: '/v1/customers',
        headers: FORM,
        body: `description=${'x'.repeat(2 * 1024 * 1024)}`,
      });
      assert.equal(response.status, 413);
      assert.equal(errorOf(response).type, 'invalid_request_error');
      const customer = await stripe.customers.create({ email: 'after413@example.com' });
      assert.match(customer.id, /^cus_/);
    });
  });

  describe('unknown endpoints and parameters', () => {
    it('an unknown endpoint is a 404 invalid_request_error naming method and path', async () => {
      const error = await captureError(() => stripe.rawRequest('GET', '/v1/widgets'));
      assert.ok(error instanceof Stripe.errors.StripeInvalidRequestError);
      assert.equal(error.statusCode, 404);
      assert.equal(
        error.message,
        'Unrecognized request URL (GET: /v1/widgets). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.',
      );
    });

    it('a known path with another method is a 404 too', async () => {
      const response = await rawRequest(emulator, {
        method: 'PUT',
        path: '/v1/customers',
        headers: FORM,
        body: '',
      });
      assert.equal(response.status, 404);
      assert.match(errorOf(response).message, /^Unrecognized request URL \(PUT: \/v1\/customers\)/);
    });

    it('an unknown parameter is a 400 parameter_unknown naming it', async () => {
      const error = await captureError(() =>
        stripe.customers.create({
          email: 'x@example.com',
          favourite_colour: 'green',
        } as Stripe.CustomerCreateParams),
      );
      assert.ok(error instanceof Stripe.errors.StripeInvalidRequestError);
      assert.equal(error.code, 'parameter_unknown');
      assert.equal(error.param, 'favourite_colour');
      assert.equal(error.message, 'Received unknown parameter: favourite_colour');
    });

    it('an unknown nested parameter is named with its brackets', async () => {
      const error = await captureError(() =>
        stripe.paymentIntents.create({
          ...cardPayment('pm_card_visa'),
          allowed_payment_method_types: undefined,
          automatic_payment_methods: { enabled: true, allow_redirects: 'never', sparkle: 'yes' },
        } as Stripe.PaymentIntentCreateParams),
      );
      assert.equal(error.code, 'parameter_unknown');
      assert.equal(error.param, 'automatic_payment_methods[sparkle]');
    });

    it('a missing required parameter is parameter_missing', async () => {
      const error = await captureError(() =>
        stripe.paymentIntents.create({ currency: 'usd' } as Stripe.PaymentIntentCreateParams),
      );
      assert.equal(error.code, 'parameter_missing');
      assert.equal(error.param, 'amount');
    });
  });

  describe('API keys', () => {
    it('no key is a 401 StripeAuthenticationError', async () => {
      const response = await rawRequest(emulator, { method: 'GET', path: '/v1/events' });
      assert.equal(response.status, 401);
      assert.match(errorOf(response).message, /^You did not provide an API key/);
    });

    for (const key of ['sk_live_abcdefghijklmnop', 'pk_test_abcdefghijklmnop', 'nonsense']) {
      it(`the key ${key.slice(0, 8)}… is refused with 401`, async () => {
        const client = emulatorClient(emulator, {}, key);
        const error = await captureError(() => client.customers.create({}));
        assert.ok(error instanceof Stripe.errors.StripeAuthenticationError);
        assert.equal(error.statusCode, 401);
        assert.match(error.message, /^Invalid API Key provided: /);
        assert.ok(!error.message.includes(key), 'the key is masked');
      });
    }

    it('with a configured key, only that exact key is accepted', async () => {
      const strict = await startStripeEmulator({ apiKey: 'sk_test_only_this_one', quiet: true });
      try {
        const good = emulatorClient(strict, {}, 'sk_test_only_this_one');
        assert.match((await good.customers.create({})).id, /^cus_/);
        const other = emulatorClient(strict, {}, 'sk_test_some_other_key');
        const error = await captureError(() => other.customers.create({}));
        assert.equal(error.statusCode, 401);
      } finally {
        await strict.stop();
      }
    });

    it('HTTP Basic with the key as user name is accepted, as curl -u sends it', async () => {
      const response = await rawRequest(emulator, {
        method: 'GET',
        path: '/v1/events?limit=1',
        headers: { Authorization: `Basic ${Buffer.from(`${EMULATOR_KEY}:`).toString('base64')}` },
      });
      assert.equal(response.status, 200);
    });
  });

  describe('fuzz', () => {
    it('answers 400 random requests (seed 20261127) with well-formed responses, then serves a checkout correctly', async () => {
      const random = mulberry32(20261127);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
      const randomText = (max: number): string => {
        const alphabet = 'abcxyz019[]%&=+_-.~ \'"\\/\u00e9\u2603';
        let text = '';
        const length = Math.floor(random() * max);
        for (let i = 0; i < length; i++) text += pick([...alphabet]);
        return text;
      };
      const paths = [
        '/v1/payment_intents',
        '/v1/payment_intents/search?query=status:%27succeeded%27',
        '/v1/payment_intents/pi_fuzz',
        '/v1/payment_intents/pi_fuzz/confirm',
        '/v1/payment_intents/pi_fuzz/capture',
        '/v1/customers',
        '/v1/refunds',
        '/v1/events?limit=3&type=payment_intent.*',
        '/v1/events/evt_fuzz',
        '/v1/',
        '/v1//payment_intents',
        '/',
        '/v2/anything',
        '/v1/payment_intents/%E0%A4%A',
      ];
      const keys = [undefined, '', 'k', 'x'.repeat(300), 'fuzz-key'];
      for (let i = 0; i < 400; i++) {
        const method = pick(['GET', 'POST', 'POST', 'DELETE', 'PUT']);
        const path =
          random() < 0.8 ? pick(paths) : `/v1/${randomText(20).replace(/[^\u0021-\u00ff]|[?#]/g, '')}`;
        const pairs = Array.from(
          { length: Math.floor(random() * 6) },
          () =>
            `${pick(['amount', 'currency', 'metadata[order_id]', 'payment_method', 'confirm', 'x[y][z]', randomText(8)])}=${pick(['2000', 'usd', 'pm_card_visa', 'true', randomText(12)])}`,
        );
        const body =
          random() < 0.1
            ? Buffer.from(Array.from({ length: 64 }, () => Math.floor(random() * 256)))
            : pairs.join('&');
        const key = pick(keys);
        const headers: Record<string, string> = {};
        if (random() < 0.9)
          headers['Authorization'] = `Bearer ${pick([EMULATOR_KEY, 'sk_test_other', 'bad'])}`;
        if (random() < 0.8) headers['Content-Type'] = 'application/x-www-form-urlencoded';
        if (key !== undefined) headers['Idempotency-Key'] = key;
        if (random() < 0.2) headers['Stripe-Account'] = 'acct_fuzz';
        const response = await rawRequest(emulator, { method, path, headers, body });
        assert.ok(response.status >= 200 && response.status < 600, `${method} ${path}: ${response.status}`);
        assert.match(
          String(response.headers['request-id']),
          /^req_[A-Za-z0-9]{14}$/,
          `${method} ${path} ${JSON.stringify(headers)}: ${response.status} ${response.body}`,
        );
        const parsed = JSON.parse(response.body) as Partial<ErrorShape>;
        if (response.status >= 400) {
          assert.equal(typeof parsed.error?.type, 'string', `${method} ${path}: ${response.body}`);
          assert.equal(typeof parsed.error?.message, 'string');
        }
        assert.notEqual(response.status, 500, `${method} ${path} crashed a handler: ${response.body}`);
      }

      const orderId = 'after-fuzz';
      const pi = await stripe.paymentIntents.create(
        cardPayment('pm_card_visa', { metadata: { order_id: orderId } }),
        { idempotencyKey: 'after-fuzz-key' },
      );
      assert.equal(pi.status, 'succeeded');
      for (const entry of emulator.control.ledger().payment_intents) {
        assert.ok(
          entry.successful_charges <= 1,
          `${entry.id} has ${entry.successful_charges} successful charges`,
        );
      }
    });
  });
});
