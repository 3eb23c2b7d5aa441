'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { runNode, sleep, openCache, closeCache } = require('./harness');

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
