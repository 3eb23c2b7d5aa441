'use strict';

// Hostile and broken input, table-driven: every method rejects bad arguments
// with a TypeError/RangeError (code ERR_INVALID_ARG) and sends nothing; odd
// but valid keys work and never reach outside the caller's keyPrefix.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { openCache, closeCache } = require('./harness');

let server;
let raw;
let cache;

test.before(async () => {
  ({ server, raw, cache } = await openCache(CacheModule, { keyPrefix: 'bad:' }));
});

test.after(() => closeCache({ server, raw, cache }));

const circular = {};
circular.self = circular;
const T = TypeError;
const R = RangeError;
const notKeys = ['', 'a\uD800b', null, undefined, {}, [], true, NaN, Infinity, -Infinity, 10n, Symbol('k'), () => 'k'];
const notJson = [undefined, () => 1, Symbol('s'), 10n, circular, { nested: 1n }];

const cases = [
  ...notKeys.flatMap((k) => [
    ['get', [k], T],
    ['get', [k, { fallback: 1 }], T],
    ['set', [k, 1], T],
    ['del', [k], T],
    ['exists', [k], T],
    ['ttl', [k], T],
    ['expire', [k, 1], T],
    ['mget', [['ok', k]], T],
    ['lock', [k], T],
  ]),
  ...notJson.map((v) => ['set', ['k', v], T]),
  ...notJson.map((v) => ['mset', [{ a: 1, b: v, c: 3 }], T]),
  ['mset', [new Map([['a', 1], ['', 2]])], T],
  ['mset', [{ a: 1, 'b\uDC00': 2 }], T],
  ['mset', [new Map([[{}, 2]])], T],
  ['mset', [null], T],
  ['mset', ['a=1'], T],
  ['mset', [[['a', 1]]], T],
  ['mget', ['a'], T],
  ['mget', [null], T],
  ...[-1, NaN, Infinity, -Infinity].flatMap((ttl) => [
    ['set', ['k', 1, { ttl }], R],
    ['mset', [{ a: 1 }, { ttl }], R],
    ['expire', ['k', ttl], R],
    ['lock', ['k', { ttl }], R],
    ['warmCache', [() => [{ id: 1 }], { ttl }], R],
  ]),
  ...['10', null, {}, true].flatMap((ttl) => [
    ['set', ['k', 1, { ttl }], T],
    ['expire', ['k', ttl], T],
  ]),
  ['set', ['k', 1, 'options'], T],
  ['set', ['k', 1, { tags: 'a' }], T],
  ['set', ['k', 1, { tags: [1] }], T],
  ['set', ['k', 1, { tags: [''] }], T],
  ['mset', [{ a: 1 }, { tags: {} }], T],
  ['set', ['__fluxor__:lock:{x}', 1], T],
  ['invalidate', ['pattern', ''], T],
  ['invalidate', ['pattern', 42], T],
  ['invalidate', ['pattern'], T],
  ['invalidate', ['tag', null], T],
  ['invalidate', ['cascade', {}], T],
  ['warmCache', [null], T],
  ['warmCache', [() => [], { batchSize: -5 }], R],
  ['lock', ['k', { retries: -1 }], R],
  ['withLock', ['k', null], T],
];

test('every bad argument rejects with the right class and code, and nothing is written', async () => {
  await raw.cmd('FLUSHALL');
  for (const [method, args, Class] of cases) {
    let call;
    assert.doesNotThrow(() => {
      call = cache[method](...args);
    }, `${method} threw synchronously`);
    await assert.rejects(call, (err) => err instanceof Class && err.code === 'ERR_INVALID_ARG', `${method}(${args.map((a) => typeof a).join(', ')}) should reject with ${Class.name}`);
  }
  assert.equal(await raw.cmd('DBSIZE'), 0);
});

test('odd but valid keys work: glob and control characters, unicode, a 1 MB key', async () => {
  const keys = ['*', '?', '[a-z]', 'a\\b', 'line\r\nbreak', 'nul\u0000byte', 'tab\tkey', 'ünïcödé:键:🔑', ' ', 'x'.repeat(1024 * 1024)];
  for (const [i, k] of keys.entries()) {
    assert.equal(await cache.set(k, { i }), true);
    assert.deepEqual(await cache.get(k), { i });
  }
  assert.deepEqual(await cache.mget(keys), keys.map((_, i) => ({ i })));
  assert.equal(await raw.cmd('EXISTS', 'bad:line\r\nbreak'), 1);
  // A glob character in a cascade key matches only itself.
  await cache.set('user', 'plain');
  assert.equal(await cache.invalidate('cascade', '*'), 1);
  assert.equal(await cache.get('user'), 'plain');
  assert.equal(await cache.invalidate('pattern', '*'), keys.length);
});

test('values: 10 MB works, deep nesting works, strings with every kind of character round-trip', async () => {
  const big = 'y'.repeat(10 * 1024 * 1024);
  await cache.set('big', big);
  assert.equal((await cache.get('big')).length, big.length);
  let deep = 'leaf';
  for (let i = 0; i < 500; i++) deep = { d: deep };
  await cache.set('deep', deep);
  assert.deepEqual(await cache.get('deep'), deep);
  const weird = '\u0000\u0001\r\n"\\\u2028\ud83d\ude00';
  await cache.set('weird', weird);
  assert.equal(await cache.get('weird'), weird);
  assert.equal(await raw.cmd('GET', 'bad:weird'), JSON.stringify(weird));
});

test('two instances with different keyPrefix: every destructive call of one leaves the other intact', async () => {
  await raw.cmd('FLUSHALL');
  const a = cache;
  const b = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'bad2:' });
  await b.initialize();
  const data = { k: 1, 'k:sub': 2, 'user:1': 3, 'session:x': 4 };
  await b.mset(data, { tags: ['t'] });
  const lockB = await b.lock('k');
  await a.mset(data, { tags: ['t'] });

  await a.del('k');
  await a.expire('user:1', 0.01);
  await a.mset({ 'session:x': 'overwritten' });
  await a.invalidate('cascade', 'k');
  await a.invalidate('tag', 't');
  await a.invalidate('pattern', '*');
  await a.withLock('k', async () => {});

  assert.deepEqual(await b.mget(Object.keys(data)), Object.values(data));
  assert.equal(await b.ttl('user:1') > 3000, true);
  assert.equal(await lockB.release(), true, "b's lock was untouched");
  assert.equal(await b.invalidate('tag', 't'), 4);
  await b.disconnect();
});
