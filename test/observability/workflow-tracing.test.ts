import assert from 'node:assert/strict';
import { runIsTraced } from '../../src/observability/workflow-tracing';

describe('which runs carry the workflow tracing interceptors', () => {
  it('traces a run started traced, and any run not started as processing; not an untraced processing start', () => {
    assert.equal(runIsTraced({ traced: true }, 'processing'), true);
    assert.equal(runIsTraced({ terms: {} }, 'processing'), false);
    assert.equal(runIsTraced({}, 'processing'), false);
    // Runs from before the resting index (started as validating), by hand, refunds, the reconciler.
    assert.equal(runIsTraced({ terms: {} }, 'validating'), true);
    assert.equal(runIsTraced({}, undefined), true);
    assert.equal(runIsTraced(undefined, 'needs_attention'), true);
  });
});
