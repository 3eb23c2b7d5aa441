'use strict';

// cache.scan(): the keys under keyPrefix by SCAN pages (never KEYS), never
// the module's own keys, each once (cluster mode: __test__/cluster.test.js).

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { openCache, closeCache } = require('./harness');

let fx;

test.before(async () => {
  fx = await openCache(CacheModule, { keyPrefix: 'sc:' }, { args: ['--enable-debug-command', 'yes'] });
});

test.after(() => closeCache(fx));

test.beforeEach(() => fx.raw.cmd('FLUSHALL'));

const collect = async (iterable) => {
  const out = [];
  for await (const k of iterable) out.push(k);
  return out;
};

test('scan() yields every key under keyPrefix once, unprefixed; not locks, tag indexes or other prefixes', async () => {
  await fx.raw.cmd('DEBUG', 'POPULATE', 5000, 'sc:k');
  await fx.raw.cmd('DEBUG', 'POPULATE', 700, 'other:k');
  await fx.raw.cmd('SET', 'sc', 'the bare prefix');
  await fx.cache.set('tagged', 1, { tags: ['t'] });
  const lock = await fx.cache.lock('held', { ttl: 60 });
  const keys = await collect(fx.cache.scan());
  assert.equal(keys.length, 5001);
  assert.equal(new Set(keys).size, 5001, 'each key once');
  assert.ok(keys.includes('k:0') && keys.includes('k:4999') && keys.includes('tagged'));
  assert.ok(!keys.some((k) => k.startsWith('__fluxor__:')), 'never the reserved namespace');
  // A small COUNT takes more pages, and finds the same keys.
  assert.deepEqual((await collect(fx.cache.scan('*', { count: 10 }))).sort(), keys.sort());
  await lock.release();
});

test("scan(pattern) matches the unprefixed name with Redis glob rules; the prefix's own glob characters match only themselves", async () => {
  await fx.cache.mset({ 'user:1': 1, 'user:2': 2, 'users:3': 3, 'session:[x]': 4, 'user:*': 5 });
  assert.deepEqual((await collect(fx.cache.scan('user:*'))).sort(), ['user:*', 'user:1', 'user:2']);
  assert.deepEqual(await collect(fx.cache.scan('session:\\[x\\]')), ['session:[x]']);
  const star = new CacheModule({ host: '127.0.0.1', port: fx.server.port, keyPrefix: 's*:' });
  await star.initialize();
  await fx.raw.cmd('SET', 'sX:a', 'not under s*:');
  await star.set('a', 1);
  assert.deepEqual(await collect(star.scan()), ['a']);
  await star.disconnect();
});

test('for await … break stops the scan; a key is yielded as a string usable with get', async () => {
  await fx.cache.mset(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`p:${i}`, i])));
  let n = 0;
  for await (const key of fx.cache.scan('p:*', { count: 5 })) {
    assert.equal(await fx.cache.get(key), Number(key.slice(2)));
    if (++n === 7) break;
  }
  assert.equal(n, 7);
});

test('SCAN, never KEYS (commandstats)', async () => {
  await fx.raw.cmd('CONFIG', 'RESETSTAT');
  await fx.cache.set('a', 1);
  await collect(fx.cache.scan());
  const stats = await fx.raw.cmd('INFO', 'commandstats');
  assert.match(stats, /cmdstat_scan:/);
  assert.doesNotMatch(stats, /cmdstat_keys:/);
});

test('bad arguments throw at once; before initialize() the first page rejects with ERR_NOT_CONNECTED', async () => {
  assert.throws(() => fx.cache.scan(5), { name: 'TypeError', code: 'ERR_INVALID_ARG' });
  assert.throws(() => fx.cache.scan(''), { name: 'TypeError', code: 'ERR_INVALID_ARG' });
  assert.throws(() => fx.cache.scan('*', { count: -1 }), { name: 'RangeError', code: 'ERR_INVALID_ARG' });
  assert.throws(() => fx.cache.scan('*', { count: 1.5 }), { name: 'RangeError', code: 'ERR_INVALID_ARG' });
  const idle = new CacheModule({ host: '127.0.0.1', port: fx.server.port });
  await assert.rejects(collect(idle.scan()), { code: 'ERR_NOT_CONNECTED' });
});
