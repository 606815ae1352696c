/**
 * The emulator's event log. Every state change of an emulated object is recorded here as a Stripe
 * `event` object (`evt_…`, `type`, `data.object` snapshot, `request: { id, idempotency_key }`), served
 * by `GET /v1/events` and pushed to subscribers (webhook delivery subscribes).
 *
 * `emit` snapshots the object it is given (a structured clone), so later changes to the live object
 * never leak into an event already recorded. A subscriber that throws is isolated: the error is
 * reported through `onListenerError` and the other subscribers and the API response are unaffected.
 */
import { type Clock } from './clock';
import { newId } from './ids';

export const STRIPE_API_VERSION = '2026-10-28.endive';

/** The request that caused an event; both null for changes the emulator makes on its own (settlement). */
export interface EventRequest {
  readonly id: string | null;
  readonly idempotency_key: string | null;
}

export const NO_REQUEST: EventRequest = { id: null, idempotency_key: null };

export interface StripeEvent {
  readonly id: string;
  readonly object: 'event';
  readonly api_version: string;
  readonly created: number;
  readonly data: { readonly object: Record<string, unknown> };
  readonly livemode: false;
  readonly pending_webhooks: number;
  readonly request: EventRequest;
  readonly type: string;
}

export interface EventListOptions {
  /** Exact type, or a prefix wildcard such as `payment_intent.*`. */
  readonly type?: string;
  /** 1 to 100; default 10. */
  readonly limit?: number;
  /** An event id: return events older than it (the list is newest first). */
  readonly starting_after?: string;
}

export interface EventListPage {
  readonly data: StripeEvent[];
  readonly has_more: boolean;
}

export type EventListener = (event: StripeEvent) => void;

export class EventLog {
  private readonly events: StripeEvent[] = [];
  private readonly byId = new Map<string, number>();
  private readonly listeners = new Set<EventListener>();

  constructor(
    private readonly clock: Clock,
    private readonly onListenerError: (error: unknown) => void = () => undefined,
  ) {}

  /** Records an event about `object` (snapshotted now) and notifies every subscriber. */
  emit(type: string, object: object, request: EventRequest = NO_REQUEST): StripeEvent {
    const event: StripeEvent = {
      id: newId('evt'),
      object: 'event',
      api_version: STRIPE_API_VERSION,
      created: this.clock.unix(),
      data: { object: structuredClone(object) as Record<string, unknown> },
      livemode: false,
      pending_webhooks: this.listeners.size > 0 ? 1 : 0,
      request: { id: request.id, idempotency_key: request.idempotency_key },
      type,
    };
    this.byId.set(event.id, this.events.length);
    this.events.push(event);
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.onListenerError(error);
      }
    }
    return event;
  }

  get(id: string): StripeEvent | undefined {
    const index = this.byId.get(id);
    return index === undefined ? undefined : this.events[index];
  }

  /** Newest first, like Stripe's list endpoints. */
  list(options: EventListOptions = {}): EventListPage {
    const limit = options.limit ?? 10;
    const matches = typeMatcher(options.type);
    let start = this.events.length - 1;
    if (options.starting_after !== undefined) {
      const index = this.byId.get(options.starting_after);
      start = index === undefined ? -1 : index - 1;
    }
    const data: StripeEvent[] = [];
    let index = start;
    for (; index >= 0 && data.length < limit; index--) {
      const event = this.events[index];
      if (event && matches(event.type)) data.push(event);
    }
    let hasMore = false;
    for (; index >= 0; index--) {
      const event = this.events[index];
      if (event && matches(event.type)) {
        hasMore = true;
        break;
      }
    }
    return { data, has_more: hasMore };
  }

  /** All events in emission order (oldest first). */
  all(): readonly StripeEvent[] {
    return this.events;
  }

  /** Calls `listener` for every event emitted from now on; returns the unsubscribe function. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Forgets every recorded event (the emulator's reset); subscribers stay subscribed. */
  clear(): void {
    this.events.length = 0;
    this.byId.clear();
  }
}

function typeMatcher(type: string | undefined): (candidate: string) => boolean {
  if (type === undefined) return () => true;
  if (type.endsWith('*')) {
    const prefix = type.slice(0, -1);
    return (candidate) => candidate.startsWith(prefix);
  }
  return (candidate) => candidate === type;
}
