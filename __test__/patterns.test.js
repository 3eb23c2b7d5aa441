'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');

const cache = new CacheModule();

test('the seven built-in patterns give exactly the documented keys', () => {
  assert.equal(cache.generateKey('user', 123), 'user:123');
  assert.equal(cache.generateKey('inventory', 'sku-1'), 'inventory:sku-1');
  assert.equal(cache.generateKey('order', 'o9'), 'order:o9');
  assert.equal(cache.generateKey('session', 'abc'), 'session:abc');
  assert.equal(cache.generateKey('analytics', 'views', '2024-01-01'), 'analytics:views:2024-01-01');
  assert.equal(cache.generateKey('forecast', 42, '2024-02'), 'forecast:42:2024-02');
  assert.equal(cache.generateKey('channel', 'web', 'orders'), 'channel:web:orders');
});

test('a missing or empty argument throws rather than writing undefined into a key', () => {
  for (const args of [['user'], ['user', undefined], ['user', ''], ['analytics', 'views'], ['channel', null, 'x'], ['order', {}]]) {
    assert.throws(() => cache.generateKey(...args), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG', args.join(','));
  }
});

test('an unknown pattern throws ERR_UNKNOWN_PATTERN', () => {
  assert.throws(() => cache.generateKey('nope', 1), { code: 'ERR_UNKNOWN_PATTERN' });
});

test('registerKeyPattern: the seed README example, and replacing a built-in', () => {
  const c = new CacheModule();
  c.registerKeyPattern('custom', (type, id) => `custom:${type}:${id}`);
  assert.equal(c.generateKey('custom', 'a', 1), 'custom:a:1');
  c.registerKeyPattern('user', (id) => `u:${id}`);
  assert.equal(c.generateKey('user', 7), 'u:7');
  assert.equal(cache.generateKey('user', 7), 'user:7', 'patterns are per instance');
  assert.throws(() => c.generateKey('custom', 'a'), { code: 'ERR_INVALID_ARG' }, 'a custom pattern that yields "undefined" throws');
  c.registerKeyPattern('empty', () => '');
  assert.throws(() => c.generateKey('empty'), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => c.registerKeyPattern('x', 'not a function'), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => c.registerKeyPattern('', () => 'k'), { code: 'ERR_INVALID_ARG' });
});
