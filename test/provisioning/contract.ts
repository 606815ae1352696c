/**
 * The provisioning contract every backend meets (src/provisioning/index.ts), as one suite run
 * against SQLite, PostgreSQL and the HTTP provisioner. Each test uses ids of its own, so a shared
 * store (a DATABASE_URL server, one endpoint) is fine; lists are filtered to those ids.
 */
import assert from 'node:assert/strict';
import type { Provisioner, RecordedRefund } from '../../src/provisioning';
import type { ProvisionRequest } from '../../src/workflows/definitions';
import { uniqueName } from '../support/temporal';

export interface ContractBackend {
  /** A provisioner on the backend's shared store; several may be open at once (two workers). */
  open(): Promise<Provisioner>;
  /** The refunds the store holds for a checkout, oldest first (read past the provisioner). */
  refundsOf(workflowId: string): Promise<readonly RecordedRefund[]>;
}

function requestFor(title: string): ProvisionRequest {
  const orderId = uniqueName(title);
  return {
    workflowId: `checkout-${orderId}`,
    orderId,
    paymentIntentId: `pi_${orderId.replace(/-/g, '')}`.slice(0, 60),
    item: { sku: 'course-101', quantity: 2 },
  };
}

/** Registers the contract's tests; `backend()` is read when the tests run (after `before`). */
export function provisionerContract(backend: () => ContractBackend): void {
  describe('the provisioning contract', () => {
    const opened: Provisioner[] = [];
    async function open(): Promise<Provisioner> {
      const p = await backend().open();
      opened.push(p);
      return p;
    }
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((p) => p.close()));
    });

    it('grants once and returns the first entitlement on every repeat', async function () {
      const p = await open();
      const request = requestFor(this.test?.title ?? 'grant');
      const first = await p.provision(request);
      assert.equal(first.workflowId, request.workflowId);
      assert.equal(first.orderId, request.orderId);
      assert.equal(first.paymentIntentId, request.paymentIntentId);
      assert.equal(first.sku, 'course-101');
      assert.equal(first.quantity, 2);
      assert.equal(first.revokedAt, undefined);
      assert.ok(!Number.isNaN(Date.parse(first.createdAt)));
      assert.deepEqual(await p.provision(request), first);
      assert.deepEqual(await p.provision(request), first);
      const mine = (await p.list()).filter((e) => e.orderId === request.orderId);
      assert.deepEqual(mine, [first]);
    });

    it('grants once when the same checkout is provisioned concurrently from two workers', async function () {
      const [a, b] = [await open(), await open()];
      const request = requestFor(this.test?.title ?? 'concurrent');
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).provision(request)),
      );
      for (const r of results) assert.deepEqual(r, results[0]);
      assert.equal((await a.list()).filter((e) => e.orderId === request.orderId).length, 1);
    });

    it('reads a granted entitlement back by workflow id and lists every grant', async function () {
      const p = await open();
      const one = requestFor(`one ${this.test?.title ?? 'get'}`);
      const two = requestFor(`two ${this.test?.title ?? 'get'}`);
      assert.equal(await p.get(one.workflowId), undefined);
      const first = await p.provision(one);
      const second = await p.provision(two);
      assert.deepEqual(await p.get(one.workflowId), first);
      assert.deepEqual(await p.get(two.workflowId), second);
      const listed = (await p.list()).filter((e) => e.orderId === one.orderId || e.orderId === two.orderId);
      assert.deepEqual(
        [...listed].sort((x, y) => x.orderId.localeCompare(y.orderId)),
        [first, second].sort((x, y) => x.orderId.localeCompare(y.orderId)),
      );
    });

    it('records a refund once however often it is reported, and a partial refund revokes nothing', async function () {
      const p = await open();
      const request = requestFor(this.test?.title ?? 'refund once');
      const granted = await p.provision(request);
      const refund = { workflowId: request.workflowId, refundId: 're_partial1', amount: 100, full: false };
      const after = await p.recordRefund(refund);
      assert.deepEqual(after, granted);
      assert.deepEqual(await p.recordRefund(refund), granted);
      await Promise.all([p.recordRefund(refund), p.recordRefund(refund)]);
      assert.deepEqual(await backend().refundsOf(request.workflowId), [
        { refundId: 're_partial1', amount: 100, full: false },
      ]);
      assert.equal((await p.get(request.workflowId))?.revokedAt, undefined);
    });

    it('revokes once on a full refund: repeats keep the first revokedAt and a later grant does not re-grant', async function () {
      const [a, b] = [await open(), await open()];
      const request = requestFor(this.test?.title ?? 'revoke');
      await a.provision(request);
      await a.recordRefund({
        workflowId: request.workflowId,
        refundId: 're_first',
        amount: 100,
        full: false,
      });
      const full = { workflowId: request.workflowId, refundId: 're_rest', amount: 4_100, full: true };
      const [x, y] = await Promise.all([a.recordRefund(full), b.recordRefund(full)]);
      assert.ok(x?.revokedAt);
      assert.equal(y?.revokedAt, x.revokedAt);
      const repeat = await b.recordRefund(full);
      assert.equal(repeat?.revokedAt, x.revokedAt);
      assert.equal((await a.get(request.workflowId))?.revokedAt, x.revokedAt);
      // A provision activity repeated after the refund returns the revoked entitlement.
      assert.equal((await b.provision(request)).revokedAt, x.revokedAt);
      assert.deepEqual(await backend().refundsOf(request.workflowId), [
        { refundId: 're_first', amount: 100, full: false },
        { refundId: 're_rest', amount: 4_100, full: true },
      ]);
      assert.equal((await a.list()).filter((e) => e.orderId === request.orderId).length, 1);
    });

    it('grants revoked after a full refund was recorded first (a late grant never stands)', async function () {
      const [a, b] = [await open(), await open()];
      const request = requestFor(this.test?.title ?? 'late grant');
      const full = { workflowId: request.workflowId, refundId: 're_before', amount: 4_200, full: true };
      assert.equal(await a.recordRefund(full), undefined);
      const late = await b.provision(request);
      assert.equal(late.workflowId, request.workflowId);
      assert.ok(late.revokedAt, 'a grant after a full refund must come back revoked');
      assert.deepEqual(await a.get(request.workflowId), late);
      // Repeats keep the first revokedAt; reporting the refund again changes nothing.
      assert.deepEqual(await a.provision(request), late);
      assert.deepEqual(await b.recordRefund(full), late);
    });

    it('never leaves a grant active when it races a full refund of the same checkout', async function () {
      const [a, b] = [await open(), await open()];
      for (let i = 0; i < 5; i++) {
        const request = requestFor(`${i} ${this.test?.title ?? 'race'}`);
        const full = { workflowId: request.workflowId, refundId: `re_race${i}`, amount: 4_200, full: true };
        const [granted] = await Promise.all([a.provision(request), b.recordRefund(full)]);
        const now = await a.get(request.workflowId);
        assert.ok(now?.revokedAt, `race ${i}: the entitlement stands after a full refund`);
        assert.equal(granted.entitlementId, now.entitlementId);
      }
    });

    it('records a refund for a checkout that was never provisioned without granting anything', async function () {
      const p = await open();
      const request = requestFor(this.test?.title ?? 'never');
      const refund = { workflowId: request.workflowId, refundId: 're_orphan', amount: 5, full: true };
      assert.equal(await p.recordRefund(refund), undefined);
      assert.equal(await p.get(request.workflowId), undefined);
      assert.equal((await p.list()).filter((e) => e.orderId === request.orderId).length, 0);
      assert.equal((await backend().refundsOf(request.workflowId)).length, 1);
    });
  });
}
