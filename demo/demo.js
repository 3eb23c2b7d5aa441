'use strict';

// `npm run demo`: the seed README's Usage block, step by step, printing what
// each step returns. Server: REDIS_URL, else REDIS_HOST:REDIS_PORT
// (localhost:6379) when something answers there, else a throwaway
// redis-server started (and stopped) here, else (no redis-server binary
// either) the in-process memory store, as `npm run demo -- --memory` forces,
// saying how to point it at a server. The demo writes only under its own
// keyPrefix, 'fluxor-demo:'.

const net = require('node:net');
const { spawnSync } = require('node:child_process');
const CacheModule = require('..');
const { startRedis } = require('../__test__/harness');

function answers(port, host) {
  return new Promise((resolve) => {
    const sock = net.connect(port, host);
    sock.setTimeout(500);
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => {
      sock.destroy();
      resolve(/^(\+PONG|-NOAUTH)/.test(d.toString()));
    });
    sock.once('timeout', () => (sock.destroy(), resolve(false)));
    sock.once('error', () => resolve(false));
  });
}

const MEMORY = { store: 'memory', memory: { name: 'demo' } };

/** Whether a `redis-server` binary is on the PATH. */
function hasRedisServer() {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).error === undefined;
}

async function target() {
  if (process.argv.includes('--memory')) return { options: MEMORY, where: 'the in-process memory store (--memory)' };
  // The password, if the URL has one, is not printed.
  if (process.env.REDIS_URL) return { options: { url: process.env.REDIS_URL }, where: process.env.REDIS_URL.replace(/(:\/\/)[^/?#]*@/, '$1***@') };
  const host = process.env.REDIS_HOST || 'localhost';
  const port = Number(process.env.REDIS_PORT) || 6379;
  if (await answers(port, host === 'localhost' ? '127.0.0.1' : host)) return { options: { host, port }, where: `${host}:${port}` };
  if (!hasRedisServer()) {
    return {
      options: MEMORY,
      where:
        `the in-process memory store: nothing answers on ${host}:${port} and no redis-server is installed ` +
        '(to use Redis: REDIS_URL=redis://host:6379 npm run demo, or REDIS_HOST / REDIS_PORT)',
    };
  }
  const server = await startRedis();
  return { options: { host: '127.0.0.1', port: server.port }, where: `a throwaway redis-server on 127.0.0.1:${server.port}`, server };
}

const show = (label, value) => console.log(`${label.padEnd(52)} → ${JSON.stringify(value)}`);

// Stand-ins for names the README snippet leaves to the reader.
const userId = 123;
const productId = 'sku-42';
async function fetchAllProducts() {
  return [1, 2, 3].map((id) => ({ id, name: `Product ${id}`, price: id * 10 }));
}

async function main() {
  const { options, where, server } = await target();
  console.log(`@fluxor/cache-module demo against ${where}\n`);
  try {
    // Initialize cache
    const cache = new CacheModule({
      ...(options.store === 'memory' ? {} : { host: 'localhost', port: 6379 }),
      keyPrefix: 'fluxor-demo:',
      defaultTTL: 3600,
      ...options,
    });
    show('await cache.initialize()', (await cache.initialize()) === cache ? 'the cache instance' : '?');

    // Basic operations
    show("await cache.set('user:123', {...})", await cache.set('user:123', { name: 'John', email: 'john@example.com' }));
    const user = await cache.get('user:123');
    show("await cache.get('user:123')", user);

    // Using TTL
    show("await cache.set('session:abc', {userId: 123}, {ttl: 1800})", await cache.set('session:abc', { userId: 123 }, { ttl: 1800 }));
    show("await cache.ttl('session:abc')", await cache.ttl('session:abc'));

    // Batch operations
    show(
      'await cache.mset({product:1, product:2})',
      await cache.mset({
        'product:1': { name: 'Product 1', price: 99.99 },
        'product:2': { name: 'Product 2', price: 149.99 },
      }),
    );
    const products = await cache.mget(['product:1', 'product:2']);
    show("await cache.mget(['product:1', 'product:2'])", products);

    // Using key patterns
    const userKey = cache.generateKey('user', userId);
    const inventoryKey = cache.generateKey('inventory', productId);
    show("cache.generateKey('user', userId)", userKey);
    show("cache.generateKey('inventory', productId)", inventoryKey);

    // Cache warming
    show(
      'await cache.warmCache(fetchAllProducts, {keyExtractor, ttl: 7200})',
      await cache.warmCache(
        async () => {
          return await fetchAllProducts();
        },
        {
          keyExtractor: (product) => `product:${product.id}`,
          ttl: 7200,
        },
      ),
    );

    // Distributed locking
    const lock = await cache.lock('resource:critical', {
      ttl: 30,
      retries: 10,
    });
    show("await cache.lock('resource:critical', {ttl: 30, retries: 10})", { key: lock.key, fencingToken: lock.fencingToken });
    try {
      // Perform critical operation
    } finally {
      show('await lock.release()', await lock.release());
    }

    // Cache invalidation
    await cache.set('user:123:profile', { bio: 'hi' });
    show("await cache.invalidate('cascade', 'user:123')", await cache.invalidate('cascade', 'user:123'));
    show("await cache.invalidate('pattern', 'session:*')", await cache.invalidate('pattern', 'session:*'));

    // Error handling: fallbacks
    show("await cache.get('key', {fallback: 'default'})", await cache.get('key', { fallback: 'default' }));
    show("await cache.get('key', {fallback: async () => ...})", await cache.get('key', { fallback: async () => ({ from: 'database' }) }));

    // Performance monitoring
    const stats = await cache.getStats();
    show('hit rate (stats.hits / (stats.hits + stats.misses))', `${((stats.hits / (stats.hits + stats.misses)) * 100).toFixed(1)}%`);
    show('memory (stats.memory.used / 1024 / 1024)', `${(stats.memory.used / 1024 / 1024).toFixed(2)}MB`);

    await cache.disconnect();
    show('await cache.disconnect()', undefined);
  } finally {
    if (server) await server.stop();
  }
}

main().catch((err) => {
  console.error(err.code === 'NO_SERVER' ? `demo: ${err.message}` : `demo failed: ${err.code ?? ''} ${err.message}`);
  process.exitCode = 1;
});
