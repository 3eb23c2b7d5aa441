'use strict';

// A reply too large to become one JS string (V8's cap: 2^29 - 24
// characters) rejects that call with ERR_REPLY_TOO_LARGE; the rest of its
// batch and later calls are unaffected, and disconnect() settles (issue #14,
// item 2). The values are made on the server (SETRANGE, a Lua string.rep),
// not sent, and removed after.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { openCache, closeCache } = require('./harness');

const MB = 1024 * 1024;
let ctx;
test.before(async () => {
  // One value past 512 MB needs a larger bulk length than the default.
  ctx = await openCache(CacheModule, { keyPrefix: 'big:', commandTimeout: 120000 }, { args: ['--proto-max-bulk-len', '1gb'] });
});
test.after(async () => {
  await ctx.raw.cmd('FLUSHALL');
  await closeCache(ctx);
});

test('a get of a 600 MB value rejects alone; the small get in its batch and later calls are answered', { timeout: 300000 }, async () => {
  const { raw, cache } = ctx;
  await raw.cmd('SETRANGE', 'big:huge', 600 * MB - 1, 'x');
  await cache.set('small', { ok: 1 });
  const [huge, small, fallback] = await Promise.allSettled([cache.get('huge'), cache.get('small'), cache.get('huge', { fallback: 'fb' })]);
  assert.equal(huge.status, 'rejected');
  assert.equal(huge.reason.code, 'ERR_REPLY_TOO_LARGE');
  assert.match(huge.reason.message, /629145600 bytes/);
  assert.deepEqual(small.value, { ok: 1 });
  assert.equal(fallback.value, 'fb');
  await raw.cmd('DEL', 'big:huge');
  assert.deepEqual(await cache.get('small'), { ok: 1 });
});

test('an mget of 6 x 100 MB rejects alone; the rest of the batch and disconnect() settle', { timeout: 300000 }, async () => {
  const { raw, server } = ctx;
  const keys = [0, 1, 2, 3, 4, 5].map((i) => `v${i}`);
  // JSON strings, as set() stores them: the values cross as one JSON array
  // text. One is sent in 8 MB parts, the others are copies made by the server.
  const chunk = Buffer.alloc(8 * MB, 'a');
  await raw.cmd('SET', 'big:v0', '"');
  for (let left = 100 * MB - 2; left > 0; left -= chunk.length) await raw.cmd('APPEND', 'big:v0', left < chunk.length ? chunk.subarray(0, left) : chunk);
  await raw.cmd('APPEND', 'big:v0', '"');
  for (const k of keys.slice(1)) await raw.cmd('COPY', 'big:v0', `big:${k}`);
  const cache = await new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'big:', commandTimeout: 120000 }).initialize();
  await cache.set('small', { ok: 1 });
  const [all, small] = await Promise.allSettled([cache.mget(keys), cache.get('small')]);
  assert.equal(all.status, 'rejected');
  assert.equal(all.reason.code, 'ERR_REPLY_TOO_LARGE');
  assert.deepEqual(small.value, { ok: 1 });
  // One of them alone is fine.
  assert.equal((await cache.get('v0')).length, 100 * MB - 2);
  await raw.cmd('DEL', ...keys.map((k) => `big:${k}`));
  const last = cache.mget(['small', 'v0']);
  await cache.disconnect();
  assert.deepEqual(await last, [{ ok: 1 }, null]);
});
