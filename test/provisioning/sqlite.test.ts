import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteProvisioner } from '../../src/provisioning';

describe('SqliteProvisioner', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'provisioning-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const request = {
    workflowId: 'checkout-o1',
    orderId: 'o1',
    paymentIntentId: 'pi_1',
    item: { sku: 'course-101', quantity: 2 },
  };

  it('grants once and returns the first entitlement on every repeat', async () => {
    const p = new SqliteProvisioner(path.join(dir, 'p.sqlite'));
    const first = await p.provision(request);
    const again = await p.provision({ ...request, paymentIntentId: 'pi_other' });
    assert.deepEqual(again, first);
    assert.equal(first.paymentIntentId, 'pi_1');
    assert.equal((await p.list()).length, 1);
    await p.close();
  });

  it('keeps the guarantee across two processes sharing the file (a restarted worker)', async () => {
    const file = path.join(dir, 'shared.sqlite');
    const a = new SqliteProvisioner(file);
    const b = new SqliteProvisioner(file);
    const [x, y] = await Promise.all([a.provision(request), b.provision(request)]);
    assert.deepEqual(x, y);
    assert.equal((await a.list()).length, 1);
    await a.close();
    await b.close();
  });

  it('refuses a second workflow id for an order that is already provisioned', async () => {
    const p = new SqliteProvisioner(':memory:');
    await p.provision(request);
    await assert.rejects(p.provision({ ...request, workflowId: 'checkout-other' }), /already provisioned/);
    assert.equal((await p.list()).length, 1);
    await p.close();
  });
});
