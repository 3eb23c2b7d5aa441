'use strict';

// Options are read from their own properties only: a polluted
// Object.prototype changes nothing (issue #14, item 5). Run in a child
// process, so the pollution cannot reach the test runner.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startRedis, runNode } = require('./harness');

let server;
test.before(async () => {
  server = await startRedis();
});
test.after(() => server.stop());

test('a polluted Object.prototype is never an option, in any method or the constructor', async () => {
  const code = `
    const C = require('.');
    const { rawClient } = require('./__test__/harness');
    const polluted = {
      ttl: 0, tags: ['x'], fallback: 'polluted', retryStrategy: 'not a function', tls: { ca: 'x' },
      keyExtractor: () => 'same', batchSize: 0, retries: 'many', retryDelay: -1, autoExtend: 'yes',
      keyPrefix: 'polluted:', defaultTTL: -1, password: 'polluted', enableCluster: true,
    };
    (async () => {
      const raw = await rawClient(${server.port});
      const out = {};
      try {
        Object.assign(Object.prototype, polluted);
        const c = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: 'own:', defaultTTL: 100 });
        await c.initialize();
        out.prefix = c.keyPrefix;
        await c.set('a', 1);
        await c.set('b', 1, {});
        await c.mset({ m: 1 });
        await c.mset({ n: 1 }, {});
        out.loaded = (await c.warmCache(() => [{ id: 'w1' }, { id: 'w2' }], {})).loaded;
        await c.warmCache(() => ({ w3: 1 }));
        out.miss = await c.get('missing', {});
        const lock = await c.lock('L', {});
        out.lock = lock.fencingToken;
        await lock.release();
        await c.withLock('L2', async () => {});
        out.pttl = {};
        for (const k of ['a', 'b', 'm', 'n', 'w1', 'w2', 'w3']) out.pttl[k] = await raw.cmd('PTTL', 'own:' + k);
        out.tagIndex = await raw.cmd('EXISTS', 'own:__fluxor__:tag:x');
        await c.disconnect();
      } catch (err) {
        out.error = String(err);
      } finally {
        for (const k of Object.keys(polluted)) delete Object.prototype[k];
      }
      raw.close();
      process.stdout.write(JSON.stringify(out));
    })();`;
  const res = await runNode(code, { timeout: 30000 });
  assert.equal(res.stderr, '');
  const out = JSON.parse(res.stdout);
  assert.equal(out.error, undefined);
  assert.equal(out.prefix, 'own:');
  assert.equal(out.loaded, 2);
  assert.equal(out.miss, null);
  assert.equal(out.lock, 1);
  for (const [k, pttl] of Object.entries(out.pttl)) assert.ok(pttl > 90000 && pttl <= 100000, `${k}: defaultTTL, got PTTL ${pttl}`);
  assert.equal(out.tagIndex, 0, 'no tag was taken from Object.prototype');
});
