'use strict';

// The built-in invalidation strategies against a real server: SCAN + UNLINK,
// never outside keyPrefix, never a lock or a tag index.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { openCache, closeCache } = require('./harness');

let server;
let raw;
let cache;

test.before(async () => {
  ({ server, raw, cache } = await openCache(CacheModule, { keyPrefix: 'inv:' }, { args: ['--enable-debug-command', 'yes'] }));
});

test.after(() => closeCache({ server, raw, cache }));

test.beforeEach(() => raw.cmd('FLUSHALL'));

test("pattern '*' removes exactly the 200k keys under the prefix, not the 50k outside it", async () => {
  await raw.cmd('DEBUG', 'POPULATE', 200000, 'inv:k');
  await raw.cmd('DEBUG', 'POPULATE', 50000, 'other');
  await raw.cmd('SET', 'inv', 'the bare prefix is not under it');
  await raw.cmd('SET', 'invx:1', 'nor is a longer prefix');
  const lock = await cache.lock('held', { ttl: 60 });
  await cache.set('tagged', 1, { tags: ['t'] });
  assert.equal(await raw.cmd('DBSIZE'), 250000 + 2 + 2 + 3); // + lock, its fencing counter, tagged, its index and its record of tags

  assert.equal(await cache.invalidate('pattern', '*'), 200001);
  assert.equal(await raw.cmd('DBSIZE'), 50000 + 2 + 2 + 2);
  assert.equal(await raw.cmd('GET', 'inv'), 'the bare prefix is not under it');
  assert.equal(await raw.cmd('EXISTS', 'inv:__fluxor__:tag:t'), 1, 'the tag index stays');
  assert.equal(await lock.release(), true, 'the lock was still held');
});

test('pattern matches the unprefixed name with Redis glob rules', async () => {
  await cache.mset({ 'session:a': 1, 'session:b': 2, 'sessions:c': 3, 'user:1': 4, 'session:[x]': 5 });
  assert.equal(await cache.invalidate('pattern', 'session:*'), 3);
  assert.deepEqual(await cache.mget(['session:a', 'sessions:c', 'user:1']), [null, 3, 4]);
  assert.equal(await cache.invalidate('pattern', 'user:?'), 1);
  assert.equal(await cache.invalidate('pattern', 'nothing:*'), 0);
});

test('cascade removes the key and its sub-keys only', async () => {
  await cache.mset({ 'user:123': 1, 'user:123:profile': 2, 'user:123:orders:9': 3, 'user:1234': 4, 'user:12': 5 });
  assert.equal(await cache.invalidate('cascade', 'user:123'), 3);
  assert.deepEqual(await cache.mget(['user:123', 'user:123:profile', 'user:1234', 'user:12']), [null, null, 4, 5]);
  assert.equal(await cache.invalidate('cascade', 'user:123'), 0);
});

test('cascade: glob characters in the key match only themselves', async () => {
  await cache.mset({ 'a*': 1, 'a*:x': 2, abc: 3, 'abc:x': 4, 'a?': 5, 'ab:x': 6, '[1]': 7, '1:x': 8, '[1]:y': 9, 'a\\b': 10, 'a\\b:c': 11, 'ab:c': 12 });
  assert.equal(await cache.invalidate('cascade', 'a*'), 2);
  assert.equal(await cache.invalidate('cascade', 'a?'), 1);
  assert.equal(await cache.invalidate('cascade', '[1]'), 2);
  assert.equal(await cache.invalidate('cascade', 'a\\b'), 2);
  assert.deepEqual(await cache.mget(['abc', 'abc:x', 'ab:x', '1:x', 'ab:c']), [3, 4, 6, 8, 12]);
});

test('cascade never frees a held lock', async () => {
  const lock = await cache.lock('user:7', { ttl: 60 });
  await cache.set('user:7', 1);
  assert.equal(await cache.invalidate('cascade', 'user:7'), 1);
  assert.equal(await lock.release(), true);
});

test('tag removes what set, mset and warmCache wrote with the tag, then the index', async () => {
  await cache.set('t:set', 1, { tags: ['red'] });
  await cache.mset({ 't:m1': 1, 't:m2': 2 }, { tags: ['red', 'blue'] });
  await cache.warmCache(async () => [{ id: 'w1' }, { id: 'w2' }], { tags: ['red'] });
  await cache.set('t:blue-only', 1, { tags: ['blue'] });
  await cache.set('t:none', 1);
  assert.equal(await cache.invalidate('tag', 'red'), 5);
  assert.equal(await raw.cmd('EXISTS', 'inv:__fluxor__:tag:red'), 0, 'the index is gone');
  assert.deepEqual(await cache.mget(['t:set', 'w1', 't:blue-only', 't:none']), [null, null, 1, 1]);
  assert.equal(await cache.invalidate('tag', 'blue'), 1, 'members already gone are not counted');
  assert.equal(await cache.invalidate('tag', 'never-used'), 0);
});

test('a tag index expires with its longest-lived member and drops expired members', async () => {
  await cache.set('short', 1, { ttl: 0.2, tags: ['exp'] });
  const idx = 'inv:__fluxor__:tag:exp';
  const pttl = await raw.cmd('PTTL', idx);
  assert.ok(pttl > 0 && pttl <= 200, `index pttl ${pttl}`);
  await cache.set('long', 1, { ttl: 100, tags: ['exp'] });
  assert.ok((await raw.cmd('TTL', idx)) > 95);
  await new Promise((r) => setTimeout(r, 300));
  await cache.set('another', 1, { ttl: 50, tags: ['exp'] });
  assert.deepEqual((await raw.cmd('ZRANGE', idx, 0, -1)).sort(), ['inv:another', 'inv:long'], 'the expired member was dropped');
  await cache.set('forever', 1, { ttl: 0, tags: ['exp'] });
  assert.equal(await raw.cmd('TTL', idx), -1, 'a member without expiry keeps the index');
  await cache.set('later', 1, { ttl: 10, tags: ['exp'] });
  assert.equal(await raw.cmd('TTL', idx), -1, 'and a later member with a ttl does not shorten it');
});

test('custom strategies: registered, awaited, their result resolved; unknown ones reject', async () => {
  const calls = [];
  cache.registerInvalidationStrategy('custom', async (param, other) => {
    calls.push([param, other]);
    return cache.del(param);
  });
  await cache.set('c:1', 1);
  assert.equal(await cache.invalidate('custom', 'c:1', 'x'), true);
  assert.deepEqual(calls, [['c:1', 'x']]);
  await assert.rejects(cache.invalidate('nope', 'x'), { code: 'ERR_UNKNOWN_STRATEGY' });
  assert.throws(() => cache.registerInvalidationStrategy('bad', 5), { code: 'ERR_INVALID_ARG' });
});

test('bad invalidation arguments reject with TypeError and remove nothing', async () => {
  await cache.set('keep', 1);
  for (const [strategy, arg] of [['pattern', ''], ['pattern', 5], ['tag', ''], ['tag', null], ['cascade', ''], ['cascade', {}], ['pattern', undefined]]) {
    await assert.rejects(cache.invalidate(strategy, arg), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG', `${strategy} ${arg}`);
  }
  assert.equal(await cache.get('keep'), 1);
});

test('two prefixes on one server: one instance never touches the other', async () => {
  const other = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'inv2:' });
  await other.initialize();
  await other.mset({ a: 1, 'a:b': 2 }, { tags: ['t'] });
  await cache.mset({ a: 1, 'a:b': 2 }, { tags: ['t'] });
  assert.equal(await cache.invalidate('pattern', '*'), 2);
  assert.equal(await cache.invalidate('cascade', 'a'), 0);
  assert.equal(await cache.invalidate('tag', 't'), 0);
  assert.deepEqual(await other.mget(['a', 'a:b']), [1, 2]);
  assert.equal(await other.invalidate('tag', 't'), 2);
  await other.disconnect();
});
