'use strict';

// TLS on the JS-thread path (src/multiplex.rs drives rustls): every hot-path
// operation, big values, many in flight, losses noticed at once, certificate
// checks, and worker threads ending with TLS traffic in flight.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const CacheModule = require('..');
const { startTlsRedis, makeCerts, runNode } = require('./harness');

const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
test.after(() => assert.deepEqual(unhandled, [], 'no unhandled rejection'));

let server;
test.before(async () => {
  server = await startTlsRedis();
});
test.after(() => server.stop());

const open = async (options = {}) => {
  const cache = new CacheModule({ host: '127.0.0.1', port: server.tlsPort, tls: { ca: server.ca }, keyPrefix: 'tls:', ...options });
  await cache.initialize();
  return cache;
};

/** The next `event`, or a rejection after a generous hang guard. */
const next = (emitter, event, ms = 15000) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' event within ${ms} ms`)), ms);
    emitter.once(event, (value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });

test('TLS: every hot-path operation', async () => {
  const cache = await open();
  assert.equal(await cache.set('a', { n: 1 }, { tags: ['t'] }), true);
  assert.deepEqual(await cache.get('a'), { n: 1 });
  assert.equal(await cache.exists('a'), true);
  assert.equal(await cache.expire('a', 100), true);
  assert.ok((await cache.ttl('a')) > 90);
  await cache.mset({ b: 'B', c: [1, 2] }, { tags: ['t'] });
  assert.deepEqual(await cache.mget(['a', 'b', 'c', 'none']), [{ n: 1 }, 'B', [1, 2], null]);
  assert.equal(await cache.del('b'), true);
  assert.equal(await cache.invalidate('tag', 't'), 2);
  await cache.mset({ 'user:1': 1, 'user:1:posts': 2, 'p:1': 1, 'p:2': 2 });
  assert.equal(await cache.invalidate('cascade', 'user:1'), 2);
  assert.equal(await cache.invalidate('pattern', 'p:*'), 2);
  const lock = await cache.lock('L', { ttl: 10 });
  assert.equal(await lock.release(), true);
  await cache.warmCache(() => [{ id: 1 }, { id: 2 }], { keyExtractor: (i) => `w:${i.id}` });
  assert.deepEqual(await cache.mget(['w:1', 'w:2']), [{ id: 1 }, { id: 2 }]);
  const stats = await cache.getStats();
  assert.equal(stats.connected, true);
  assert.equal(stats.server.nodes[0], `127.0.0.1:${server.tlsPort}`);
  await cache.disconnect();
});

test('TLS: multi-MB values both ways, and many commands in flight', async () => {
  const cache = await open();
  const big = 'x'.repeat(12 << 20);
  await cache.set('big', big);
  assert.equal((await cache.get('big')).length, big.length);
  const pairs = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`big:${i}`, `${i}`.repeat(3 << 20)]));
  await cache.mset(pairs);
  const back = await cache.mget(Object.keys(pairs));
  assert.deepEqual(back, Object.values(pairs));
  const raw = await server.raw();
  assert.equal(await raw.cmd('STRLEN', 'tls:big'), big.length + 2, 'stored as JSON text');
  raw.close();

  const N = 20000;
  const sets = Array.from({ length: N }, (_, i) => cache.set(`many:${i}`, i));
  const gets = Array.from({ length: N }, (_, i) => cache.get(`many:${i}`));
  assert.equal((await Promise.all(sets)).every((r) => r === true), true);
  const got = await Promise.all(gets);
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => i));
  await cache.disconnect();
});

test('TLS: an idle connection killed by the server is noticed at once, named, and reconnected', async () => {
  for (const beforeKill of ['nothing', 'a command']) {
    const cache = await open({ retryStrategy: () => 50 });
    if (beforeKill === 'a command') await cache.set('k', beforeKill);
    const error = next(cache, 'error');
    const ready = next(cache, 'ready');
    const raw = await server.raw();
    await raw.cmd('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    raw.close();
    // No command is sent: the loss alone must be reported.
    const err = await error;
    assert.equal(err.code, 'ERR_CONNECTION');
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${server.tlsPort}: connection lost \\(closed by the server`), beforeKill);
    await ready;
    assert.equal(await cache.set('k', 'again'), true, 'works after the reconnect');
    assert.equal(await cache.get('k'), 'again');
    await cache.disconnect();
  }
});

test('TLS: a server killed and restarted is noticed at once; the cache reconnects to it', async (t) => {
  // Certificates of this test's own, to outlive the first server.
  const certs = fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-tls-'));
  t.after(() => fs.rmSync(certs, { recursive: true, force: true }));
  makeCerts(certs);
  const own = await startTlsRedis({ certs });
  t.after(() => own.stop());
  const cache = new CacheModule({ host: '127.0.0.1', port: own.tlsPort, tls: { ca: own.ca }, retryStrategy: () => 100 });
  await cache.initialize();
  await cache.set('k', 1);
  cache.on('error', () => {});
  const error = next(cache, 'error');
  await own.stop('SIGKILL');
  const err = await error;
  assert.equal(err.code, 'ERR_CONNECTION');
  assert.match(err.message, new RegExp(`^127\\.0\\.0\\.1:${own.tlsPort}: connection lost`));
  // Listening before the restart: the reconnect may be done before startTlsRedis returns.
  const ready = next(cache, 'ready', 30000);
  const again = await startTlsRedis({ port: own.port, tlsPort: own.tlsPort, certs: own.certs });
  t.after(() => again.stop());
  await ready;
  assert.equal(await cache.set('k', 2), true);
  await cache.disconnect();
});

test('TLS: commandTimeout is the only deadline', async () => {
  const patient = await open({ commandTimeout: 10000 });
  const hasty = await open({ commandTimeout: 300 });
  await patient.set('k', 'v');
  const raw = await server.raw();
  // Answered at once; then every client's commands wait 1.5 s.
  await raw.cmd('CLIENT', 'PAUSE', 1500, 'ALL');
  const [slow, fast] = await Promise.allSettled([patient.get('k'), hasty.get('k')]);
  raw.close();
  assert.deepEqual(slow, { status: 'fulfilled', value: 'v' }, 'no inner timeout below commandTimeout');
  assert.equal(fast.status, 'rejected');
  assert.equal(fast.reason.code, 'ERR_TIMEOUT');
  assert.match(fast.reason.message, new RegExp(`command to 127\\.0\\.0\\.1:${server.tlsPort} timed out after 300 ms`));
  await patient.disconnect();
  await hasty.disconnect();
});

test('TLS: certificate checks (wrong CA, rejectUnauthorized false, servername)', async () => {
  const other = fs.readFileSync(path.join(server.certs, 'other-ca.crt'));
  await assert.rejects(open({ tls: { ca: other }, connectTimeout: 3000 }), (err) => err.code === 'ERR_CONNECTION' && /127\.0\.0\.1:\d+: TLS handshake failed: .*UnknownIssuer/.test(err.message));
  const insecure = await open({ tls: { rejectUnauthorized: false } });
  assert.equal(await insecure.set('k', 1), true);
  await insecure.disconnect();
  // The certificate names localhost and 127.0.0.1 only.
  await assert.rejects(open({ tls: { ca: server.ca, servername: 'cache.example.com' }, connectTimeout: 3000 }), (err) => err.code === 'ERR_CONNECTION' && /not valid for name "cache\.example\.com"/.test(err.message));
  const named = await open({ host: 'localhost', tls: { ca: server.ca, servername: 'localhost' } });
  assert.equal(await named.exists('k'), true);
  await named.disconnect();
  const viaUrl = new CacheModule({ url: `rediss://localhost:${server.tlsPort}`, tls: { ca: server.ca.toString() }, keyPrefix: 'tls:' });
  await viaUrl.initialize();
  assert.equal(await viaUrl.exists('k'), true);
  await viaUrl.disconnect();
  assert.throws(() => new CacheModule({ url: `rediss://localhost:${server.tlsPort}/#insecure` }), (err) => err instanceof TypeError && /rejectUnauthorized: false/.test(err.message));
  assert.throws(() => new CacheModule({ tls: { servername: 5 } }), (err) => err instanceof TypeError && /options\.tls\.servername/.test(err.message));
});

test('TLS: worker threads ending with commands in flight do not crash the process', async () => {
  const code = `
    const { Worker } = require('node:worker_threads');
    const body = \`
      const C = require(\${JSON.stringify(process.cwd())});
      const { parentPort } = require('node:worker_threads');
      (async () => {
        const c = new C({ host: '127.0.0.1', port: ${server.tlsPort}, tls: { ca: require('node:fs').readFileSync(${JSON.stringify(path.join(server.certs, 'ca.crt'))}) }, keyPrefix: 'wt:' });
        await c.initialize();
        await c.set('k', 1);
        for (let i = 0; i < 2000; i++) c.set('k' + i, 'x'.repeat(1000)).catch(() => {});
        parentPort.postMessage('sent');
      })();\`;
    const one = () => new Promise((resolve, reject) => {
      const w = new Worker(body, { eval: true });
      w.on('message', () => w.terminate());
      w.on('error', reject);
      w.on('exit', resolve);
    });
    (async () => {
      for (let i = 0; i < 8; i += 2) await Promise.all([one(), one()]);
      process.stdout.write('done');
    })();`;
  const out = await runNode(code, { timeout: 60000 });
  assert.equal(out.signal, null, out.stderr);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, 'done');
  assert.equal(out.stderr, '');
});
