'use strict';

// scan() when a master dies in the middle of it (a cluster of its own, as
// the node stays down): the iterator rejects with that page's error after the
// keys already yielded, none of them twice; it neither hangs nor skips the
// lost master's keys silently.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { startCluster } = require('./cluster');

let cluster;
let cache;

test.before(async () => {
  cluster = await startCluster({ masters: 3, replicasPerMaster: 0 });
  cache = new CacheModule({ enableCluster: true, clusterNodes: cluster.seeds, keyPrefix: 'ms:', commandTimeout: 3000 });
  await cache.initialize();
});

test.after(async () => {
  await cache?.disconnect();
  await cluster?.stop();
});

test('a master killed mid-scan: the scan rejects with ERR_CONNECTION or ERR_TIMEOUT, each key yielded at most once', async () => {
  const keys = Array.from({ length: 3000 }, (_, i) => `k:${i}`);
  await cache.mset(Object.fromEntries(keys.map((k) => [k, 1])));
  const seen = [];
  let error = null;
  try {
    for await (const key of cache.scan('*', { count: 20 })) {
      seen.push(key);
      // Half way: every master but the first has keys still to come.
      if (seen.length === 1500) for (const port of (await cluster.masterPorts()).slice(1)) await cluster.killNode(port);
    }
  } catch (err) {
    error = err;
  }
  assert.ok(error, `the scan completed with ${seen.length} of 3000 keys`);
  assert.ok(['ERR_CONNECTION', 'ERR_TIMEOUT'].includes(error.code), `${error.code} ${error.message}`);
  assert.ok(seen.length >= 1500 && seen.length < 3000);
  assert.equal(new Set(seen).size, seen.length, 'no key twice');
});
