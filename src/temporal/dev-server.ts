/**
 * Runs the real Temporal dev server (`temporal server start-dev`, the CLI that `npm run setup`
 * installs pinned into .tools/venv) as a child process and waits until its frontend answers.
 *
 * We start the CLI ourselves instead of `TestWorkflowEnvironment.createLocal()` because the SDK
 * downloads its own binary (impossible here) and gives the server only 5 s to come up, which a
 * loaded 2-core machine can miss. Failure modes: the binary is missing (a clear error names the
 * setup command), a port is taken (the server exits and we report its stderr; when the port was
 * one it or we picked, not one the caller fixed, it was a race, and the start is tried again on
 * new ports, three starts in all), or it does not answer within `startupTimeoutMs` (we kill it and
 * report the tail of its log). A start stopped through `signal` (Ctrl-C while `npm start` is still
 * starting) kills the server it spawned before rejecting, so nothing is left behind. A server
 * still running when this process exits (an uncaught error, `process.exit`) is sent SIGTERM as it
 * exits, so it does not outlive its owner holding its port (and, for `npm start`, its database).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';

export type SearchAttributeType = 'Text' | 'Keyword' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList';

export interface DevServerOptions {
  /** Path to the `temporal` CLI binary. Default: the one `npm run setup` installs. */
  readonly cliPath?: string;
  readonly ip?: string;
  /** gRPC frontend port; 0 or undefined picks a free one. */
  readonly port?: number;
  /** Web UI port; undefined picks a free one; `false` runs headless. */
  readonly uiPort?: number | false;
  /** SQLite file; undefined keeps everything in memory. */
  readonly dbFile?: string;
  readonly namespace?: string;
  readonly searchAttributes?: Readonly<Record<string, SearchAttributeType>>;
  readonly startupTimeoutMs?: number;
  /** Extra dynamic config values, passed as --dynamic-config-value KEY=JSON. */
  readonly dynamicConfig?: Readonly<Record<string, unknown>>;
  /**
   * Stops the start: the server is killed and awaited, and the call rejects with
   * `DevServerStartAbortedError`. Once the call has resolved, `stop()` is the way.
   */
  readonly signal?: AbortSignal;
}

/** Raised when `DevServerOptions.signal` stopped the start; no server is left running. */
export class DevServerStartAbortedError extends Error {
  constructor(address: string) {
    super(`Stopped while the Temporal dev server at ${address} was starting`);
    this.name = 'DevServerStartAbortedError';
  }
}

export interface DevServer {
  /** `ip:port` of the frontend. */
  readonly address: string;
  /** The frontend's port (the one in `address`), for whoever needs it as a number. */
  readonly port: number;
  readonly uiUrl: string | undefined;
  readonly namespace: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export const DEFAULT_TEMPORAL_CLI_PATH = path.resolve(
  __dirname,
  '..',
  '..',
  '.tools',
  'venv',
  'bin',
  'temporal',
);

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The server exited during startup because a port it had chosen itself was taken meanwhile (the CLI
 * picks free ports for its internal services, as `freePort` does for ours: another process can bind
 * one between the pick and the server's own bind). A new start picks new ports.
 */
class PortRaceError extends Error {}

/** Starts in all, when the CLI loses a race for a port it or we picked (not one the caller fixed). */
const PORT_RACE_ATTEMPTS = 3;

export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startDevServerOnce(options);
    } catch (err) {
      if (!(err instanceof PortRaceError) || attempt >= PORT_RACE_ATTEMPTS) throw err;
    }
  }
}

/** Dev servers this process spawned that have not exited yet. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Stops, as this process exits, every dev server it spawned and did not stop. Exit handlers run
 * synchronously, so the signal is sent and not awaited; the CLI shuts down on SIGTERM by itself.
 * Without this, a server whose owner died of an uncaught error ran on until it next wrote to its
 * closed log pipe, which with `--log-level error` may be never. Does not help against SIGKILL.
 */
function stopWithThisProcess(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const server of running) server.kill('SIGTERM');
  });
}

async function startDevServerOnce(options: DevServerOptions): Promise<DevServer> {
  const cliPath = options.cliPath ?? DEFAULT_TEMPORAL_CLI_PATH;
  if (!existsSync(cliPath)) {
    throw new Error(`Temporal CLI not found at ${cliPath}; run "npm run setup" to install the pinned CLI`);
  }
  const ip = options.ip ?? '127.0.0.1';
  const port = options.port && options.port > 0 ? options.port : await freePort(ip);
  const uiPort = options.uiPort === false ? undefined : (options.uiPort ?? (await freePort(ip)));
  const namespace = options.namespace ?? 'default';
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port), '--log-level', 'error'];
  args.push('--http-port', String(await freePort(ip)), '--metrics-port', String(await freePort(ip)));
  if (uiPort === undefined) args.push('--headless');
  else args.push('--ui-port', String(uiPort), '--ui-ip', ip);
  if (options.dbFile) {
    // The CLI refuses a database file whose folder does not exist yet (a fresh clone has no data/).
    mkdirSync(path.dirname(path.resolve(options.dbFile)), { recursive: true });
    args.push('--db-filename', options.dbFile);
  }
  if (namespace !== 'default') args.push('--namespace', namespace);
  for (const [name, type] of Object.entries(options.searchAttributes ?? {})) {
    args.push('--search-attribute', `${name}=${type}`);
  }
  for (const [key, value] of Object.entries(options.dynamicConfig ?? {})) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }

  const address = `${ip}:${port}`;
  const { signal } = options;
  if (signal?.aborted) throw new DevServerStartAbortedError(address);
  const child = spawn(cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  stopWithThisProcess(child);
  let log = '';
  const keepLog = (chunk: Buffer): void => {
    log = (log + chunk.toString('utf8')).slice(-8_000);
  };
  child.stdout?.on('data', keepLog);
  child.stderr?.on('data', keepLog);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );

  const stop = async (): Promise<void> => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exitPromise;
    clearTimeout(timer);
  };
  // Wakes the wait between attempts at once; the loop then stops the server and rejects.
  let wake: () => void = () => {};
  const waitUntilAnswering = async (): Promise<void> => {
    const deadline = Date.now() + (options.startupTimeoutMs ?? 60_000);
    for (;;) {
      if (signal?.aborted) {
        await stop();
        throw new DevServerStartAbortedError(address);
      }
      if (exited) {
        const text = `Temporal dev server exited (code ${String(exited.code)}) during startup: ${log.trim()}`;
        const clash = /listen tcp [^\s"]*:(\d+): bind: address already in use/.exec(log);
        const fixed = [options.port, typeof options.uiPort === 'number' ? options.uiPort : undefined];
        if (clash && !fixed.includes(Number(clash[1]))) throw new PortRaceError(text);
        throw new Error(text);
      }
      try {
        const connection = await Connection.connect({ address, connectTimeout: 1_000 });
        try {
          await connection.workflowService.describeNamespace({ namespace });
        } finally {
          await connection.close();
        }
        return;
      } catch (err) {
        if (Date.now() > deadline) {
          child.kill('SIGKILL');
          throw new Error(`Temporal dev server did not answer on ${address}; log: ${log.trim()}`, {
            cause: err,
          });
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 250);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  };
  const onAbort = (): void => wake();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await waitUntilAnswering();
    // An attempt that was already under way when the stop came may have succeeded.
    if (signal?.aborted) {
      await stop();
      throw new DevServerStartAbortedError(address);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }

  return {
    address,
    port,
    uiUrl: uiPort === undefined ? undefined : `http://${ip}:${uiPort}`,
    namespace,
    process: child,
    stop,
  };
}
