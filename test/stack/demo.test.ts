import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { processGroupAlive, waitFor } from '../support/processes';
import { runEntryPoint, signalOnceWhen } from './run-entry-point';

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

  it('stops on a Ctrl-C while its checkouts run: exits 130, no table, its stack and data folder gone', async () => {
    // As a terminal does: the whole process group, so the dev server gets the Ctrl-C too.
    const run = await runEntryPoint(
      'src/stack/demo.ts',
      {},
      220_000,
      signalOnceWhen('Running checkouts', 'SIGINT', 'group'),
      { processGroup: true },
    );
    assert.equal(run.code, 130, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
    assert.match(run.stdout, /SIGINT: stopped before the checkouts finished/);
    assert.doesNotMatch(run.stdout, /WRONG|^scenario /m);
    assert.doesNotMatch(run.stderr, /Channel has been shut down|TypeError|demo failed/);
    const dataDir = /Starting the stack in (\S+) /.exec(run.stdout)?.[1];
    assert.ok(dataDir !== undefined, run.stdout);
    assert.equal(existsSync(dataDir), false, `${dataDir} is removed`);
    assert.ok(run.pid !== undefined);
    const group = run.pid;
    await waitFor(() => !processGroupAlive(group), `process group ${group} to be empty`, 10_000);
  });
});
