import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { testTemporal } from '../support/temporal';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/definitions';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import {
  DEFAULT_TEMPORAL_CLI_PATH,
  DevServerStartAbortedError,
  startDevServer,
} from '../../src/temporal/dev-server';
import { closeIfStarted, devServersOnPort, waitFor } from '../support/processes';
import { runEntryPoint } from '../stack/run-entry-point';
import { unusedPort } from '../support/ports';

describe('temporal dev server', () => {
  it('starts the pinned CLI and registers the checkout search attributes', async () => {
    const server = await testTemporal();
    const connection = await Connection.connect({ address: server.address });
    try {
      const res = await connection.operatorService.listSearchAttributes({ namespace: server.namespace });
      for (const name of Object.keys(SEARCH_ATTRIBUTE_TYPES)) {
        assert.ok(res.customAttributes?.[name] !== undefined, `search attribute ${name} is registered`);
      }
    } finally {
      await connection.close();
    }
  });
});

describe('temporal dev server on a SQLite file', () => {
  it('creates the folder of its database file, as a fresh clone has no data folder', async function () {
    this.timeout(120_000);
    const dir = await mkdtemp(path.join(tmpdir(), 'dev-server-'));
    const dbFile = path.join(dir, 'not', 'yet', 'there', 'temporal.sqlite');
    const server = await startDevServer({ uiPort: false, dbFile, startupTimeoutMs: 120_000 });
    try {
      assert.ok(existsSync(dbFile), 'the SQLite file exists once the server answers');
    } finally {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('temporal dev server start, stopped through its signal', () => {
  it('kills the server it spawned and rejects, leaving nothing running', async function () {
    this.timeout(120_000);
    const port = await unusedPort();
    const stop = new AbortController();
    const starting = startDevServer({ port, uiPort: false, signal: stop.signal, startupTimeoutMs: 120_000 });
    closeIfStarted(starting, (server) => server.stop());
    // The CLI needs seconds to answer; stop it as soon as it runs.
    await waitFor(() => devServersOnPort(port).length > 0, `a dev server on port ${port}`);
    stop.abort();
    await assert.rejects(starting, (err: unknown) => {
      assert.ok(err instanceof DevServerStartAbortedError, String(err));
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      return true;
    });
    assert.deepEqual(devServersOnPort(port), [], 'the dev server was stopped before the start rejected');
  });

  it('spawns nothing when the signal is already aborted', async () => {
    const port = await unusedPort();
    const starting = startDevServer({ port, uiPort: false, signal: AbortSignal.abort() });
    closeIfStarted(starting, (server) => server.stop());
    await assert.rejects(starting, DevServerStartAbortedError);
    assert.deepEqual(devServersOnPort(port), []);
  });
});

describe('temporal dev server whose owner dies', () => {
  it('is stopped when the process that started it exits on an uncaught error', async function () {
    this.timeout(180_000);
    const run = await runEntryPoint('test/temporal/dies-after-start.ts', {}, 150_000);
    const port = Number(/^port (\d+)$/m.exec(run.stdout)?.[1]);
    assert.ok(
      port > 0,
      `the child printed its dev server's port; stdout: ${run.stdout}; stderr: ${run.stderr}`,
    );
    try {
      assert.equal(run.code, 1, `the child died of its uncaught error; stderr: ${run.stderr}`);
      assert.match(run.stderr, /dies with its dev server still running/);
      await waitFor(
        () => devServersOnPort(port).length === 0,
        `the dev server on port ${port} to stop`,
        30_000,
      );
    } finally {
      for (const pid of devServersOnPort(port)) process.kill(pid, 'SIGKILL');
    }
  });
});

describe('temporal dev server start, when a port is taken under it', () => {
  /**
   * A stand-in for the CLI that counts its starts and, for the first `failures` of them, exits as
   * the real one does when a port it picked for an internal service was taken meanwhile; then it
   * runs the real CLI.
   */
  async function flakyCli(dir: string, failures: number, clashPort: string): Promise<string> {
    const script = path.join(dir, 'temporal');
    await writeFile(
      script,
      [
        '#!/usr/bin/env bash',
        `count=$(( $(cat "${dir}/starts" 2>/dev/null || echo 0) + 1 ))`,
        `echo "$count" > "${dir}/starts"`,
        `if [ "$count" -le ${failures} ]; then`,
        `  echo 'level=ERROR msg="Failed to start gRPC listener" error="listen tcp 127.0.0.1:${clashPort}: bind: address already in use" service=matching' >&2`,
        '  exit 2',
        'fi',
        `exec "${DEFAULT_TEMPORAL_CLI_PATH}" "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(script, 0o755);
    return script;
  }

  it('starts again on new ports when the CLI lost a race for a port of its own choosing', async function () {
    this.timeout(120_000);
    const dir = await mkdtemp(path.join(tmpdir(), 'dev-server-race-'));
    try {
      const cliPath = await flakyCli(dir, 1, '1');
      const server = await startDevServer({ cliPath, uiPort: false, startupTimeoutMs: 120_000 });
      try {
        assert.equal((await readFile(path.join(dir, 'starts'), 'utf8')).trim(), '2');
      } finally {
        await server.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('does not retry a clash on the port the caller fixed, and names it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dev-server-race-'));
    try {
      const port = await unusedPort();
      const cliPath = await flakyCli(dir, 5, String(port));
      await assert.rejects(
        startDevServer({ cliPath, port, uiPort: false }),
        new RegExp(
          `exited \\(code 2\\) during startup: .*127\\.0\\.0\\.1:${port}: bind: address already in use`,
        ),
      );
      assert.equal((await readFile(path.join(dir, 'starts'), 'utf8')).trim(), '1');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
