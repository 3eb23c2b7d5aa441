'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { startRedis } = require('./harness');

test('getStats after a known sequence of hits, misses, sets and deletes', async (t) => {
  const server = await startRedis();
  t.after(() => server.stop());
  const cache = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'st:' });
  await assert.rejects(cache.getStats(), { code: 'ERR_NOT_CONNECTED' });
  await cache.initialize();
  let stats = await cache.getStats();
  assert.equal(stats.hitRate, 0);
  assert.equal(stats.hits, 0);

  await cache.set('a', 1);
  await cache.mset({ b: 2, c: 3 });
  await cache.get('a'); // hit
  await cache.get('zz'); // miss
  await cache.mget(['a', 'b', 'x', 'y']); // 2 hits, 2 misses
  await cache.del('a');
  await cache.del('a'); // nothing removed
  await cache.set('', 1).catch(() => {}); // rejected before anything is sent

  stats = await cache.getStats();
  assert.equal(stats.hits, 3);
  assert.equal(stats.misses, 3);
  assert.equal(stats.hitRate, 0.5);
  assert.equal(stats.sets, 3);
  assert.equal(stats.deletes, 1);
  assert.equal(stats.errors, 0);
  assert.equal(stats.operations, 7);
  assert.equal(stats.keys, 2);
  assert.equal(stats.connected, true);
  assert.ok(stats.latency.p50 > 0 && stats.latency.p99 >= stats.latency.p50, JSON.stringify(stats.latency));
  assert.ok(stats.memory.used > 0 && stats.memory.peak >= stats.memory.used && stats.memory.rss > 0, JSON.stringify(stats.memory));
  assert.match(stats.server.version, /^\d+\.\d+\.\d+/);
  assert.equal(stats.server.mode, 'standalone');
  assert.deepEqual(stats.server.nodes, [`127.0.0.1:${server.port}`]);

  // The seed README's arithmetic gives numbers.
  assert.equal(Number.isFinite(stats.hits / (stats.hits + stats.misses) * 100), true);
  assert.equal(Number.isFinite(stats.memory.used / 1024 / 1024), true);

  const raw = await server.raw();
  await raw.cmd('HSET', 'st:h', 'f', 'v');
  raw.close();
  await cache.get('h').catch(() => {});
  assert.equal((await cache.getStats()).errors, 1);
  await cache.disconnect();
  await assert.rejects(cache.getStats(), { code: 'ERR_NOT_CONNECTED' });
});
