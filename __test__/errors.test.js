'use strict';

// CacheError: one class for every error the module raises, codes chosen by
// the server error's own code (never by its text), bad arguments as
// TypeError/RangeError that are CacheErrors too. Real servers, no mocks.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { CacheError, isCacheError } = CacheModule;
const { startRedis, freePort, openCache, closeCache } = require('./harness');

test('CacheError and isCacheError are exported (CommonJS and ESM)', async () => {
  assert.equal(typeof CacheError, 'function');
  assert.equal(typeof isCacheError, 'function');
  const esm = await import('../index.mjs');
  assert.equal(esm.CacheError, CacheError);
  assert.equal(esm.isCacheError, isCacheError);
  assert.equal(isCacheError(new Error('x')), false);
  assert.equal(new TypeError('x') instanceof CacheError, false);
  assert.equal(isCacheError(null), false);
  assert.equal(isCacheError({ code: 'ERR_REDIS' }), false);
});

test('every kind of error the module raises is a CacheError with its code', async (t) => {
  const ctx = await openCache(CacheModule, { keyPrefix: 'e:' });
  t.after(() => closeCache(ctx));
  const { cache, raw } = ctx;
  const check = (err, code, Class = Error) => {
    assert.ok(err instanceof CacheError, `${err.name}: ${err.message}`);
    assert.ok(isCacheError(err));
    assert.ok(err instanceof Class);
    assert.equal(err.code, code);
    return true;
  };

  // A server error reply made in Rust: the server's code and text.
  await raw.cmd('LPUSH', 'e:list', 'x');
  await assert.rejects(cache.get('list'), (err) => {
    check(err, 'ERR_REDIS');
    assert.equal(err.name, 'CacheError');
    assert.equal(err.redisCode, 'WRONGTYPE');
    assert.match(err.message, /^WRONGTYPE /);
    return true;
  });
  // Bad arguments: TypeError / RangeError, in JS and from the constructor (Rust).
  await assert.rejects(cache.get(undefined), (err) => check(err, 'ERR_INVALID_ARG', TypeError));
  await assert.rejects(cache.set('k', 1, { ttl: -1 }), (err) => check(err, 'ERR_INVALID_ARG', RangeError));
  assert.throws(() => new CacheModule({ port: 70000 }), (err) => check(err, 'ERR_INVALID_ARG', RangeError));
  assert.throws(() => new CacheModule({ port: true }), (err) => check(err, 'ERR_INVALID_ARG', TypeError));
  // The cause of an argument error is kept.
  const circular = {};
  circular.self = circular;
  await assert.rejects(cache.set('k', circular), (err) => check(err, 'ERR_INVALID_ARG', TypeError) && err.cause instanceof TypeError);
  // JS-made codes.
  assert.throws(() => cache.generateKey('nope', 1), (err) => check(err, 'ERR_UNKNOWN_PATTERN'));
  await assert.rejects(cache.invalidate('nope', 'x'), (err) => check(err, 'ERR_UNKNOWN_STRATEGY'));
  const held = await cache.lock('l', { ttl: 5 });
  await assert.rejects(cache.lock('l', { retries: 0 }), (err) => check(err, 'ERR_LOCK_NOT_ACQUIRED'));
  await held.release();
  // Not connected, and a refused connection.
  const idle = new CacheModule({ host: '127.0.0.1', port: await freePort() });
  await assert.rejects(idle.get('k'), (err) => check(err, 'ERR_NOT_CONNECTED'));
  await assert.rejects(idle.getStats(), (err) => check(err, 'ERR_NOT_CONNECTED'));
  await assert.rejects(idle.initialize(), (err) => check(err, 'ERR_CONNECTION'));
});

test('NOAUTH (no password given to a server that wants one) is ERR_AUTH, not ERR_REDIS', async (t) => {
  const server = await startRedis({ args: ['--requirepass', 's3cret'] });
  t.after(() => server.stop());
  const cache = new CacheModule({ host: '127.0.0.1', port: server.port });
  await assert.rejects(cache.initialize(), (err) => err instanceof CacheError && err.code === 'ERR_AUTH' && err.redisCode === 'NOAUTH' && err.message.includes(`127.0.0.1:${server.port}`));
  // A wrong password with a db to select: still ERR_AUTH, whatever the position of AUTH.
  const wrong = new CacheModule({ host: '127.0.0.1', port: server.port, password: 'nope', db: 2, connectionName: 'x' });
  await assert.rejects(wrong.initialize(), (err) => err.code === 'ERR_AUTH' && err.redisCode === 'WRONGPASS');
});

test('OOM is ERR_OOM and READONLY is ERR_READONLY, each with the server text', async (t) => {
  const ctx = await openCache(CacheModule, { keyPrefix: 'o:' });
  t.after(() => closeCache(ctx));
  await ctx.raw.cmd('CONFIG', 'SET', 'maxmemory', '1');
  await assert.rejects(ctx.cache.set('k', 1), (err) => err instanceof CacheError && err.code === 'ERR_OOM' && err.redisCode === 'OOM' && /^OOM /.test(err.message));
  await ctx.raw.cmd('CONFIG', 'SET', 'maxmemory', '0');

  const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(ctx.server.port)] });
  t.after(() => replica.stop());
  const cache = new CacheModule({ host: '127.0.0.1', port: replica.port });
  await cache.initialize();
  await assert.rejects(cache.set('k', 1), (err) => err.code === 'ERR_READONLY' && err.redisCode === 'READONLY');
  // Outside Sentinel, a replica stays connected (reads work).
  assert.equal(await cache.get('missing'), null);
  await cache.disconnect();
});
