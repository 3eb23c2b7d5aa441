'use strict';

// disconnect() drains every kind of call in flight, and the last of
// initialize() and disconnect() wins (issue #14, item 4).

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { openCache, closeCache } = require('./harness');

let ctx;
test.before(async () => {
  ctx = await openCache(CacheModule, { keyPrefix: 'dc:' });
});
test.after(() => closeCache(ctx));

const options = () => ({ host: '127.0.0.1', port: ctx.server.port, keyPrefix: 'dc:' });

test('disconnect() waits for an invalidate() of 100k keys and a getStats() in flight', async () => {
  const { raw } = ctx;
  for (let i = 0; i < 100; i++) {
    const args = [];
    for (let j = 0; j < 1000; j++) args.push(`dc:many:${i}:${j}`, '1');
    await raw.cmd('MSET', ...args);
  }
  const cache = await new CacheModule(options()).initialize();
  const removed = cache.invalidate('pattern', 'many:*');
  const tagged = cache.invalidate('tag', 'none');
  const cascaded = cache.invalidate('cascade', 'none');
  const stats = cache.getStats();
  await cache.disconnect();
  assert.equal(await removed, 100000);
  assert.equal(await tagged, 0);
  assert.equal(await cascaded, 0);
  assert.equal((await stats).connected, true);
  assert.deepEqual(await raw.cmd('SCAN', '0', 'MATCH', 'dc:many:*', 'COUNT', '200000'), ['0', []]);
  await assert.rejects(cache.getStats(), { code: 'ERR_NOT_CONNECTED' });
});

test('initialize(); disconnect(); initialize() in one tick leaves the instance connected', async () => {
  const cache = new CacheModule(options());
  const calls = [cache.initialize(), cache.disconnect(), cache.initialize()];
  const settled = await Promise.allSettled(calls);
  assert.equal(settled[2].status, 'fulfilled', String(settled[2].reason));
  assert.equal(await cache.set('k', 1), true);
  // Again from the connected state.
  await Promise.allSettled([cache.disconnect(), cache.initialize(), cache.disconnect(), cache.initialize()]);
  assert.equal(await cache.get('k'), 1);
  await cache.disconnect();
});

test('initialize(); disconnect() leaves it closed, from either state', async () => {
  const cache = new CacheModule(options());
  const [init, disc] = await Promise.allSettled([cache.initialize(), cache.disconnect()]);
  assert.equal(disc.status, 'fulfilled');
  assert.equal(init.status, 'rejected');
  assert.equal(init.reason.code, 'ERR_NOT_CONNECTED');
  await assert.rejects(cache.get('k'), { code: 'ERR_NOT_CONNECTED' });
  await cache.initialize();
  await Promise.allSettled([cache.disconnect(), cache.initialize(), cache.disconnect()]);
  await assert.rejects(cache.get('k'), { code: 'ERR_NOT_CONNECTED' });
  // And it can be opened again after.
  await cache.initialize();
  assert.equal(await cache.get('k'), 1);
  await cache.disconnect();
});
