import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SqliteProvisioner } from '../../src/provisioning';
import { provisionerContract, type ContractBackend } from './contract';

describe('SqliteProvisioner', () => {
  describe('on a file shared by several provisioners', () => {
    let dir: string;
    let backend: ContractBackend;
    before(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'provisioning-contract-'));
      const file = path.join(dir, 'contract.sqlite');
      backend = {
        open: () => Promise.resolve(new SqliteProvisioner(file)),
        async refundsOf(workflowId) {
          const reader = new SqliteProvisioner(file);
          try {
            return await reader.refunds(workflowId);
          } finally {
            await reader.close();
          }
        },
      };
    });
    after(() => {
      rmSync(dir, { recursive: true, force: true });
    });
    provisionerContract(() => backend);
  });

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

  it('syncs every commit to disk on the connection that created the file and on every later one', async () => {
    const file = path.join(dir, 'durable.sqlite');
    const first = new SqliteProvisioner(file);
    const second = new SqliteProvisioner(file);
    const third = new SqliteProvisioner(file);
    try {
      // The second and third open a file already in WAL, where better-sqlite3's default is NORMAL.
      for (const p of [first, second, third]) {
        assert.deepEqual(p.settings(), { journalMode: 'wal', synchronous: 'FULL' });
      }
    } finally {
      await Promise.all([first.close(), second.close(), third.close()]);
    }
  });

  it('records each refund once and revokes the entitlement once on a full refund', async () => {
    const p = new SqliteProvisioner(':memory:');
    await p.provision(request);
    const partial = await p.recordRefund({
      workflowId: request.workflowId,
      refundId: 're_1',
      amount: 100,
      full: false,
    });
    assert.equal(partial?.revokedAt, undefined);
    const again = await p.recordRefund({
      workflowId: request.workflowId,
      refundId: 're_1',
      amount: 100,
      full: false,
    });
    assert.deepEqual(again, partial);
    const full = await p.recordRefund({
      workflowId: request.workflowId,
      refundId: 're_2',
      amount: 4_100,
      full: true,
    });
    assert.ok(full?.revokedAt);
    const repeat = await p.recordRefund({
      workflowId: request.workflowId,
      refundId: 're_2',
      amount: 4_100,
      full: true,
    });
    assert.equal(repeat?.revokedAt, full.revokedAt);
    assert.deepEqual(await p.refunds(request.workflowId), [
      { refundId: 're_1', amount: 100, full: false },
      { refundId: 're_2', amount: 4_100, full: true },
    ]);
    assert.equal((await p.get(request.workflowId))?.revokedAt, full.revokedAt);
    // A repeated provision activity after the refund does not grant again.
    assert.equal((await p.provision(request)).revokedAt, full.revokedAt);
    assert.equal((await p.list()).length, 1);
    await p.close();
  });

  it('records a refund for a checkout that was never provisioned without granting anything', async () => {
    const p = new SqliteProvisioner(':memory:');
    assert.equal(
      await p.recordRefund({ workflowId: 'checkout-none', refundId: 're_9', amount: 5, full: true }),
      undefined,
    );
    assert.equal((await p.list()).length, 0);
    assert.equal((await p.refunds('checkout-none')).length, 1);
    await p.close();
  });

  it('adds the revocation column to a file written before refunds existed', async () => {
    const file = path.join(dir, 'old.sqlite');
    const old = new Database(file);
    old.exec(`CREATE TABLE entitlements (
      entitlement_id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL UNIQUE,
      payment_intent_id TEXT NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL CHECK (quantity > 0),
      created_at TEXT NOT NULL)`);
    old.close();
    const p = new SqliteProvisioner(file);
    await p.provision(request);
    const revoked = await p.recordRefund({
      workflowId: request.workflowId,
      refundId: 're_1',
      amount: 1,
      full: true,
    });
    assert.ok(revoked?.revokedAt);
    await p.close();
  });

  /**
   * Starts a second process opening `file` (as a second worker starting at the same moment would)
   * while `first` holds its lock, commits `first` a second after the process says it is opening,
   * and returns once the process has exited, asserting that it opened the file.
   */
  async function openInSecondProcessWhileHeld(file: string, first: Database.Database): Promise<void> {
    const second = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, 'open-sqlite.ts'), file],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    second.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    second.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const exited = once(second, 'exit');
    try {
      // Commit only once the second process is opening (it then has to wait for the lock).
      while (!out.includes('opening')) {
        if (second.exitCode !== null) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      first.exec('COMMIT');
    } finally {
      first.close();
    }
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, `the second process failed to open the file: ${err}`);
    assert.match(out, /opened/);
  }

  it('lets a second process open the file while the first is still adding the revocation column', async () => {
    // Two workers starting together on one file: the first has created the tables and is adding
    // the column (its write not yet committed) when the second opens the file. The second must wait
    // for it and find the column, not add it again: "duplicate column name" killed a chaos-run worker.
    const file = path.join(dir, 'migrating.sqlite');
    const first = new Database(file);
    first.pragma('journal_mode = WAL');
    first.exec(`CREATE TABLE entitlements (
      entitlement_id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL UNIQUE,
      payment_intent_id TEXT NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL CHECK (quantity > 0),
      created_at TEXT NOT NULL);
      CREATE TABLE refunds (
      refund_id TEXT PRIMARY KEY, workflow_id TEXT NOT NULL, amount INTEGER NOT NULL CHECK (amount > 0),
      full_refund INTEGER NOT NULL, recorded_at TEXT NOT NULL)`);
    first.exec('BEGIN IMMEDIATE');
    first.exec('ALTER TABLE entitlements ADD COLUMN revoked_at TEXT');
    await openInSecondProcessWhileHeld(file, first);
    const p = new SqliteProvisioner(file);
    await p.provision(request);
    assert.ok((await p.recordRefund({ ...request, refundId: 're_1', amount: 1, full: true }))?.revokedAt);
    await p.close();
  });

  it('lets a second process open a new file while the first still holds it in its first journal mode', async () => {
    // Two workers starting together on a fresh file: the first has it open, not yet in WAL, inside
    // a write, when the second switches the file to WAL. SQLite does not wait on the busy timeout
    // for that switch; it answers "database is locked" at once, which killed a chaos-run worker
    // before it polled. The second must wait for the lock and open the file.
    const file = path.join(dir, 'fresh.sqlite');
    const first = new Database(file);
    assert.equal(first.pragma('journal_mode', { simple: true }), 'delete');
    first.exec('BEGIN IMMEDIATE');
    first.exec('CREATE TABLE warming (x INTEGER)');
    await openInSecondProcessWhileHeld(file, first);
    const p = new SqliteProvisioner(file);
    await p.provision(request);
    assert.equal((await p.list()).length, 1);
    await p.close();
    const check = new Database(file, { readonly: true });
    assert.equal(check.pragma('journal_mode', { simple: true }), 'wal');
    check.close();
  });

  it('fails naming the file when another connection holds a new file past the busy timeout', function () {
    this.timeout(30_000);
    const file = path.join(dir, 'held.sqlite');
    const first = new Database(file);
    first.exec('BEGIN IMMEDIATE');
    first.exec('CREATE TABLE warming (x INTEGER)');
    try {
      assert.throws(
        () => new SqliteProvisioner(file),
        (err: Error) =>
          err.message.includes(file) && /could not be switched to WAL within 5000 ms/.test(err.message),
      );
    } finally {
      first.exec('ROLLBACK');
      first.close();
    }
  });

  it('refuses a second workflow id for an order that is already provisioned', async () => {
    const p = new SqliteProvisioner(':memory:');
    await p.provision(request);
    await assert.rejects(p.provision({ ...request, workflowId: 'checkout-other' }), /already provisioned/);
    assert.equal((await p.list()).length, 1);
    await p.close();
  });
});
