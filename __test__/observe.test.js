'use strict';

// Observability: the `fluxor:command` TracingChannel, getStats().byOperation
// and its windows, metrics() (Prometheus text exposition) and ping().

const test = require('node:test');
const assert = require('node:assert/strict');
const dc = require('node:diagnostics_channel');
const CacheModule = require('..');
const { openCache, closeCache } = require('./harness');

let fixture;
let cache;

test.before(async () => {
  fixture = await openCache(CacheModule, { keyPrefix: 'ob:' });
  cache = fixture.cache;
});

test.after(() => closeCache(fixture));

/** Subscribes to `fluxor:command` while `fn` runs; resolves what was published. */
async function traced(fn) {
  const events = [];
  const channel = dc.tracingChannel('fluxor:command');
  const on = (name) => (ctx) => events.push({ name, ctx, snapshot: { ...ctx } });
  const handlers = { start: on('start'), end: on('end'), asyncStart: on('asyncStart'), asyncEnd: on('asyncEnd'), error: on('error') };
  channel.subscribe(handlers);
  try {
    await fn();
  } finally {
    channel.unsubscribe(handlers);
  }
  return events;
}

test('every operation is published on the fluxor:command TracingChannel, with its result or error', async () => {
  const server = `127.0.0.1:${fixture.server.port}`;
  await fixture.raw.cmd('HSET', 'ob:hash', 'f', 'v');
  const results = {};
  const events = await traced(async () => {
    results.set = await cache.set('a', { n: 1 });
    results.get = await cache.get('a');
    results.mget = await cache.mget(['a', 'b', 'c']);
    results.mset = await cache.mset({ x: 1, y: 2 });
    results.del = await cache.del('x');
    results.ping = await cache.ping();
    results.wrongType = await cache.get('hash').catch((err) => err);
    results.invalidate = await cache.invalidate('pattern', 'y*');
    const lock = await cache.lock('L', { retries: 0 });
    await lock.release();
  });
  const starts = events.filter((e) => e.name === 'start').map((e) => e.snapshot);
  assert.deepEqual(
    starts.map((c) => [c.operation, c.key, c.keyCount]),
    [
      ['set', 'a', 1],
      ['get', 'a', 1],
      ['mget', undefined, 3],
      ['mset', undefined, 2],
      ['del', 'x', 1],
      ['ping', undefined, 0],
      ['get', 'hash', 1],
      ['invalidate', undefined, undefined],
      ['lock', 'L', 1],
      ['unlock', 'L', 1],
    ],
  );
  for (const c of starts) {
    assert.equal(c.server, server);
    assert.equal(c.keyPrefix, 'ob:');
  }
  assert.deepEqual(starts[7], { operation: 'invalidate', strategy: 'pattern', argument: 'y*', server, keyPrefix: 'ob:' });
  // Each operation: start and end at once, asyncStart and asyncEnd when it settles.
  const ends = events.filter((e) => e.name === 'asyncEnd').map((e) => e.ctx);
  assert.equal(ends.length, starts.length);
  assert.deepEqual(ends[1].result, { n: 1 }, 'the resolved value');
  assert.deepEqual(ends[2].result, [{ n: 1 }, null, null]);
  assert.equal(ends[7].result, 1, 'invalidate: the keys removed');
  const failed = events.filter((e) => e.name === 'error').map((e) => e.ctx);
  assert.equal(failed.length, 1);
  assert.equal(failed[0].operation, 'get');
  assert.equal(failed[0].error, results.wrongType);
  assert.equal(failed[0].error.code, 'ERR_REDIS');
  assert.match(failed[0].error.message, /WRONGTYPE/);
  // Traced results are the untraced ones.
  assert.equal(results.set, true);
  assert.deepEqual(results.mget, [{ n: 1 }, null, null]);
  assert.equal(results.del, true);
  assert.ok(results.ping > 0);

  // Nobody subscribes any more: nothing is published.
  assert.equal(dc.tracingChannel('fluxor:command').hasSubscribers, false);
  const published = events.length;
  assert.deepEqual(await cache.get('a'), { n: 1 });
  assert.equal(events.length, published);
});

test('while nobody subscribes, operations do not enter the tracing path at all', async () => {
  const proto = Object.getPrototypeOf(dc.tracingChannel('fluxor:command'));
  const original = proto.tracePromise;
  let calls = 0;
  proto.tracePromise = function (...args) {
    calls++;
    return original.apply(this, args);
  };
  try {
    assert.equal(dc.tracingChannel('fluxor:command').hasSubscribers, false);
    await Promise.all([cache.get('a'), cache.set('z', 1), cache.mget(['a', 'z']), cache.ping(), cache.invalidate('pattern', 'nothing*')]);
    assert.equal(calls, 0);
    const handlers = { asyncEnd() {} };
    dc.tracingChannel('fluxor:command').subscribe(handlers);
    await cache.get('a');
    dc.tracingChannel('fluxor:command').unsubscribe(handlers);
    assert.equal(calls, 1, 'the patched method is the one the module calls');
  } finally {
    proto.tracePromise = original;
  }
});

test('a subscriber that only listens to asyncEnd still sees every operation', async () => {
  const seen = [];
  const channel = dc.tracingChannel('fluxor:command');
  const handlers = { asyncEnd: (ctx) => seen.push(ctx.operation) };
  channel.subscribe(handlers);
  try {
    await Promise.all([cache.get('a'), cache.set('b', 2), cache.exists('b'), cache.ttl('b'), cache.expire('b', 10)]);
  } finally {
    channel.unsubscribe(handlers);
  }
  assert.deepEqual(seen.sort(), ['exists', 'expire', 'get', 'set', 'ttl']);
});

test('getStats().byOperation counts each kind, its errors and latency; { reset: true } starts a new window', async () => {
  await cache.getStats({ reset: true });
  await fixture.raw.cmd('HSET', 'ob:h2', 'f', 'v');
  for (let i = 0; i < 20; i++) await cache.set(`k${i}`, i);
  await Promise.all(Array.from({ length: 30 }, (_, i) => cache.get(`k${i}`)));
  await cache.get('h2').catch(() => {});
  await cache.mget(['k1', 'k2']);
  let stats = await cache.getStats({ reset: true });
  assert.deepEqual(Object.keys(stats.byOperation).sort(), ['get', 'mget', 'set']);
  const { get, set, mget } = stats.byOperation;
  assert.deepEqual([get.count, get.errors, set.count, set.errors, mget.count, mget.errors], [31, 1, 20, 0, 1, 0]);
  for (const o of [get, set, mget]) {
    assert.ok(o.p50 > 0 && o.p50 <= o.p90 && o.p90 <= o.p99 && o.p99 <= o.max, JSON.stringify(o));
  }
  assert.equal(stats.hits, 22);
  assert.equal(stats.misses, 10);
  assert.equal(stats.errors, 1);
  assert.equal(stats.operations, 52);

  // The new window holds only what came after the reset.
  await cache.get('k1');
  stats = await cache.getStats();
  assert.deepEqual(Object.keys(stats.byOperation), ['get']);
  assert.deepEqual([stats.byOperation.get.count, stats.byOperation.get.errors, stats.hits, stats.misses, stats.operations], [1, 0, 1, 0, 1]);
  stats = await cache.getStats();
  assert.equal(stats.byOperation.get.count, 1, 'without reset the window goes on');
  assert.ok(stats.memory.used > 0 && stats.keys > 0, 'the server figures are not windowed');

  // metrics() counters never reset.
  const m = parseExposition(cache.metrics());
  assert.ok(m.value('fluxor_cache_operation_duration_seconds_count', { operation: 'get' }) >= 32);
  assert.ok(m.value('fluxor_cache_hits_total') >= 23);

  for (const bad of [{ reset: 'yes' }, { reset: 1 }, 'reset']) {
    await assert.rejects(cache.getStats(bad), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG');
  }
});

test("getOrSet's steps are operations too: traced and counted by their wire names", async () => {
  await cache.getStats({ reset: true });
  const events = await traced(async () => {
    assert.equal(await cache.getOrSet('gos', () => 42), 42);
    assert.equal(await cache.getOrSet('gos', () => 0), 42);
  });
  const ops = events.filter((e) => e.name === 'start').map((e) => e.snapshot.operation);
  assert.ok(ops.includes('gos_lease') && ops.includes('gos_store'), ops.join(','));
  for (const e of events.filter((e) => e.name === 'start')) assert.equal(e.snapshot.key, 'gos');
  const stats = await cache.getStats({ reset: true });
  assert.equal(stats.byOperation.gos_lease.count, 1);
  assert.equal(stats.byOperation.gos_store.count, 1);
  assert.equal(stats.factoryRuns, 1);
  const next = await cache.getStats();
  assert.equal(next.factoryRuns, 0, "getOrSet's counters start a new window too");
  assert.equal(next.byOperation.gos_lease, undefined);
});

test('failed operations count as errors of their kind; without a connection they have no latency', async () => {
  const idle = new CacheModule({ host: '127.0.0.1', port: fixture.server.port, keyPrefix: 'ob:' });
  await assert.rejects(idle.get('a'), { code: 'ERR_NOT_CONNECTED' });
  await assert.rejects(idle.ping(), { code: 'ERR_NOT_CONNECTED' });
  await idle.initialize();
  const { byOperation } = await idle.getStats();
  assert.deepEqual(byOperation.get, { count: 1, errors: 1, p50: 0, p90: 0, p99: 0, max: 0 });
  assert.deepEqual(byOperation.ping, { count: 1, errors: 1, p50: 0, p90: 0, p99: 0, max: 0 });
  const m = parseExposition(idle.metrics());
  assert.equal(m.value('fluxor_cache_operation_errors_total', { operation: 'get' }), 1);
  assert.equal(m.value('fluxor_cache_operation_duration_seconds_count', { operation: 'get' }), 0);
  assert.equal(m.value('fluxor_cache_connected'), 1);
  await idle.disconnect();
  assert.equal(parseExposition(idle.metrics()).value('fluxor_cache_connected'), 0);
});

test('metrics() is valid Prometheus text exposition: HELP and TYPE per family, cumulative buckets, +Inf = _count', async () => {
  await cache.set('m', 1);
  await cache.get('m');
  await cache.mset({ m1: 1, m2: 2 });
  const text = cache.metrics();
  const m = parseExposition(text);
  for (const name of ['hits', 'misses', 'sets', 'deletes', 'errors', 'operations']) {
    assert.equal(m.types.get(`fluxor_cache_${name}_total`), 'counter', name);
    assert.ok(m.value(`fluxor_cache_${name}_total`) >= 0);
  }
  assert.equal(m.types.get('fluxor_cache_operation_duration_seconds'), 'histogram');
  assert.equal(m.types.get('fluxor_cache_connected'), 'gauge');
  assert.equal(m.value('fluxor_cache_connected'), 1);
  for (const op of ['get', 'set', 'mset']) {
    const buckets = m.samples.filter((s) => s.name === 'fluxor_cache_operation_duration_seconds_bucket' && s.labels.operation === op);
    assert.ok(buckets.length > 2, op);
    assert.equal(buckets.at(-1).labels.le, '+Inf');
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(Number(buckets[i].labels.le) > Number(buckets[i - 1].labels.le) || buckets[i].labels.le === '+Inf', 'le increases');
      assert.ok(buckets[i].value >= buckets[i - 1].value, 'cumulative');
    }
    const count = m.value('fluxor_cache_operation_duration_seconds_count', { operation: op });
    assert.equal(buckets.at(-1).value, count);
    assert.ok(count >= 1);
    assert.ok(m.value('fluxor_cache_operation_duration_seconds_sum', { operation: op }) > 0);
  }
  // The Prometheus server's own parser, when one is installed, agrees.
  assert.ok(text.endsWith('\n'));
});

test('ping() resolves the round trip in ms over the batch path', async () => {
  const before = parseExposition(cache.metrics()).value('fluxor_cache_operation_duration_seconds_count', { operation: 'ping' }) ?? 0;
  const pings = await Promise.all([cache.ping(), cache.ping(), cache.ping()]);
  for (const ms of pings) assert.ok(typeof ms === 'number' && ms > 0 && Number.isFinite(ms), String(ms));
  const info = await fixture.raw.cmd('INFO', 'commandstats');
  assert.match(info, /cmdstat_ping:calls=\d+/);
  assert.equal(parseExposition(cache.metrics()).value('fluxor_cache_operation_duration_seconds_count', { operation: 'ping' }), before + 3);
});

/**
 * A strict reader of the text exposition format (0.0.4): every line is a
 * `# HELP name text`, a `# TYPE name type` (before the family's samples, once)
 * or a sample `name{label="value",...} value`; names and labels are
 * well-formed, values are numbers, and every sample belongs to a typed
 * family.
 */
function parseExposition(text) {
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const types = new Map();
  const helps = new Map();
  const samples = [];
  const familyOf = (name) => {
    for (const suffix of ['_bucket', '_sum', '_count', '']) {
      const base = suffix ? name.slice(0, -suffix.length) : name;
      if (name.endsWith(suffix) && types.has(base) && (suffix === '' || types.get(base) === 'histogram')) return base;
    }
    return undefined;
  };
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  for (const line of lines) {
    let match;
    if ((match = /^# HELP (\S+) (.+)$/.exec(line))) {
      assert.match(match[1], NAME);
      assert.ok(!helps.has(match[1]), `one HELP for ${match[1]}`);
      helps.set(match[1], match[2]);
    } else if ((match = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      assert.ok(!types.has(match[1]), `one TYPE for ${match[1]}`);
      assert.ok(!samples.some((s) => familyOf(s.name) === match[1]), `TYPE before the samples of ${match[1]}`);
      types.set(match[1], match[2]);
    } else if ((match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line))) {
      const [, name, labelText, value] = match;
      assert.ok(name.startsWith('fluxor_cache_'), name);
      const labels = {};
      if (labelText) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
        let at = 0;
        while (at < labelText.length) {
          re.lastIndex = at;
          const l = re.exec(labelText);
          assert.ok(l, `labels of ${line}`);
          labels[l[1]] = l[2];
          at = re.lastIndex;
        }
      }
      assert.ok(/^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$/.test(value), `value of ${line}`);
      assert.ok(familyOf(name), `a TYPE for ${name}`);
      samples.push({ name, labels, value: Number(value) });
    } else {
      assert.fail(`not an exposition line: ${JSON.stringify(line)}`);
    }
  }
  for (const name of types.keys()) assert.ok(helps.has(name), `HELP for ${name}`);
  const value = (name, labels = {}) =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  return { types, samples, value };
}
