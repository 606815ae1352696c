import assert from 'node:assert/strict';
import { Client } from 'pg';
import { loadConfig } from '../../src/config';
import { PostgresProvisioner, createProvisioner } from '../../src/provisioning';
import { uniqueName } from '../support/temporal';
import { provisionerContract, type ContractBackend } from './contract';
import { startTestPostgres, type TestPostgres } from './postgres-server';

describe('PostgresProvisioner', function () {
  this.timeout(120_000);
  let pg: TestPostgres;
  let backend: ContractBackend;
  const schemas: string[] = [];

  before(async function () {
    this.timeout(180_000);
    pg = await startTestPostgres();
    const url = pg.connectionString;
    backend = {
      open: () => Promise.resolve(new PostgresProvisioner({ connectionString: url })),
      async refundsOf(workflowId) {
        const reader = new PostgresProvisioner({ connectionString: url });
        try {
          return await reader.refunds(workflowId);
        } finally {
          await reader.close();
        }
      },
    };
  });
  after(async () => {
    if (schemas.length > 0) {
      await sql(`DROP SCHEMA IF EXISTS ${schemas.join(', ')} CASCADE`).catch(() => undefined);
    }
    await pg?.stop();
  });

  async function sql(text: string): Promise<void> {
    const c = new Client({ connectionString: pg.connectionString });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  }

  /** A connection string whose search_path is a schema of this test's own (not yet created). */
  function inSchema(title: string): { schema: string; url: string } {
    const schema = `s_${uniqueName(title).replace(/-/g, '_')}`.slice(0, 60);
    schemas.push(schema);
    const url = new URL(pg.connectionString);
    url.searchParams.set('options', `-c search_path=${schema}`);
    return { schema, url: url.toString() };
  }

  provisionerContract(() => backend);

  it('fails, saying how to install PostgreSQL, when there is neither DATABASE_URL nor a server binary', async () => {
    await assert.rejects(
      startTestPostgres(undefined, '/nonexistent/postgresql'),
      /set DATABASE_URL .*bash scripts\/setup.sh --postgres.*apt-get install -y postgresql/s,
    );
  });

  it('creates its tables on first use when two workers start on an empty database at once', async function () {
    const { schema, url } = inSchema(this.test?.title ?? 'schema');
    await sql(`CREATE SCHEMA ${schema}`);
    const a = new PostgresProvisioner({ connectionString: url });
    const b = new PostgresProvisioner({ connectionString: url });
    try {
      const request = {
        workflowId: 'checkout-o1',
        orderId: 'o1',
        paymentIntentId: 'pi_1',
        item: { sku: 'course-101', quantity: 1 },
      };
      const [x, y] = await Promise.all([a.provision(request), b.provision(request)]);
      assert.deepEqual(x, y);
      assert.deepEqual(await a.list(), [x]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('tries the schema again on the next call when creating it failed', async function () {
    const { schema, url } = inSchema(this.test?.title ?? 'schema retry');
    const p = new PostgresProvisioner({ connectionString: url });
    try {
      // search_path names a schema that does not exist yet: nowhere to create the tables.
      await assert.rejects(p.list(), /no schema has been selected/);
      await sql(`CREATE SCHEMA ${schema}`);
      assert.deepEqual(await p.list(), []);
    } finally {
      await p.close();
    }
  });

  it('refuses a second workflow id for an order that is already provisioned', async function () {
    const p = await backend.open();
    try {
      const orderId = uniqueName(this.test?.title ?? 'order twice');
      const request = {
        workflowId: `checkout-${orderId}`,
        orderId,
        paymentIntentId: 'pi_1',
        item: { sku: 'course-101', quantity: 1 },
      };
      await p.provision(request);
      await assert.rejects(p.provision({ ...request, workflowId: 'checkout-other' }), /already provisioned/);
      assert.equal(await p.get('checkout-other'), undefined);
    } finally {
      await p.close();
    }
  });

  it('is what createProvisioner returns when DATABASE_URL is set, and close() may be called twice', async function () {
    const config = loadConfig({ DATABASE_URL: pg.connectionString });
    assert.equal(config.provisioning.backend, 'postgres');
    const p = createProvisioner(config.provisioning);
    assert.ok(p instanceof PostgresProvisioner);
    const orderId = uniqueName(this.test?.title ?? 'factory');
    const e = await p.provision({
      workflowId: `checkout-${orderId}`,
      orderId,
      paymentIntentId: 'pi_factory',
      item: { sku: 'course-101', quantity: 3 },
    });
    assert.equal(e.quantity, 3);
    await p.close();
    await p.close();
  });

  it('fails with the connection error when the database cannot be reached, leaving the retry to the activity', async () => {
    const p = new PostgresProvisioner({ connectionString: 'postgresql://postgres@127.0.0.1:1/postgres' });
    try {
      await assert.rejects(
        p.provision({
          workflowId: 'checkout-x',
          orderId: 'x',
          paymentIntentId: 'pi_x',
          item: { sku: 'course-101', quantity: 1 },
        }),
        /ECONNREFUSED/,
      );
    } finally {
      await p.close();
    }
  });
});
