'use strict';

// initialize() reads the server's maxmemory-policy and warns when it may
// evict lock keys; getStats() reports the policy (issue #14, item 9 there).

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { startRedis, runNode } = require('./harness');

/** Initializes against `server` and resolves the 'warning' events it got. */
async function warnings(server, extra = {}) {
  const cache = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'ev:', ...extra });
  const got = [];
  cache.on('warning', (w) => got.push(w));
  await cache.initialize();
  const stats = await cache.getStats().catch((err) => err);
  await cache.disconnect();
  return { got, stats };
}

test('allkeys-* and volatile-* under maxmemory warn WARN_EVICTION_POLICY; getStats names the policy', async () => {
  for (const policy of ['allkeys-lru', 'volatile-ttl']) {
    const server = await startRedis({ args: ['--maxmemory', '100mb', '--maxmemory-policy', policy] });
    try {
      const { got, stats } = await warnings(server);
      assert.equal(got.length, 1, policy);
      assert.ok(got[0] instanceof Error);
      assert.equal(got[0].code, 'WARN_EVICTION_POLICY');
      assert.equal(got[0].policy, policy);
      assert.match(got[0].message, new RegExp(`maxmemory-policy ${policy}.*lock`));
      assert.equal(/fencing counter/.test(got[0].message), policy.startsWith('allkeys-'));
      assert.equal(stats.server.evictionPolicy, policy);
    } finally {
      await server.stop();
    }
  }
});

test('noeviction, or no maxmemory, does not warn', async () => {
  for (const args of [['--maxmemory', '100mb', '--maxmemory-policy', 'noeviction'], ['--maxmemory', '0', '--maxmemory-policy', 'allkeys-lru']]) {
    const server = await startRedis({ args });
    try {
      const { got, stats } = await warnings(server);
      assert.deepEqual(got, [], args.join(' '));
      assert.equal(stats.server.evictionPolicy, args[3]);
    } finally {
      await server.stop();
    }
  }
});

test('CONFIG refused by an ACL: INFO memory says it; neither: silent', async () => {
  const server = await startRedis({ args: ['--maxmemory', '100mb', '--maxmemory-policy', 'allkeys-lfu'] });
  try {
    const raw = await server.raw();
    await raw.cmd('ACL', 'SETUSER', 'noconfig', 'on', '>pw', '~*', '+@all', '-config');
    await raw.cmd('ACL', 'SETUSER', 'neither', 'on', '>pw', '~*', '+@all', '-config', '-info');
    raw.close();
    const viaInfo = await warnings(server, { username: 'noconfig', password: 'pw' });
    assert.deepEqual(viaInfo.got.map((w) => w.policy), ['allkeys-lfu']);
    const silent = await warnings(server, { username: 'neither', password: 'pw' });
    assert.deepEqual(silent.got, []);
    assert.equal(silent.stats.code, 'ERR_NOPERM', 'getStats needs INFO');
  } finally {
    await server.stop();
  }
});

test('a warning without a listener neither throws nor prints', async () => {
  const server = await startRedis({ args: ['--maxmemory', '100mb', '--maxmemory-policy', 'allkeys-lru'] });
  try {
    const code = `
      const C = require('.');
      new C({ host: '127.0.0.1', port: ${server.port} }).initialize().then((c) => c.set('k', 1)).then((c) => process.stdout.write(String(c)));`;
    const out = await runNode(code);
    assert.equal(out.stderr, '');
    assert.equal(out.code, 0);
    assert.equal(out.stdout, 'true');
  } finally {
    await server.stop();
  }
});
