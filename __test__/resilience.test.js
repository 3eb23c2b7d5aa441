'use strict';

// Failures a cache must survive: slow, silent, paused, killed and restarted
// servers, wrong credentials, missing permissions, and TLS.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const CacheModule = require('..');
const { startRedis, freePort, sleep, makeCerts } = require('./harness');

const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
test.after(() => assert.deepEqual(unhandled, [], 'no unhandled rejection'));

const elapsed = async (fn) => {
  const t0 = Date.now();
  await fn();
  return Date.now() - t0;
};

test('a listener that accepts and never answers: initialize rejects with ERR_TIMEOUT after connectTimeout', async (t) => {
  const sockets = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => {
    sockets.forEach((s) => s.destroy());
    silent.close();
  });
  const cache = new CacheModule({ host: '127.0.0.1', port: silent.address().port, connectTimeout: 400 });
  const ms = await elapsed(() => assert.rejects(cache.initialize(), (err) => err.code === 'ERR_TIMEOUT' && /400 ms/.test(err.message)));
  assert.ok(ms >= 350 && ms < 3000, `rejected after ${ms} ms`);
  await assert.rejects(cache.get('k'), { code: 'ERR_NOT_CONNECTED' });
});

test('a server under CLIENT PAUSE: commands reject with ERR_TIMEOUT after commandTimeout, fallbacks answer', async (t) => {
  const server = await startRedis();
  t.after(() => server.stop());
  const cache = new CacheModule({ host: '127.0.0.1', port: server.port, commandTimeout: 300 });
  await cache.initialize();
  await cache.set('k', 'v');
  const raw = await server.raw();
  await raw.cmd('CLIENT', 'PAUSE', 1500, 'ALL');
  const ms = await elapsed(() => assert.rejects(cache.get('k'), { code: 'ERR_TIMEOUT' }));
  assert.ok(ms >= 250 && ms < 1000, `rejected after ${ms} ms`);
  assert.equal(await cache.get('k', { fallback: 'fb' }), 'fb');
  await sleep(1500);
  assert.equal(await cache.get('k'), 'v', 'the connection works again after the pause');
  raw.close();
  await cache.disconnect();
});

test('a server killed and restarted on the same port under steady traffic: operations succeed again without a new initialize', async (t) => {
  let server = await startRedis();
  const port = server.port;
  t.after(() => server.stop());
  const cache = new CacheModule({ host: '127.0.0.1', port, commandTimeout: 1000, retryStrategy: (n) => Math.min(n * 50, 300) });
  const events = [];
  for (const e of ['error', 'reconnecting', 'ready', 'end']) cache.on(e, () => events.push(e));
  await cache.initialize();

  let ok = 0;
  let failed = 0;
  let stop = false;
  const codes = new Set();
  const traffic = (async () => {
    for (let i = 0; !stop; i++) {
      try {
        await cache.set(`t:${i % 100}`, i);
        await cache.get(`t:${i % 100}`);
        ok++;
      } catch (err) {
        failed++;
        codes.add(err.code);
        await sleep(5);
      }
    }
  })();
  await sleep(200);
  await server.stop('SIGKILL');
  await sleep(600);
  const failedWhileDown = failed;
  server = await startRedis({ port });
  const okBefore = ok;
  const deadline = Date.now() + 10000;
  while (ok < okBefore + 20 && Date.now() < deadline) await sleep(50);
  stop = true;
  await traffic;
  assert.ok(failedWhileDown > 0, 'commands failed while the server was down');
  assert.ok(ok >= okBefore + 20, `operations succeed again (ok ${ok}, before ${okBefore})`);
  assert.deepEqual([...codes].filter((c) => c !== 'ERR_CONNECTION'), [], `failures are ERR_CONNECTION: ${[...codes]}`);
  assert.ok(events.includes('error') && events.includes('reconnecting'), `events ${events}`);
  assert.equal(events.at(-1), 'ready');
  await cache.disconnect();
});

test('an idle connection that breaks is noticed at once; a retryStrategy that gives up ends it', async (t) => {
  const server = await startRedis();
  t.after(() => server.stop());
  const tried = [];
  const cache = new CacheModule({ host: '127.0.0.1', port: server.port, retryStrategy: (times) => (tried.push(times), times < 3 ? 20 : null) });
  await cache.initialize();
  const ended = new Promise((resolve) => cache.once('end', resolve));
  // Reconnecting does not hold the process open by itself; this test waits for it.
  const hold = setInterval(() => {}, 1000);
  // No 'error' listener: the event is dropped, never thrown.
  await server.stop('SIGKILL');
  await ended;
  clearInterval(hold);
  assert.deepEqual(tried, [1, 2, 3]);
  await assert.rejects(cache.get('k'), { code: 'ERR_CONNECTION' });
  assert.equal(await cache.get('k', { fallback: 'fb' }), 'fb');
  await cache.disconnect();
});

test('an ACL user without permission for a command: ERR_NOPERM with the server text; username login', async (t) => {
  const server = await startRedis();
  t.after(() => server.stop());
  const raw = await server.raw();
  await raw.cmd('ACL', 'SETUSER', 'reader', 'on', '>readpw', '~*', '+get', '+ping', '+mget', '+info', '+dbsize');
  raw.close();
  const cache = new CacheModule({ host: '127.0.0.1', port: server.port, username: 'reader', password: 'readpw' });
  await cache.initialize();
  assert.equal(await cache.get('k'), null);
  await assert.rejects(cache.set('k', 1), (err) => err.code === 'ERR_NOPERM' && err.redisCode === 'NOPERM' && /^NOPERM /.test(err.message));
  await cache.disconnect();
  const wrong = new CacheModule({ host: '127.0.0.1', port: server.port, username: 'reader', password: 'nope' });
  await assert.rejects(wrong.initialize(), { code: 'ERR_AUTH' });
});

test('db selects the database', async (t) => {
  const server = await startRedis();
  t.after(() => server.stop());
  const cache = new CacheModule({ host: '127.0.0.1', port: server.port, db: 5, keyPrefix: 'd:' });
  await cache.initialize();
  await cache.set('k', 1);
  const raw = await server.raw();
  assert.equal(await raw.cmd('EXISTS', 'd:k'), 0);
  await raw.cmd('SELECT', 5);
  assert.equal(await raw.cmd('GET', 'd:k'), '1');
  raw.close();
  await cache.disconnect();
});

test('TLS: a self-signed CA made here is trusted through tls.ca or a rediss:// URL; the wrong CA is refused', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  makeCerts(dir);
  const tlsPort = await freePort();
  const server = await startRedis({
    args: ['--tls-port', String(tlsPort), '--tls-cert-file', path.join(dir, 'server.crt'), '--tls-key-file', path.join(dir, 'server.key'), '--tls-ca-cert-file', path.join(dir, 'ca.crt'), '--tls-auth-clients', 'no'],
  });
  t.after(() => server.stop());
  const ca = fs.readFileSync(path.join(dir, 'ca.crt'));

  const cache = new CacheModule({ host: '127.0.0.1', port: tlsPort, tls: { ca }, keyPrefix: 'tls:' });
  await cache.initialize();
  await cache.set('k', { secure: true });
  assert.deepEqual(await cache.get('k'), { secure: true });
  assert.deepEqual(await cache.mget(['k', 'x']), [{ secure: true }, null]);
  await cache.disconnect();

  const viaUrl = new CacheModule({ url: `rediss://localhost:${tlsPort}`, tls: { ca: ca.toString() }, keyPrefix: 'tls:' });
  await viaUrl.initialize();
  assert.deepEqual(await viaUrl.get('k'), { secure: true });
  await viaUrl.disconnect();

  const raw = await server.raw();
  assert.equal(await raw.cmd('GET', 'tls:k'), '{"secure":true}', 'the same server, seen over plain TCP');
  raw.close();

  const wrongCa = new CacheModule({ host: '127.0.0.1', port: tlsPort, tls: { ca: fs.readFileSync(path.join(dir, 'other-ca.crt')) }, connectTimeout: 2000 });
  await assert.rejects(wrongCa.initialize(), (err) => err.code === 'ERR_CONNECTION' && /certificate|UnknownIssuer/i.test(err.message));
  const insecure = new CacheModule({ host: '127.0.0.1', port: tlsPort, tls: { rejectUnauthorized: false } });
  await insecure.initialize();
  assert.equal(await insecure.exists('tls:k'), false);
  await insecure.disconnect();
});
