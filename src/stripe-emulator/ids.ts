/**
 * Object and request identifiers in Stripe's shapes: a prefix and random alphanumerics
 * (`pi_3Q…`, `req_` + 14 characters). Random bytes come from one pooled buffer so the hot path
 * (several ids per PaymentIntent) does not call into the OS for each id.
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const POOL_SIZE = 4096;

let pool = randomBytes(POOL_SIZE);
let poolOffset = 0;

function randomAlphanumerics(length: number): string {
  if (poolOffset + length > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  let out = '';
  for (let i = 0; i < length; i++) {
    // 248 = 4 * 62: bytes at or above it would bias the alphabet, so they are skipped.
    let byte = pool[poolOffset++] ?? 0;
    while (byte >= 248) {
      if (poolOffset >= POOL_SIZE) {
        pool = randomBytes(POOL_SIZE);
        poolOffset = 0;
      }
      byte = pool[poolOffset++] ?? 0;
    }
    out += ALPHABET[byte % 62];
  }
  return out;
}

/** An object id such as `pi_…`, `ch_…`, `evt_…` (24 random characters, as Stripe's ids roughly are). */
export function newId(prefix: string): string {
  return `${prefix}_${randomAlphanumerics(24)}`;
}

/** A request id: `req_` followed by exactly 14 alphanumerics. */
export function newRequestId(): string {
  return `req_${randomAlphanumerics(14)}`;
}

/** A PaymentIntent client secret: `<id>_secret_<random>`. */
export function newClientSecret(objectId: string): string {
  return `${objectId}_secret_${randomAlphanumerics(25)}`;
}
