/**
 * The production side of the configuration: the worker's own settings, and Temporal connections
 * through `@temporalio/envconfig` profiles, using the exact `temporal.toml` that docs/deployment.md
 * shows (so the documented profiles are known to load). No network: loading a profile reads files
 * and builds connection options; the connection itself is tested in test/worker/.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, redactConfig } from '../../src/config';

const ROOT = path.resolve(__dirname, '..', '..');

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

/** envconfig hands file contents over as bytes. */
const text = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString('utf8');

/** The ```toml block of docs/deployment.md. */
function documentedToml(): string {
  const doc = readFileSync(path.join(ROOT, 'docs', 'deployment.md'), 'utf8');
  const block = /```toml\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(block, 'docs/deployment.md shows a temporal.toml');
  return block;
}

describe('config: worker settings', () => {
  it('defaults to a 60 s connect budget, a 15 s shutdown grace, 100 activity and 20 workflow tasks on 2 threads', () => {
    const c = loadConfig({});
    assert.equal(c.temporal.connectTimeoutMs, 60_000);
    assert.deepEqual(c.worker, {
      shutdownGraceMs: 15_000,
      maxConcurrentActivityTaskExecutions: 100,
      maxConcurrentWorkflowTaskExecutions: 20,
      workflowThreadPoolSize: 2,
    });
    assert.ok(
      c.worker.shutdownGraceMs > c.stripe.requestTimeoutMs,
      'a Stripe call in flight ends inside the grace',
    );
  });

  it('takes them from the environment', () => {
    const c = loadConfig({
      TEMPORAL_CONNECT_TIMEOUT_MS: '0',
      WORKER_SHUTDOWN_GRACE_MS: '25000',
      WORKER_MAX_CONCURRENT_ACTIVITY_TASKS: '5',
      WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '2',
      WORKER_WORKFLOW_THREADS: '1',
    });
    assert.equal(c.temporal.connectTimeoutMs, 0);
    assert.deepEqual(c.worker, {
      shutdownGraceMs: 25_000,
      maxConcurrentActivityTaskExecutions: 5,
      maxConcurrentWorkflowTaskExecutions: 2,
      workflowThreadPoolSize: 1,
    });
  });

  it('lists every bad worker setting in one error, each by name and value', () => {
    const err = configErrorOf(() =>
      loadConfig({
        TEMPORAL_CONNECT_TIMEOUT_MS: 'soon',
        WORKER_SHUTDOWN_GRACE_MS: '-1',
        WORKER_MAX_CONCURRENT_ACTIVITY_TASKS: '0',
        WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '1',
        WORKER_WORKFLOW_THREADS: '0',
        HTTP_PORT: '70000',
      }),
    );
    assert.equal(err.problems.length, 6, err.message);
    for (const [name, value] of [
      ['TEMPORAL_CONNECT_TIMEOUT_MS', 'soon'],
      ['WORKER_SHUTDOWN_GRACE_MS', '-1'],
      ['WORKER_MAX_CONCURRENT_ACTIVITY_TASKS', '0'],
      ['WORKER_MAX_CONCURRENT_WORKFLOW_TASKS', '1'],
      ['WORKER_WORKFLOW_THREADS', '0'],
      ['HTTP_PORT', '70000'],
    ] as const) {
      assert.ok(
        err.problems.some((p) => p.startsWith(`${name}:`) && p.includes(JSON.stringify(value))),
        `${name} named with its value in: ${err.message}`,
      );
    }
  });
});

describe('config: Temporal through envconfig profiles (docs/deployment.md)', () => {
  let dir: string;
  let tomlPath: string;
  const cert = '-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n';
  const key = '-----BEGIN PRIVATE KEY-----\nclient-key\n-----END PRIVATE KEY-----\n';
  const ca = '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n';

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'envconfig-'));
    writeFileSync(path.join(dir, 'client.pem'), cert);
    writeFileSync(path.join(dir, 'client.key'), key);
    writeFileSync(path.join(dir, 'ca.pem'), ca);
    tomlPath = path.join(dir, 'temporal.toml');
    // The documented file, with its TLS files where this test put them.
    writeFileSync(tomlPath, documentedToml().replaceAll('/etc/checkout/tls/', `${dir}/`));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('connects to Temporal Cloud with an API key from the environment, TLS on, the key never logged', () => {
    const apiKey = 'tmprl-api-key-that-must-not-be-logged';
    const c = loadConfig({
      TEMPORAL_CONFIG_FILE: tomlPath,
      TEMPORAL_PROFILE: 'cloud',
      TEMPORAL_API_KEY: apiKey,
    });
    assert.equal(c.temporal.mode, 'external');
    assert.equal(c.temporal.namespace, 'payments.a1b2c');
    const options = c.temporal.connect?.connectionOptions;
    assert.equal(options?.address, 'payments.a1b2c.tmprl.cloud:7233');
    assert.equal(options?.apiKey, apiKey);
    assert.equal(options?.tls, true);
    assert.ok(!JSON.stringify(redactConfig(c)).includes(apiKey));
  });

  it('connects to Temporal Cloud with mTLS from the profile: the client certificate and key are read', () => {
    const c = loadConfig({ TEMPORAL_CONFIG_FILE: tomlPath, TEMPORAL_PROFILE: 'cloud-mtls' });
    const tls = c.temporal.connect?.connectionOptions.tls;
    assert.ok(tls && typeof tls === 'object', 'TLS options');
    assert.equal(text(tls.clientCertPair?.crt), cert);
    assert.equal(text(tls.clientCertPair?.key), key);
    assert.equal(c.temporal.connect?.connectionOptions.apiKey, undefined);
    assert.ok(!JSON.stringify(redactConfig(c)).includes('client-key'));
  });

  it('connects to a self-hosted cluster with its own CA and server name', () => {
    const c = loadConfig({ TEMPORAL_CONFIG_FILE: tomlPath, TEMPORAL_PROFILE: 'cluster' });
    assert.equal(c.temporal.namespace, 'checkout');
    const options = c.temporal.connect?.connectionOptions;
    assert.equal(options?.address, 'temporal-frontend.temporal.svc.cluster.local:7233');
    const tls = options?.tls;
    assert.ok(tls && typeof tls === 'object');
    assert.equal(text(tls.serverRootCACertificate), ca);
    assert.equal(tls.serverNameOverride, 'temporal-frontend.temporal.svc.cluster.local');
  });

  it('lets environment variables override the profile', () => {
    const c = loadConfig({
      TEMPORAL_CONFIG_FILE: tomlPath,
      TEMPORAL_PROFILE: 'cluster',
      TEMPORAL_ADDRESS: '10.0.0.7:7233',
      TEMPORAL_NAMESPACE: 'checkout-staging',
    });
    assert.equal(c.temporal.connect?.connectionOptions.address, '10.0.0.7:7233');
    assert.equal(c.temporal.namespace, 'checkout-staging');
  });

  it('reports a missing profile and an unreadable certificate with the other problems, in one error', () => {
    const missing = configErrorOf(() =>
      loadConfig({ TEMPORAL_CONFIG_FILE: tomlPath, TEMPORAL_PROFILE: 'nope', HTTP_PORT: 'x' }),
    );
    assert.equal(missing.problems.length, 2, missing.message);
    assert.ok(missing.problems.some((p) => p.startsWith('HTTP_PORT:')));
    assert.ok(
      missing.problems.some((p) => /^TEMPORAL_.*nope/.test(p)),
      missing.message,
    );

    const asDocumented = path.join(dir, 'as-documented.toml');
    writeFileSync(asDocumented, documentedToml());
    const unreadable = configErrorOf(() =>
      loadConfig({
        TEMPORAL_CONFIG_FILE: asDocumented,
        TEMPORAL_PROFILE: 'cloud-mtls',
        STRIPE_TIMEOUT_MS: '1',
      }),
    );
    assert.equal(unreadable.problems.length, 2, unreadable.message);
    assert.ok(unreadable.problems.some((p) => p.startsWith('STRIPE_TIMEOUT_MS:')));
    assert.ok(
      unreadable.problems.some(
        (p) => p.startsWith('TEMPORAL_') && p.includes('/etc/checkout/tls/client.pem'),
      ),
      unreadable.message,
    );
  });

  it('reports a TOML file that does not parse', () => {
    const broken = path.join(dir, 'broken.toml');
    writeFileSync(broken, '[profile.cloud\naddress = ');
    const err = configErrorOf(() => loadConfig({ TEMPORAL_CONFIG_FILE: broken }));
    assert.equal(err.problems.length, 1);
    assert.match(err.problems[0] ?? '', /^TEMPORAL_/);
  });

  it('reports a TOML error on an api_key line by position, without quoting the key', () => {
    const leaky = path.join(dir, 'leaky.toml');
    writeFileSync(leaky, '[profile.cloud]\naddress = "a.tmprl.cloud:7233"\napi_key = "tmprlSECRETvalue123\n');
    const err = configErrorOf(() => loadConfig({ TEMPORAL_CONFIG_FILE: leaky, TEMPORAL_PROFILE: 'cloud' }));
    assert.match(err.message, /line 3/);
    assert.ok(!err.message.includes('tmprlSECRETvalue123'), err.message);
  });
});
