import assert from 'node:assert/strict';
import {
  checkInvariants,
  countByKind,
  finalStateOf,
  type ChaosSnapshot,
  type LedgerPaymentIntentSnapshot,
  type WorkflowSnapshot,
} from '../../src/chaos/checker';

function pi(
  id: string,
  orderId: string,
  over: Partial<LedgerPaymentIntentSnapshot> = {},
): LedgerPaymentIntentSnapshot {
  return {
    id,
    status: 'succeeded',
    amount: 1000,
    currency: 'usd',
    metadata: { order_id: orderId, checkout_workflow_id: `checkout-${orderId}`, generation: '1' },
    successful_charges: 1,
    amount_refunded: 0,
    ...over,
  };
}

function wf(orderId: string, over: Partial<WorkflowSnapshot> = {}): WorkflowSnapshot {
  return {
    orderId,
    workflowId: `checkout-${orderId}`,
    executionStatus: 'COMPLETED',
    state: 'completed',
    needsAttentionReason: undefined,
    paymentIntentIds: [`pi_${orderId}`],
    amount: 1000,
    ...over,
  };
}

/** One order paid once, provisioned once, finished: the snapshot every mutation below starts from. */
function healthy(): ChaosSnapshot {
  return {
    orderIds: ['o1'],
    ledger: { payment_intents: [pi('pi_o1', 'o1')] },
    entitlements: [{ workflowId: 'checkout-o1', orderId: 'o1', paymentIntentId: 'pi_o1' }],
    workflows: [wf('o1')],
  };
}

function kinds(snapshot: ChaosSnapshot): string[] {
  return checkInvariants(snapshot).violations.map((v) => v.kind);
}

describe('chaos invariant checker', () => {
  it('finds nothing wrong with a paid, provisioned, finished order', () => {
    const result = checkInvariants(healthy());
    assert.deepEqual(result.violations, []);
    assert.deepEqual(result.warnings, []);
    assert.deepEqual(result.finalStates, { completed: 1 });
  });

  it('reports a double charge across two PaymentIntents of one order', () => {
    const s = healthy();
    const snapshot: ChaosSnapshot = {
      ...s,
      ledger: { payment_intents: [pi('pi_o1', 'o1'), pi('pi_o1b', 'o1')] },
      workflows: [wf('o1', { paymentIntentIds: ['pi_o1', 'pi_o1b'] })],
    };
    const result = checkInvariants(snapshot);
    assert.deepEqual(
      result.violations.map((v) => [v.kind, v.orderId]),
      [['double_charge', 'o1']],
    );
    assert.match(result.violations[0]?.detail ?? '', /2 successful charges: pi_o1 x1, pi_o1b x1/);
  });

  it('reports a double charge on a single PaymentIntent charged twice', () => {
    const snapshot: ChaosSnapshot = {
      ...healthy(),
      ledger: { payment_intents: [pi('pi_o1', 'o1', { successful_charges: 2 })] },
    };
    assert.deepEqual(kinds(snapshot), ['double_charge']);
  });

  it('reports provisioning without a payment (provisioned-unpaid)', () => {
    const snapshot: ChaosSnapshot = {
      ...healthy(),
      ledger: {
        payment_intents: [pi('pi_o1', 'o1', { status: 'requires_payment_method', successful_charges: 0 })],
      },
    };
    assert.deepEqual(kinds(snapshot), ['provisioned_unpaid']);
  });

  it('counts a fully refunded charge as unpaid, so provisioning it is a violation', () => {
    const snapshot: ChaosSnapshot = {
      ...healthy(),
      ledger: { payment_intents: [pi('pi_o1', 'o1', { amount_refunded: 1000 })] },
    };
    assert.deepEqual(kinds(snapshot), ['provisioned_unpaid']);
  });

  it('reports a payment that was never provisioned (paid-unprovisioned)', () => {
    const snapshot: ChaosSnapshot = { ...healthy(), entitlements: [] };
    assert.deepEqual(kinds(snapshot), ['paid_unprovisioned']);
  });

  it('reports provisioning against a PaymentIntent other than the one charged', () => {
    const snapshot: ChaosSnapshot = {
      ...healthy(),
      ledger: {
        payment_intents: [
          pi('pi_o1', 'o1'),
          pi('pi_o1x', 'o1', { status: 'canceled', successful_charges: 0 }),
        ],
      },
      entitlements: [{ workflowId: 'checkout-o1', orderId: 'o1', paymentIntentId: 'pi_o1x' }],
      workflows: [wf('o1', { paymentIntentIds: ['pi_o1', 'pi_o1x'] })],
    };
    assert.deepEqual(kinds(snapshot), ['provisioned_wrong_payment']);
  });

  it('reports a charge for another amount than the order', () => {
    const snapshot: ChaosSnapshot = {
      ...healthy(),
      ledger: { payment_intents: [pi('pi_o1', 'o1', { amount: 999 })] },
    };
    assert.deepEqual(kinds(snapshot), ['wrong_amount']);
  });

  it('reports a charged PaymentIntent no checkout knows as a charged orphan', () => {
    const snapshot: ChaosSnapshot = {
      ...healthy(),
      workflows: [wf('o1', { paymentIntentIds: [] })],
    };
    const result = checkInvariants(snapshot);
    assert.deepEqual(
      result.violations.map((v) => v.kind),
      ['charged_orphan'],
    );
    assert.match(
      result.violations[0]?.detail ?? '',
      /pi_o1 \(order o1\) charged 1x but no checkout knows it/,
    );
  });

  it('reports an uncharged unknown PaymentIntent as a warning only', () => {
    const s = healthy();
    const snapshot: ChaosSnapshot = {
      ...s,
      ledger: {
        payment_intents: [
          ...s.ledger.payment_intents,
          pi('pi_lost', 'o1', { status: 'requires_payment_method', successful_charges: 0 }),
        ],
      },
    };
    const result = checkInvariants(snapshot);
    assert.deepEqual(result.violations, []);
    assert.deepEqual(
      result.warnings.map((w) => [w.kind, w.orderId]),
      [['orphan_uncharged', 'o1']],
    );
  });

  it('reports a checkout stuck in a non-final state as not final', () => {
    const snapshot: ChaosSnapshot = {
      orderIds: ['o1'],
      ledger: {
        payment_intents: [pi('pi_o1', 'o1', { status: 'requires_confirmation', successful_charges: 0 })],
      },
      entitlements: [],
      workflows: [wf('o1', { executionStatus: 'RUNNING', state: 'confirming_payment' })],
    };
    const result = checkInvariants(snapshot);
    assert.deepEqual(
      result.violations.map((v) => v.kind),
      ['not_final'],
    );
    assert.deepEqual(result.finalStates, { 'stuck:confirming_payment': 1 });
  });

  it('names what a stuck checkout waits on in its not-final finding, when the harness could tell', () => {
    const diagnosis = 'activity confirmPaymentIntent pending, attempt 7; 23 events, the last: ...';
    const snapshot: ChaosSnapshot = {
      orderIds: ['o1'],
      ledger: {
        payment_intents: [pi('pi_o1', 'o1', { status: 'requires_confirmation', successful_charges: 0 })],
      },
      entitlements: [],
      workflows: [wf('o1', { executionStatus: 'RUNNING', state: 'confirming_payment', diagnosis })],
    };
    const [finding] = checkInvariants(snapshot).violations;
    assert.equal(finding?.kind, 'not_final');
    assert.match(
      finding?.detail ?? '',
      /^still confirming_payment when the run ended .*; activity confirmPaymentIntent pending, attempt 7;/,
    );
  });

  it('accepts needs-attention with a reason as a final state, but not without one', () => {
    const parked: ChaosSnapshot = {
      orderIds: ['o1'],
      ledger: {
        payment_intents: [pi('pi_o1', 'o1', { status: 'requires_payment_method', successful_charges: 0 })],
      },
      entitlements: [],
      workflows: [
        wf('o1', {
          executionStatus: 'RUNNING',
          state: 'needs_attention',
          needsAttentionReason: 'payment_outcome_unknown',
        }),
      ],
    };
    assert.deepEqual(kinds(parked), []);
    assert.deepEqual(checkInvariants(parked).finalStates, { 'needs_attention:payment_outcome_unknown': 1 });
    const noReason: ChaosSnapshot = {
      ...parked,
      workflows: [wf('o1', { executionStatus: 'RUNNING', state: 'needs_attention' })],
    };
    assert.deepEqual(kinds(noReason), ['not_final']);
  });

  it('reports a failed or terminated run and a submitted order with no workflow', () => {
    const snapshot: ChaosSnapshot = {
      orderIds: ['o1', 'o2', 'o3'],
      ledger: { payment_intents: [] },
      entitlements: [],
      workflows: [
        wf('o1', { executionStatus: 'FAILED', state: 'creating_payment', paymentIntentIds: [] }),
        wf('o2', { executionStatus: 'NOT_FOUND', state: undefined, paymentIntentIds: [] }),
      ],
    };
    const result = checkInvariants(snapshot);
    assert.deepEqual(
      result.violations.map((v) => [v.kind, v.orderId]),
      [
        ['workflow_failed', 'o1'],
        ['missing_workflow', 'o2'],
        ['missing_workflow', 'o3'],
      ],
    );
  });

  it('reports a run that hit its overall deadline', () => {
    const snapshot: ChaosSnapshot = {
      ...healthy(),
      deadlineExceeded: { deadlineMs: 60_000, unsettled: ['o1'] },
    };
    const result = checkInvariants(snapshot);
    assert.deepEqual(
      result.violations.map((v) => v.kind),
      ['deadline_exceeded'],
    );
    assert.match(result.violations[0]?.detail ?? '', /60 s passed with 1 checkout\(s\) unsettled: o1/);
  });

  it('counts violations by kind with every kind present', () => {
    const s = healthy();
    const counts = countByKind(
      checkInvariants({
        ...s,
        ledger: { payment_intents: [pi('pi_o1', 'o1', { successful_charges: 3 })] },
        entitlements: [],
      }).violations,
    );
    assert.equal(counts.double_charge, 1);
    assert.equal(counts.paid_unprovisioned, 1);
    assert.equal(counts.not_final, 0);
    assert.equal(
      Object.values(counts).reduce((a, b) => a + b, 0),
      2,
    );
  });

  it('classifies final states for the report', () => {
    assert.equal(finalStateOf(undefined), 'missing');
    assert.equal(finalStateOf(wf('o1', { state: 'declined' })), 'declined');
    assert.equal(finalStateOf(wf('o1', { executionStatus: 'TERMINATED' })), 'run_terminated');
    assert.equal(
      finalStateOf(wf('o1', { executionStatus: 'RUNNING', state: undefined })),
      'stuck:unreadable',
    );
  });
});
