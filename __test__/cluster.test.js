'use strict';

// The whole API on a real Redis Cluster: 3 masters with one replica each,
// started by ./cluster.js on free loopback ports. Keys span many slots on
// every master; the last test kills a master under traffic.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { sleep, freePort } = require('./harness');
const { startCluster, keySlot, infoFields } = require('./cluster');

// Every unhandled rejection while this file runs (the module must leave none).
const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

const CODES = new Set([
  'ERR_NOT_CONNECTED', 'ERR_CONNECTION', 'ERR_TIMEOUT', 'ERR_AUTH', 'ERR_LOCK_NOT_ACQUIRED',
  'ERR_UNKNOWN_PATTERN', 'ERR_UNKNOWN_STRATEGY', 'ERR_INVALID_ARG', 'ERR_REDIS',
  'ERR_NOPERM', 'ERR_OOM', 'ERR_READONLY', 'ERR_UNAVAILABLE',
]);

let cluster;
let router; // raw reads and writes, routed by slot
let cache;

const options = () => ({ enableCluster: true, clusterNodes: cluster.seeds, keyPrefix: 'cl:' });
const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));
const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);

/** The ports of the masters that own `keys` (stored names). */
async function ownersOf(storedKeys) {
  const topo = await cluster.topology();
  const owners = new Set();
  for (const k of storedKeys) {
    const slot = keySlot(k);
    owners.add(topo.find((n) => n.flags.includes('master') && n.ranges.some(([a, b]) => slot >= a && slot <= b)).port);
  }
  return owners;
}

test.before(async () => {
  cluster = await startCluster({ masters: 3, replicasPerMaster: 1 });
  router = await cluster.router();
  cache = new CacheModule(options());
  assert.equal(await cache.initialize(), cache);
  assert.equal(await cache.initialize(), cache, 'initialize twice is harmless');
});

test.after(async () => {
  await cache?.disconnect();
  router?.close();
  await cluster?.stop();
});

test.beforeEach(async () => {
  // After a failover the router's connections may point at a dead node.
  router.close();
  router = await cluster.router();
  await router.onEach('FLUSHALL');
});

test('set/get/del/exists/expire/ttl on 250 keys across every master', async () => {
  const keys = range(250, (i) => `k:${i}`);
  const slots = new Set(keys.map((k) => keySlot(`cl:${k}`)));
  assert.ok(slots.size > 200, `${slots.size} distinct slots`);
  assert.equal((await ownersOf(keys.map((k) => `cl:${k}`))).size, 3, 'the keys live on all 3 masters');

  const value = (i) => ({ i, name: `item ${i}`, tags: ['a', i], nested: { ok: i % 2 === 0 } });
  assert.deepEqual(await Promise.all(keys.map((k, i) => cache.set(k, value(i)))), keys.map(() => true));
  assert.deepEqual(await Promise.all(keys.map((k) => cache.get(k))), keys.map((_, i) => value(i)));
  assert.deepEqual(await Promise.all(keys.map((k) => cache.exists(k))), keys.map(() => true));

  // What the module wrote is exactly the JSON text, under keyPrefix, on the owning node.
  for (const [i, k] of keys.entries()) {
    assert.equal(await router.cmd('GET', `cl:${k}`), JSON.stringify(value(i)), k);
  }

  // Default ttl (3600 s), expire, ttl 0 = no expiry.
  for (const t of await Promise.all(keys.map((k) => cache.ttl(k)))) assert.ok(t > 3590 && t <= 3600, `ttl ${t}`);
  assert.deepEqual(await Promise.all(keys.map((k) => cache.expire(k, 100))), keys.map(() => true));
  for (const t of await Promise.all(keys.map((k) => cache.ttl(k)))) assert.ok(t > 95 && t <= 100, `ttl ${t}`);
  const pttl = await router.cmd('PTTL', 'cl:k:7');
  assert.ok(pttl > 95000 && pttl <= 100000, `pttl ${pttl}`);
  assert.equal(await cache.expire('k:0', 0), true);
  assert.equal(await cache.ttl('k:0'), -1);
  assert.equal(await cache.set('k:1', 'forever', { ttl: 0 }), true);
  assert.equal(await cache.ttl('k:1'), -1);
  assert.equal(await cache.set('k:2', 'short', { ttl: 1.5 }), true);
  const short = await router.cmd('PTTL', 'cl:k:2');
  assert.ok(short > 1000 && short <= 1500, `pttl ${short}`);

  // Delete every other key.
  const gone = keys.filter((_, i) => i % 2 === 1);
  assert.deepEqual(await Promise.all(gone.map((k) => cache.del(k))), gone.map(() => true));
  assert.deepEqual(await Promise.all(gone.map((k) => cache.del(k))), gone.map(() => false));
  assert.deepEqual(await Promise.all(keys.map((k) => cache.exists(k))), keys.map((_, i) => i % 2 === 0));
  assert.deepEqual(await Promise.all(gone.map((k) => cache.get(k))), gone.map(() => null));
  assert.deepEqual(await Promise.all(gone.map((k) => cache.ttl(k))), gone.map(() => -2));
  assert.deepEqual(await Promise.all(gone.map((k) => cache.expire(k, 10))), gone.map(() => false));
  assert.equal(sum(await router.onEach('DBSIZE')), 125);
});

test('mget of 250 keys in many slots keeps the order and length, null for misses', async () => {
  const present = range(150, (i) => `m:${i}`);
  await cache.mset(Object.fromEntries(present.map((k, i) => [k, { i }])));
  // Interleave hits and misses, shuffled across slots, with repeats.
  const asked = [];
  for (let i = 0; i < 250; i++) {
    if (i % 5 === 4) asked.push(`missing:${i}`);
    else asked.push(`m:${(i * 37) % 150}`);
  }
  asked.push('m:0', 'm:0', 'missing:x');
  const expected = asked.map((k) => (k.startsWith('m:') ? { i: Number(k.slice(2)) } : null));
  const got = await cache.mget(asked);
  assert.equal(got.length, asked.length);
  assert.deepEqual(got, expected);
  assert.deepEqual(await cache.mget([]), []);
  assert.deepEqual(await cache.mget(['missing:only']), [null]);
  // A raw string written by another client comes back as that string.
  await router.cmd('SET', 'cl:m:raw', 'not json {');
  assert.deepEqual(await cache.mget(['m:1', 'm:raw', 'nope']), [{ i: 1 }, 'not json {', null]);
});

test('mset of 250 keys (object and Map) with ttl and tags, readable by a raw client', async () => {
  const obj = Object.fromEntries(range(250, (i) => [`o:${i}`, { n: i, s: `é${i}` }]));
  assert.equal(await cache.mset(obj, { ttl: 120, tags: ['objtag'] }), true);
  for (const [k, v] of Object.entries(obj)) {
    assert.equal(await router.cmd('GET', `cl:${k}`), JSON.stringify(v), k);
    const pttl = await router.cmd('PTTL', `cl:${k}`);
    assert.ok(pttl > 115000 && pttl <= 120000, `${k} pttl ${pttl}`);
  }
  assert.equal(await router.cmd('ZCARD', 'cl:__fluxor__:tag:objtag'), 250);

  const values = [0, false, '', 'str', [1, 2], { a: null }, 1.5, -3, 'ünïcode ✓', [{ deep: [[]] }]];
  const map = new Map(range(250, (i) => [`p:${i}`, values[i % values.length]]));
  assert.equal(await cache.mset(map, { ttl: 0, tags: ['maptag', 'other'] }), true);
  for (const [k, v] of map) assert.equal(await router.cmd('GET', `cl:${k}`), JSON.stringify(v), k);
  assert.equal(await router.cmd('TTL', 'cl:p:17'), -1);
  assert.deepEqual(await cache.mget([...map.keys()]), [...map.values()]);
  assert.equal(await router.cmd('ZCARD', 'cl:__fluxor__:tag:maptag'), 250);
  assert.equal(await router.cmd('ZCARD', 'cl:__fluxor__:tag:other'), 250);
  assert.equal((await ownersOf([...map.keys()].map((k) => `cl:${k}`))).size, 3);
});

test('an mset with one bad value writes nothing of the batch', async () => {
  const before = sum(await router.onEach('DBSIZE'));
  const circular = {};
  circular.self = circular;
  for (const bad of [undefined, () => 1, Symbol('s'), 10n, circular]) {
    const obj = Object.fromEntries(range(250, (i) => [`bad:${i}`, i]));
    obj['bad:125'] = bad;
    await assert.rejects(cache.mset(obj, { tags: ['badtag'] }), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG');
    const map = new Map(Object.entries(obj));
    await assert.rejects(cache.mset(map, { ttl: 10 }), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG');
  }
  assert.equal(sum(await router.onEach('DBSIZE')), before, 'nothing was written');
  assert.deepEqual(Object.values(await router.onEach('KEYS', 'cl:bad*')).flat(), []);
  assert.equal(await router.cmd('EXISTS', 'cl:__fluxor__:tag:badtag'), 0);
});

test("invalidate('pattern', '*') removes exactly the keys under the prefix on every master", async () => {
  const mine = Object.fromEntries(range(300, (i) => [`pat:${i}`, i]));
  await cache.mset(mine);
  await cache.set('tagged', 1, { tags: ['kept-index'] });
  const foreign = [...range(100, (i) => `other:${i}`), 'cl', 'clx:1', 'cl-1', 'CL:upper', '{cl:}tagged'];
  for (const k of foreign) await router.cmd('SET', k, 'foreign');
  const lock = await cache.lock('held', { ttl: 60 });
  assert.equal((await ownersOf(Object.keys(mine).map((k) => `cl:${k}`))).size, 3);
  // 301 cache keys, the foreign ones, the lock, its fencing counter, the tag index and the tagged key's record of tags.
  assert.equal(sum(await router.onEach('DBSIZE')), 301 + foreign.length + 4);

  assert.equal(await cache.invalidate('pattern', '*'), 301);
  assert.equal(sum(await router.onEach('DBSIZE')), foreign.length + 4);
  for (const k of foreign) assert.equal(await router.cmd('GET', k), 'foreign', k);
  assert.equal(await router.cmd('EXISTS', 'cl:__fluxor__:tag:kept-index'), 1, 'the tag index stays');
  assert.equal(await lock.release(), true, 'the lock was still held');
  assert.equal(await cache.invalidate('pattern', '*'), 0);
});

test("invalidate('pattern', glob) matches the unprefixed name across slots", async () => {
  await cache.mset(Object.fromEntries(range(120, (i) => [`session:${i}`, i])));
  await cache.mset(Object.fromEntries(range(60, (i) => [`sessions:${i}`, i])));
  await cache.mset({ 'user:1': 1, 'user:22': 2 });
  assert.equal(await cache.invalidate('pattern', 'session:*'), 120);
  assert.equal(await cache.invalidate('pattern', 'user:?'), 1);
  assert.equal(sum(await router.onEach('DBSIZE')), 61);
  assert.deepEqual(await cache.mget(['session:5', 'sessions:5', 'user:1', 'user:22']), [null, 5, null, 2]);
});

test("invalidate('cascade', 'user:1') removes the key and its sub-keys in every slot", async () => {
  const sub = range(80, (i) => `user:1:orders:${i}`);
  const kept = ['user:10', 'user:12', 'user:1x', 'user:2:orders:1', 'user', 'user:10:profile'];
  await cache.mset(Object.fromEntries([...sub, ...kept].map((k) => [k, k])));
  await cache.set('user:1', { id: 1 });
  await cache.set('user:1:profile', { p: 1 }, { tags: ['u'] });
  await router.cmd('SET', 'user:1:raw', 'foreign');
  const lock = await cache.lock('user:1', { ttl: 60 });
  assert.equal((await ownersOf(sub.map((k) => `cl:${k}`))).size, 3);

  assert.equal(await cache.invalidate('cascade', 'user:1'), 82);
  assert.deepEqual(await cache.mget(['user:1', 'user:1:profile', 'user:1:orders:0', 'user:1:orders:79']), [null, null, null, null]);
  assert.deepEqual(await cache.mget(kept), kept);
  assert.equal(await router.cmd('GET', 'user:1:raw'), 'foreign');
  assert.equal(await lock.release(), true, 'the lock under the same name was not removed');
  assert.equal(await cache.invalidate('cascade', 'user:1'), 0);
});

test("invalidate('tag', t) removes members in many slots written by set, mset and warmCache", async () => {
  const bySet = range(60, (i) => `ts:${i}`);
  await Promise.all(bySet.map((k) => cache.set(k, k, { tags: ['spread'] })));
  const byMset = Object.fromEntries(range(120, (i) => [`tm:${i}`, i]));
  await cache.mset(byMset, { tags: ['spread', 'also'], ttl: 300 });
  const items = range(100, (i) => ({ id: i, name: `w${i}` }));
  assert.deepEqual(await cache.warmCache(async () => items, { keyExtractor: (it) => `tw:${it.id}`, tags: ['spread'], batchSize: 33 }), { loaded: 100 });
  await cache.set('t:other', 1, { tags: ['also-not'] });
  await cache.set('t:none', 1);
  const members = [...bySet, ...Object.keys(byMset), ...items.map((it) => `tw:${it.id}`)];
  assert.equal((await ownersOf(members.map((k) => `cl:${k}`))).size, 3);
  assert.equal(await router.cmd('ZCARD', 'cl:__fluxor__:tag:spread'), 280);

  assert.equal(await cache.invalidate('tag', 'spread'), 280);
  assert.equal(await router.cmd('EXISTS', 'cl:__fluxor__:tag:spread'), 0, 'the index is gone');
  assert.deepEqual(await cache.mget(members), members.map(() => null));
  assert.deepEqual(await cache.mget(['t:other', 't:none']), [1, 1]);
  assert.equal(await cache.invalidate('tag', 'also'), 0, 'members already gone are not counted');
  assert.equal(await cache.invalidate('tag', 'also-not'), 1);
  assert.equal(await cache.invalidate('tag', 'never-used'), 0);
});

test('locks: acquire, extend, release, contention between two instances, fencing tokens increase', async () => {
  const other = new CacheModule(options());
  await other.initialize();
  try {
    const lock = await cache.lock('res:1', { ttl: 5 });
    assert.equal(lock.key, 'res:1');
    assert.match(lock.token, /^[0-9a-f]{32,}$/);
    const stored = 'cl:__fluxor__:lock:{res:1}';
    assert.equal(await router.cmd('GET', stored), lock.token);
    await assert.rejects(other.lock('res:1', { retries: 2, retryDelay: 20 }), { code: 'ERR_LOCK_NOT_ACQUIRED' });
    assert.equal(await lock.extend(20), true);
    const pttl = await router.cmd('PTTL', stored);
    assert.ok(pttl > 15000 && pttl <= 20000, `pttl ${pttl}`);
    assert.equal(await lock.release(), true);
    assert.equal(await lock.release(), false);
    assert.equal(await lock.extend(5), false);
    const next = await other.lock('res:1', { ttl: 5, retries: 0 });
    assert.ok(next.fencingToken > lock.fencingToken, `${next.fencingToken} > ${lock.fencingToken}`);
    assert.equal(await next.release(), true);

    // Locks on keys in many slots, all held at once.
    const many = await Promise.all(range(30, (i) => cache.lock(`many:${i}`, { ttl: 10, retries: 0 })));
    assert.equal((await ownersOf(many.map((l) => `cl:__fluxor__:lock:{${l.key}}`))).size, 3);
    await Promise.all(range(30, (i) => assert.rejects(other.lock(`many:${i}`, { retries: 0 }), { code: 'ERR_LOCK_NOT_ACQUIRED' })));
    assert.deepEqual(await Promise.all(many.map((l) => l.release())), many.map(() => true));

    // Contention: 8 workers on two instances, 4 turns each, one holder at a time.
    let holders = 0;
    let maxHolders = 0;
    const fences = [];
    const worker = async (c) => {
      for (let turn = 0; turn < 4; turn++) {
        const l = await c.lock('contended', { ttl: 10, retries: 500, retryDelay: 10 });
        holders++;
        maxHolders = Math.max(maxHolders, holders);
        fences.push(l.fencingToken);
        await sleep(3);
        holders--;
        assert.equal(await l.release(), true);
      }
    };
    await Promise.all(range(8, (i) => worker(i % 2 ? cache : other)));
    assert.equal(maxHolders, 1);
    assert.equal(fences.length, 32);
    for (let i = 1; i < fences.length; i++) assert.ok(fences[i] > fences[i - 1], `fencing tokens ${fences.join(',')}`);
  } finally {
    await other.disconnect();
  }
});

test('getStats() in cluster mode: the 3 masters, memory and keys summed over them', async () => {
  await cache.mset(Object.fromEntries(range(200, (i) => [`st:${i}`, i])), { ttl: 0 });
  await cache.get('st:1');
  await cache.get('st:missing');
  const masters = await cluster.masterPorts();
  assert.equal(masters.length, 3);
  const memBefore = sum(Object.fromEntries(Object.entries(await router.onEach('INFO', 'memory')).map(([p, t]) => [p, Number(infoFields(t).used_memory)])));
  const stats = await cache.getStats();
  const memAfter = sum(Object.fromEntries(Object.entries(await router.onEach('INFO', 'memory')).map(([p, t]) => [p, Number(infoFields(t).used_memory)])));
  const dbsize = await router.onEach('DBSIZE');

  assert.equal(stats.server.mode, 'cluster');
  assert.deepEqual([...stats.server.nodes].sort(), masters.map((p) => `127.0.0.1:${p}`).sort());
  const info = Object.values(await router.onEach('INFO', 'server'))[0];
  assert.equal(stats.server.version, infoFields(info).redis_version);
  assert.equal(stats.keys, sum(dbsize));
  assert.equal(stats.keys, 200);
  const low = Math.min(memBefore, memAfter) * 0.9;
  const high = Math.max(memBefore, memAfter) * 1.1;
  assert.ok(stats.memory.used >= low && stats.memory.used <= high, `used ${stats.memory.used} vs ${memBefore}..${memAfter}`);
  assert.ok(stats.memory.peak >= stats.memory.used * 0.9, `peak ${stats.memory.peak}`);
  assert.ok(stats.memory.rss > 0);
  assert.equal(stats.connected, true);
  assert.ok(stats.hits >= 1 && stats.misses >= 1);
  assert.ok(stats.hitRate > 0 && stats.hitRate < 1);
  assert.equal(typeof (stats.hits / (stats.hits + stats.misses)), 'number');
  assert.ok(Number.isFinite(stats.memory.used / 1024 / 1024));
  assert.ok(stats.latency.p50 >= 0 && stats.latency.p99 >= stats.latency.p50);
});

test('ping() in cluster mode sends a PING to every master and resolves the round trip', async () => {
  const pings = async () => {
    const masters = new Set((await cluster.masterPorts()).map(String));
    const stats = await router.onEach('INFO', 'commandstats');
    return Object.fromEntries(Object.entries(stats).filter(([port]) => masters.has(port)).map(([port, text]) => [port, Number(/cmdstat_ping:calls=(\d+)/.exec(text)?.[1] ?? 0)]));
  };
  const before = await pings();
  const ms = await cache.ping();
  const after = await pings();
  assert.ok(typeof ms === 'number' && ms > 0, String(ms));
  assert.equal(Object.keys(before).length, 3);
  for (const port of Object.keys(before)) assert.ok(after[port] > before[port], `master ${port} was pinged (${before[port]} -> ${after[port]})`);
  assert.ok((await cache.getStats()).byOperation.ping.count >= 1);
});

test("the README's Configuration snippet with enableCluster: true and clusterNodes", async () => {
  // The snippet carries password: 'secret': give the cluster that password
  // for the duration of this test (connections opened before keep working).
  const admins = await Promise.all(cluster.livePorts().map((p) => cluster.raw(p)));
  for (const c of admins) {
    await c.cmd('CONFIG', 'SET', 'masterauth', 'secret');
    await c.cmd('CONFIG', 'SET', 'requirepass', 'secret');
  }
  try {
    const [a, b] = cluster.seeds;
    // host/port are ignored in cluster mode: a closed port proves it (and
    // no server outside the cluster is ever touched).
    const closed = await freePort();
    const readme = new CacheModule({
      // Redis connection
      host: '127.0.0.1',
      port: closed,
      password: 'secret',
      db: 0,

      // Cluster mode
      enableCluster: true,
      clusterNodes: [
        { host: a.host, port: a.port },
        { host: b.host, port: b.port },
      ],

      // Cache settings
      keyPrefix: 'fluxor:',
      defaultTTL: 3600,

      // Connection settings
      connectTimeout: 5000,
      commandTimeout: 5000,
      retryStrategy: (times) => Math.min(times * 50, 2000),
    });
    await readme.initialize();
    try {
      // The README's Usage, against the cluster.
      await readme.set('user:123', { name: 'John', email: 'john@example.com' });
      assert.deepEqual(await readme.get('user:123'), { name: 'John', email: 'john@example.com' });
      await readme.set('session:abc', { userId: 123 }, { ttl: 1800 });
      assert.ok((await readme.ttl('session:abc')) > 1790);
      await readme.mset({
        'product:1': { name: 'Product 1', price: 99.99 },
        'product:2': { name: 'Product 2', price: 149.99 },
      });
      assert.deepEqual(await readme.mget(['product:1', 'product:2']), [
        { name: 'Product 1', price: 99.99 },
        { name: 'Product 2', price: 149.99 },
      ]);
      assert.equal(await router.cmd('GET', 'fluxor:product:1'), JSON.stringify({ name: 'Product 1', price: 99.99 }));
      assert.equal(readme.generateKey('user', 123), 'user:123');
      assert.deepEqual(await readme.warmCache(async () => range(50, (i) => ({ id: i })), { keyExtractor: (p) => `product:${p.id}`, ttl: 7200 }), { loaded: 50 });
      const lock = await readme.lock('resource:critical', { ttl: 30, retries: 10 });
      try {
        await readme.set('user:123:profile', 1);
      } finally {
        await lock.release();
      }
      assert.equal(await readme.invalidate('cascade', 'user:123'), 2);
      assert.equal(await readme.invalidate('pattern', 'session:*'), 1);
      const stats = await readme.getStats();
      assert.equal(stats.server.mode, 'cluster');
      assert.equal(stats.server.nodes.length, 3);
      assert.ok(Number.isFinite(stats.hits / (stats.hits + stats.misses)));
      assert.ok(Number.isFinite(stats.memory.used / 1024 / 1024));
      assert.equal(await router.cmd('GET', 'fluxor:product:49'), JSON.stringify({ id: 49 }));
    } finally {
      await readme.disconnect();
    }
  } finally {
    for (const c of admins) {
      await c.cmd('CONFIG', 'SET', 'requirepass', '');
      await c.cmd('CONFIG', 'SET', 'masterauth', '');
      c.close();
    }
  }
});

test(
  'a cluster with a password: a wrong password rejects initialize() with ERR_AUTH naming the nodes',
  async () => {
  const admins = await Promise.all(cluster.livePorts().map((p) => cluster.raw(p)));
  for (const c of admins) await c.cmd('CONFIG', 'SET', 'requirepass', 'secret');
  try {
    const seeds = cluster.seeds.slice(0, 2);
    for (const creds of [{ password: 'wrong' }, { username: 'nobody', password: 'secret' }, {}]) {
      const wrong = new CacheModule({ enableCluster: true, clusterNodes: seeds, connectTimeout: 3000, ...creds });
      await assert.rejects(
        wrong.initialize(),
        (err) => err instanceof Error && err.code === 'ERR_AUTH' && err.message.includes(`127.0.0.1:${seeds[0].port}`),
        `credentials ${JSON.stringify(creds)}`,
      );
      await assert.rejects(wrong.get('k'), { code: 'ERR_NOT_CONNECTED' });
    }
  } finally {
    for (const c of admins) {
      await c.cmd('CONFIG', 'SET', 'requirepass', '');
      c.close();
    }
  }
});

test('initialize() rejects with ERR_CONNECTION naming the seeds when none answers', async () => {
  const seeds = [{ host: '127.0.0.1', port: await freePort() }, { host: '127.0.0.1', port: await freePort() }];
  const dead = new CacheModule({ enableCluster: true, clusterNodes: seeds, connectTimeout: 2000 });
  await assert.rejects(dead.initialize(), (err) => err instanceof Error && err.code === 'ERR_CONNECTION' && err.message.includes(`127.0.0.1:${seeds[0].port}`));
  await assert.rejects(dead.get('k'), { code: 'ERR_NOT_CONNECTED' });
  await dead.disconnect();
});

test('scan() walks every master: each key under the prefix once, never a lock or tag index', async () => {
  const keys = range(600, (i) => `sc:${i}`);
  assert.equal((await ownersOf(keys.map((k) => `cl:${k}`))).size, 3);
  await cache.mset(Object.fromEntries(keys.map((k) => [k, 1])), { tags: ['scan'] });
  await cache.set('other', 1);
  const lock = await cache.lock('scan-lock', { ttl: 30 });
  const found = [];
  for await (const k of cache.scan('sc:*', { count: 50 })) found.push(k);
  assert.equal(found.length, 600, 'no key twice (replicas are not scanned)');
  assert.deepEqual(found.sort(), keys.sort());
  const all = [];
  for await (const k of cache.scan()) all.push(k);
  assert.deepEqual(all.sort(), [...keys, 'other'].sort(), 'nothing reserved');
  await lock.release();
});

test('failover: a master is SIGKILLed under traffic; within 10 s every slot works again', async (t) => {
  // 90 keys over every master; a loop writes and reads them all.
  const keys = range(90, (i) => `fo:${i}`);
  assert.equal((await ownersOf(keys.map((k) => `cl:${k}`))).size, 3);
  const rounds = []; // { started, ended, ok, errors }
  let running = true;
  let n = 0;
  const traffic = (async () => {
    while (running) {
      const started = Date.now();
      const round = ++n;
      const errors = [];
      const sets = await Promise.allSettled(keys.map((k) => cache.set(k, { round, k })));
      const gets = await Promise.allSettled(keys.map((k) => cache.get(k)));
      const many = await Promise.allSettled([cache.mget(keys)]);
      for (const r of [...sets, ...gets, ...many]) if (r.status === 'rejected') errors.push(r.reason);
      const ok =
        errors.length === 0 &&
        gets.every((r, i) => r.value?.round === round && r.value?.k === keys[i]) &&
        many[0].value.every((v, i) => v?.round === round && v?.k === keys[i]);
      rounds.push({ started, ended: Date.now(), ok, errors });
      await sleep(20);
    }
  })();

  // Steady traffic first.
  await sleep(300);
  assert.ok(rounds.length > 0 && rounds.every((r) => r.ok), 'traffic runs cleanly before the kill');

  const victim = await cluster.ownerOf('cl:fo:0');
  const before = await cluster.topology();
  const victimId = before.find((n) => n.port === victim).id;
  const replica = before.find((n) => n.master === victimId).port;
  const killedAt = Date.now();
  await cluster.killNode(victim);

  // The replica is promoted (node timeout 1 s)...
  let promotedAt = null;
  while (Date.now() - killedAt < 10000) {
    const masters = await cluster.masterPorts().catch(() => []);
    if (masters.includes(replica) && !masters.includes(victim)) {
      promotedAt = Date.now();
      break;
    }
    await sleep(50);
  }
  assert.ok(promotedAt !== null, 'the replica was promoted within 10 s');
  // ... and a round on every key that started after that succeeds, all
  // within 10 s of the kill.
  let recovered = null;
  while (Date.now() - killedAt < 10000) {
    recovered = rounds.find((r) => r.started >= promotedAt && r.ok);
    if (recovered) break;
    await sleep(50);
  }
  const after = rounds.filter((r) => r.ended > killedAt);
  const errorCodes = [...new Set(after.flatMap((r) => r.errors.map((e) => e?.code)))];
  const timeline = () =>
    after
      .slice(0, 12)
      .map((r) => `+${r.started - killedAt}..+${r.ended - killedAt} ms ok=${r.ok} errors=${r.errors.length} ${[...new Set(r.errors.map((e) => `${e?.code} ${e?.message}`))].slice(0, 2).join(' | ')}`)
      .join('\n');
  if (!recovered || recovered.ended - killedAt > 10000) {
    running = false;
    await traffic;
    assert.fail(`no clean round within 10 s of the kill (promoted at +${promotedAt - killedAt} ms); rounds:\n${timeline()}`);
  }
  const firstClean = after.find((r) => r.started > killedAt && r.ok);
  t.diagnostic(
    `failover: replica promoted at +${promotedAt - killedAt} ms; first clean round ended at +${firstClean.ended - killedAt} ms; ` +
      `error codes meanwhile: ${errorCodes.join(',') || 'none'}`,
  );
  for (const line of timeline().split('\n')) t.diagnostic(line);
  // It stays clean.
  const count = rounds.length;
  while (rounds.length < count + 3) await sleep(20);
  running = false;
  await traffic;
  assert.ok(rounds.slice(count).every((r) => r.ok), 'rounds after recovery all succeed');

  // Errors during the outage were proper module errors.
  for (const r of after) {
    for (const e of r.errors) {
      assert.ok(e instanceof Error, `an Error: ${e}`);
      assert.ok(CODES.has(e.code), `a SPEC code: ${e.code} (${e.message})`);
    }
  }

  // Stats list the promoted replica and not the dead master.
  const stats = await cache.getStats();
  assert.equal(stats.connected, true);
  assert.deepEqual([...stats.server.nodes].sort(), (await cluster.masterPorts()).map((p) => `127.0.0.1:${p}`).sort());
  assert.ok(!stats.server.nodes.includes(`127.0.0.1:${victim}`));

  // The rest of the API still works on every slot.
  assert.equal(await cache.mset(Object.fromEntries(keys.map((k) => [k, 'after'])), { tags: ['after'] }), true);
  assert.deepEqual(await cache.mget(keys), keys.map(() => 'after'));
  assert.equal(await cache.invalidate('tag', 'after'), 90);
  const l = await cache.lock('after-failover', { retries: 0 });
  assert.equal(await l.release(), true);

  // A new instance whose seed list still names the dead master connects.
  const fresh = new CacheModule(options());
  await fresh.initialize();
  assert.deepEqual(await fresh.mget(keys), keys.map(() => null));
  await fresh.disconnect();
  assert.deepEqual(unhandled, []);
});

test('scan() after a failover walks the promoted master: each key once', async () => {
  const keys = range(300, (i) => `after-fo:${i}`);
  await cache.mset(Object.fromEntries(keys.map((k) => [k, 1])));
  const found = [];
  for await (const k of cache.scan('after-fo:*', { count: 40 })) found.push(k);
  assert.deepEqual(found.sort(), keys.sort());
});

test(
  'a lost shard (master and replica down) does not take the other slots down',
  async () => {
  // Without full coverage required, the live masters keep serving their
  // slots; each operation's promise must reflect its own slot.
  for (const port of cluster.livePorts()) {
    const c = await cluster.raw(port);
    await c.cmd('CONFIG', 'SET', 'cluster-require-full-coverage', 'no');
    c.close();
  }
  const shard = new CacheModule({ ...options(), commandTimeout: 1000 });
  await shard.initialize();
  try {
    const keys = range(60, (i) => `shard:${i}`);
    const topo = await cluster.topology();
    const owner = new Map();
    for (const k of keys) owner.set(k, await cluster.ownerOf(`cl:${k}`));
    const victim = owner.get(keys[0]);
    const victimId = topo.find((n) => n.port === victim).id;
    const replicas = topo.filter((n) => n.master === victimId && cluster.alive(n.port)).map((n) => n.port);
    const lost = keys.filter((k) => owner.get(k) === victim);
    const live = keys.filter((k) => owner.get(k) !== victim);
    assert.ok(lost.length > 0 && live.length > 0);
    for (const port of replicas) await cluster.killNode(port);
    await cluster.killNode(victim);
    // Wait until the live nodes flag the master as failed.
    const deadline = Date.now() + 8000;
    for (;;) {
      const view = await cluster.topology();
      if (view.find((n) => n.port === victim).flags.includes('fail')) break;
      assert.ok(Date.now() < deadline, 'the dead master was flagged fail');
      await sleep(100);
    }

    // Ticks of writes over every slot. Every tick settles within the command
    // timeout and every write to the lost shard rejects. Writes to the live
    // masters all succeed: nothing holds them up while the lost shard's
    // commands are retried and the slot map refreshed.
    let clean = 0;
    const heldUp = [];
    for (let tick = 0; tick < 8 && clean < 3; tick++) {
      const started = Date.now();
      const results = await Promise.allSettled(keys.map((k) => shard.set(k, `${k}@${tick}`)));
      const took = Date.now() - started;
      assert.ok(took < 1000 + 1500, `tick ${tick} settled in ${took} ms (commandTimeout 1000)`);
      let liveRejected = 0;
      for (const [i, r] of results.entries()) {
        if (owner.get(keys[i]) === victim) {
          assert.equal(r.status, 'rejected', `set on the lost shard ${keys[i]}`);
          assert.ok(r.reason instanceof Error && CODES.has(r.reason.code), `${r.reason.code} ${r.reason.message}`);
        } else if (r.status === 'rejected') {
          liveRejected++;
          assert.equal(r.reason.code, 'ERR_TIMEOUT', `set on a live master ${keys[i]}: ${r.reason.message}`);
        }
      }
      if (liveRejected > 0) {
        heldUp.push(`tick ${tick}: ${liveRejected} of ${live.length}`);
        continue;
      }
      clean++;
      for (const k of live) assert.equal(await router.cmd('GET', `cl:${k}`), JSON.stringify(`${k}@${tick}`), k);
    }
    assert.deepEqual(heldUp, [], 'no live write held up');
    assert.equal(clean, 3);

    // A failure on the lost shard does not fail later operations elsewhere
    // (beyond a slot refresh, as above).
    const served = async (op) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await op();
        } catch (err) {
          if (err.code !== 'ERR_TIMEOUT' || attempt === 3) throw err;
        }
      }
    };
    await assert.rejects(shard.get(lost[0]), (err) => CODES.has(err.code));
    const stored = (k) => router.cmd('GET', `cl:${k}`).then(JSON.parse);
    assert.equal(await served(() => shard.get(live[0])), await stored(live[0]), 'a get on a live master right after a failure on the lost shard');
    assert.deepEqual(await served(() => shard.mget(live)), await Promise.all(live.map(stored)));
    const stats = await served(() => shard.getStats());
    assert.deepEqual([...stats.server.nodes].sort(), (await cluster.masterPorts()).map((p) => `127.0.0.1:${p}`).sort());
    assert.equal(stats.server.nodes.length, 2);
  } finally {
    await shard.disconnect();
  }
});

test('no unhandled rejection in the whole file', async () => {
  await sleep(50);
  assert.deepEqual(unhandled, []);
});
