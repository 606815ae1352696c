/**
 * The floor's activities: the same three calls the checkout's card happy path makes (create the
 * PaymentIntent, confirm it, provision), each returning at once without any I/O. The workflow that
 * calls them (`floor-workflows.ts`) is bundled on its own, so the product's bundle never carries
 * benchmark code.
 */
/** The floor workflow's type: the name of the function `floor-workflows.ts` exports. */
export const FLOOR_WORKFLOW_TYPE = 'checkoutFloor';
/** The floor with the checkout's search-attribute upserts, start options and describe. */
export const SHAPED_FLOOR_WORKFLOW_TYPE = 'checkoutShapedFloor';
/** The floor calling the checkout's own activities: its Stripe requests and SQLite grant. */
export const WORKING_FLOOR_WORKFLOW_TYPE = 'checkoutWorkingFloor';

/** Ordinary activities (through the activity task queue) or local ones (inside the workflow task). */
export type FloorActivityKind = 'activity' | 'local';

export interface FloorStep {
  readonly step: 'create' | 'confirm' | 'provision';
  readonly orderId: string;
}

export function createFloorActivities() {
  const done = (input: FloorStep): Promise<FloorStep> => Promise.resolve(input);
  return {
    floorCreatePaymentIntent: done,
    floorConfirmPaymentIntent: done,
    floorProvision: done,
  };
}

export type FloorActivities = ReturnType<typeof createFloorActivities>;
