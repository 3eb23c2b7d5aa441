'use strict';

// CommonJS smoke test, run by package.test.js inside a fresh project that
// installed the packed tarballs. Prints one JSON line describing what it saw;
// with FLUXOR_TEST_PORT set it also does a round trip on that server. It
// never calls process.exit: the process has to end on its own.

const { EventEmitter } = require('node:events');
const CacheModule = require('@fluxor/cache-module');

const report = {
  type: typeof CacheModule,
  name: CacheModule.name,
  namedIsSame: CacheModule.CacheModule === CacheModule,
  defaultIsSame: CacheModule.default === CacheModule,
  packageJson: require('@fluxor/cache-module/package.json').name,
  entry: require.resolve('@fluxor/cache-module'),
  // Every native addon this process loaded (only ours is expected).
  addons: Object.keys(require.cache).filter((file) => file.endsWith('.node')),
};
const cache = new CacheModule({ keyPrefix: 'smoke-cjs:', port: Number(process.env.FLUXOR_TEST_PORT) || 6379, host: '127.0.0.1' });
report.isEventEmitter = cache instanceof EventEmitter;
report.keyPrefix = cache.keyPrefix;

(async () => {
  if (process.env.FLUXOR_TEST_PORT) {
    await cache.initialize();
    await cache.set('k', { from: 'cjs' }, { ttl: 30 });
    report.roundTrip = await cache.get('k');
    await cache.del('k');
    await cache.disconnect();
  }
  process.stdout.write(JSON.stringify(report) + '\n');
})().catch((err) => {
  process.stderr.write(`${err && err.stack}\ncode: ${err && err.code}\n`);
  process.exitCode = 1;
});
