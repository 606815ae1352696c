/**
 * Stripe's idempotency keys, contract rows I1–I20.
 *
 * The namespace is (account, key) (I4). A POST with a key first takes the key's lock; while it is
 * held, any other request with the key gets 409 `idempotency_key_in_use`, whatever its parameters
 * (I12, and I20: the lock is checked first). When the endpoint has started executing, the first
 * status and body are stored whatever they are (I6) and every later request with the key replays
 * them byte for byte (I8), unless it names another endpoint (I11) or other parameters, compared
 * canonically (I10, I19). Parameter-validation 400s release the lock without storing (I7); 401,
 * 429 and 409 never take it. Stored keys expire after the TTL on the emulator clock (I5).
 */
import { type Clock } from './clock';

export interface StoredResponse {
  readonly status: number;
  readonly body: string;
  /** Headers that belong to the outcome (such as `Stripe-Should-Retry`), replayed with it. */
  readonly headers: Readonly<Record<string, string>>;
  readonly originalRequestId: string;
  readonly method: string;
  readonly path: string;
  readonly canonicalParams: string;
  readonly storedAtMs: number;
}

export type IdempotencyLookup =
  | { readonly kind: 'acquired' }
  | { readonly kind: 'in_flight' }
  | { readonly kind: 'replay'; readonly stored: StoredResponse }
  | { readonly kind: 'other_endpoint'; readonly stored: StoredResponse }
  | { readonly kind: 'other_params'; readonly stored: StoredResponse };

export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

export class IdempotencyStore {
  private readonly locks = new Set<string>();
  /** Insertion order is storage order, and the clock only moves forward, so the oldest is first. */
  private readonly stored = new Map<string, StoredResponse>();

  constructor(
    private readonly clock: Clock,
    private readonly ttlSeconds: () => number,
  ) {}

  static namespace(account: string, key: string): string {
    return `${account}\u0000${key}`;
  }

  /** Looks the key up and, when it is free and unused, takes its lock. */
  begin(namespace: string, method: string, path: string, canonicalParams: string): IdempotencyLookup {
    if (this.locks.has(namespace)) return { kind: 'in_flight' };
    const stored = this.stored.get(namespace);
    if (stored && this.isExpired(stored)) {
      this.stored.delete(namespace);
    } else if (stored) {
      if (stored.method !== method || stored.path !== path) return { kind: 'other_endpoint', stored };
      if (stored.canonicalParams !== canonicalParams) return { kind: 'other_params', stored };
      return { kind: 'replay', stored };
    }
    this.locks.add(namespace);
    return { kind: 'acquired' };
  }

  /** Stores the outcome and releases the lock. */
  complete(namespace: string, response: Omit<StoredResponse, 'storedAtMs'>): void {
    this.locks.delete(namespace);
    this.stored.set(namespace, { ...response, storedAtMs: this.clock.nowMs() });
    this.pruneExpired();
  }

  /** Releases the lock without storing anything (validation errors). */
  release(namespace: string): void {
    this.locks.delete(namespace);
  }

  /** True while a request holding this key is executing. */
  isLocked(namespace: string): boolean {
    return this.locks.has(namespace);
  }

  size(): number {
    return this.stored.size;
  }

  clear(): void {
    this.locks.clear();
    this.stored.clear();
  }

  private isExpired(stored: StoredResponse): boolean {
    return this.clock.nowMs() - stored.storedAtMs >= this.ttlSeconds() * 1000;
  }

  private pruneExpired(): void {
    for (const [namespace, stored] of this.stored) {
      if (!this.isExpired(stored)) return;
      this.stored.delete(namespace);
    }
  }
}

export function idempotencyParamsMessage(key: string): string {
  return `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`;
}

export function idempotencyEndpointMessage(key: string, firstPath: string, thisPath: string): string {
  return `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${firstPath}' vs '${thisPath}'). Try using a key other than '${key}' if you meant to execute a different request.`;
}

export function idempotencyInUseMessage(key: string): string {
  return `There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): ${key}. Please try again later.`;
}
