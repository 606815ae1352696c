import assert from 'node:assert/strict';
import { noopMetricMeter, type MetricCounter, type MetricMeter, type MetricTags } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type Stripe from 'stripe';
import { RECONCILER_METRICS, createReconcilerActivities } from '../../src/activities/reconciler';
import type { Provisioner } from '../../src/provisioning';

/** Records every counter addition as `name{tag=value,…} += n`; other instruments are not used. */
class RecordingMeter implements MetricMeter {
  readonly added: { name: string; value: number; tags: MetricTags }[] = [];

  createCounter(name: string, unit?: string, description?: string): MetricCounter {
    const added = this.added;
    const counter: MetricCounter = {
      name,
      unit,
      description,
      kind: 'counter',
      valueType: 'int',
      add(value: number, tags: MetricTags = {}): void {
        added.push({ name, value, tags });
      },
      withTags: () => counter,
    };
    return counter;
  }

  createHistogram: MetricMeter['createHistogram'] = (...args) => noopMetricMeter.createHistogram(...args);
  createGauge: MetricMeter['createGauge'] = (...args) => noopMetricMeter.createGauge(...args);
  withTags(): MetricMeter {
    return this;
  }

  total(name: string, tags: MetricTags = {}): number {
    return this.added
      .filter((a) => a.name === name && Object.entries(tags).every(([k, v]) => a.tags[k] === v))
      .reduce((n, a) => n + a.value, 0);
  }
}

describe('reconciler metrics', () => {
  it('counts the run, the PaymentIntents read, and findings and fixes by kind on the activity meter', async () => {
    const meter = new RecordingMeter();
    // recordReconcileRun touches neither Stripe nor the provisioning store.
    const activities = createReconcilerActivities({
      stripe: {} as Stripe,
      provisioner: {} as Provisioner,
    });
    await new MockActivityEnvironment(undefined, { metricMeter: meter }).run(
      (input: Parameters<typeof activities.recordReconcileRun>[0]) => activities.recordReconcileRun(input),
      {
        scanned: 120,
        counts: { orphan: 3, paid_not_provisioned: 1, charged_without_checkout: 0, duplicate_payment: 2 },
        fixes: { orphan: 2, paid_not_provisioned: 1, charged_without_checkout: 0, duplicate_payment: 0 },
      },
    );
    assert.equal(meter.total(RECONCILER_METRICS.runs), 1);
    assert.equal(meter.total(RECONCILER_METRICS.scanned), 120);
    assert.equal(meter.total(RECONCILER_METRICS.findings, { kind: 'orphan' }), 3);
    assert.equal(meter.total(RECONCILER_METRICS.findings, { kind: 'duplicate_payment' }), 2);
    assert.equal(meter.total(RECONCILER_METRICS.fixes, { kind: 'orphan' }), 2);
    assert.equal(meter.total(RECONCILER_METRICS.fixes, { kind: 'paid_not_provisioned' }), 1);
    // Every kind is reported, zero included, so each series exists from the first run.
    assert.equal(meter.added.filter((a) => a.name === RECONCILER_METRICS.findings).length, 4);
  });
});
