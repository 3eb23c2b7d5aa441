'use strict';

// How the module reaches its server: unix sockets, a reset connection named
// as such, keepAlive. TLS has its own file (tls.test.js).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const CacheModule = require('..');
const { startRedis } = require('./harness');

const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
test.after(() => assert.deepEqual(unhandled, [], 'no unhandled rejection'));

/** The next `event`, or a rejection after a generous hang guard. */
const next = (emitter, event, ms = 15000) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' event within ${ms} ms`)), ms);
    emitter.once(event, (value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });

test('a unix socket, by path or unix:// URL; its loss is named by the path', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-sock-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'redis.sock');
  const server = await startRedis({ args: ['--unixsocket', sock, '--unixsocketperm', '700'] });
  t.after(() => server.stop());

  const cache = new CacheModule({ path: sock, keyPrefix: 'u:', retryStrategy: () => 50 });
  await cache.initialize();
  await cache.set('k', { via: 'unix' });
  assert.deepEqual(await cache.mget(['k', 'none']), [{ via: 'unix' }, null]);
  const raw = await server.raw();
  assert.equal(await raw.cmd('GET', 'u:k'), '{"via":"unix"}', 'the same server, seen over TCP');

  const error = next(cache, 'error');
  await raw.cmd('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
  const err = await error;
  assert.equal(err.code, 'ERR_CONNECTION');
  assert.equal(err.message.startsWith(`${sock}: connection lost (closed by the server`), true, err.message);
  await next(cache, 'ready');
  assert.deepEqual(await cache.get('k'), { via: 'unix' });
  await cache.disconnect();

  const viaUrl = new CacheModule({ url: `unix://${sock}?db=0`, keyPrefix: 'u:' });
  await viaUrl.initialize();
  assert.deepEqual(await viaUrl.get('k'), { via: 'unix' });
  await viaUrl.disconnect();
  raw.close();

  const missing = new CacheModule({ path: path.join(dir, 'none.sock'), connectTimeout: 2000 });
  await assert.rejects(missing.initialize(), (e) => e.code === 'ERR_CONNECTION' && e.message.includes('none.sock'));
  assert.throws(() => new CacheModule({ path: sock, tls: true }), TypeError);
});

test('a connection reset is reported as a reset of host:port', async (t) => {
  const server = await startRedis();
  t.after(() => server.stop());
  // A proxy that can reset the client's side (RST, not FIN).
  const clients = [];
  const proxy = net.createServer((client) => {
    const up = net.connect(server.port, '127.0.0.1');
    client.pipe(up).pipe(client);
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    clients.push(client);
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  t.after(() => proxy.close());
  const port = proxy.address().port;
  const cache = new CacheModule({ host: '127.0.0.1', port, retryStrategy: () => 50 });
  await cache.initialize();
  await cache.set('k', 1);
  const error = next(cache, 'error');
  clients.shift().resetAndDestroy();
  const err = await error;
  assert.equal(err.code, 'ERR_CONNECTION');
  assert.equal(err.message, `127.0.0.1:${port}: connection lost (connection reset)`);
  await next(cache, 'ready');
  assert.equal(await cache.get('k'), 1);
  await cache.disconnect();
});

test('keepAlive: true, false or milliseconds; anything else is refused', () => {
  for (const keepAlive of [true, false, 1000, 60000]) new CacheModule({ keepAlive });
  assert.throws(() => new CacheModule({ keepAlive: 'yes' }), (e) => e instanceof TypeError && /options\.keepAlive/.test(e.message));
  assert.throws(() => new CacheModule({ keepAlive: -1 }), (e) => e instanceof RangeError && /options\.keepAlive/.test(e.message));
});
