'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { startRedis, runNode } = require('./harness');

test('require gives the class; .CacheModule and .default are the same class', () => {
  assert.equal(typeof CacheModule, 'function');
  assert.equal(CacheModule.CacheModule, CacheModule);
  assert.equal(CacheModule.default, CacheModule);
  assert.ok(new CacheModule() instanceof require('node:events').EventEmitter);
});

test('ESM default and named imports give the same class', async () => {
  const esm = await import('../index.mjs');
  assert.equal(esm.default, CacheModule);
  assert.equal(esm.CacheModule, CacheModule);
});

test('defaults', () => {
  const cache = new CacheModule();
  assert.equal(cache.keyPrefix, 'fluxor:');
});

const bad = [
  [{ port: 70000 }, RangeError, 'options.port'],
  [{ port: 0 }, RangeError, 'options.port'],
  [{ port: 1.5 }, RangeError, 'options.port'],
  [{ port: {} }, TypeError, 'options.port'],
  [{ host: '' }, TypeError, 'options.host'],
  [{ host: 42 }, TypeError, 'options.host'],
  [{ db: -1 }, RangeError, 'options.db'],
  [{ db: 'zero' }, TypeError, 'options.db'],
  [{ password: 123 }, TypeError, 'options.password'],
  [{ username: false }, TypeError, 'options.username'],
  [{ url: 'http://localhost' }, TypeError, 'options.url'],
  [{ url: 5 }, TypeError, 'options.url'],
  [{ keyPrefix: 7 }, TypeError, 'options.keyPrefix'],
  [{ defaultTTL: -1 }, RangeError, 'options.defaultTTL'],
  [{ defaultTTL: NaN }, RangeError, 'options.defaultTTL'],
  [{ defaultTTL: '60' }, TypeError, 'options.defaultTTL'],
  [{ connectTimeout: -1 }, RangeError, 'options.connectTimeout'],
  [{ connectTimeout: 0 }, RangeError, 'options.connectTimeout'],
  [{ commandTimeout: Infinity }, RangeError, 'options.commandTimeout'],
  [{ commandTimeout: -5 }, RangeError, 'options.commandTimeout'],
  [{ enableCluster: 'yes' }, TypeError, 'options.enableCluster'],
  [{ enableCluster: true }, TypeError, 'options.clusterNodes'],
  [{ enableCluster: true, clusterNodes: [] }, RangeError, 'options.clusterNodes'],
  [{ enableCluster: true, clusterNodes: [{ host: 'a', port: -1 }] }, RangeError, 'options.clusterNodes[0].port'],
  [{ enableCluster: true, clusterNodes: ['a:1'] }, TypeError, 'options.clusterNodes[0]'],
  [{ retryStrategy: 5 }, TypeError, 'options.retryStrategy'],
  [{ port: 10n }, TypeError, 'options'],
];

for (const [options, Class, name] of bad) {
  test(`bad option ${name} = ${String(Object.values(options).at(-1))} throws ${Class.name}`, () => {
    assert.throws(
      () => new CacheModule(options),
      (err) => err instanceof Class && err.code === 'ERR_INVALID_ARG' && err.message.includes(name),
    );
  });
}

test('options that are not an object throw a TypeError', () => {
  for (const o of [null, 5, 'redis://x', [1]]) {
    assert.throws(() => new CacheModule(o), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG');
  }
});

test('cluster nodes are ignored while enableCluster is false (seed README Configuration)', () => {
  const cache = new CacheModule({
    enableCluster: false,
    clusterNodes: [{ host: 'node1', port: 6379 }, { host: 'node2', port: 6379 }],
  });
  assert.equal(cache.keyPrefix, 'fluxor:');
});

test('url, and REDIS_HOST / REDIS_PORT / REDIS_DB from the environment', async (t) => {
  const server = await startRedis();
  t.after(() => server.stop());
  const viaUrl = new CacheModule({ url: `redis://127.0.0.1:${server.port}/2`, host: 'ignored.invalid', port: 1, keyPrefix: 'u:' });
  await viaUrl.initialize();
  await viaUrl.set('k', 1);
  await viaUrl.disconnect();
  const raw = await server.raw();
  await raw.cmd('SELECT', 2);
  assert.equal(await raw.cmd('GET', 'u:k'), '1');

  const code = `
    const C = require('.');
    (async () => {
      const c = new C({ keyPrefix: 'env:' });
      await c.initialize();
      await c.set('k', 'from-env');
      await c.disconnect();
    })().catch((e) => { console.error(e.code, e.message); process.exit(1); });`;
  const out = await runNode(code, { env: { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(server.port), REDIS_DB: '3' } });
  assert.equal(out.code, 0, out.stderr);
  await raw.cmd('SELECT', 3);
  assert.equal(await raw.cmd('GET', 'env:k'), '"from-env"');
  raw.close();
});

test('password from REDIS_PASSWORD and the password option', async (t) => {
  const server = await startRedis({ args: ['--requirepass', 's3cret'] });
  t.after(() => server.stop());
  const ok = new CacheModule({ host: '127.0.0.1', port: server.port, password: 's3cret' });
  await ok.initialize();
  assert.equal(await ok.set('p', 1), true);
  await ok.disconnect();
  const wrong = new CacheModule({ host: '127.0.0.1', port: server.port, password: 'nope' });
  await assert.rejects(wrong.initialize(), (err) => err.code === 'ERR_AUTH');
  const out = await runNode(
    `const C = require('.'); new C({ host: '127.0.0.1', port: ${server.port} }).initialize().then((c) => c.disconnect()).catch((e) => { console.error(e.code); process.exit(1); });`,
    { env: { REDIS_PASSWORD: 's3cret' } },
  );
  assert.equal(out.code, 0, out.stderr);
});
