import assert from 'node:assert/strict';
import { runEntryPoint } from './run-entry-point';

describe('npm run demo (src/stack/demo.ts)', function () {
  this.timeout(240_000);

  it('runs every scenario on its own stack, prints the table and exits 0', async () => {
    const run = await runEntryPoint('src/stack/demo.ts', {}, 220_000);
    assert.equal(run.code, 0, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
    assert.match(
      run.stdout,
      /^scenario +order +state +PaymentIntent +charges +provisioned +check +Temporal UI$/m,
    );
    for (const scenario of ['paid', 'declined', 'declined, then new card', 'same order POSTed twice']) {
      assert.match(
        run.stdout,
        new RegExp(`^${scenario} .* ok +http://127\\.0\\.0\\.1:\\d+/namespaces/default/workflows/`, 'm'),
      );
    }
    assert.match(run.stdout, /no order was charged more than once/);
  });
});
