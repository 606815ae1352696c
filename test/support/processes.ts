/** What is running on this machine, read from /proc (Linux, as CI is): for "nothing left behind". */
import { readdirSync, readFileSync } from 'node:fs';

/** Pids of the `temporal server start-dev` processes listening on `port` by their command line. */
export function devServersOnPort(port: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // exited while we looked
    }
    const portAt = args.indexOf('--port');
    if (args.includes('start-dev') && portAt >= 0 && args[portAt + 1] === String(port)) {
      pids.push(Number(entry));
    }
  }
  return pids;
}

/** Whether any process is left in the process group `pgid` (a detached child's pid). */
export function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** Resolves once `check` holds, polling every 20 ms; rejects naming `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Should `starting` resolve where the test expects a rejection, closes what it started: the test
 * still fails on its assertion, but leaves nothing running behind it.
 */
export function closeIfStarted<T>(starting: Promise<T>, close: (started: T) => Promise<void>): void {
  starting.then(close, () => undefined).catch(() => undefined);
}
