/**
 * `expand[]`: replacing an id field in a response with the object it names, for the fields the
 * emulator can resolve. The list is validated before the endpoint runs (an unknown path is a
 * parameter error, never stored); the expansion is applied to a copy of the response, so the
 * stored object is untouched.
 */
import { paramError } from './errors';
import { type FormParams } from './router';
import { type EmulatorState } from './state';

export type ExpandableKind = 'payment_intent' | 'charge' | 'refund';

type Resolver = (state: EmulatorState, id: string) => object | undefined;

const byCharge: Resolver = (state, id) => state.charges.get(id);
const byPaymentIntent: Resolver = (state, id) => {
  try {
    return state.paymentIntents.retrieve(id);
  } catch {
    return undefined;
  }
};
const byPaymentMethod: Resolver = (state, id) => state.paymentMethods.get(id)?.object;
const byCustomer: Resolver = (state, id) => {
  try {
    return state.customers.retrieve(id);
  } catch {
    return undefined;
  }
};

const EXPANDABLE: Readonly<Record<ExpandableKind, Readonly<Record<string, Resolver>>>> = {
  payment_intent: { latest_charge: byCharge, payment_method: byPaymentMethod, customer: byCustomer },
  charge: { payment_intent: byPaymentIntent, payment_method: byPaymentMethod, customer: byCustomer },
  refund: { charge: byCharge, payment_intent: byPaymentIntent },
};

/** The validated `expand` list for a response of this kind. */
export function readExpand(params: FormParams, kind: ExpandableKind): string[] {
  const value = params['expand'];
  if (value === undefined || value === '') return [];
  const paths = typeof value === 'string' ? [value] : Array.isArray(value) ? value : Object.values(value);
  const allowed = EXPANDABLE[kind];
  return paths.map((path) => {
    if (typeof path !== 'string' || !(path in allowed)) {
      throw paramError(
        `This property cannot be expanded (${typeof path === 'string' ? path : 'expand'}).`,
        'expand',
      );
    }
    return path;
  });
}

/** A shallow copy of `object` with each expanded id replaced by its object (when it resolves). */
export function applyExpand(
  state: EmulatorState,
  kind: ExpandableKind,
  object: object,
  paths: readonly string[],
): object {
  if (paths.length === 0) return object;
  const copy: Record<string, unknown> = { ...object };
  for (const path of paths) {
    const id = copy[path];
    const resolve = EXPANDABLE[kind][path];
    if (typeof id !== 'string' || !resolve) continue;
    copy[path] = resolve(state, id) ?? id;
  }
  return copy;
}
