'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { once } = require('node:events');
const { runNode, sleep, openCache, closeCache, startRedis } = require('./harness');

let server;
let raw;
let cache;

test.before(async () => {
  ({ server, raw, cache } = await openCache(CacheModule, { keyPrefix: 'lk:' }));
});

test.after(() => closeCache({ server, raw, cache }));

test('4 processes x 50 lock/read/write/release on one key end with the counter at exactly 200', async () => {
  await cache.set('counter', 0, { ttl: 0 });
  const worker = `
    const C = require('.');
    (async () => {
      const cache = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: 'lk:' });
      await cache.initialize();
      for (let i = 0; i < 50; i++) {
        const lock = await cache.lock('counter-lock', { ttl: 5, retries: 10000, retryDelay: 2 });
        const n = await cache.get('counter');
        await new Promise((r) => setImmediate(r));
        await cache.set('counter', n + 1, { ttl: 0 });
        if (!(await lock.release())) throw new Error('lost the lock');
      }
      await cache.disconnect();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const runs = await Promise.all([1, 2, 3, 4].map(() => runNode(worker, { timeout: 60000 })));
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  assert.equal(await cache.get('counter'), 200);
});

test('the seed README lock snippet: key, token, release', async () => {
  const lock = await cache.lock('resource:critical', { ttl: 30, retries: 10 });
  try {
    assert.equal(lock.key, 'resource:critical');
    assert.match(lock.token, /^[0-9a-f]{32}$/, 'a 128-bit random token');
    assert.equal(await raw.cmd('GET', 'lk:__fluxor__:lock:{resource:critical}'), lock.token);
    const pttl = await raw.cmd('PTTL', 'lk:__fluxor__:lock:{resource:critical}');
    assert.ok(pttl > 29000 && pttl <= 30000, `pttl ${pttl}`);
  } finally {
    assert.equal(await lock.release(), true);
  }
  assert.equal(await lock.release(), false, 'a second release is harmless');
  assert.equal(await raw.cmd('EXISTS', 'lk:__fluxor__:lock:{resource:critical}'), 0);
});

test('retries exhausted: ERR_LOCK_NOT_ACQUIRED naming the key and the attempts', async () => {
  const held = await cache.lock('busy', { ttl: 10 });
  await assert.rejects(cache.lock('busy', { retries: 3, retryDelay: 5 }), (err) => err.code === 'ERR_LOCK_NOT_ACQUIRED' && /"busy"/.test(err.message) && /4 attempts/.test(err.message));
  await assert.rejects(cache.lock('busy', { retries: 0 }), /1 attempt\b/);
  await held.release();
  const next = await cache.lock('busy', { retries: 0 });
  await next.release();
});

test("after expiry a former holder's release is false and leaves the new holder's lock", async () => {
  const first = await cache.lock('exp', { ttl: 0.1 });
  await sleep(150);
  const second = await cache.lock('exp', { ttl: 10, retries: 0 });
  assert.equal(await first.release(), false);
  assert.equal(await first.extend(10), false, 'nor can it extend the new lock');
  assert.equal(await raw.cmd('GET', 'lk:__fluxor__:lock:{exp}'), second.token);
  assert.equal(await second.release(), true);
});

test('extend resets the ttl while held, and is false once released', async () => {
  const lock = await cache.lock('ext', { ttl: 1 });
  assert.equal(await lock.extend(20), true);
  const pttl = await raw.cmd('PTTL', 'lk:__fluxor__:lock:{ext}');
  assert.ok(pttl > 19000, `pttl ${pttl}`);
  assert.equal(await lock.extend(), true, 'without a ttl: the lock\'s own');
  assert.ok((await raw.cmd('PTTL', 'lk:__fluxor__:lock:{ext}')) <= 1000);
  await lock.release();
  assert.equal(await lock.extend(5), false);
  await assert.rejects(lock.extend(-1), { code: 'ERR_INVALID_ARG' });
});

test('autoExtend keeps a lock alive past 3 ttls until release', async () => {
  const lock = await cache.lock('auto', { ttl: 0.3, autoExtend: true });
  await sleep(1000);
  assert.equal(await raw.cmd('GET', 'lk:__fluxor__:lock:{auto}'), lock.token);
  await assert.rejects(cache.lock('auto', { retries: 0 }), { code: 'ERR_LOCK_NOT_ACQUIRED' });
  assert.equal(await lock.release(), true);
  await sleep(400);
  assert.equal(await raw.cmd('EXISTS', 'lk:__fluxor__:lock:{auto}'), 0, 'extending stopped at release');
});

test('autoExtend stops when the lock is lost', async () => {
  const lock = await cache.lock('stolen', { ttl: 0.3, autoExtend: true });
  await raw.cmd('SET', 'lk:__fluxor__:lock:{stolen}', 'someone-else', 'PX', 5000);
  await sleep(400);
  assert.equal(await raw.cmd('GET', 'lk:__fluxor__:lock:{stolen}'), 'someone-else');
  assert.equal(await lock.release(), false);
  assert.equal(await raw.cmd('GET', 'lk:__fluxor__:lock:{stolen}'), 'someone-else', "never removes another holder's lock");
});

/** `promise`, or a failure after `ms` (a hang guard, not a timing check). */
function within(promise, ms, what) {
  let timer;
  const guard = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)));
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

test("an autoExtend lock whose key is deleted emits 'lost' and aborts its signal with ERR_LOCK_LOST", async () => {
  const lock = await cache.lock('gone', { ttl: 1, autoExtend: true });
  assert.equal(lock.signal.aborted, false);
  const lost = once(lock, 'lost');
  await raw.cmd('DEL', 'lk:__fluxor__:lock:{gone}');
  const [err] = await within(lost, 10000, "'lost'");
  assert.equal(err.code, 'ERR_LOCK_LOST');
  assert.ok(err instanceof CacheModule.CacheError);
  assert.match(err.message, /"gone".*deleted or taken/);
  assert.equal(lock.signal.aborted, true);
  assert.equal(lock.signal.reason, err);
  assert.equal(await lock.extend(), false);
  assert.equal(await lock.release(), false);
});

test("a lock taken by another holder is lost too; a lock's fields stay read-only", async () => {
  const lock = await cache.lock('taken', { ttl: 1, autoExtend: true });
  const { signal } = lock; // read before the loss
  const aborted = once(signal, 'abort');
  await raw.cmd('SET', 'lk:__fluxor__:lock:{taken}', 'someone-else', 'PX', 5000);
  await within(aborted, 10000, 'abort');
  assert.equal(signal.reason.code, 'ERR_LOCK_LOST');
  assert.throws(() => (lock.key = 'other'), TypeError);
  assert.throws(() => (lock.token = 'x'), TypeError);
  assert.throws(() => (lock.fencingToken = 0), TypeError);
  assert.throws(() => (lock.signal = null), TypeError);
  assert.equal(lock.key, 'taken');
  assert.deepEqual(Object.keys(lock).filter((k) => !k.startsWith('_')), ['key', 'token', 'fencingToken']);
});

test('withLock passes the signal, and rejects with ERR_LOCK_LOST when the lock was lost before fn finished, even if fn resolved', async () => {
  let seen;
  const run = cache.withLock(
    'wl',
    async (lock, signal) => {
      seen = { lock, signal };
      assert.equal(signal, lock.signal);
      await raw.cmd('DEL', 'lk:__fluxor__:lock:{wl}');
      await within(once(signal, 'abort'), 10000, 'abort');
      return 'finished anyway';
    },
    { ttl: 1, autoExtend: true },
  );
  await assert.rejects(within(run, 15000, 'withLock'), (err) => err.code === 'ERR_LOCK_LOST' && err === seen.signal.reason);
  // fn threw too: ERR_LOCK_LOST, with fn's error as its cause.
  const boom = new Error('boom');
  await assert.rejects(
    cache.withLock(
      'wl',
      async (lock) => {
        await raw.cmd('DEL', 'lk:__fluxor__:lock:{wl}');
        await within(once(lock, 'lost'), 10000, "'lost'");
        throw boom;
      },
      { ttl: 1, autoExtend: true },
    ),
    (err) => err.code === 'ERR_LOCK_LOST' && err.cause === boom,
  );
  // Without autoExtend: a lock that expired before fn finished.
  await assert.rejects(
    cache.withLock('wl', () => sleep(250).then(() => 'late'), { ttl: 0.1 }),
    (err) => err.code === 'ERR_LOCK_LOST' && /expired or was taken/.test(err.message),
  );
  // fn(lock) alone, as before, and a lock held throughout.
  assert.equal(await cache.withLock('wl', (lock) => lock.key), 'wl');
});

test('autoExtend retries extensions that fail with a connection error; once its ttl has passed the lock is lost', async (t) => {
  const own = await startRedis();
  t.after(() => own.stop());
  const c = new CacheModule({ host: '127.0.0.1', port: own.port, keyPrefix: 'lk:', retryStrategy: () => 50 });
  c.on('error', () => {});
  await c.initialize();
  t.after(() => c.disconnect());
  // Extensions every 500 ms fail fast while reconnecting; the ttl passes at 1.5 s.
  const lock = await c.lock('cut', { ttl: 1.5, autoExtend: true });
  const lost = once(lock, 'lost');
  await own.stop();
  const [err] = await within(lost, 15000, "'lost'");
  assert.equal(err.code, 'ERR_LOCK_LOST');
  assert.match(err.message, /could not be extended within its ttl/);
  assert.equal(err.cause?.code, 'ERR_CONNECTION', String(err.cause));
  assert.equal(lock.signal.reason, err);
});

test('fencing tokens strictly increase across holders and instances', async () => {
  const other = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'lk:' });
  await other.initialize();
  const seen = [];
  for (let i = 0; i < 10; i++) {
    const lock = await (i % 2 ? other : cache).lock('fenced', { retries: 0 });
    seen.push(lock.fencingToken);
    await lock.release();
  }
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i] > seen[i - 1], `tokens ${seen}`);
  await other.disconnect();
});

test('withLock runs fn holding the lock and releases it in all cases', async () => {
  const result = await cache.withLock('with', async (lock) => {
    assert.equal(await raw.cmd('GET', 'lk:__fluxor__:lock:{with}'), lock.token);
    return 'done';
  });
  assert.equal(result, 'done');
  assert.equal(await raw.cmd('EXISTS', 'lk:__fluxor__:lock:{with}'), 0);
  await assert.rejects(cache.withLock('with', () => { throw new Error('boom'); }), /boom/);
  assert.equal(await raw.cmd('EXISTS', 'lk:__fluxor__:lock:{with}'), 0);
});

test('bad lock arguments reject with TypeError/RangeError', async () => {
  for (const [key, options, Class] of [
    ['', {}, TypeError],
    [null, {}, TypeError],
    ['k', { ttl: 0 }, RangeError],
    ['k', { ttl: -1 }, RangeError],
    ['k', { ttl: 'x' }, TypeError],
    ['k', { retries: -1 }, RangeError],
    ['k', { retries: 1.5 }, RangeError],
    ['k', { retryDelay: NaN }, RangeError],
    ['k', { autoExtend: 'yes' }, TypeError],
    ['k', 5, TypeError],
  ]) {
    await assert.rejects(cache.lock(key, options), (e) => e instanceof Class && e.code === 'ERR_INVALID_ARG', `${key} ${JSON.stringify(options)}`);
  }
  await assert.rejects(cache.withLock('k', 'not a function'), { code: 'ERR_INVALID_ARG' });
});
