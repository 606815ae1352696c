/**
 * Provisioning in PostgreSQL (`DATABASE_URL`), through `pg`'s pool: the same contract as SQLite,
 * enforced by the database so any number of workers on any number of machines grant once.
 *
 * - A grant is `INSERT … ON CONFLICT DO NOTHING` (primary key, unique workflow id, unique order id),
 *   then an `UPDATE` that revokes the row if a full refund of the checkout is already recorded, then
 *   a `SELECT` of the row by workflow id, in one transaction. Two concurrent grants for one checkout
 *   take turns on a per-checkout advisory lock: the second inserts nothing and reads the first one's
 *   row.
 * - A refund is recorded once by its refund id (primary key), and a full refund sets `revoked_at`
 *   only where it is still null, all in one transaction under the same per-checkout lock: a repeat,
 *   or two racing reports of the same refund, leave the first `revoked_at` alone, and a grant racing
 *   a full refund either is revoked by it or sees it and revokes itself.
 * - The schema is created on first use with `CREATE TABLE IF NOT EXISTS` under a transaction-scoped
 *   advisory lock, so workers starting together do not trip over each other's DDL. A failure to
 *   create it (the database is down) is not remembered: the next call tries again.
 * - Timestamps come from the database clock, one clock for every worker.
 *
 * Errors from `pg` (connection refused, timeouts) reach the activity as they are and are retried
 * there with the same workflow id, which the constraints make safe. `close()` ends the pool.
 */
import { Pool, type PoolClient } from 'pg';
import type { Entitlement, ProvisionRequest } from '../workflows/definitions';
import type { Provisioner, RecordedRefund, RefundRecordRequest } from './index';

export interface PostgresProvisionerOptions {
  /** A `postgres://` or `postgresql://` URL (libpq-style query parameters work, e.g. `sslmode`). */
  readonly connectionString: string;
  /** Most connections the pool opens. Default 10. */
  readonly maxConnections?: number;
}

/** Keeps a query from outliving the activity's 30 s start-to-close (a lock held by a stuck peer). */
const STATEMENT_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** Key of the advisory lock taken while creating the schema ("prov" in ASCII). */
const SCHEMA_LOCK_KEY = 0x70726f76;

const SCHEMA_SQL = `
  CREATE TABLE IF NOT EXISTS checkout_entitlements (
    entitlement_id    TEXT PRIMARY KEY,
    workflow_id       TEXT NOT NULL UNIQUE,
    order_id          TEXT NOT NULL UNIQUE,
    payment_intent_id TEXT NOT NULL,
    sku               TEXT NOT NULL,
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at        TIMESTAMPTZ
  );
  CREATE TABLE IF NOT EXISTS checkout_refunds (
    refund_id   TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    full_refund BOOLEAN NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    seq         BIGINT GENERATED ALWAYS AS IDENTITY
  );
  CREATE INDEX IF NOT EXISTS checkout_refunds_by_workflow ON checkout_refunds (workflow_id, seq);
`;

/**
 * First key of the per-checkout advisory lock a grant and a refund record take ("ckot" in ASCII);
 * the second is the workflow id's hash. Two-key locks are a separate space from the schema lock's.
 */
const CHECKOUT_LOCK_CLASS = 0x636b6f74;

/**
 * Serializes a grant and a refund record of one checkout until the transaction ends: without it, a
 * grant committing between a full refund's `UPDATE` (no row yet) and its commit (the grant's
 * statement cannot see the refund) would stand active after the refund.
 */
async function lockCheckout(client: PoolClient, workflowId: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [
    CHECKOUT_LOCK_CLASS,
    workflowId,
  ]);
}

const ENTITLEMENT_COLUMNS =
  'entitlement_id, workflow_id, order_id, payment_intent_id, sku, quantity, created_at, revoked_at';

interface Row {
  entitlement_id: string;
  workflow_id: string;
  order_id: string;
  payment_intent_id: string;
  sku: string;
  quantity: number;
  created_at: Date;
  revoked_at: Date | null;
}

function toEntitlement(r: Row): Entitlement {
  return {
    entitlementId: r.entitlement_id,
    workflowId: r.workflow_id,
    orderId: r.order_id,
    paymentIntentId: r.payment_intent_id,
    sku: r.sku,
    quantity: r.quantity,
    createdAt: r.created_at.toISOString(),
    ...(r.revoked_at === null ? {} : { revokedAt: r.revoked_at.toISOString() }),
  };
}

/** `host:port/database` of a PostgreSQL URL, for logs: never the user or the password. */
export function describePostgresUrl(connectionString: string): string {
  try {
    const u = new URL(connectionString);
    const host = u.hostname || u.searchParams.get('host') || 'localhost';
    return `${host}:${u.port || '5432'}${u.pathname.length > 1 ? u.pathname : '/'}`;
  } catch {
    return '(DATABASE_URL)';
  }
}

export class PostgresProvisioner implements Provisioner {
  private readonly pool: Pool;
  private schema: Promise<void> | undefined;
  private closed: Promise<void> | undefined;

  constructor(options: PostgresProvisionerOptions) {
    this.pool = new Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      statement_timeout: STATEMENT_TIMEOUT_MS,
    });
    // An idle connection the server dropped (restart, failover) is discarded by the pool; the next
    // query opens a new one. Without a listener the 'error' event would crash the worker.
    this.pool.on('error', () => {});
  }

  async provision(request: ProvisionRequest): Promise<Entitlement> {
    await this.ensureSchema();
    const row = await this.transaction(async (client) => {
      await lockCheckout(client, request.workflowId);
      await client.query(
        `INSERT INTO checkout_entitlements
           (entitlement_id, workflow_id, order_id, payment_intent_id, sku, quantity)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING`,
        [
          `ent_${request.workflowId}`,
          request.workflowId,
          request.orderId,
          request.paymentIntentId,
          request.item.sku,
          request.item.quantity,
        ],
      );
      // A grant after a recorded full refund (a late answer, an attempt past its timeout) is born
      // revoked: the refund found no row to revoke.
      await client.query(
        `UPDATE checkout_entitlements SET revoked_at = now()
         WHERE workflow_id = $1 AND revoked_at IS NULL
           AND EXISTS (SELECT 1 FROM checkout_refunds WHERE workflow_id = $1 AND full_refund)`,
        [request.workflowId],
      );
      return this.selectOne(client, request.workflowId);
    });
    if (!row) {
      throw new Error(`Order ${request.orderId} is already provisioned under another workflow id`);
    }
    return toEntitlement(row);
  }

  async recordRefund(refund: RefundRecordRequest): Promise<Entitlement | undefined> {
    await this.ensureSchema();
    const row = await this.transaction(async (client) => {
      await lockCheckout(client, refund.workflowId);
      await client.query(
        `INSERT INTO checkout_refunds (refund_id, workflow_id, amount, full_refund)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (refund_id) DO NOTHING`,
        [refund.refundId, refund.workflowId, refund.amount, refund.full],
      );
      if (refund.full) {
        await client.query(
          'UPDATE checkout_entitlements SET revoked_at = now() WHERE workflow_id = $1 AND revoked_at IS NULL',
          [refund.workflowId],
        );
      }
      return this.selectOne(client, refund.workflowId);
    });
    return row ? toEntitlement(row) : undefined;
  }

  /** Refunds recorded for a checkout, oldest first. */
  async refunds(workflowId: string): Promise<readonly RecordedRefund[]> {
    await this.ensureSchema();
    const res = await this.pool.query<{ refund_id: string; amount: string; full_refund: boolean }>(
      'SELECT refund_id, amount, full_refund FROM checkout_refunds WHERE workflow_id = $1 ORDER BY seq',
      [workflowId],
    );
    // BIGINT arrives as a string; Stripe amounts are far below 2^53.
    return res.rows.map((r) => ({ refundId: r.refund_id, amount: Number(r.amount), full: r.full_refund }));
  }

  async get(workflowId: string): Promise<Entitlement | undefined> {
    await this.ensureSchema();
    const row = await this.selectOne(this.pool, workflowId);
    return row ? toEntitlement(row) : undefined;
  }

  async list(): Promise<readonly Entitlement[]> {
    await this.ensureSchema();
    const res = await this.pool.query<Row>(
      `SELECT ${ENTITLEMENT_COLUMNS} FROM checkout_entitlements ORDER BY created_at, workflow_id`,
    );
    return res.rows.map(toEntitlement);
  }

  close(): Promise<void> {
    this.closed ??= this.pool.end();
    return this.closed;
  }

  private async selectOne(db: Pool | PoolClient, workflowId: string): Promise<Row | undefined> {
    const res = await db.query<Row>(
      `SELECT ${ENTITLEMENT_COLUMNS} FROM checkout_entitlements WHERE workflow_id = $1`,
      [workflowId],
    );
    return res.rows[0];
  }

  private ensureSchema(): Promise<void> {
    this.schema ??= this.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
      await client.query(SCHEMA_SQL);
    }).catch((err: unknown) => {
      this.schema = undefined;
      throw err;
    });
    return this.schema;
  }

  private async transaction<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackError) {
        // The connection itself is gone: do not hand it back to the pool.
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }
}
