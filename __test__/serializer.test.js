'use strict';

// The serializer option ('json' default, 'v8', your own) and compression:
// what is stored, what comes back, through get, mget, mset and warmCache.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { openCache, closeCache } = require('./harness');

let fx;
const opened = [];
const open = async (options) => {
  const c = new CacheModule({ host: '127.0.0.1', port: fx.server.port, keyPrefix: 'sr:', ...options });
  await c.initialize();
  opened.push(c);
  return c;
};

test.before(async () => {
  fx = await openCache(CacheModule, { keyPrefix: 'sr:' });
});

test.after(async () => {
  await Promise.all(opened.map((c) => c.disconnect()));
  await closeCache(fx);
});

test.beforeEach(() => fx.raw.cmd('FLUSHALL'));

const rich = () => ({
  date: new Date(86400000),
  map: new Map([['a', 1]]),
  set: new Set([1, 2]),
  big: 2n ** 70n,
  buf: Buffer.from([0, 1, 2, 255]),
  u8: new Uint8Array([9, 8]),
  f64: new Float64Array([1.5]),
  nan: NaN,
  inf: -Infinity,
  undef: undefined,
  nested: [{ x: null }, 'text with \u0000 NUL', 'ü€😀'],
});

test('the default stays JSON text exactly as the original module wrote it; what JSON changes is changed', async () => {
  await fx.cache.set('j', { a: [1, 'x'], n: null });
  assert.equal(await fx.raw.cmd('GET', 'sr:j'), '{"a":[1,"x"],"n":null}');
  await fx.cache.set('lossy', { date: new Date(0), map: new Map([['a', 1]]), set: new Set([1]), nan: NaN, buf: Buffer.from('hi') });
  assert.deepEqual(await fx.cache.get('lossy'), { date: '1970-01-01T00:00:00.000Z', map: {}, set: {}, nan: null, buf: { type: 'Buffer', data: [104, 105] } });
  await assert.rejects(fx.cache.set('big', 1n), { name: 'TypeError', code: 'ERR_INVALID_ARG' });
});

test("serializer 'v8' round-trips what JSON cannot, through set/get, mset/mget and warmCache", async () => {
  const c = await open({ serializer: 'v8' });
  await c.set('r', rich());
  assert.deepEqual(await c.get('r'), rich());
  assert.equal(await c.set('u', undefined), true);
  await c.mset({ a: rich(), b: new Map([[1, new Set(['x'])]]), c: 'plain' });
  assert.deepEqual(await c.mget(['a', 'b', 'missing', 'c']), [rich(), new Map([[1, new Set(['x'])]]), null, 'plain']);
  assert.deepEqual(await c.warmCache(() => [{ id: 1, at: new Date(5) }]), { loaded: 1 });
  assert.deepEqual(await c.get('1'), { id: 1, at: new Date(5) });
  // Values written as JSON still read.
  await fx.cache.set('fromJson', { old: true });
  assert.deepEqual(await c.get('fromJson'), { old: true });
  assert.deepEqual(await c.mget(['fromJson', 'c']), [{ old: true }, 'plain']);
  await assert.rejects(c.set('fn', () => 1), { name: 'TypeError', code: 'ERR_INVALID_ARG' });
  await assert.rejects(c.mset({ ok: 1, bad: Symbol('s') }), { name: 'TypeError', code: 'ERR_INVALID_ARG' });
  assert.equal(await c.exists('ok'), false, 'a bad value in an mset writes nothing');
});

test('a serializer of your own: text stays text, bytes come back as a Buffer', async () => {
  const text = await open({ serializer: { encode: (v) => `v1|${JSON.stringify(v)}\u0000`, decode: (s) => JSON.parse(s.slice(3, -1)) } });
  await text.set('t', { a: 1 });
  assert.equal(await fx.raw.cmd('GET', 'sr:t'), 'v1|{"a":1}\u0000', 'stored as the text encode() gave');
  await text.mset({ t1: [1], t2: 'two' });
  assert.deepEqual(await text.mget(['t', 't1', 't2', 'no']), [{ a: 1 }, [1], 'two', null]);
  const seen = [];
  const bytes = await open({
    serializer: {
      encode: (v) => Buffer.from(String(v), 'latin1'),
      decode: (b) => (seen.push(Buffer.isBuffer(b)), b.toString('latin1')),
    },
  });
  await bytes.set('b', 'ÿ\u0000x');
  assert.equal(await fx.raw.cmd('STRLEN', 'sr:b'), 4, 'one marker byte and the 3 bytes, not base64');
  assert.equal(await bytes.get('b'), 'ÿ\u0000x');
  await bytes.mset({ b1: 'a', b2: 'b' });
  assert.deepEqual(await bytes.mget(['b1', 'b2']), ['a', 'b']);
  assert.ok(seen.length > 0 && seen.every(Boolean), 'decode got Buffers');
  const failing = await open({ serializer: { encode: () => 5, decode: (s) => s } });
  await assert.rejects(failing.set('x', 1), { name: 'TypeError', code: 'ERR_INVALID_ARG' });
  const throwing = await open({ serializer: { encode: (v) => JSON.stringify(v), decode: () => { throw new Error('corrupt'); } } });
  await throwing.set('x', 1);
  await assert.rejects(throwing.get('x'), /corrupt/);
});

test('bad serializer and compression options throw', () => {
  for (const serializer of ['yaml', null, { encode() {} }, 5]) {
    assert.throws(() => new CacheModule({ serializer }), { name: 'TypeError', code: 'ERR_INVALID_ARG' }, String(serializer));
  }
  assert.throws(() => new CacheModule({ compression: 'lz4' }), { name: 'TypeError', code: 'ERR_INVALID_ARG' });
  assert.throws(() => new CacheModule({ compression: { threshold: -1 } }), { name: 'RangeError', code: 'ERR_INVALID_ARG' });
  assert.throws(() => new CacheModule({ compression: { threshold: 1.5 } }), { name: 'RangeError', code: 'ERR_INVALID_ARG' });
  assert.throws(() => new CacheModule({ compression: { treshold: 100 } }), { name: 'TypeError', message: /options\.compression\.treshold is not an option: did you mean threshold\?/ });
  assert.doesNotThrow(() => new CacheModule({ serializer: 'v8', compression: true }), 'both are known options');
});

test('compression: values from the threshold up are stored LZ4-compressed, smaller ones as they were; every instance reads both', async () => {
  const c = await open({ compression: { threshold: 200 } });
  const big = { items: Array.from({ length: 100 }, (_, i) => ({ id: i, name: 'a repetitive product name' })) };
  const json = JSON.stringify(big);
  await c.set('big', big);
  await c.set('small', { n: 1 });
  const stored = await fx.raw.cmd('STRLEN', 'sr:big');
  assert.ok(stored < json.length / 3, `${stored} bytes stored for ${json.length}`);
  assert.equal(await fx.raw.cmd('GETRANGE', 'sr:big', 1, 2), 'L4', 'the magic prefix');
  assert.equal(await fx.raw.cmd('GET', 'sr:small'), '{"n":1}');
  assert.deepEqual(await c.get('big'), big);
  await c.mset({ big2: big, small2: 2 });
  assert.deepEqual(await c.mget(['big', 'small', 'big2', 'small2']), [big, { n: 1 }, big, 2]);
  // An instance without compression (and one with another serializer) reads them.
  assert.deepEqual(await fx.cache.get('big'), big);
  assert.deepEqual(await fx.cache.mget(['big', 'small']), [big, { n: 1 }]);
  const v8 = await open({ serializer: 'v8', compression: true });
  assert.deepEqual(await v8.get('big'), big);
  const many = new Map(Array.from({ length: 300 }, (_, i) => [i, new Date(i)]));
  await v8.set('many', many);
  assert.equal(await fx.raw.cmd('GETRANGE', 'sr:many', 1, 2), 'L4');
  assert.deepEqual(await v8.get('many'), many);
});

test('getOrSet stores and reads through the serializer and compression too', async () => {
  const c = await open({ serializer: 'v8', compression: { threshold: 100 } });
  const value = { at: new Date(7), seen: new Set(['a']), pad: 'p'.repeat(500) };
  let runs = 0;
  const factory = async () => (runs++, value);
  assert.deepEqual(await c.getOrSet('gos', factory, { ttl: 60 }), value);
  assert.deepEqual(await c.getOrSet('gos', factory, { ttl: 60 }), value, 'a hit, decoded by v8');
  assert.deepEqual(await c.getOrSet('gos', factory, { ttl: 60, grace: 5 }), value, 'a hit through the lease path');
  assert.equal(runs, 1);
  assert.equal(await fx.raw.cmd('GETRANGE', 'sr:gos', 1, 2), 'L4', 'compressed');
  assert.deepEqual(await c.get('gos'), value);
});

test("traces name a serializer's operations as the operations they are", async () => {
  const dc = require('node:diagnostics_channel');
  const c = await open({ serializer: 'v8' });
  const seen = [];
  const handlers = { start: (ctx) => seen.push(`${ctx.operation} ${ctx.key} ${ctx.keyCount}`) };
  dc.tracingChannel('fluxor:command').subscribe(handlers);
  try {
    await c.set('t', new Set([1]));
    await c.mset({ a: 1, b: 2 });
    await c.mget(['a', 'b']);
  } finally {
    dc.tracingChannel('fluxor:command').unsubscribe(handlers);
  }
  assert.deepEqual(seen, ['set t 1', 'mset undefined 2', 'mget undefined 2']);
});

