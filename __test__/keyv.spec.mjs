// The official @keyv/test-suite (api, values, namespaces, iterator) against
// KeyvFluxor on a real redis-server. It is written for vitest, so it runs
// there (`npm test` runs vitest after node --test).

import { createRequire } from 'node:module';
import * as test from 'vitest';
import Keyv from 'keyv';
import keyvTestSuite, { keyvIteratorTests } from '@keyv/test-suite';

const require = createRequire(import.meta.url);
const { startRedis } = require('./harness.js');
const { KeyvFluxor } = require('../lib/keyv.js');

const server = await startRedis();
const stores = [];
const store = () => {
  const s = new KeyvFluxor({ host: '127.0.0.1', port: server.port, keyPrefix: 'keyv-suite:' });
  stores.push(s);
  return s;
};

test.afterAll(async () => {
  await Promise.all(stores.map((s) => s.disconnect()));
  await server.stop();
});

keyvTestSuite(test, Keyv, store);
keyvIteratorTests(test, Keyv, store);
