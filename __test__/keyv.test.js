'use strict';

// @fluxor/cache-module/keyv beyond the official suite (__test__/keyv.spec.mjs):
// what lands in Redis (the namespace once, Keyv's ms TTL), clear() kept to
// its namespace, a CacheModule of the user's, and cache-manager v7 on top.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { KeyvFluxor } = require('../lib/keyv');
const { openCache, closeCache } = require('./harness');

let fx;
const stores = [];
const store = (options = {}) => {
  const s = new KeyvFluxor({ host: '127.0.0.1', port: fx.server.port, keyPrefix: 'kv:', ...options });
  stores.push(s);
  return s;
};

test.before(async () => {
  fx = await openCache(CacheModule, { keyPrefix: 'kv:' });
});

test.after(async () => {
  await Promise.all(stores.map((s) => s.disconnect()));
  await closeCache(fx);
});

test.beforeEach(() => fx.raw.cmd('FLUSHALL'));

test('the package exports ./keyv for require and import', async () => {
  assert.equal(require('@fluxor/cache-module/keyv').KeyvFluxor, KeyvFluxor);
  const esm = await import('@fluxor/cache-module/keyv');
  assert.equal(esm.KeyvFluxor, KeyvFluxor);
  assert.equal(esm.default, KeyvFluxor);
});

test('keys carry the namespace once, under keyPrefix; Keyv ms TTLs become the key expiry', async () => {
  const { default: Keyv } = await import('keyv');
  const keyv = new Keyv({ store: store(), namespace: 'users' });
  assert.equal(await keyv.set('1', { name: 'Ada' }, 1500), true);
  assert.equal(await keyv.set('2', 'forever'), true);
  assert.deepEqual(await keyv.get('1'), { name: 'Ada' });
  assert.deepEqual((await fx.raw.cmd('KEYS', '*')).sort(), ['kv:users:1', 'kv:users:2']);
  const pttl = await fx.raw.cmd('PTTL', 'kv:users:1');
  assert.ok(pttl > 0 && pttl <= 1500, `PTTL ${pttl} is Keyv's 1500 ms`);
  assert.equal(await fx.raw.cmd('PTTL', 'kv:users:2'), -1, 'no ttl: no expiry (not the defaultTTL)');
  assert.equal(await keyv.get('missing'), undefined);
  assert.deepEqual(await keyv.get(['1', 'missing']), [{ name: 'Ada' }, undefined]);
  assert.deepEqual(await keyv.has(['1', 'missing']), [true, false]);
});

test('clear() removes its namespace only: not other namespaces, not plain cache keys, not locks', async () => {
  const { default: Keyv } = await import('keyv');
  const a = new Keyv({ store: store(), namespace: 'a' });
  const b = new Keyv({ store: store(), namespace: 'b' });
  await a.set('x', 1);
  await b.set('x', 2);
  await fx.cache.set('plain', 3);
  const lock = await fx.cache.lock('held', { ttl: 30 });
  await a.clear();
  assert.equal(await a.get('x'), undefined);
  assert.equal(await b.get('x'), 2);
  assert.equal(await fx.cache.get('plain'), 3);
  assert.equal(await lock.release(), true);
  // A namespace with glob characters matches only itself.
  const star = new Keyv({ store: store(), namespace: 'a*' });
  await a.set('y', 1);
  await star.set('y', 2);
  await star.clear();
  assert.equal(await a.get('y'), 1);
});

test('setMany/getMany/deleteMany and the iterator map to batches and scan', async () => {
  const { default: Keyv } = await import('keyv');
  const keyv = new Keyv({ store: store(), namespace: 'many' });
  const entries = Array.from({ length: 2500 }, (_, i) => ({ key: `k${i}`, value: { i }, ttl: i % 2 ? 60000 : undefined }));
  assert.equal((await keyv.setMany(entries)).length, 2500);
  assert.equal(await fx.raw.cmd('DBSIZE'), 2500);
  assert.equal(await fx.raw.cmd('PTTL', 'kv:many:k0'), -1);
  assert.ok((await fx.raw.cmd('PTTL', 'kv:many:k1')) > 0);
  const seen = new Map();
  for await (const [key, value] of keyv.iterator()) seen.set(key, value);
  assert.equal(seen.size, 2500);
  assert.deepEqual(seen.get('k2499'), { i: 2499 });
  assert.equal(await keyv.delete(['k0', 'k1', 'nope']), true);
  assert.equal(await keyv.delete(['k0', 'k1']), false);
});

test('a CacheModule of your own: the store uses it as it is and leaves closing it to you', async () => {
  const { default: Keyv } = await import('keyv');
  const s = new KeyvFluxor(fx.cache);
  const keyv = new Keyv({ store: s });
  await keyv.set('mine', 'v');
  assert.equal(await fx.raw.cmd('EXISTS', 'kv:keyv:mine'), 1, "Keyv's default namespace");
  await s.disconnect();
  assert.equal(await fx.cache.exists('keyv:mine'), true, 'still connected');
  assert.throws(() => new KeyvFluxor('redis://x'), { name: 'TypeError', code: 'ERR_INVALID_ARG' });
});

test('an unreachable server: Keyv reports the error event and resolves a miss; nothing is thrown unhandled', async () => {
  const { default: Keyv } = await import('keyv');
  const { freePort } = require('./harness');
  const keyv = new Keyv({ store: store({ port: await freePort(), connectTimeout: 500 }) });
  const errors = [];
  keyv.on('error', (e) => errors.push(e));
  assert.equal(await keyv.get('x'), undefined);
  assert.equal(await keyv.set('x', 1), false);
  assert.ok(errors.some((e) => e.code === 'ERR_CONNECTION'), errors.map((e) => e.code).join());
});

test('cache-manager v7: createCache({ stores: [keyv] }) with ms TTLs, wrap, del, clear', async () => {
  const { default: Keyv } = await import('keyv');
  const { createCache } = await import('cache-manager');
  const cache = createCache({ stores: [new Keyv({ store: store(), namespace: 'cm' })] });
  assert.deepEqual(await cache.set('user:1', { id: 1 }, 2000), { id: 1 });
  assert.deepEqual(await cache.get('user:1'), { id: 1 });
  const pttl = await fx.raw.cmd('PTTL', 'kv:cm:user:1');
  assert.ok(pttl > 0 && pttl <= 2000, `PTTL ${pttl}`);
  let calls = 0;
  const load = async () => ({ loaded: ++calls });
  assert.deepEqual(await cache.wrap('w', load, 5000), { loaded: 1 });
  assert.deepEqual(await cache.wrap('w', load, 5000), { loaded: 1 }, 'the second call is a hit');
  assert.equal(await cache.del('user:1'), true);
  assert.equal(await cache.get('user:1'), undefined);
  await fx.cache.set('outside', 1);
  await cache.clear();
  assert.equal(await cache.get('w'), undefined);
  assert.equal(await fx.cache.get('outside'), 1, 'clear kept to the namespace');
  await cache.disconnect();
});
