/**
 * A hosted checkout's terms: what makes two starts of one order the same purchase. The client keeps
 * them in the start's memo (compared when a start finds the order's checkout already there) and sends
 * them with the `checkoutSession` update, whose validator compares them with the running checkout's
 * own input. The validator is what holds across intake processes: two first starts racing with other
 * terms both reach the one run, and the one whose terms differ is refused there, naming the fields.
 *
 * The return URLs are not terms: a caller may move its shop's pages without it being another
 * purchase. Payment method types are compared as a set (the default is `['card']`), options by
 * value as given.
 */
import type { HostedCheckoutInput } from './definitions';

export interface HostedCheckoutTerms {
  readonly amount: number;
  readonly currency: string;
  /** Empty without a customer (Stripe Checkout collects the email itself), as in the card terms. */
  readonly customerId: string;
  readonly sku: string;
  readonly quantity: number;
  readonly paymentMethodTypes: readonly string[];
  readonly options: Readonly<Record<string, number>>;
}

/** The `ApplicationFailure` type of a `checkoutSession` update refused for other terms. */
export const HOSTED_TERMS_CONFLICT = 'HostedCheckoutTermsConflict';

export function hostedTermsOf(input: HostedCheckoutInput): HostedCheckoutTerms {
  const options: Record<string, number> = {};
  for (const [k, v] of Object.entries(input.options ?? {})) {
    if (typeof v === 'number') options[k] = v;
  }
  return {
    amount: input.amount,
    currency: input.currency,
    customerId: input.customerId ?? '',
    sku: input.provision.sku,
    quantity: input.provision.quantity,
    paymentMethodTypes: [...(input.paymentMethodTypes ?? ['card'])].sort(),
    options,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sameTypes(ours: readonly string[], theirs: unknown): boolean {
  if (!Array.isArray(theirs)) return false;
  const sorted = theirs.map(String).sort();
  return sorted.length === ours.length && sorted.every((t, i) => t === ours[i]);
}

/**
 * The fields in which `theirs` (another start's terms, or an existing checkout's memo) differ from
 * `ours`: `amount`, `currency`, `customerId`, `sku`, `quantity`, `paymentMethodTypes`,
 * `options.<name>`. A memo written before payment method types and options were terms lacks them;
 * their absence is not a difference.
 */
export function hostedTermsDifferences(ours: HostedCheckoutTerms, theirs: unknown): string[] {
  if (!isRecord(theirs)) return ['terms missing on the existing checkout'];
  const differences: string[] = [];
  for (const k of ['amount', 'currency', 'customerId', 'sku', 'quantity'] as const) {
    if (theirs[k] !== ours[k]) differences.push(k);
  }
  if ('paymentMethodTypes' in theirs && !sameTypes(ours.paymentMethodTypes, theirs.paymentMethodTypes)) {
    differences.push('paymentMethodTypes');
  }
  if ('options' in theirs) {
    const other = isRecord(theirs.options) ? theirs.options : {};
    const names = [...new Set([...Object.keys(ours.options), ...Object.keys(other)])].sort();
    for (const name of names) {
      if (other[name] !== ours.options[name]) differences.push(`options.${name}`);
    }
  }
  return differences;
}
