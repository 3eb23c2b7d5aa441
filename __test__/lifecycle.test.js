'use strict';

// initialize / disconnect, events, and the process lifetime.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { startRedis, freePort, runNode, sleep } = require('./harness');

let server;
test.before(async () => {
  server = await startRedis();
});
test.after(() => server.stop());

const options = () => ({ host: '127.0.0.1', port: server.port, keyPrefix: 'life:' });

/** V8's gc(), without the --expose-gc flag on the test runner. */
function exposeGc() {
  require('node:v8').setFlagsFromString('--expose-gc');
  return require('node:vm').runInNewContext('gc');
}

/** Collects garbage until `done()` holds. */
async function collectUntil(done) {
  const gc = exposeGc();
  for (let i = 0; i < 100; i++) {
    // A turn of the loop before each gc(): deref() keeps a WeakRef's target
    // alive until the current job ends. Another after it: napi finalizers
    // (which close the connection) run there.
    await sleep(5);
    gc();
    await sleep(5);
    if (await done()) return;
  }
}

test('initialize resolves the instance, emits connect and ready, and is harmless twice', async () => {
  const cache = new CacheModule(options());
  const events = [];
  for (const e of ['connect', 'ready', 'end']) cache.on(e, () => events.push(e));
  const [a, b] = await Promise.all([cache.initialize(), cache.initialize()]);
  assert.equal(a, cache);
  assert.equal(b, cache);
  assert.equal(await cache.initialize(), cache);
  assert.deepEqual(events, ['connect', 'ready']);
  await cache.disconnect();
  await cache.disconnect();
  assert.deepEqual(events, ['connect', 'ready', 'end']);
});

test('methods before initialize and after disconnect reject with ERR_NOT_CONNECTED', async () => {
  const cache = new CacheModule(options());
  await assert.rejects(cache.get('k'), { code: 'ERR_NOT_CONNECTED' });
  await assert.rejects(cache.set('k', 1), { code: 'ERR_NOT_CONNECTED' });
  await assert.rejects(cache.mget(['a', 'b']), { code: 'ERR_NOT_CONNECTED' });
  await cache.initialize();
  await cache.disconnect();
  // Handlers attached at once: expire() settles in a turn of its own.
  const calls = [cache.get('k'), cache.del('k'), cache.exists('k'), cache.ttl('k'), cache.expire('k', 1), cache.mset({ a: 1 })];
  await Promise.all(calls.map((call) => assert.rejects(call, { code: 'ERR_NOT_CONNECTED' })));
});

test('a get with a fallback returns the fallback when not connected', async () => {
  const cache = new CacheModule(options());
  assert.equal(await cache.get('k', { fallback: 'fb' }), 'fb');
  assert.equal(await cache.get('k', { fallback: async () => 'fn' }), 'fn');
});

test('initialize against a closed port rejects with ERR_CONNECTION naming host:port', async () => {
  const port = await freePort();
  const cache = new CacheModule({ host: '127.0.0.1', port, connectTimeout: 2000 });
  await assert.rejects(cache.initialize(), (err) => err.code === 'ERR_CONNECTION' && err.message.includes(`127.0.0.1:${port}`));
  // A later initialize can still succeed elsewhere; this one stays unconnected.
  await assert.rejects(cache.get('k'), { code: 'ERR_NOT_CONNECTED' });
});

test('operations queued before disconnect are still answered', async () => {
  const cache = new CacheModule(options());
  await cache.initialize();
  const pending = [cache.set('q:1', 1), cache.set('q:2', 2), cache.get('q:1')];
  await cache.disconnect();
  assert.deepEqual(await Promise.all(pending), [true, true, 1]);
});

test('a child process connects, works, disconnects and exits by itself, printing nothing', async () => {
  const code = `
    const C = require('.');
    (async () => {
      const c = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: 'child:' });
      await c.initialize();
      await c.set('k', { ok: true });
      await c.get('k');
      await c.get('missing', { fallback: 1 });
      await c.set('bad', undefined).catch(() => {});
      await c.disconnect();
    })();`;
  const out = await runNode(code, { timeout: 15000 });
  assert.equal(out.signal, null, 'the child had to be killed: it did not exit by itself');
  assert.equal(out.code, 0);
  assert.equal(out.stdout, '');
  assert.equal(out.stderr, '');
});

test('an idle connection does not keep the process alive, even without disconnect', async () => {
  const code = `
    const C = require('.');
    new C({ host: '127.0.0.1', port: ${server.port} }).initialize().then(async (c) => {
      // One at a time, each queued by the last one's callback: the hold is
      // kept across them and must still be let go after the last.
      for (let i = 0; i < 50; i++) await c.set('idle', i);
    });`;
  const out = await runNode(code, { timeout: 15000 });
  assert.equal(out.signal, null, 'the child had to be killed: it did not exit by itself');
  assert.equal(out.code, 0, out.stderr);
});

test('worker threads: two caches, one never disconnected, and the worker ends cleanly', async () => {
  // A worker's event loop must have no handles left when it closes, or Node
  // aborts the whole process; and nothing may call napi for the worker after
  // it ended (a command's last reference to the engine can go on a tokio
  // thread: that crashed about 1 pair of workers in 30, so 8 pairs here).
  const code = `
    const { Worker } = require('node:worker_threads');
    const WORKERS = 16;
    const body = \`
      const C = require(\${JSON.stringify(process.cwd())});
      const { parentPort } = require('node:worker_threads');
      (async () => {
        const a = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: 'wt:' });
        const b = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: 'wt:' });
        await a.initialize();
        await b.initialize();
        await a.set('k', { n: 1 });
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
      for (let i = 0; i < WORKERS; i += 2) out.push(...(await Promise.all([one(), one()])));
      process.stdout.write(out.join('|'));
    })();`;
  const out = await runNode(code, { timeout: 15000 });
  assert.equal(out.signal, null, out.stderr);
  assert.equal(out.code, 0, out.stderr);
  const expected = '0 [{"n":1},[{"n":1},null]]';
  assert.equal(out.stdout, Array(16).fill(expected).join('|'));
  assert.equal(out.stderr, '');
});

test('a pending command keeps the process alive until it is answered', async () => {
  const code = `
    const C = require('.');
    const c = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: 'child:' });
    c.initialize().then(() => c.set('late', 'v')).then(() => c.get('late')).then((v) => process.stdout.write(String(v)));`;
  const out = await runNode(code, { timeout: 15000 });
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, 'v');
});

test('a CacheModule nobody holds is collected and its connection closed, whether disconnected or not', async () => {
  const own = await startRedis();
  const raw = await own.raw();
  const clients = async () => Number(/connected_clients:(\d+)/.exec(await raw.cmd('INFO', 'clients'))[1]);
  try {
    // In a function of their own, so that no frame of this test holds one.
    const make = async () => {
      const refs = [];
      for (const mode of ['disconnected', 'never initialized', 'connected']) {
        const c = new CacheModule({ host: '127.0.0.1', port: own.port });
        if (mode !== 'never initialized') {
          await c.initialize();
          await c.set('k', { n: 1 });
          assert.deepEqual(await c.mget(['k']), [{ n: 1 }]);
        }
        if (mode === 'disconnected') await c.disconnect();
        refs.push(new WeakRef(c));
      }
      return refs;
    };
    const refs = await make();
    assert.equal(await clients(), 2, 'the raw client and the connected cache');
    await collectUntil(async () => refs.every((r) => r.deref() === undefined) && (await clients()) === 1);
    assert.deepEqual(refs.map((r) => r.deref() === undefined), [true, true, true], 'collected');
    assert.equal(await clients(), 1, 'only the raw client is left connected');
  } finally {
    raw.close();
    await own.stop();
  }
});

test('a command in flight still settles when nobody holds its CacheModule any more', { timeout: 10000 }, async () => {
  const own = await startRedis();
  const raw = await own.raw();
  try {
    const start = async () => {
      const c = new CacheModule({ host: '127.0.0.1', port: own.port });
      await c.initialize();
      await c.set('k', 'v');
      // The server answers nothing for 300 ms: the get stays in flight.
      await raw.cmd('CLIENT', 'PAUSE', '300');
      return { reply: c.get('k'), ref: new WeakRef(c) };
    };
    const { reply, ref } = await start();
    const gc = exposeGc();
    for (let i = 0; i < 10; i++) {
      await sleep(10);
      gc();
    }
    assert.equal(await reply, 'v');
    await collectUntil(() => ref.deref() === undefined);
    assert.equal(ref.deref(), undefined, 'collected once nothing is in flight');
  } finally {
    raw.close();
    await own.stop();
  }
});

test('a CacheModule nobody holds is collected while it is reconnecting', async () => {
  const own = await startRedis();
  let stopped = false;
  try {
    const start = async () => {
      const c = new CacheModule({ host: '127.0.0.1', port: own.port, retryStrategy: () => 20 });
      await c.initialize();
      const reconnecting = new Promise((resolve) => c.once('reconnecting', resolve));
      c.on('error', () => {});
      await own.stop();
      stopped = true;
      await c.get('k').catch(() => {});
      await reconnecting;
      return new WeakRef(c);
    };
    const ref = await start();
    await collectUntil(() => ref.deref() === undefined);
    assert.equal(ref.deref(), undefined, 'collected while retrying every 20 ms');
  } finally {
    if (!stopped) await own.stop();
  }
});
