'use strict';

// Tag membership follows a key's expiry through expire(), for keys written
// by set, mset and warmCache (issue #14, item 3), standalone and in a
// cluster (where the key, its record of tags and each tag index lie in
// different slots).

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { startRedis, sleep } = require('./harness');
const { startCluster } = require('./cluster');

async function tagsFollowExpire(cache) {
  await cache.set('k', 1, { ttl: 1, tags: ['t'] });
  await cache.set('p', 2, { ttl: 1, tags: ['t', 'u'] });
  await cache.mset({ m1: 3, m2: 4 }, { ttl: 1, tags: ['t'] });
  await cache.warmCache(() => [{ id: 'w' }], { ttl: 1, tags: ['t'] });
  await cache.set('plain', 5, { ttl: 1 });
  assert.equal(await cache.expire('k', 3600), true);
  assert.equal(await cache.expire('p', 0), true, '0: no expiry');
  assert.equal(await cache.expire('m1', 3600), true);
  assert.equal(await cache.expire('w', 3600), true);
  assert.equal(await cache.expire('plain', 3600), true, 'a key without tags');
  assert.equal(await cache.expire('never-set', 3600), false);
  // Past the first expiry (not a timing assertion: only "later than 1 s").
  await sleep(1500);
  // A write to the tag trims the members whose expiry has passed.
  await cache.set('x', 6, { tags: ['t'] });
  assert.equal(await cache.get('m2'), null);
  assert.equal(await cache.invalidate('tag', 'u'), 1, "u's index outlived its first expiry");
  assert.equal(await cache.invalidate('tag', 't'), 4, 'k, m1, w and x');
  assert.deepEqual(await cache.mget(['k', 'p', 'm1', 'w', 'x', 'plain']), [null, null, null, null, null, 5]);
}

test('standalone: expire() and expire(k, 0) keep a key in its tags', async () => {
  const server = await startRedis();
  const cache = await new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'tt:' }).initialize();
  try {
    await tagsFollowExpire(cache);
    // Nothing of the module's is left once its keys are gone.
    const raw = await server.raw();
    await cache.del('plain');
    assert.deepEqual(await raw.cmd('KEYS', '*'), []);
    raw.close();
  } finally {
    await cache.disconnect();
    await server.stop();
  }
});

test('cluster: expire() and expire(k, 0) keep a key in its tags', { timeout: 120000 }, async () => {
  const cluster = await startCluster({ masters: 3, replicasPerMaster: 0 });
  const cache = await new CacheModule({ enableCluster: true, clusterNodes: cluster.seeds, keyPrefix: 'tt:' }).initialize();
  try {
    await tagsFollowExpire(cache);
  } finally {
    await cache.disconnect();
    await cluster.stop();
  }
});
