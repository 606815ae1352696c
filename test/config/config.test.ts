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

  describe('provisioning backend', () => {
    it('is SQLite in the data directory by default', () => {
      const c = loadConfig({ DATA_DIR: 'elsewhere' });
      assert.equal(c.provisioning.backend, 'sqlite');
      assert.equal(c.provisioning.sqlitePath, path.resolve('elsewhere', 'provisioning.sqlite'));
      assert.equal(c.provisioning.databaseUrl, undefined);
      assert.equal(c.provisioning.http, undefined);
    });

    it('is PostgreSQL when DATABASE_URL is set, and the URL (with its password) is never logged', () => {
      const url = 'postgresql://checkout:s3cretPassw0rd@db.example:5433/shop?sslmode=require';
      const c = loadConfig({ DATABASE_URL: url });
      assert.equal(c.provisioning.backend, 'postgres');
      assert.equal(c.provisioning.databaseUrl, url);
      const logged = JSON.stringify(redactConfig(c));
      assert.ok(!logged.includes('s3cretPassw0rd'));
      assert.ok(!logged.includes('db.example'));
    });

    it('refuses a DATABASE_URL that is not a PostgreSQL URL without echoing it', () => {
      const url = 'mysql://root:hunter2@db.example/shop';
      assert.throws(
        () => loadConfig({ DATABASE_URL: url }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.match(err.message, /DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL/);
          assert.ok(!err.message.includes('hunter2'));
          return true;
        },
      );
    });

    it('is the HTTP endpoint when PROVISIONING_HTTP_URL is set, with the token redacted and a 10 s timeout', () => {
      const c = loadConfig({
        PROVISIONING_HTTP_URL: 'https://shop.example/provisioning/',
        PROVISIONING_HTTP_TOKEN: 'tok_live_abcdef',
      });
      assert.equal(c.provisioning.backend, 'http');
      assert.deepEqual(c.provisioning.http, {
        url: 'https://shop.example/provisioning/',
        token: 'tok_live_abcdef',
        timeoutMs: 10_000,
      });
      assert.ok(!JSON.stringify(redactConfig(c)).includes('tok_live_abcdef'));
    });

    it('names both variables when DATABASE_URL and PROVISIONING_HTTP_URL are set', () => {
      assert.throws(
        () =>
          loadConfig({
            DATABASE_URL: 'postgres://db.example/shop',
            PROVISIONING_HTTP_URL: 'https://shop.example/provisioning',
          }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(err.problems.length, 1);
          assert.match(err.message, /DATABASE_URL and PROVISIONING_HTTP_URL: both are set/);
          return true;
        },
      );
    });

    it('lists every HTTP provisioning problem: credentials in the URL, a token without a URL, a bad timeout', () => {
      assert.throws(
        () =>
          loadConfig({
            PROVISIONING_HTTP_URL: 'https://user:urlPassw0rd@shop.example/provisioning',
            PROVISIONING_HTTP_TIMEOUT_MS: '60000',
          }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.match(err.message, /PROVISIONING_HTTP_URL: must not carry credentials/);
          assert.match(err.message, /PROVISIONING_HTTP_TIMEOUT_MS/);
          assert.ok(!err.message.includes('urlPassw0rd'));
          return true;
        },
      );
      assert.throws(
        () => loadConfig({ PROVISIONING_HTTP_TOKEN: 'tok_orphan' }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.match(err.message, /PROVISIONING_HTTP_TOKEN: is set but PROVISIONING_HTTP_URL is not/);
          assert.ok(!err.message.includes('tok_orphan'));
          return true;
        },
      );
    });
  });

  describe('observability settings', () => {
    it('has no metrics endpoint and drops spans unless asked', () => {
      const o = loadConfig({}).observability;
      assert.equal(o.prometheus, undefined);
      assert.equal(o.visibilityIntervalMs, 30_000);
      assert.deepEqual(o.tracing, {
        exporter: 'none',
        otlpEndpoint: 'http://localhost:4318/v1/traces',
        serviceName: 'checkout',
      });
    });

    it('serves metrics on METRICS_HOST:METRICS_PORT', () => {
      const o = loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' }).observability;
      assert.deepEqual(o.prometheus, { host: '0.0.0.0', port: 9464 });
      assert.equal(loadConfig({ METRICS_PORT: '9464' }).observability.prometheus?.host, '127.0.0.1');
    });

    it('exports over OTLP when an endpoint is set, to its /v1/traces', () => {
      const base = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).observability;
      assert.equal(base.tracing.exporter, 'otlp');
      assert.equal(base.tracing.otlpEndpoint, 'http://collector:4318/v1/traces');
      const full = loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom',
        OTEL_SERVICE_NAME: 'checkout-eu',
      }).observability.tracing;
      assert.equal(full.otlpEndpoint, 'http://traces:9999/custom');
      assert.equal(full.serviceName, 'checkout-eu');
      const off = loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_TRACES_EXPORTER: 'none',
      }).observability.tracing;
      assert.equal(off.exporter, 'none');
    });

    it('names each bad observability setting', () => {
      assert.throws(
        () =>
          loadConfig({
            METRICS_PORT: '0',
            METRICS_VISIBILITY_INTERVAL_MS: '500',
            OTEL_TRACES_EXPORTER: 'jaeger',
            OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
          }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          const names = err.problems.map((p) => p.split(':')[0]);
          assert.deepEqual([...names].sort(), [
            'METRICS_PORT',
            'METRICS_VISIBILITY_INTERVAL_MS',
            'OTEL_EXPORTER_OTLP_ENDPOINT',
            'OTEL_TRACES_EXPORTER',
          ]);
          return true;
        },
      );
      assert.equal(loadConfig({ METRICS_VISIBILITY_INTERVAL_MS: '0' }).observability.visibilityIntervalMs, 0);
    });
  });
});
