import assert from 'node:assert/strict';
import http from 'node:http';
import { type AddressInfo } from 'node:net';
import { type FastifyInstance } from 'fastify';
import { getRefundsStatus } from '../../src/client';
import { buildHttpIntake } from '../../src/http/server';
import { orderInput, startIntakeFixture, waitForStatus, type IntakeFixture } from './fixture';

interface ErrorJson {
  error: { code: string; message: string; fields?: { field: string; message: string }[] };
}

/** A real HTTP request: Node's own client sends each value of an array header as its own line. */
function postRaw(
  baseUrl: string,
  path: string,
  headers: http.OutgoingHttpHeaders,
  body: unknown,
): Promise<{ status: number; body: string }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${baseUrl}${path}`,
      {
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(payload)),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('HTTP intake: refund Idempotency-Key sent twice', function () {
  this.timeout(90_000);
  let f: IntakeFixture;
  let app: FastifyInstance;
  let baseUrl: string;

  before(async function () {
    this.timeout(180_000);
    f = await startIntakeFixture('http refund key twice');
    app = buildHttpIntake({ client: f.client, taskQueue: f.taskQueue, webhookSecrets: [] });
    await app.listen({ host: '127.0.0.1', port: 0 });
    baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await app?.close();
    await f?.close();
  });

  const refundsOf = (orderId: string) =>
    f.emulator.control.ledger().refunds.filter((r) => r.metadata.order_id === orderId);

  it('answers 400 naming Idempotency-Key when the header comes twice, and refunds nothing', async function () {
    const input = orderInput(f, this.test?.title ?? 'test');
    const started = await app.inject({ method: 'POST', url: '/v1/checkouts', payload: input });
    assert.equal(started.statusCode, 201, started.body);
    await waitForStatus(f, input.orderId, (s) => s.state === 'completed');
    const path = `/v1/checkouts/${input.orderId}/refund`;
    const body = { amount: 100, actor: 'ops', reason: 'one seat returned' };

    // Node joins the two lines into one value, "key-one, key-two", which is a valid key by itself.
    const twice = await postRaw(baseUrl, path, { 'Idempotency-Key': ['key-one', 'key-two'] }, body);
    assert.equal(twice.status, 400, twice.body);
    const error = (JSON.parse(twice.body) as ErrorJson).error;
    assert.equal(error.code, 'invalid_request');
    assert.deepEqual(error.fields, [
      { field: 'Idempotency-Key', message: 'sent more than once; send it once' },
    ]);
    // The same value twice is still two headers.
    const same = await postRaw(baseUrl, path, { 'idempotency-key': ['key-one', 'key-one'] }, body);
    assert.equal(same.status, 400, same.body);
    assert.equal(await getRefundsStatus(f.client, input.orderId), undefined, 'no refunds workflow started');
    assert.equal(refundsOf(input.orderId).length, 0);

    // One header with that joined value is an ordinary (if odd) key: accepted, refunded once.
    const once = await postRaw(baseUrl, path, { 'Idempotency-Key': 'key-one, key-two' }, body);
    assert.equal(once.status, 200, once.body);
    const again = await postRaw(baseUrl, path, { 'Idempotency-Key': 'key-one, key-two' }, body);
    assert.equal(again.status, 200, again.body);
    assert.deepEqual(
      refundsOf(input.orderId).map((r) => r.amount),
      [100],
    );
  });
});
