/**
 * One real Temporal dev server per test run, started lazily by the first test that needs it and
 * stopped by the root hook. Tests that do not touch Temporal (the Stripe emulator's) never pay for it.
 */
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/definitions';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';

let server: Promise<DevServer> | undefined;

export function testTemporal(): Promise<DevServer> {
  server ??= startDevServer({
    uiPort: false,
    searchAttributes: SEARCH_ATTRIBUTE_TYPES,
    startupTimeoutMs: 120_000,
  });
  return server;
}

export async function stopTestTemporal(): Promise<void> {
  if (!server) return;
  const started = server;
  server = undefined;
  await (await started).stop();
}

/** A workflow id / task queue unique to one test, derived from its title (house style). */
export function uniqueName(title: string): string {
  const slug = title
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60);
  return `${slug}-${process.pid}-${Date.now().toString(36)}`;
}
