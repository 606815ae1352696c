import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config';
import { createLogger, redactText, temporalLogger } from '../../src/observability';
import { REDACTED } from '../../src/observability/logging';

/** A destination that keeps every line pino writes. */
function collector(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l.length > 0),
      );
      done();
    },
  });
  return { stream, lines };
}

const KEY = 'sk_test_CanaryKey0bservability4242';
const RESTRICTED = 'rk_live_CanaryRestricted77aa';
const WHSEC = 'whsec_CanaryWebhookSecret99zz';
const DB_PASSWORD = 'Canary-Db-Pa55word';
const TOKEN = 'CanaryBearerToken.abc-123';
const CLIENT_SECRET = 'pi_3CanaryIntent42_secret_CanaryClientSecret7';

describe('structured logs', () => {
  it('writes one JSON object per line with level, time and message', () => {
    const { stream, lines } = collector();
    const logger = createLogger({ level: 'info', destination: stream, name: 'test' });
    logger.info({ orderId: 'o-1' }, 'checkout started');
    logger.debug('not at this level');
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'checkout started');
    assert.equal(line.orderId, 'o-1');
    assert.equal(line.name, 'test');
    assert.equal(typeof line.time, 'string');
  });

  it('removes secrets by field name and by value, wherever they sit in the line', () => {
    const { stream, lines } = collector();
    const logger = createLogger({ level: 'debug', destination: stream, knownSecrets: [TOKEN] });
    const err = new Error(`Invalid API Key provided: ${KEY}`);
    logger.info({ secretKey: KEY, stripe: { secretKey: KEY, webhookSecrets: [WHSEC] } }, 'by path');
    logger.warn({ err }, `failed with ${KEY} and ${RESTRICTED}`);
    logger.info({ headers: { authorization: `Bearer ${TOKEN}` } }, 'header by path');
    logger.info({ note: `sent Authorization: Bearer ${TOKEN}` }, 'header by value');
    logger.info({ url: `postgres://app:${DB_PASSWORD}@db.internal:5432/checkout` }, 'database');
    logger.info({ deep: { deeper: { deepest: { value: `key=${KEY} secret=${WHSEC}` } } } }, 'nested');
    logger.error({ provisioning: { token: TOKEN } }, 'a known secret value under an unforeseen name');
    logger.info({ body: { clientSecret: CLIENT_SECRET } }, 'a payment action answer');
    assert.equal(lines.length, 8);
    const all = lines.join('\n');
    for (const secret of [KEY, RESTRICTED, WHSEC, DB_PASSWORD, TOKEN, CLIENT_SECRET]) {
      assert.ok(!all.includes(secret), `${secret} leaked:\n${all}`);
    }
    assert.ok(all.includes(REDACTED));
    // What stays is enough to debug: the key's kind and mode, the database host.
    assert.match(all, /sk_test_\[redacted\]/);
    assert.match(all, /rk_live_\[redacted\]/);
    assert.match(all, /pi_3CanaryIntent42_secret_\[redacted\]/);
    assert.match(all, /postgres:\/\/app:\[redacted\]@db\.internal:5432/);
    const warn = JSON.parse(lines[1] ?? '') as { err: { stack: string; message: string } };
    assert.match(warn.err.stack, /Invalid API Key provided: sk_test_\[redacted\]/);
  });

  it('routes the Temporal SDK log into the same logger, redacted', () => {
    const { stream, lines } = collector();
    const logger = temporalLogger(createLogger({ level: 'info', destination: stream }));
    logger.warn('Activity failed', { error: new Error(`Stripe said no to ${KEY}`), activityType: 'x' });
    logger.debug('below the level');
    logger.log('ERROR', `core: ${WHSEC}`, { sdkComponent: 'core' });
    assert.equal(lines.length, 2);
    const first = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    assert.equal(first.component, 'temporal');
    assert.equal(first.level, 'warn');
    assert.equal(first.activityType, 'x');
    assert.ok(!lines.join('\n').includes(KEY));
    assert.ok(!lines.join('\n').includes(WHSEC));
  });

  it('redactText leaves ordinary text alone', () => {
    const text = 'pi_3Abc succeeded for order o-42 (checkout-o-42/payment/g1/confirm)';
    assert.equal(redactText(text), text);
  });

  it('a configuration error never quotes the key it refuses', () => {
    assert.throws(
      () => loadConfig({ STRIPE_SECRET_KEY: `${KEY}!`, STRIPE_WEBHOOK_SECRETS: `${WHSEC}!` }),
      (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, /STRIPE_SECRET_KEY/);
        assert.match(err.message, /STRIPE_WEBHOOK_SECRETS/);
        assert.ok(!err.message.includes(KEY.slice(8)), err.message);
        assert.ok(!err.message.includes(WHSEC.slice(6)), err.message);
        return true;
      },
    );
  });
});
