import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config';
import { createTemporalConnection } from '../../src/client';
import { startDevServer } from '../../src/temporal/dev-server';

describe('temporal client connection (src/temporal/connection-guard.ts)', () => {
  it('can be closed under a call that is retrying because Temporal went away: the call rejects, nothing throws', async function () {
    this.timeout(120_000);
    // A server of its own: the test kills it.
    const server = await startDevServer({ uiPort: false });
    const connection = await createTemporalConnection(
      loadConfig({ TEMPORAL_EMBEDDED_PORT: String(server.port) }).temporal,
    );
    try {
      server.process.kill('SIGKILL');
      await new Promise((resolve) => server.process.once('exit', resolve));
      // Fails with UNAVAILABLE and retries for about 20 s; closing in between schedules the next
      // attempt on the closed channel, which without the guard throws inside the client's timer.
      const call = connection.workflowService.getSystemInfo({});
      call.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 500));
      await connection.close();
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, /CANCELLED: Channel has been shut down/);
        return true;
      });
    } finally {
      await server.stop();
    }
  });

  it('rejects a call made after the connection was closed, as the client always has', async function () {
    this.timeout(120_000);
    const server = await startDevServer({ uiPort: false });
    try {
      const connection = await createTemporalConnection(
        loadConfig({ TEMPORAL_EMBEDDED_PORT: String(server.port) }).temporal,
      );
      await connection.close();
      await assert.rejects(connection.workflowService.getSystemInfo({}), /Channel has been shut down/);
      // Nothing thrown later, off the awaited path (mocha fails the test on an uncaught error).
      await new Promise((resolve) => setTimeout(resolve, 500));
    } finally {
      await server.stop();
    }
  });
});
