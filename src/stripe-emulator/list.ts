/**
 * Stripe's list endpoints, once for every object that has one (`GET /v1/payment_intents`,
 * `GET /v1/refunds`): the shared parameters (`limit` 1..100, default 10; `starting_after` or
 * `ending_before`, never both; `created` exact or a range) and newest-first cursor paging, where a
 * cursor id Stripe does not know is `resource_missing`.
 */
import { StripeApiError, paramError } from './errors';
import { type ParamReader } from './params';

/** The paging parameters every list endpoint takes. */
export interface ListPaging {
  readonly limit?: number;
  readonly startingAfter?: string;
  readonly endingBefore?: string;
  readonly created?: (createdAt: number) => boolean;
}

export interface ListPage<T> {
  readonly data: T[];
  readonly has_more: boolean;
}

/** The names the caller's `allowOnly` must admit besides its own filters. */
export const LIST_PAGING_PARAMS = ['limit', 'starting_after', 'ending_before', 'created'] as const;

/** Reads `limit`, the cursors and `created` as Stripe validates them. */
export function readListPaging(p: ParamReader): ListPaging {
  const limit = p.optionalInteger('limit');
  if (limit !== undefined && (limit < 1 || limit > 100)) {
    throw paramError('Invalid limit: must be between 1 and 100', 'limit');
  }
  const startingAfter = p.optionalString('starting_after');
  const endingBefore = p.optionalString('ending_before');
  if (startingAfter !== undefined && endingBefore !== undefined) {
    throw paramError(
      'You may only specify one of these parameters: ending_before, starting_after.',
      'ending_before',
    );
  }
  const created = createdFilter(p);
  return {
    ...(limit === undefined ? {} : { limit }),
    ...(startingAfter === undefined ? {} : { startingAfter }),
    ...(endingBefore === undefined ? {} : { endingBefore }),
    ...(created === undefined ? {} : { created }),
  };
}

/** `created=<unix>` or `created[gt|gte|lt|lte]=<unix>`, as Stripe's list endpoints take it. */
function createdFilter(p: ParamReader): ((createdAt: number) => boolean) | undefined {
  if (!p.has('created')) return undefined;
  const range = ((): ParamReader | undefined => {
    try {
      return p.optionalObject('created');
    } catch {
      return undefined;
    }
  })();
  if (range === undefined) {
    const exact = p.requiredInteger('created');
    return (c) => c === exact;
  }
  range.allowOnly(['gt', 'gte', 'lt', 'lte']);
  const gt = range.optionalInteger('gt');
  const gte = range.optionalInteger('gte');
  const lt = range.optionalInteger('lt');
  const lte = range.optionalInteger('lte');
  return (c) =>
    (gt === undefined || c > gt) &&
    (gte === undefined || c >= gte) &&
    (lt === undefined || c < lt) &&
    (lte === undefined || c <= lte);
}

/**
 * One page of `newestFirst` (objects with `id` and `created`), filtered by `matches` and `created`.
 * `ending_before` gives the page just before the cursor (newer objects), still newest first.
 * `objectName` names the object in a cursor's `No such <object>` error.
 */
export function listPage<T extends { readonly id: string; readonly created: number }>(
  newestFirst: readonly T[],
  matches: (item: T) => boolean,
  paging: ListPaging,
  objectName: string,
): ListPage<T> {
  const limit = paging.limit ?? 10;
  const keep = (item: T): boolean =>
    matches(item) && (paging.created === undefined || paging.created(item.created));
  if (paging.endingBefore !== undefined) {
    const at = cursor(newestFirst, paging.endingBefore, 'ending_before', objectName);
    const newer = newestFirst.slice(0, at).filter(keep);
    return { data: newer.slice(-limit), has_more: newer.length > limit };
  }
  const from =
    paging.startingAfter === undefined
      ? 0
      : cursor(newestFirst, paging.startingAfter, 'starting_after', objectName) + 1;
  const older = newestFirst.slice(from).filter(keep);
  return { data: older.slice(0, limit), has_more: older.length > limit };
}

function cursor<T extends { readonly id: string }>(
  all: readonly T[],
  id: string,
  param: string,
  objectName: string,
): number {
  const at = all.findIndex((item) => item.id === id);
  if (at < 0) {
    throw new StripeApiError(400, 'invalid_request_error', `No such ${objectName}: '${id}'`, {
      code: 'resource_missing',
      param,
      storable: false,
    });
  }
  return at;
}
