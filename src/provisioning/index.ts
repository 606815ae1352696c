/**
 * Provisioning: what the customer gets once Stripe says the payment succeeded.
 *
 * The workflow calls `provision` only after it has read a `succeeded` PaymentIntent, and the
 * activity may run more than once (a worker dies after the write, before Temporal hears back), so
 * every `Provisioner` must take effect at most once per checkout and return the existing
 * entitlement on a repeat. The stores enforce "once" with uniqueness on the workflow id and on the
 * order id, in the database rather than by a read-then-write race; the HTTP provisioner hands the
 * same guarantee to the user's endpoint through an `Idempotency-Key` equal to the workflow id.
 *
 * Refunds are recorded here too, so "provisioned iff paid and not refunded" can be read from one
 * place: each refund is recorded once by its Stripe refund id (a repeated activity changes
 * nothing), and a refund that leaves nothing paid revokes the entitlement once. A revoked
 * entitlement is kept with `revokedAt` set; it is never granted again.
 *
 * Backends, chosen by `createProvisioner` from configuration (docs/provisioning.md):
 * - SQLite (default): one file, `PROVISIONING_SQLITE_PATH` (./sqlite.ts);
 * - PostgreSQL: `DATABASE_URL` (./postgres.ts);
 * - HTTP: the user's own endpoint, `PROVISIONING_HTTP_URL` (./http.ts).
 * Backends throw `ProvisioningError` subclasses (./errors.ts) where they know whether a retry can
 * help; anything else is treated as retryable by the activity.
 */
import type { ProvisioningConfig } from '../config';
import type { Entitlement, ProvisionRequest } from '../workflows/definitions';
import { HttpProvisioner } from './http';
import { PostgresProvisioner, describePostgresUrl } from './postgres';
import { SqliteProvisioner } from './sqlite';

/** A refund Stripe has made for a checkout, as the provisioning store records it. */
export interface RefundRecordRequest {
  readonly workflowId: string;
  /** Stripe's refund id (`re_…`): a refund is recorded once, however often it is reported. */
  readonly refundId: string;
  readonly amount: number;
  /** True when this refund leaves nothing of the payment: the entitlement is revoked. */
  readonly full: boolean;
}

/** A refund as a store reads it back. */
export interface RecordedRefund {
  readonly refundId: string;
  readonly amount: number;
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

/** The provisioner the configuration asks for. Opening is lazy for PostgreSQL and HTTP. */
export function createProvisioner(config: ProvisioningConfig): Provisioner {
  switch (config.backend) {
    case 'postgres':
      if (config.databaseUrl === undefined)
        throw new Error('provisioning backend postgres needs DATABASE_URL');
      return new PostgresProvisioner({ connectionString: config.databaseUrl });
    case 'http':
      if (config.http === undefined) throw new Error('provisioning backend http needs PROVISIONING_HTTP_URL');
      return new HttpProvisioner(config.http);
    case 'sqlite':
      return new SqliteProvisioner(config.sqlitePath);
  }
}

/** One line for logs saying where entitlements go; never a password, token or query string. */
export function describeProvisioning(config: ProvisioningConfig): string {
  switch (config.backend) {
    case 'postgres':
      return `PostgreSQL at ${config.databaseUrl === undefined ? '(unset)' : describePostgresUrl(config.databaseUrl)}`;
    case 'http': {
      if (config.http === undefined) return 'HTTP endpoint (unset)';
      const u = new URL(config.http.url);
      return `HTTP endpoint ${u.origin}${u.pathname}`;
    }
    case 'sqlite':
      return `SQLite in ${config.sqlitePath}`;
  }
}

export {
  ProvisioningError,
  ProvisioningRejectedError,
  ProvisioningResponseError,
  ProvisioningUnavailableError,
} from './errors';
export {
  HttpProvisioner,
  provisionIdempotencyKey,
  refundIdempotencyKey,
  type HttpProvisionerOptions,
} from './http';
export { PostgresProvisioner, type PostgresProvisionerOptions } from './postgres';
export { SqliteProvisioner } from './sqlite';
