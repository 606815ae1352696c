/** Customers: create and retrieve, with Stripe's parameter checks. */
import { type Clock } from './clock';
import { resourceMissing } from './errors';
import { type EventLog, type EventRequest } from './events';
import { newId } from './ids';
import { ParamReader } from './params';
import { type FormParams } from './router';

export interface CustomerObject {
  id: string;
  object: 'customer';
  created: number;
  description: string | null;
  email: string | null;
  livemode: false;
  metadata: Record<string, string>;
  name: string | null;
  phone: string | null;
}

export class Customers {
  private readonly customers = new Map<string, CustomerObject>();

  constructor(
    private readonly clock: Clock,
    private readonly events: EventLog,
  ) {}

  create(params: FormParams, request: EventRequest): CustomerObject {
    const p = new ParamReader(params).allowOnly(['description', 'email', 'metadata', 'name', 'phone']);
    const customer: CustomerObject = {
      id: newId('cus'),
      object: 'customer',
      created: this.clock.unix(),
      description: p.optionalString('description') ?? null,
      email: p.optionalString('email', 512) ?? null,
      livemode: false,
      metadata: p.optionalMetadata() ?? {},
      name: p.optionalString('name', 256) ?? null,
      phone: p.optionalString('phone', 20) ?? null,
    };
    this.customers.set(customer.id, customer);
    this.events.emit('customer.created', customer, request);
    return customer;
  }

  retrieve(id: string): CustomerObject {
    const customer = this.customers.get(id);
    if (!customer) throw resourceMissing('customer', id, 'id');
    return customer;
  }

  has(id: string): boolean {
    return this.customers.has(id);
  }

  clear(): void {
    this.customers.clear();
  }
}
