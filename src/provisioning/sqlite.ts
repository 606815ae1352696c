/**
 * The default provisioning store: entitlements and refunds in one SQLite file (better-sqlite3).
 *
 * Uniqueness on the workflow id and on the order id is enforced by the table; a grant is
 * `INSERT … ON CONFLICT DO NOTHING` followed by a read of the row, in one immediate transaction, so
 * two processes sharing the file (a worker and its replacement, or two workers starting together)
 * still grant once. The same transaction revokes the row if a full refund is already recorded, so a
 * grant that arrives after the refund (recording takes the same lock) never stands. WAL and a busy
 * timeout let them share it. Semantics are the `Provisioner` contract in ./index.ts.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Entitlement, ProvisionRequest } from '../workflows/definitions';
import type { Provisioner, RecordedRefund, RefundRecordRequest } from './index';

interface Row {
  entitlement_id: string;
  workflow_id: string;
  order_id: string;
  payment_intent_id: string;
  sku: string;
  quantity: number;
  created_at: string;
  revoked_at: string | null;
}

function toEntitlement(r: Row): Entitlement {
  return {
    entitlementId: r.entitlement_id,
    workflowId: r.workflow_id,
    orderId: r.order_id,
    paymentIntentId: r.payment_intent_id,
    sku: r.sku,
    quantity: r.quantity,
    createdAt: r.created_at,
    ...(r.revoked_at === null ? {} : { revokedAt: r.revoked_at }),
  };
}

/** How long opening the file, and every write, waits for another process's lock. */
const BUSY_TIMEOUT_MS = 5_000;

/**
 * Puts the file in WAL mode, waiting up to the busy timeout for other processes' locks.
 *
 * WAL is a property of the file, so after the first open this is one read and takes no lock. The
 * switch itself needs the file to itself, and SQLite does not run the busy handler for it: a
 * second worker starting while the first still holds a fresh file in its first journal mode got
 * "database is locked" at once and exited before polling. So it is retried here, with a short
 * backoff, until the switch is made or another process has made it.
 */
function useWal(db: Database.Database, filename: string): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let waitMs = 5; ; waitMs = Math.min(waitMs * 2, 100)) {
    let mode: unknown;
    try {
      mode = db.pragma('journal_mode', { simple: true });
      if (mode !== 'wal') mode = db.pragma('journal_mode = WAL', { simple: true });
    } catch (err) {
      if (!(err instanceof Database.SqliteError && err.code === 'SQLITE_BUSY')) throw err;
      mode = 'locked by another process';
    }
    if (mode === 'wal') return;
    if (Date.now() >= deadline) {
      throw new Error(
        `the provisioning store ${filename} could not be switched to WAL within ${BUSY_TIMEOUT_MS} ms (journal mode: ${String(mode)})`,
      );
    }
    // Synchronous, like the rest of opening the file; this runs once, when the worker starts.
    Atomics.wait(pause, 0, 0, waitMs);
  }
}

/** The statements a provisioner runs, prepared once when it opens the file. */
function prepareStatements(db: Database.Database) {
  return {
    grant: db.prepare<[string, string, string, string, string, number, string]>(
      `INSERT INTO entitlements
         (entitlement_id, workflow_id, order_id, payment_intent_id, sku, quantity, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    ),
    byWorkflow: db.prepare<[string], Row>('SELECT * FROM entitlements WHERE workflow_id = ?'),
    all: db.prepare<[], Row>('SELECT * FROM entitlements ORDER BY created_at'),
    recordRefund: db.prepare<[string, string, number, number, string]>(
      `INSERT INTO refunds (refund_id, workflow_id, amount, full_refund, recorded_at)
       VALUES (?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    ),
    revoke: db.prepare<[string, string]>(
      'UPDATE entitlements SET revoked_at = ? WHERE workflow_id = ? AND revoked_at IS NULL',
    ),
    // A grant that lands after a full refund was recorded (a late answer, an attempt still running
    // past its timeout) is born revoked: the refund found no row to revoke.
    revokeIfRefunded: db.prepare<{ now: string; workflowId: string }>(
      `UPDATE entitlements SET revoked_at = @now
       WHERE workflow_id = @workflowId AND revoked_at IS NULL
         AND EXISTS (SELECT 1 FROM refunds WHERE workflow_id = @workflowId AND full_refund = 1)`,
    ),
    refunds: db.prepare<[string], { refund_id: string; amount: number; full_refund: number }>(
      'SELECT refund_id, amount, full_refund FROM refunds WHERE workflow_id = ? ORDER BY recorded_at, rowid',
    ),
  };
}

export class SqliteProvisioner implements Provisioner {
  private readonly db: Database.Database;
  private readonly sql: ReturnType<typeof prepareStatements>;
  /** Grant then read back, in one immediate transaction (see the file comment). */
  private readonly grant: Database.Transaction<(req: ProvisionRequest) => Row | undefined>;
  private readonly record: Database.Transaction<(r: RefundRecordRequest) => Row | undefined>;

  /** `filename` `:memory:` keeps everything in process (tests that need no second process). */
  constructor(filename: string) {
    if (filename !== ':memory:') mkdirSync(path.dirname(path.resolve(filename)), { recursive: true });
    this.db = new Database(filename);
    // WAL plus a busy timeout: a worker killed mid-write and its replacement can share the file.
    this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (filename !== ':memory:') useWal(this.db, filename);
    // A grant the worker reported is a delivery the customer paid for, so it must survive the
    // machine stopping, not only the process: every commit is synced to disk. Set here because
    // SQLite's default differs by who opened the file: the connection that switched a new file to
    // WAL kept FULL, and every later one (the next worker start) got better-sqlite3's WAL default,
    // NORMAL, where a power loss can take back the last commits. 0.2 ms per grant here.
    this.db.pragma('synchronous = FULL');
    // The schema is created, and an older file migrated, in one immediate transaction: workers
    // starting together on a fresh file would otherwise both see the column missing and both add
    // it, and the second process would die on "duplicate column name".
    this.db
      .transaction(() => {
        this.db.exec(`
          CREATE TABLE IF NOT EXISTS entitlements (
            entitlement_id    TEXT PRIMARY KEY,
            workflow_id       TEXT NOT NULL UNIQUE,
            order_id          TEXT NOT NULL UNIQUE,
            payment_intent_id TEXT NOT NULL,
            sku               TEXT NOT NULL,
            quantity          INTEGER NOT NULL CHECK (quantity > 0),
            created_at        TEXT NOT NULL,
            revoked_at        TEXT
          );
          CREATE TABLE IF NOT EXISTS refunds (
            refund_id   TEXT PRIMARY KEY,
            workflow_id TEXT NOT NULL,
            amount      INTEGER NOT NULL CHECK (amount > 0),
            full_refund INTEGER NOT NULL,
            recorded_at TEXT NOT NULL
          )`);
        // Files written before refunds existed lack the column; add it in place.
        const columns = this.db.prepare('PRAGMA table_info(entitlements)').all() as { name: string }[];
        if (!columns.some((c) => c.name === 'revoked_at')) {
          this.db.exec('ALTER TABLE entitlements ADD COLUMN revoked_at TEXT');
        }
      })
      .immediate();
    // Prepared once, after the schema is final (a statement compiled against the old columns
    // would not see `revoked_at`), so a grant does not recompile its SQL on every call.
    const sql = prepareStatements(this.db);
    this.sql = sql;
    this.grant = this.db.transaction((req: ProvisionRequest): Row | undefined => {
      const now = new Date().toISOString();
      sql.grant.run(
        `ent_${req.workflowId}`,
        req.workflowId,
        req.orderId,
        req.paymentIntentId,
        req.item.sku,
        req.item.quantity,
        now,
      );
      sql.revokeIfRefunded.run({ now, workflowId: req.workflowId });
      return sql.byWorkflow.get(req.workflowId);
    });
    this.record = this.db.transaction((r: RefundRecordRequest): Row | undefined => {
      const now = new Date().toISOString();
      sql.recordRefund.run(r.refundId, r.workflowId, r.amount, r.full ? 1 : 0, now);
      if (r.full) sql.revoke.run(now, r.workflowId);
      return sql.byWorkflow.get(r.workflowId);
    });
  }

  recordRefund(refund: RefundRecordRequest): Promise<Entitlement | undefined> {
    const row = this.record.immediate(refund);
    return Promise.resolve(row ? toEntitlement(row) : undefined);
  }

  /** Refunds recorded for a checkout, oldest first. */
  refunds(workflowId: string): Promise<readonly RecordedRefund[]> {
    const rows = this.sql.refunds.all(workflowId);
    return Promise.resolve(
      rows.map((r) => ({ refundId: r.refund_id, amount: r.amount, full: r.full_refund === 1 })),
    );
  }

  provision(request: ProvisionRequest): Promise<Entitlement> {
    const row = this.grant.immediate(request);
    if (!row) {
      return Promise.reject(
        new Error(`Order ${request.orderId} is already provisioned under another workflow id`),
      );
    }
    return Promise.resolve(toEntitlement(row));
  }

  get(workflowId: string): Promise<Entitlement | undefined> {
    const row = this.sql.byWorkflow.get(workflowId);
    return Promise.resolve(row ? toEntitlement(row) : undefined);
  }

  list(): Promise<readonly Entitlement[]> {
    return Promise.resolve(this.sql.all.all().map(toEntitlement));
  }

  /** What this connection runs with, for checks and diagnostics. */
  settings(): { readonly journalMode: string; readonly synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA' } {
    const journalMode = String(this.db.pragma('journal_mode', { simple: true }));
    const level = Number(this.db.pragma('synchronous', { simple: true }));
    const synchronous = (['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const)[level];
    if (synchronous === undefined) throw new Error(`unknown SQLite synchronous level ${level}`);
    return { journalMode, synchronous };
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }
}
