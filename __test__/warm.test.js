'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { openCache, closeCache } = require('./harness');

let server;
let raw;
let cache;

test.before(async () => {
  ({ server, raw, cache } = await openCache(CacheModule, { keyPrefix: 'warm:' }));
});

test.after(() => closeCache({ server, raw, cache }));

test.beforeEach(() => raw.cmd('FLUSHALL'));

test('the seed README example: an async warmer, keyExtractor and ttl', async () => {
  const fetchAllProducts = async () => [{ id: 1, name: 'A' }, { id: 2, name: 'B' }];
  const result = await cache.warmCache(async () => await fetchAllProducts(), {
    keyExtractor: (product) => `product:${product.id}`,
    ttl: 7200,
  });
  assert.deepEqual(result, { loaded: 2 });
  assert.deepEqual(await cache.get('product:2'), { id: 2, name: 'B' });
  const ttl = await raw.cmd('TTL', 'warm:product:1');
  assert.ok(ttl > 7190 && ttl <= 7200, `ttl ${ttl}`);
});

test('100k items from an async generator, in batches, with tags', async () => {
  async function* items() {
    for (let i = 0; i < 100000; i++) yield { id: i, v: `item ${i}` };
  }
  const result = await cache.warmCache(() => items(), { batchSize: 5000, tags: ['bulk'], ttl: 600 });
  assert.deepEqual(result, { loaded: 100000 });
  assert.equal(await raw.cmd('DBSIZE'), 200001); // + the tag index, and each key's record of its tags
  assert.deepEqual(await cache.get(99999), { id: 99999, v: 'item 99999' });
  assert.equal(await cache.invalidate('tag', 'bulk'), 100000);
  assert.equal(await raw.cmd('DBSIZE'), 0);
});

test('a plain object and a Map map keys to values; a sync iterable of items works too', async () => {
  assert.deepEqual(await cache.warmCache(() => ({ a: 1, b: { two: 2 } })), { loaded: 2 });
  assert.deepEqual(await cache.warmCache(() => new Map([['c', 3], [4, 'four']])), { loaded: 2 });
  assert.deepEqual(await cache.warmCache(() => new Set([{ id: 'd' }, { id: 'e' }])), { loaded: 2 });
  assert.deepEqual(await cache.mget(['a', 'b', 'c', '4', 'd']), [1, { two: 2 }, 3, 'four', { id: 'd' }]);
  assert.deepEqual(await cache.warmCache(() => []), { loaded: 0 });
});

test('a warmer that throws rejects; the batches already written stay', async () => {
  async function* failing() {
    for (let i = 0; i < 25; i++) yield { id: i };
    throw new Error('source broke');
  }
  await assert.rejects(cache.warmCache(failing, { batchSize: 10 }), /source broke/);
  assert.equal(await raw.cmd('DBSIZE'), 20, 'the two full batches were written');
  await assert.rejects(cache.warmCache(async () => { throw new Error('early'); }), /early/);
});

test('bad warmer arguments reject with TypeError/RangeError', async () => {
  await assert.rejects(cache.warmCache('nope'), { code: 'ERR_INVALID_ARG' });
  await assert.rejects(cache.warmCache(() => [], { batchSize: 0 }), (e) => e instanceof RangeError);
  await assert.rejects(cache.warmCache(() => [], { keyExtractor: 1 }), (e) => e instanceof TypeError);
  await assert.rejects(cache.warmCache(() => 42), (e) => e instanceof TypeError);
  await assert.rejects(cache.warmCache(() => [{ name: 'no id' }]), (e) => e instanceof TypeError && /keyExtractor/.test(e.message));
  await assert.rejects(cache.warmCache(() => [{ id: 1, f: 1n }]), (e) => e instanceof TypeError);
  assert.equal(await raw.cmd('DBSIZE'), 0);
});
