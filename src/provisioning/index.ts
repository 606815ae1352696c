/**
 * Provisioning: what the customer gets once Stripe says the payment succeeded.
 *
 * The workflow calls `provision` only after it has read a `succeeded` PaymentIntent, and the
 * activity may run more than once (a worker dies after the write, before Temporal hears back), so
 * every `Provisioner` must take effect at most once per checkout and return the existing
 * entitlement on a repeat. The default keeps entitlements in SQLite with uniqueness on the workflow
 * id and on the order id, so the database, not a read-then-write race, enforces "once".
 *
 * Refunds are recorded here too, so "provisioned iff paid and not refunded" can be read from one
 * place: each refund is stored once by its Stripe refund id (a repeated activity changes nothing),
 * and a refund that leaves nothing paid revokes the entitlement. A revoked entitlement stays in the
 * table with `revokedAt` set; it is never granted again.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Entitlement, ProvisionRequest } from '../workflows/definitions';

/** A refund Stripe has made for a checkout, as the provisioning store records it. */
export interface RefundRecordRequest {
  readonly workflowId: string;
  /** Stripe's refund id (`re_…`): a refund is recorded once, however often it is reported. */
  readonly refundId: string;
  readonly amount: number;
  /** True when this refund leaves nothing of the payment: the entitlement is revoked. */
  readonly full: boolean;
}

export interface Provisioner {
  /** Grants the entitlement once; a repeat returns the entitlement granted the first time. */
  provision(request: ProvisionRequest): Promise<Entitlement>;
  /**
   * Records a refund once per refund id; a full refund revokes the entitlement (once: a repeat keeps
   * the first `revokedAt`). Returns the entitlement as it now stands, undefined if none was granted.
   */
  recordRefund(refund: RefundRecordRequest): Promise<Entitlement | undefined>;
  get(workflowId: string): Promise<Entitlement | undefined>;
  list(): Promise<readonly Entitlement[]>;
  close(): Promise<void>;
}

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

export class SqliteProvisioner implements Provisioner {
  private readonly db: Database.Database;

  /** `filename` `:memory:` keeps everything in process (tests that need no second process). */
  constructor(filename: string) {
    if (filename !== ':memory:') mkdirSync(path.dirname(path.resolve(filename)), { recursive: true });
    this.db = new Database(filename);
    // WAL plus a busy timeout: a worker killed mid-write and its replacement can share the file.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS entitlements (
        entitlement_id    TEXT PRIMARY KEY,
        workflow_id       TEXT NOT NULL UNIQUE,
        order_id          TEXT NOT NULL UNIQUE,
        payment_intent_id TEXT NOT NULL,
        sku               TEXT NOT NULL,
        quantity          INTEGER NOT NULL CHECK (quantity > 0),
        created_at        TEXT NOT NULL
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
  }

  recordRefund(refund: RefundRecordRequest): Promise<Entitlement | undefined> {
    const record = this.db.transaction((r: RefundRecordRequest): Row | undefined => {
      const now = new Date().toISOString();
      this.db
        .prepare(
          `INSERT INTO refunds (refund_id, workflow_id, amount, full_refund, recorded_at)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
        )
        .run(r.refundId, r.workflowId, r.amount, r.full ? 1 : 0, now);
      if (r.full) {
        this.db
          .prepare('UPDATE entitlements SET revoked_at = ? WHERE workflow_id = ? AND revoked_at IS NULL')
          .run(now, r.workflowId);
      }
      return this.db.prepare('SELECT * FROM entitlements WHERE workflow_id = ?').get(r.workflowId) as
        Row | undefined;
    });
    const row = record.immediate(refund);
    return Promise.resolve(row ? toEntitlement(row) : undefined);
  }

  /** Refund ids recorded for a checkout, oldest first. */
  refunds(workflowId: string): Promise<readonly { refundId: string; amount: number; full: boolean }[]> {
    const rows = this.db
      .prepare(
        'SELECT refund_id, amount, full_refund FROM refunds WHERE workflow_id = ? ORDER BY recorded_at, rowid',
      )
      .all(workflowId) as { refund_id: string; amount: number; full_refund: number }[];
    return Promise.resolve(
      rows.map((r) => ({ refundId: r.refund_id, amount: r.amount, full: r.full_refund === 1 })),
    );
  }

  provision(request: ProvisionRequest): Promise<Entitlement> {
    const grant = this.db.transaction((req: ProvisionRequest): Row | undefined => {
      this.db
        .prepare(
          `INSERT INTO entitlements
             (entitlement_id, workflow_id, order_id, payment_intent_id, sku, quantity, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
        )
        .run(
          `ent_${req.workflowId}`,
          req.workflowId,
          req.orderId,
          req.paymentIntentId,
          req.item.sku,
          req.item.quantity,
          new Date().toISOString(),
        );
      return this.db.prepare('SELECT * FROM entitlements WHERE workflow_id = ?').get(req.workflowId) as
        Row | undefined;
    });
    const row = grant.immediate(request);
    if (!row) {
      return Promise.reject(
        new Error(`Order ${request.orderId} is already provisioned under another workflow id`),
      );
    }
    return Promise.resolve(toEntitlement(row));
  }

  get(workflowId: string): Promise<Entitlement | undefined> {
    const row = this.db.prepare('SELECT * FROM entitlements WHERE workflow_id = ?').get(workflowId) as
      Row | undefined;
    return Promise.resolve(row ? toEntitlement(row) : undefined);
  }

  list(): Promise<readonly Entitlement[]> {
    const rows = this.db.prepare('SELECT * FROM entitlements ORDER BY created_at').all() as Row[];
    return Promise.resolve(rows.map(toEntitlement));
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }
}
