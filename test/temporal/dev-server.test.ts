import assert from 'node:assert/strict';
import { Connection } from '@temporalio/client';
import { testTemporal } from '../support/temporal';
import { SEARCH_ATTRIBUTE_TYPES } from '../../src/workflows/definitions';

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
