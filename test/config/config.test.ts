import assert from 'node:assert/strict';
import path from 'node:path';
import { ConfigError, EMULATOR_SECRET_KEY, loadConfig, redactConfig } from '../../src/config';

describe('config', () => {
  it('runs on embedded defaults when nothing is set', () => {
    const c = loadConfig({});
    assert.equal(c.temporal.mode, 'embedded');
    assert.equal(c.stripe.mode, 'emulator');
    assert.equal(c.stripe.secretKey, EMULATOR_SECRET_KEY);
    assert.equal(c.http.port, 3000);
    assert.equal(c.temporal.taskQueue, 'checkout');
    assert.equal(c.provisioning.sqlitePath, path.resolve('data', 'provisioning.sqlite'));
  });

  it('lists every problem in one error and never echoes a secret', () => {
    const secret = 'sk_live_notARealKeyButSecret123';
    assert.throws(
      () => loadConfig({ HTTP_PORT: 'eighty', STRIPE_SECRET_KEY: secret, STRIPE_TIMEOUT_MS: '5' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.problems.length, 3);
        assert.match(err.message, /HTTP_PORT/);
        assert.match(err.message, /STRIPE_TIMEOUT_MS/);
        assert.match(err.message, /STRIPE_SECRET_KEY: is a live-mode key/);
        assert.ok(!err.message.includes(secret));
        return true;
      },
    );
  });

  it('uses real Stripe when a test key is set, and redacts it for logs', () => {
    const key = 'sk_test_abcdefghijklmnop';
    const c = loadConfig({ STRIPE_SECRET_KEY: key, STRIPE_WEBHOOK_SECRETS: 'whsec_old1, whsec_new2' });
    assert.equal(c.stripe.mode, 'stripe');
    assert.deepEqual(c.stripe.webhookSecrets, ['whsec_old1', 'whsec_new2']);
    const logged = JSON.stringify(redactConfig(c));
    assert.ok(!logged.includes(key));
    assert.ok(!logged.includes('whsec_old1'));
  });

  it('connects to an external Temporal through envconfig when TEMPORAL_ADDRESS is set', () => {
    const c = loadConfig({ TEMPORAL_ADDRESS: 'temporal.example:7233', TEMPORAL_NAMESPACE: 'payments' });
    assert.equal(c.temporal.mode, 'external');
    assert.equal(c.temporal.connect?.connectionOptions.address, 'temporal.example:7233');
    assert.equal(c.temporal.namespace, 'payments');
  });

  it('parses an emulator base URL into SDK host options', () => {
    const c = loadConfig({ STRIPE_API_BASE: 'http://127.0.0.1:12111' });
    assert.deepEqual(c.stripe.apiBase, { host: '127.0.0.1', port: 12111, protocol: 'http' });
  });
});
