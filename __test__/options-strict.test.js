'use strict';

// Strict, familiar options: unknown names refused by name, REDIS_URL, ?db=,
// connectionName; secrets never in messages; option errors name the option.

const test = require('node:test');
const assert = require('node:assert/strict');
const CacheModule = require('..');
const { CacheError } = CacheModule;
const { startRedis, runNode } = require('./harness');

const typeErrorSaying = (text) => (err) => err instanceof TypeError && err instanceof CacheError && err.code === 'ERR_INVALID_ARG' && err.message.includes(text);

test('an unknown option is a TypeError naming it, with the nearest known name', () => {
  assert.throws(() => new CacheModule({ keyprefix: 'x:' }), typeErrorSaying('options.keyprefix is not an option: did you mean keyPrefix?'));
  assert.throws(() => new CacheModule({ comandTimeout: 5 }), typeErrorSaying('did you mean commandTimeout?'));
  assert.throws(() => new CacheModule({ sentinel: [] }), typeErrorSaying('did you mean sentinels?'));
  assert.throws(() => new CacheModule({ lazyConnect: true }), typeErrorSaying("options.lazyConnect is not an option of this module (it is another Redis client's)"));
  assert.throws(() => new CacheModule({ enableOfflineQueue: false }), typeErrorSaying('options.enableOfflineQueue'));
  assert.throws(() => new CacheModule({ colour: 'red' }), typeErrorSaying('options.colour is not an option (the options are host, port'));
  assert.throws(() => new CacheModule({ tls: { rejectUnauthorised: false } }), typeErrorSaying('did you mean rejectUnauthorized?'));
  // Known options, including the transport's.
  new CacheModule({ connectionName: 'app', keepAlive: 1000, tls: { servername: 'x' }, retryStrategy: () => 10 });
});

test('option errors name the option: a lone surrogate in keyPrefix, or deeper', () => {
  assert.throws(() => new CacheModule({ keyPrefix: 'a\uD800' }), typeErrorSaying('options.keyPrefix must be well-formed Unicode'));
  assert.throws(() => new CacheModule({ sentinels: [{ host: '\uDC00' }], name: 'm' }), typeErrorSaying('options.sentinels[0].host must be well-formed Unicode'));
  assert.throws(() => new CacheModule({ connectionName: 'a b' }), (err) => err instanceof RangeError && /options\.connectionName/.test(err.message));
});

test('secrets never appear in messages', () => {
  for (const url of ['Redis://:s3cret@127.0.0.1:badport', 'redis+tls://:s3cret@localhost', ' http://user:s3cret@localhost', 'redis://:s3cret@localhost?db=x', 'redis+sentinel://:s3cret@h']) {
    assert.throws(
      () => new CacheModule({ url }),
      (err) => err instanceof TypeError && err.message.startsWith('options.url') && !err.message.includes('s3cret') && err.message.includes('***'),
      url,
    );
  }
});

test('url overrides every REDIS_* variable: REDIS_PASSWORD is not sent to a server named by url', async (t) => {
  const server = await startRedis();
  t.after(() => server.stop());
  const out = await runNode(
    `const C = require('.');
    new C({ url: 'redis://127.0.0.1:${server.port}' }).initialize().then((c) => c.disconnect()).catch((e) => { console.error(e.code, e.message); process.exit(1); });`,
    { env: { REDIS_PASSWORD: 'not-for-this-server', REDIS_DB: '7', REDIS_HOST: 'nowhere.invalid' } },
  );
  assert.equal(out.code, 0, out.stderr);
});

test('REDIS_URL when no host, port or url is given; ?db= in a URL; connectionName', async (t) => {
  const server = await startRedis();
  t.after(() => server.stop());
  const raw = await server.raw();
  t.after(() => raw.close());
  const script = (options) => `
    const C = require('.');
    (async () => {
      const c = new C(${options});
      await c.initialize();
      await c.set('k', 'from-env');
      await c.disconnect();
    })().catch((e) => { console.error(e.code, e.message); process.exit(1); });`;
  // REDIS_URL (with ?db=) beats REDIS_HOST/REDIS_PORT.
  const viaEnv = await runNode(script(`{ keyPrefix: 'env:' }`), {
    env: { REDIS_URL: `redis://127.0.0.1:${server.port}?db=3`, REDIS_HOST: 'nowhere.invalid', REDIS_PORT: '1' },
  });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  await raw.cmd('SELECT', 3);
  assert.equal(await raw.cmd('GET', 'env:k'), '"from-env"');
  // An explicit port: REDIS_URL is not read.
  const explicit = await runNode(script(`{ keyPrefix: 'port:', host: '127.0.0.1', port: ${server.port} }`), { env: { REDIS_URL: 'redis://nowhere.invalid:1' } });
  assert.equal(explicit.code, 0, explicit.stderr);
  await raw.cmd('SELECT', 0);
  assert.equal(await raw.cmd('GET', 'port:k'), '"from-env"');

  const named = new CacheModule({ url: `redis://127.0.0.1:${server.port}/1?db=4`, connectionName: 'fluxor-test' });
  await named.initialize();
  await named.set('n', 1);
  const clients = await raw.cmd('CLIENT', 'LIST');
  assert.match(clients, /name=fluxor-test .*db=4 /);
  await named.disconnect();
  await raw.cmd('SELECT', 4);
  assert.equal(await raw.cmd('GET', 'fluxor:n'), '1');
});
