'use strict';

// The near cache (localCache) against real servers: every change by another
// client is seen and never reverts; read-your-writes; the server's TTL;
// bounds; nothing stale after a lost invalidation connection, a restart or a
// silent link (a relay that stops forwarding). Waits are hang guards only.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const CacheModule = require('..');
const { execFileSync } = require('node:child_process');
const { startRedis, sleep, runNode, freePort } = require('./harness');
const { startCluster } = require('./cluster');

const GUARD_MS = 20000;

/** Polls `check()` until it returns true; fails after the hang guard. */
async function eventually(check, what) {
  const until = Date.now() + GUARD_MS;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) assert.fail(`never happened: ${what}`);
    await sleep(2);
  }
}

const local = async (cache) => (await cache.getStats()).local;

/** Reads `key` until a read is served from the local copy; resolves that value. */
async function cachedLocally(cache, key) {
  let value;
  await eventually(async () => {
    const before = (await local(cache)).hits;
    value = await cache.get(key);
    return (await local(cache)).hits > before;
  }, `a local hit on ${key}`);
  return value;
}

/** Polls get(key) until `expected` comes back, then checks it never reverts. */
async function seen(cache, key, expected) {
  await eventually(async () => {
    try {
      assert.deepEqual(await cache.get(key), expected);
      return true;
    } catch {
      return false;
    }
  }, `${key} reads ${JSON.stringify(expected)}`);
  for (let i = 0; i < 50; i++) {
    assert.deepEqual(await cache.get(key), expected, 'the change never reverts');
    if (i % 10 === 0) await sleep(1);
  }
}

/** The server's invalidation connection of this cache, from CLIENT LIST. */
async function trackingIds(raw) {
  const list = await raw.cmd('CLIENT', 'LIST');
  return list
    .split('\n')
    .filter((l) => / name=fluxor-tracking /.test(l))
    .map((l) => / id=(\d+) /.exec(' ' + l)[1]);
}

/** A TCP relay that can stop forwarding (a silent link: no FIN, no RST). */
async function relay(port) {
  let paused = false;
  const held = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    const forward = (to) => (data) => (paused ? held.push([to, data]) : to.write(data));
    client.on('data', forward(upstream));
    upstream.on('data', forward(client));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      for (const [to, data] of held.splice(0)) to.write(data);
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

test.describe('standalone', () => {
  let server;
  let raw;
  let cache;
  const open = async (localCache = {}, more = {}) => {
    const c = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'nc:', localCache, ...more });
    await c.initialize();
    return c;
  };

  test.before(async () => {
    server = await startRedis({ args: ['--enable-debug-command', 'yes'] });
    raw = await server.raw();
    cache = await open();
  });

  test.after(async () => {
    await cache.disconnect();
    raw.close();
    await server.stop();
  });

  test.beforeEach(() => raw.cmd('FLUSHALL'));

  test('off by default: no local copies, no local stats, no invalidation connection', async () => {
    const plain = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'nc:' });
    await plain.initialize();
    await plain.set('k', { a: 1 });
    const v = await plain.get('k');
    v.a = 2; // not frozen: nothing changes for users who do not ask
    assert.equal((await plain.getStats()).local, undefined);
    const ids = await trackingIds(raw);
    await plain.disconnect();
    assert.equal(ids.length, 1, 'only the shared cache of this file tracks');
  });

  test('localCache options are checked, each by name', () => {
    const cases = [
      [5, TypeError, 'options.localCache'],
      [{ maxEntries: 0 }, RangeError, 'options.localCache.maxEntries'],
      [{ maxEntries: 1.5 }, RangeError, 'options.localCache.maxEntries'],
      [{ maxBytes: '1MB' }, TypeError, 'options.localCache.maxBytes'],
      [{ ttl: -1 }, RangeError, 'options.localCache.ttl'],
      [{ ttl: Infinity }, RangeError, 'options.localCache.ttl'],
      [{ maxSilenceMs: 5 }, RangeError, 'options.localCache.maxSilenceMs'],
      [{ maxSilenceMs: NaN }, RangeError, 'options.localCache.maxSilenceMs'],
      [{ maxSilence: 100 }, TypeError, 'options.localCache.maxSilence'],
    ];
    for (const [localCache, Class, name] of cases) {
      assert.throws(() => new CacheModule({ localCache }), (err) => err instanceof Class && err.code === 'ERR_INVALID_ARG' && err.message.includes(name), JSON.stringify(localCache));
    }
  });

  test("another client's SET, DEL, EXPIRE and FLUSHALL evict the local copy", async () => {
    await raw.cmd('SET', 'nc:k', '{"v":1}');
    assert.deepEqual(await cachedLocally(cache, 'k'), { v: 1 });
    await raw.cmd('SET', 'nc:k', '{"v":2}');
    await seen(cache, 'k', { v: 2 });
    await raw.cmd('DEL', 'nc:k');
    await seen(cache, 'k', null);

    await raw.cmd('SET', 'nc:k', '{"v":3}');
    await cachedLocally(cache, 'k');
    await raw.cmd('PEXPIRE', 'nc:k', 1);
    await seen(cache, 'k', null);

    await raw.cmd('SET', 'nc:k', '{"v":4}');
    await cachedLocally(cache, 'k');
    const flushes = (await local(cache)).flushes;
    await raw.cmd('FLUSHALL');
    await seen(cache, 'k', null);
    assert.ok((await local(cache)).flushes > flushes, 'a server flush drops every local copy');
  });

  test("the server's eviction (maxmemory) evicts the local copy", async () => {
    await raw.cmd('SET', 'nc:victim', '"old"');
    await cachedLocally(cache, 'victim');
    await raw.cmd('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-random');
    const used = Number(/used_memory:(\d+)/.exec(await raw.cmd('INFO', 'memory'))[1]);
    await raw.cmd('CONFIG', 'SET', 'maxmemory', String(used + 2_000_000));
    try {
      const big = 'x'.repeat(10_000);
      for (let i = 0; (await raw.cmd('EXISTS', 'nc:victim')) === 1; i++) {
        if (i > 100_000) assert.fail('the server never evicted the key');
        await raw.cmd('SET', `filler:${i}`, big).catch(() => {});
      }
      await seen(cache, 'victim', null);
    } finally {
      await raw.cmd('CONFIG', 'SET', 'maxmemory', '0');
      await raw.cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    }
  });

  test('mget and exists read through; another client is seen in both', async () => {
    await raw.cmd('MSET', 'nc:a', '1', 'nc:b', '"two"');
    await cachedLocally(cache, 'a');
    await cachedLocally(cache, 'b');
    const before = await local(cache);
    assert.deepEqual(await cache.mget(['a', 'b', 'c']), [1, 'two', null]);
    assert.equal(await cache.exists('a'), true);
    const after = await local(cache);
    assert.equal(after.hits - before.hits, 3, 'a and b from the local copy, then exists(a)');
    await raw.cmd('SET', 'nc:a', '10');
    await raw.cmd('DEL', 'nc:b');
    await eventually(async () => JSON.stringify(await cache.mget(['a', 'b'])) === '[10,null]', 'mget sees the change');
    assert.equal(await cache.exists('b'), false);
  });

  test("read-your-writes: this instance's set, del, expire, mset and invalidate apply at once", async () => {
    await cache.set('k', 1);
    await cachedLocally(cache, 'k');
    await cache.set('k', 2);
    assert.equal(await cache.get('k'), 2);
    cache.set('k', 3); // not awaited: the next read is queued after it
    assert.equal(await cache.get('k'), 3);
    await cachedLocally(cache, 'k');
    await cache.mset({ k: 4, j: 5 });
    assert.deepEqual(await cache.mget(['k', 'j']), [4, 5]);
    await cachedLocally(cache, 'k');
    await cache.expire('k', 0.001);
    await sleep(5);
    assert.equal(await cache.get('k'), null);
    await cache.set('k', 6);
    await cachedLocally(cache, 'k');
    await cache.del('k');
    assert.equal(await cache.get('k'), null);
    await cache.set('p:1', 7);
    await cachedLocally(cache, 'p:1');
    assert.equal(await cache.invalidate('pattern', 'p:*'), 1);
    assert.equal(await cache.get('p:1'), null);
  });

  /** Waits until every invalidation the server sent so far has reached `c`. */
  async function synced(c) {
    const n = String(Math.random());
    await raw.cmd('SET', 'nc:marker', '"old"');
    await cachedLocally(c, 'marker');
    await raw.cmd('SET', 'nc:marker', JSON.stringify(n));
    await eventually(async () => (await c.get('marker')) === n, 'the marker change is seen');
  }

  test("this instance's own set is not evicted again by the server's echo of it; a later write by another client is", async () => {
    await raw.cmd('SET', 'nc:warm', '0');
    await cachedLocally(cache, 'warm'); // tracking is up
    await cache.set('own', 1);
    assert.equal(await cache.get('own'), 1); // read after the write, kept
    await synced(cache); // the echo of the set has come by now
    const before = await local(cache);
    assert.equal(await cache.get('own'), 1);
    assert.equal((await local(cache)).hits, before.hits + 1, 'still a local copy after the echo');
    await raw.cmd('SET', 'nc:own', '2');
    await seen(cache, 'own', 2);
  });

  test('a set that fails (no echo will come) leaves nothing stale', async () => {
    await raw.cmd('SET', 'nc:f', '1');
    await cachedLocally(cache, 'f');
    await raw.cmd('CONFIG', 'SET', 'maxmemory', '1');
    try {
      await assert.rejects(cache.set('f', 2), (err) => err.code === 'ERR_OOM');
    } finally {
      await raw.cmd('CONFIG', 'SET', 'maxmemory', '0');
    }
    assert.equal(await cachedLocally(cache, 'f'), 1);
    await raw.cmd('SET', 'nc:f', '3');
    await seen(cache, 'f', 3);
  });

  test('getOrSet reads through the near cache, and its store evicts the local copy first', async () => {
    await raw.cmd('SET', 'nc:g', '"cached"');
    await cachedLocally(cache, 'g');
    const before = await local(cache);
    let runs = 0;
    assert.equal(await cache.getOrSet('g', () => ++runs), 'cached');
    assert.equal(runs, 0);
    assert.equal((await local(cache)).hits, before.hits + 1, 'a local hit');
    assert.equal(await cache.getOrSet('g', () => 'fresh', { forceFresh: true }), 'fresh');
    assert.equal(await cache.get('g'), 'fresh', 'read-your-writes after the factory stored');
  });

  test("a local copy never outlives the key's server TTL (the server's active expiry off)", async () => {
    await raw.cmd('DEBUG', 'SET-ACTIVE-EXPIRE', '0');
    try {
      const started = Date.now();
      await raw.cmd('SET', 'nc:t', '"short"', 'PX', '1000');
      assert.equal(await cachedLocally(cache, 't'), 'short');
      await sleep(Math.max(0, started + 1100 - Date.now()));
      // Nobody touched the key: the server sent no invalidation.
      assert.equal(await cache.get('t'), null);
    } finally {
      await raw.cmd('DEBUG', 'SET-ACTIVE-EXPIRE', '1');
    }
  });

  test('localCache.ttl bounds a local copy of a key without expiry', async () => {
    const c = await open({ ttl: 0.05 });
    try {
      await raw.cmd('SET', 'nc:l', '1');
      await cachedLocally(c, 'l');
      await sleep(100);
      const before = await local(c);
      assert.equal(await c.get('l'), 1);
      assert.equal((await local(c)).misses, before.misses + 1, 'read from the server again');
    } finally {
      await c.disconnect();
    }
  });

  test('bounded by entries and bytes, least recently used out first', async () => {
    const c = await open({ maxEntries: 100 });
    try {
      await c.mset(Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`e${i}`, i])));
      await cachedLocally(c, 'e0');
      for (let i = 0; i < 100; i++) await c.get(`e${i}`);
      for (let i = 0; i < 10; i++) await c.get(`e${i}`); // used again
      for (let i = 100; i < 190; i++) await c.get(`e${i}`);
      assert.equal((await local(c)).entries, 100);
      const before = (await local(c)).hits;
      for (let i = 0; i < 10; i++) assert.equal(await c.get(`e${i}`), i);
      assert.equal((await local(c)).hits - before, 10, 'the ten used again stayed');
    } finally {
      await c.disconnect();
    }
    const b = await open({ maxBytes: 1000 });
    try {
      const value = 'v'.repeat(100);
      await b.mset(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`b${i}`, value])));
      await cachedLocally(b, 'b0');
      for (let i = 0; i < 50; i++) await b.get(`b${i}`);
      const s = await local(b);
      assert.ok(s.bytes <= 1000 && s.entries > 0 && s.entries < 10, JSON.stringify(s));
    } finally {
      await b.disconnect();
    }
  });

  test('a returned object cannot change what later reads return', async () => {
    await cache.set('obj', { a: { b: [1, 2] }, c: 'x' });
    const first = await cachedLocally(cache, 'obj');
    assert.throws(() => {
      first.a.b.push(3);
    }, TypeError);
    assert.throws(() => {
      first.c = 'y';
    }, TypeError);
    const [fromMget] = await cache.mget(['obj']);
    assert.throws(() => {
      fromMget.a.z = 1;
    }, TypeError);
    assert.deepEqual(await cache.get('obj'), { a: { b: [1, 2] }, c: 'x' });
  });

  test('nothing stale after the invalidation connection is killed', async () => {
    const c = await open({ maxSilenceMs: 100 });
    try {
      await raw.cmd('SET', 'nc:kill', '"before"');
      await cachedLocally(c, 'kill');
      await eventually(async () => (await trackingIds(raw)).length === 2, 'both caches track');
      const before = new Set(await trackingIds(raw));
      for (const id of before) await raw.cmd('CLIENT', 'KILL', 'ID', id);
      await raw.cmd('SET', 'nc:kill', '"after"');
      // Within maxSilenceMs the copy may still be served; after it, never.
      await sleep(150);
      await seen(c, 'kill', 'after');
      await eventually(async () => (await trackingIds(raw)).filter((id) => !before.has(id)).length === 2, 'the connections are made again');
      await cachedLocally(c, 'kill');
      await raw.cmd('SET', 'nc:kill', '"again"');
      await seen(c, 'kill', 'again');
      assert.ok((await local(c)).flushes >= 1);
    } finally {
      await c.disconnect();
    }
  });

  test('nothing stale after a silent link (no FIN): no local hit past maxSilenceMs', async () => {
    const link = await relay(server.port);
    const c = new CacheModule({ host: '127.0.0.1', port: link.port, keyPrefix: 'nc:', localCache: { maxSilenceMs: 100 } });
    await c.initialize();
    try {
      await raw.cmd('SET', 'nc:silent', '"before"');
      await cachedLocally(c, 'silent');
      const hits = (await local(c)).hits; // getStats asks the server too
      link.pause();
      const paused = Date.now();
      await raw.cmd('SET', 'nc:silent', '"after"'); // straight to the server
      await sleep(Math.max(0, paused + 300 - Date.now()));
      const read = c.get('silent'); // must go to the server, which is silent
      await sleep(20);
      link.resume();
      assert.equal(await read, 'after');
      assert.equal((await local(c)).hits, hits, 'no local hit while silent');
    } finally {
      link.resume();
      await c.disconnect();
      await link.close();
    }
  });
});

test('a reply overtaken by an invalidation of its key (or a flush) is not stored', async () => {
  // The two connections race; the order is forced here with a stand-in for
  // the batcher, so each interleaving is checked every time.
  const { NearCache, MISS } = require('../lib/nearcache');
  const near = new NearCache({ maxEntries: 10, maxBytes: 1e6, ttl: 60, maxSilenceMs: 1e6 }, () => 0);
  near.start();
  near.events(['up', 0, null]);
  let answer;
  const batch = { run: (decode) => new Promise((resolve) => (answer = (reply) => resolve(decode(reply)))) };
  for (const overtake of [['keys', 0, ['k']], ['flush', 0, null], ['keys', 0, ['other']]]) {
    near.evict('k');
    const read = near.read('k', batch);
    near.events(overtake);
    answer(['"old"', '-1']);
    assert.equal(await read, 'old', 'the caller still gets what it read');
    const stored = overtake[2]?.[0] === 'other';
    assert.equal(near.get('k'), stored ? 'old' : MISS, JSON.stringify(overtake));
  }
  const read = near.read('k2', batch);
  near.events(['down', 0, null, 'up', 0, null]);
  answer(['"old"', '-1']);
  await read;
  assert.equal(near.get('k2'), MISS, 'nor one sent before tracking came back');
});

test.describe('lifecycle with localCache', () => {
  let server;
  let raw;
  test.before(async () => {
    server = await startRedis();
    raw = await server.raw();
  });
  test.after(async () => {
    raw.close();
    await server.stop();
  });

  test('the invalidation connection does not keep the process alive, even without disconnect', async () => {
    const code = `
      const C = require('.');
      new C({ host: '127.0.0.1', port: ${server.port}, localCache: { maxSilenceMs: 30 } }).initialize().then(async (c) => {
        await c.set('idle', 1);
        for (let i = 0; i < 20; i++) await c.get('idle');
        await new Promise((r) => setTimeout(r, 200)); // heartbeats come and go
      });`;
    const out = await runNode(code, { timeout: 15000 });
    assert.equal(out.signal, null, 'the child had to be killed: it did not exit by itself');
    assert.equal(out.code, 0, out.stderr);
  });

  test('worker threads: each has its own near cache; workers end cleanly, one cache never disconnected', async () => {
    const code = `
      const { Worker } = require('node:worker_threads');
      const body = \`
        const C = require(\${JSON.stringify(process.cwd())});
        const { parentPort } = require('node:worker_threads');
        (async () => {
          const a = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: 'wt:', localCache: { maxSilenceMs: 30 } });
          const b = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: 'wt:', localCache: {} });
          await a.initialize();
          await b.initialize();
          await a.set('k', { n: 1 });
          for (let i = 0; i < 50; i++) await a.get('k');
          await new Promise((r) => setTimeout(r, 50));
          parentPort.postMessage(JSON.stringify([await b.get('k'), await a.mget(['k', 'none'])]));
          await b.disconnect();
        })();\`;
      const one = () => new Promise((resolve, reject) => {
        const w = new Worker(body, { eval: true });
        let got;
        w.on('message', (m) => (got = m));
        w.on('error', reject);
        w.on('exit', (code) => resolve(code + ' ' + got));
      });
      (async () => {
        const out = [];
        for (let i = 0; i < 8; i += 2) out.push(...(await Promise.all([one(), one()])));
        process.stdout.write(out.join('|'));
      })();`;
    const out = await runNode(code, { timeout: 30000 });
    assert.equal(out.signal, null, out.stderr);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, Array(8).fill('0 [{"n":1},[{"n":1},null]]').join('|'));
    assert.equal(out.stderr, '');
  });

  // todo: on Node 22 the instance is sometimes never collected (1 run in 2
  // here; Node 20 passes): a hold not yet found, left open in issue #15.
  const gcTodo = process.versions.node.split('.')[0] === '20' ? false : 'sometimes not collected on Node 22+ (issue #15)';
  test('a CacheModule with localCache that nobody holds is collected, its invalidation connection closed', { todo: gcTodo }, async () => {
    const gc = () => require('node:vm').runInNewContext('gc');
    require('node:v8').setFlagsFromString('--expose-gc');
    const make = async () => {
      const c = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'gc:', localCache: {} });
      await c.initialize();
      await c.set('k', 1);
      await cachedLocally(c, 'k');
      return new WeakRef(c);
    };
    const ref = await make();
    assert.equal((await trackingIds(raw)).length, 1);
    await eventually(async () => {
      await sleep(5);
      gc();
      await sleep(5);
      return ref.deref() === undefined && (await trackingIds(raw)).length === 0;
    }, 'collected and closed');
  });
});

test("an own SET's echo evicts nothing read after the write, whenever it comes; the next invalidation does; a failed write flushes", async () => {
  const { NearCache, MISS } = require('../lib/nearcache');
  const near = new NearCache({ maxEntries: 10, maxBytes: 1e6, ttl: 60, maxSilenceMs: 1e6 }, () => 0);
  near.start();
  near.events(['up', 0, null]);
  let answer;
  const batch = { run: (decode) => new Promise((resolve) => (answer = (reply) => resolve(decode(reply)))) };
  for (const echoFirst of [false, true]) {
    let acked;
    const write = near.writes(['k'], () => new Promise((resolve) => (acked = resolve)));
    const read = near.read('k', batch);
    if (echoFirst) near.events(['keys', 0, ['k']]);
    answer([`"new${echoFirst}"`, '-1']);
    await read;
    if (!echoFirst) near.events(['keys', 0, ['k']]);
    acked(true);
    await write;
    assert.equal(near.get('k'), `new${echoFirst}`, `kept (echo ${echoFirst ? 'before' : 'after'} the reply)`);
    near.events(['keys', 0, ['k']]); // another client's write
    assert.equal(near.get('k'), MISS);
  }
  const failed = near.writes(['k'], () => Promise.reject(new Error('OOM')));
  const read = near.read('k', batch);
  await assert.rejects(failed);
  answer(['"kept?"', '-1']);
  await read;
  assert.equal(near.get('k'), MISS, 'a failed write flushed: the read it overtook is not stored');
  near.read('k', batch);
  answer(['"fresh"', '-1']);
  await new Promise(setImmediate);
  near.events(['keys', 0, ['k']]); // no echo is expected any more
  assert.equal(near.get('k'), MISS);
});

test('nothing stale after the server restarts (with data no write announces)', async () => {
  let server = await startRedis();
  const port = server.port;
  const c = new CacheModule({ host: '127.0.0.1', port, keyPrefix: 'nc:', localCache: { maxSilenceMs: 100 } });
  c.on('error', () => {});
  await c.initialize();
  const saved = fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-nc-'));
  try {
    // The restarted server loads "after" from disk: no client ever writes it.
    let raw = await server.raw();
    await raw.cmd('SET', 'nc:r', '"after"');
    await raw.cmd('SAVE');
    fs.copyFileSync(path.join(server.dir, 'dump.rdb'), path.join(saved, 'dump.rdb'));
    await raw.cmd('SET', 'nc:r', '"before"');
    await cachedLocally(c, 'r');
    raw.close();
    await server.stop('SIGKILL');
    server = await startRedis({ port, args: ['--dir', saved] });
    await sleep(150);
    await seen(c, 'r', 'after');
  } finally {
    await c.disconnect();
    await server.stop();
    fs.rmSync(saved, { recursive: true, force: true });
  }
});

test('TLS: the invalidation connection goes over TLS too, and changes are seen', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-nc-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=ca', '-keyout', 'ca.key', '-out', 'ca.crt');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.crt');
  const tlsPort = await freePort();
  const server = await startRedis({
    args: ['--tls-port', String(tlsPort), '--tls-cert-file', path.join(dir, 'server.crt'), '--tls-key-file', path.join(dir, 'server.key'), '--tls-ca-cert-file', path.join(dir, 'ca.crt'), '--tls-auth-clients', 'no'],
  });
  t.after(() => server.stop());
  const raw = await server.raw();
  t.after(() => raw.close());
  const c = new CacheModule({ host: '127.0.0.1', port: tlsPort, tls: { ca: fs.readFileSync(path.join(dir, 'ca.crt')) }, keyPrefix: 'nc:', localCache: {} });
  await c.initialize();
  t.after(() => c.disconnect());
  await raw.cmd('SET', 'nc:t', '1');
  await cachedLocally(c, 't');
  const line = (await raw.cmd('CLIENT', 'LIST')).split('\n').find((l) => / name=fluxor-tracking /.test(l));
  assert.match(line, new RegExp(` laddr=127\\.0\\.0\\.1:${tlsPort} `), 'tracking on the TLS port');
  await raw.cmd('SET', 'nc:t', '2');
  await seen(c, 't', 2);
});

test('Sentinel: the invalidation connection follows the master the module uses', async (t) => {
  const { startSentinels } = require('./sentinel');
  const group = await startSentinels();
  t.after(() => group.stop());
  const cache = new CacheModule({ sentinels: group.nodes, name: group.name, keyPrefix: 'ns:', localCache: { maxSilenceMs: 100 } });
  cache.on('error', () => {});
  await cache.initialize();
  t.after(() => cache.disconnect());
  const master = await group.master.raw();
  await master.cmd('SET', 'ns:k', '1');
  await cachedLocally(cache, 'k');
  await master.cmd('SET', 'ns:k', '2');
  await seen(cache, 'k', 2);
  await cachedLocally(cache, 'k');

  // Swap the roles by hand: nobody kills the old master's connections.
  const replica = await group.replica.raw();
  t.after(() => replica.close());
  await replica.cmd('REPLICAOF', 'NO', 'ONE');
  await master.cmd('REPLICAOF', '127.0.0.1', String(group.replica.port));
  master.close();
  for (const s of group.sentinels) {
    const c = await s.raw();
    await c.cmd('SENTINEL', 'REMOVE', group.name);
    await c.cmd('SENTINEL', 'MONITOR', group.name, '127.0.0.1', String(group.replica.port), '2');
    c.close();
  }
  // A write meets the demoted master; the module moves to the new one.
  await eventually(async () => (await cache.set('other', 1).catch(() => false)) === true, 'a write to succeed');
  await replica.cmd('SET', 'ns:k', '3');
  await sleep(150);
  await seen(cache, 'k', 3);
  const ids = await trackingIds(replica);
  assert.equal(ids.length, 1, 'tracking on the new master');
});

test('cluster: tracking on every master; changes by another client are seen; a killed connection leaves nothing stale', async () => {
  const cluster = await startCluster({ masters: 3, replicasPerMaster: 0 });
  const router = await cluster.router();
  const c = new CacheModule({ enableCluster: true, clusterNodes: cluster.seeds, keyPrefix: 'cl:', localCache: { maxSilenceMs: 100 } });
  await c.initialize();
  try {
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    for (const k of keys) await router.cmd('SET', `cl:${k}`, '1');
    for (const k of keys) await cachedLocally(c, k);
    for (const port of await cluster.masterPorts()) {
      const raw = await cluster.raw(port);
      await eventually(async () => (await trackingIds(raw)).length === 1, `tracking on ${port}`);
      raw.close();
    }
    for (const k of keys) await router.cmd('SET', `cl:${k}`, '2');
    for (const k of keys) await seen(c, k, 2);
    for (const k of keys) await cachedLocally(c, k);
    // One master's invalidation connection dies; a write there after it is still seen.
    const port = (await cluster.masterPorts())[0];
    const raw = await cluster.raw(port);
    for (const id of await trackingIds(raw)) await raw.cmd('CLIENT', 'KILL', 'ID', id);
    raw.close();
    for (const k of keys) await router.cmd('SET', `cl:${k}`, '3');
    await sleep(150);
    for (const k of keys) await seen(c, k, 3);
    assert.deepEqual(await c.mget(keys), keys.map(() => 3), 'mget across masters, from local copies and the servers');
  } finally {
    await c.disconnect();
    router.close();
    await cluster.stop();
  }
});
