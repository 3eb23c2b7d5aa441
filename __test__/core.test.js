'use strict';

// get/set/del/exists/expire/ttl/mget/mset on a real standalone server, and
// the wire format other clients see.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { openCache, closeCache } = require('./harness');

let server;
let raw;
let cache;
const PREFIX = 'core:';

test.before(async () => {
  ({ server, raw, cache } = await openCache(CacheModule, { keyPrefix: PREFIX, defaultTTL: 3600 }));
});

test.after(() => closeCache({ server, raw, cache }));

const isInvalid = (Class) => (err) => err instanceof Class && err.code === 'ERR_INVALID_ARG';

test('the seed README example: the raw key holds the JSON text with a TTL near defaultTTL', async () => {
  assert.equal(await cache.set('user:123', { name: 'John' }), true);
  assert.deepEqual(await cache.get('user:123'), { name: 'John' });
  assert.equal(await raw.cmd('GET', 'core:user:123'), '{"name":"John"}');
  const ttl = await raw.cmd('TTL', 'core:user:123');
  assert.ok(ttl > 3590 && ttl <= 3600, `ttl ${ttl}`);
});

test('values round-trip as exactly their JSON.stringify text', async () => {
  const values = [
    { name: 'John', email: 'john@example.com', tags: ['a', 'b'], nested: { deep: [1, { x: null }] } },
    [1, 'two', { three: 3 }],
    'plain string',
    '',
    '{"looks":"like json"}',
    42,
    -0.5,
    true,
    false,
    null,
    'ünïcödé ✓ 日本語 😀',
    { date: new Date(0) },
  ];
  for (const [i, value] of values.entries()) {
    await cache.set(`v:${i}`, value);
    assert.equal(await raw.cmd('GET', `core:v:${i}`), JSON.stringify(value));
    assert.deepEqual(await cache.get(`v:${i}`), JSON.parse(JSON.stringify(value)));
  }
});

test('data written by another client reads back; non-JSON text comes back raw', async () => {
  await raw.cmd('SET', 'core:other:json', JSON.stringify({ from: 'ioredis', n: [1, 2] }));
  await raw.cmd('SET', 'core:other:raw', 'not json {');
  await raw.cmd('SET', 'core:other:num', '12');
  assert.deepEqual(await cache.get('other:json'), { from: 'ioredis', n: [1, 2] });
  assert.equal(await cache.get('other:raw'), 'not json {');
  assert.equal(await cache.get('other:num'), 12);
  assert.deepEqual(await cache.mget(['other:json', 'other:raw', 'other:none']), [{ from: 'ioredis', n: [1, 2] }, 'not json {', null]);
});

test('a miss is null', async () => {
  assert.equal(await cache.get('missing'), null);
});

test('numbers are accepted as keys', async () => {
  await cache.set(123, 'n');
  assert.equal(await raw.cmd('GET', 'core:123'), '"n"');
  assert.equal(await cache.get('123'), 'n');
});

test('bad keys reject with TypeError and nothing is sent', async () => {
  const before = await raw.cmd('DBSIZE');
  for (const key of ['', null, undefined, {}, [], NaN, Infinity, true, Symbol('k'), () => 'k']) {
    await assert.rejects(cache.set(key, 1), isInvalid(TypeError), String(typeof key));
    await assert.rejects(cache.get(key), isInvalid(TypeError));
    await assert.rejects(cache.del(key), isInvalid(TypeError));
    await assert.rejects(cache.exists(key), isInvalid(TypeError));
    await assert.rejects(cache.ttl(key), isInvalid(TypeError));
    await assert.rejects(cache.expire(key, 5), isInvalid(TypeError));
  }
  await assert.rejects(cache.set('__fluxor__:tag:x', 1), isInvalid(TypeError));
  assert.equal(await raw.cmd('DBSIZE'), before);
});

test('values JSON cannot hold reject with TypeError and nothing is written', async () => {
  const circular = {};
  circular.self = circular;
  for (const value of [undefined, () => 1, Symbol('s'), 10n, circular, { big: 1n }]) {
    await assert.rejects(cache.set('bad:value', value), isInvalid(TypeError));
  }
  assert.equal(await raw.cmd('EXISTS', 'core:bad:value'), 0);
});

test('a method never throws synchronously on bad arguments', () => {
  assert.doesNotThrow(() => cache.set('', 1).catch(() => {}));
  assert.doesNotThrow(() => cache.mget('nope').catch(() => {}));
  assert.doesNotThrow(() => cache.mset(null).catch(() => {}));
  assert.doesNotThrow(() => cache.get('k', 5).catch(() => {}));
});

test('set ttl: seconds, fractions in ms, 0 = no expiry, bad values reject', async () => {
  await cache.set('ttl:a', 1, { ttl: 1800 });
  const a = await raw.cmd('TTL', 'core:ttl:a');
  assert.ok(a > 1790 && a <= 1800, `ttl ${a}`);
  await cache.set('ttl:frac', 1, { ttl: 1.5 });
  const frac = await raw.cmd('PTTL', 'core:ttl:frac');
  assert.ok(frac > 1000 && frac <= 1500, `pttl ${frac}`);
  await cache.set('ttl:none', 1, { ttl: 0 });
  assert.equal(await raw.cmd('TTL', 'core:ttl:none'), -1);
  for (const ttl of [-1, NaN, Infinity, -Infinity]) {
    await assert.rejects(cache.set('ttl:bad', 1, { ttl }), isInvalid(RangeError));
  }
  await assert.rejects(cache.set('ttl:bad', 1, { ttl: '10' }), isInvalid(TypeError));
  assert.equal(await raw.cmd('EXISTS', 'core:ttl:bad'), 0);
});

test('defaultTTL 0 means no expiry', async () => {
  const c = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: PREFIX, defaultTTL: 0 });
  await c.initialize();
  await c.set('forever', 1);
  assert.equal(await raw.cmd('TTL', 'core:forever'), -1);
  await c.disconnect();
});

test('set with tags records the membership in the tag index', async () => {
  await cache.set('tagged:1', 1, { tags: ['red', 'blue'], ttl: 100 });
  await cache.set('tagged:2', 2, { tags: ['red'] });
  assert.deepEqual((await raw.cmd('ZRANGE', 'core:__fluxor__:tag:red', 0, -1)).sort(), ['core:tagged:1', 'core:tagged:2']);
  assert.deepEqual(await raw.cmd('ZRANGE', 'core:__fluxor__:tag:blue', 0, -1), ['core:tagged:1']);
  // The index lives at least as long as its longest-lived member.
  const idx = await raw.cmd('TTL', 'core:__fluxor__:tag:red');
  assert.ok(idx > 3590, `index ttl ${idx}`);
  await assert.rejects(cache.set('tagged:3', 1, { tags: 'red' }), isInvalid(TypeError));
  await assert.rejects(cache.set('tagged:3', 1, { tags: [''] }), isInvalid(TypeError));
  assert.equal(await raw.cmd('EXISTS', 'core:tagged:3'), 0);
});

test('del, exists', async () => {
  await cache.set('d', 1);
  assert.equal(await cache.exists('d'), true);
  assert.equal(await cache.del('d'), true);
  assert.equal(await cache.exists('d'), false);
  assert.equal(await cache.del('d'), false);
});

test('expire and ttl', async () => {
  await cache.set('e', 1, { ttl: 0 });
  assert.equal(await cache.ttl('e'), -1);
  assert.equal(await cache.expire('e', 100), true);
  const t = await cache.ttl('e');
  assert.ok(t > 95 && t <= 100, `ttl ${t}`);
  assert.equal(await cache.expire('e', 0), true, 'expire 0 removes the expiry');
  assert.equal(await cache.ttl('e'), -1);
  assert.equal(await cache.ttl('no-such-key'), -2);
  assert.equal(await cache.expire('no-such-key', 10), false);
  assert.equal(await cache.expire('no-such-key', 0), false);
  await assert.rejects(cache.expire('e', -1), isInvalid(RangeError));
  await assert.rejects(cache.expire('e'), isInvalid(TypeError));
  await cache.expire('e', 0.05);
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(await cache.exists('e'), false);
});

test('mget keeps order and length, null for misses', async () => {
  await cache.mset({ 'm:1': 1, 'm:2': { two: 2 } });
  assert.deepEqual(await cache.mget(['m:2', 'm:none', 'm:1', 'm:2']), [{ two: 2 }, null, 1, { two: 2 }]);
  assert.deepEqual(await cache.mget([]), []);
  await assert.rejects(cache.mget('m:1'), isInvalid(TypeError));
  await assert.rejects(cache.mget(['m:1', '']), isInvalid(TypeError));
});

test('mset: the seed README pairs, a Map, each key gets the ttl', async () => {
  assert.equal(
    await cache.mset({
      'product:1': { name: 'Product 1', price: 99.99 },
      'product:2': { name: 'Product 2', price: 149.99 },
    }),
    true,
  );
  assert.deepEqual(await cache.mget(['product:1', 'product:2']), [
    { name: 'Product 1', price: 99.99 },
    { name: 'Product 2', price: 149.99 },
  ]);
  await cache.mset(new Map([['map:a', 'A'], ['map:b', ['B']]]), { ttl: 50, tags: ['maps'] });
  for (const k of ['core:map:a', 'core:map:b']) {
    const t = await raw.cmd('TTL', k);
    assert.ok(t > 45 && t <= 50, `${k} ttl ${t}`);
  }
  assert.deepEqual((await raw.cmd('ZRANGE', 'core:__fluxor__:tag:maps', 0, -1)).sort(), ['core:map:a', 'core:map:b']);
  assert.equal(await cache.mset({}), true);
});

test('mset validates every value before writing any', async () => {
  await assert.rejects(cache.mset({ 'batch:1': 1, 'batch:2': undefined, 'batch:3': 3 }), isInvalid(TypeError));
  await assert.rejects(cache.mset({ 'batch:1': 1, '': 2 }), isInvalid(TypeError));
  await assert.rejects(cache.mset({ 'batch:1': 1 }, { ttl: -1 }), isInvalid(RangeError));
  await assert.rejects(cache.mset([['batch:1', 1]]), isInvalid(TypeError));
  assert.equal(await raw.cmd('EXISTS', 'core:batch:1'), 0);
  assert.equal(await raw.cmd('EXISTS', 'core:batch:3'), 0);
});

test('get fallback: a value, or a function called once, on a miss', async () => {
  assert.equal(await cache.get('fb:miss', { fallback: 'default' }), 'default');
  let calls = 0;
  const fallback = async () => {
    calls++;
    return { from: 'db' };
  };
  assert.deepEqual(await cache.get('fb:miss', { fallback }), { from: 'db' });
  assert.equal(calls, 1);
  await cache.set('fb:hit', 'cached');
  assert.equal(await cache.get('fb:hit', { fallback }), 'cached');
  assert.equal(calls, 1);
  await assert.rejects(cache.get('', { fallback: 1 }), isInvalid(TypeError));
});

test('many concurrent operations resolve in order with the right values', async () => {
  const n = 2000;
  const writes = [];
  for (let i = 0; i < n; i++) writes.push(cache.set(`conc:${i}`, { i }));
  assert.ok((await Promise.all(writes)).every((r) => r === true));
  const reads = [];
  for (let i = 0; i < n; i++) reads.push(cache.get(`conc:${i}`));
  const values = await Promise.all(reads);
  values.forEach((v, i) => assert.deepEqual(v, { i }));
});

test('a server error reply rejects with ERR_REDIS and keeps its text; the batch goes on', async () => {
  await raw.cmd('HSET', 'core:wrongtype', 'f', 'v');
  const [bad, good] = await Promise.allSettled([cache.get('wrongtype'), cache.get('user:123')]);
  assert.equal(bad.status, 'rejected');
  assert.equal(bad.reason.code, 'ERR_REDIS');
  assert.match(bad.reason.message, /WRONGTYPE/);
  assert.deepEqual(good.value, { name: 'John' });
});

test('a large value (10 MB) works', async () => {
  const big = { data: 'x'.repeat(10 * 1024 * 1024) };
  await cache.set('big', big);
  assert.equal((await cache.get('big')).data.length, big.data.length);
});

test('mset and mget past 64 Mi characters cross in several parts, in order', async () => {
  // Keys and values cross to Rust as a few joined strings (lib/args.js
  // inParts); one string for all of them would pass V8's cap on a string
  // long before the values themselves do.
  const { inParts } = require('../lib/args');
  const nul = (xs) => xs.join('\0');
  assert.deepEqual(inParts(['ab', 'cd', 'e', 'fgh'], nul, 4), ['2', 'ab\0cd', 'e\0fgh']);
  assert.deepEqual(inParts(['ab', 'cd', 'efg'], nul, 4), ['2', 'ab\0cd', 'efg']);
  assert.deepEqual(inParts(['toolong', 'x'], nul, 4), ['2', 'toolong', 'x'], 'an item over the budget goes alone');
  assert.deepEqual(inParts([], nul, 4), ['1', '']);
  const pairs = {};
  for (let i = 0; i < 3; i++) pairs[`part:${i}`] = { i, pad: String(i).repeat(30 * 1024 * 1024) };
  assert.equal(await cache.mset(pairs), true);
  const got = await cache.mget(['part:2', 'part:0', 'part:1']);
  assert.deepEqual(got.map((v) => [v.i, v.pad.length, v.pad[0]]), [2, 0, 1].map((i) => [i, 30 * 1024 * 1024, String(i)]));
});
