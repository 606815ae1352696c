/**
 * Child process for test/temporal/dev-server.test.ts: starts a dev server, prints its port, then
 * dies of an uncaught error without stopping it, as a crashing `npm start` or test process would.
 */
import { startDevServer } from '../../src/temporal/dev-server';

async function main(): Promise<void> {
  const server = await startDevServer({ uiPort: false, startupTimeoutMs: 120_000 });
  process.stdout.write(`port ${server.port}\n`);
  setTimeout(() => {
    throw new Error('dies with its dev server still running');
  }, 100);
}

void main();
