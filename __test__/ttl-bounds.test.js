'use strict';

// ttl and defaultTTL are checked against what Redis (and the tag scripts)
// take, up front, in the caller's unit (issue #14, item 6).

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { openCache, closeCache } = require('./harness');

let ctx;
test.before(async () => {
  ctx = await openCache(CacheModule, { keyPrefix: 'bounds:' });
});
test.after(() => closeCache(ctx));

const tooLong = (name, got) => ({ name: 'RangeError', code: 'ERR_INVALID_ARG', message: `${name} must be at most 9000000000000 seconds (about 285,000 years), got ${got}` });

test('a ttl past the bound is a RangeError in seconds, from every method, and nothing is written', async () => {
  const { cache, raw } = ctx;
  await assert.rejects(cache.set('k', 1, { ttl: 1e17 }), tooLong('options.ttl', 1e17));
  await assert.rejects(cache.mset({ k: 1 }, { ttl: 1e17 }), tooLong('options.ttl', 1e17));
  await assert.rejects(cache.warmCache(() => [{ id: 'k' }], { ttl: 1e17 }), tooLong('options.ttl', 1e17));
  await assert.rejects(cache.expire('k', 9e12 + 1), tooLong('ttl', 9e12 + 1));
  assert.equal(await raw.cmd('EXISTS', 'bounds:k'), 0);
});

test('the longest ttl works, with tags and expire', async () => {
  const { cache, raw } = ctx;
  assert.equal(await cache.set('long', 1, { ttl: 9e12, tags: ['long'] }), true);
  assert.ok((await cache.ttl('long')) > 8.9e12);
  assert.equal(await cache.expire('long', 9e12), true);
  const ms = await raw.cmd('PTTL', 'bounds:__fluxor__:tag:long');
  assert.ok(ms > 8.9e15, `the tag index expires with its member, got ${ms}`);
  assert.equal(await cache.invalidate('tag', 'long'), 1);
});

test('defaultTTL past the bound throws from the constructor, in seconds', () => {
  assert.throws(() => new CacheModule({ defaultTTL: 1e16 }), tooLong('options.defaultTTL', 1e16));
  const cache = new CacheModule({ host: '127.0.0.1', port: ctx.server.port, defaultTTL: 9e12 });
  assert.equal(cache.keyPrefix, 'fluxor:');
});

test('a defaultTTL at the bound is taken by Redis on every set', async () => {
  const cache = await new CacheModule({ host: '127.0.0.1', port: ctx.server.port, keyPrefix: 'bounds:', defaultTTL: 9e12 }).initialize();
  assert.equal(await cache.set('d', 1, { tags: ['d'] }), true);
  assert.ok((await cache.ttl('d')) > 8.9e12);
  await cache.disconnect();
});
