import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { testTemporal } from '../support/temporal';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/definitions';
import { startDevServer } from '../../src/temporal/dev-server';

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
