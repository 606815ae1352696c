import assert from 'node:assert/strict';
import { Client, Connection } from '@temporalio/client';
import { type FastifyInstance } from 'fastify';
import { buildHttpIntake } from '../../src/http/server';
import { ORDER_ID_MAX_LENGTH } from '../../src/workflows/definitions';
import { testTemporal } from '../support/temporal';

interface ErrorJson {
  error: { code: string; message: string };
}

describe('HTTP intake: order ids in the path', function () {
  this.timeout(60_000);
  let connection: Connection;
  let app: FastifyInstance;

  before(async function () {
    this.timeout(180_000);
    const server = await testTemporal();
    connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection, namespace: server.namespace });
    app = buildHttpIntake({ client, taskQueue: 'unused', webhookSecrets: [] });
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await connection?.close();
  });

  it('reaches every order route with an order id of up to the longest valid length', async () => {
    // Valid ids of 101 to 200 characters used to be refused by the router with a 414.
    const orderId = `order-${'x'.repeat(ORDER_ID_MAX_LENGTH - 6)}`;
    assert.equal(orderId.length, ORDER_ID_MAX_LENGTH);
    const status = await app.inject({ method: 'GET', url: `/v1/checkouts/${orderId}` });
    assert.equal(status.statusCode, 404, status.body);
    assert.equal(status.json<ErrorJson>().error.code, 'not_found');
    const cancel = await app.inject({
      method: 'POST',
      url: `/v1/checkouts/${orderId}/cancel`,
      payload: { actor: 'ops', reason: 'customer asked' },
    });
    assert.equal(cancel.statusCode, 404, cancel.body);
    assert.equal(cancel.json<ErrorJson>().error.code, 'not_found');
  });
});
