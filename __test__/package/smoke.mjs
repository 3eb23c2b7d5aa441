// ES module smoke test, run by package.test.js inside a fresh project that
// installed the packed tarballs. Prints one JSON line describing what it saw;
// with FLUXOR_TEST_PORT set it also does a round trip on that server. It
// never calls process.exit: the process has to end on its own.

import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';
import CacheModule, { CacheModule as Named } from '@fluxor/cache-module';
import * as namespace from '@fluxor/cache-module';

const require = createRequire(import.meta.url);
const required = require('@fluxor/cache-module');

const report = {
  type: typeof CacheModule,
  name: CacheModule.name,
  namedIsSame: Named === CacheModule,
  requireIsSame: required === CacheModule,
  namespaceKeys: Object.keys(namespace).sort(),
  entry: import.meta.resolve('@fluxor/cache-module'),
  addons: Object.keys(require.cache).filter((file) => file.endsWith('.node')),
};
const cache = new Named({ keyPrefix: 'smoke-esm:', port: Number(process.env.FLUXOR_TEST_PORT) || 6379, host: '127.0.0.1' });
report.isEventEmitter = cache instanceof EventEmitter;
report.keyPrefix = cache.keyPrefix;

try {
  if (process.env.FLUXOR_TEST_PORT) {
    await cache.initialize();
    await cache.set('k', { from: 'esm' }, { ttl: 30 });
    report.roundTrip = await cache.get('k');
    await cache.del('k');
    await cache.disconnect();
  }
  process.stdout.write(JSON.stringify(report) + '\n');
} catch (err) {
  process.stderr.write(`${err && err.stack}\ncode: ${err && err.code}\n`);
  process.exitCode = 1;
}
