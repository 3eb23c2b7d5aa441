'use strict';

// One interface over every client the benchmark compares. Each stores JSON
// text with a TTL, as the cache does, so every client does the same work.
// `tls` ({ ca }) connects over TLS.

const TTL = 3600;

/** This package, as built in `dir`. */
const fluxorAt = (dir, options = {}) => async (port, tls) => {
  const CacheModule = require(dir);
  const cache = new CacheModule({ host: '127.0.0.1', port, tls, keyPrefix: '', defaultTTL: TTL, ...options });
  await cache.initialize();
  return {
    get: (k) => cache.get(k),
    set: (k, v) => cache.set(k, v),
    mget: (keys) => cache.mget(keys),
    mset: (pairs) => cache.mset(pairs),
    async lock(k) {
      const lock = await cache.lock(k, { ttl: 10, retries: 1000, retryDelay: 1 });
      await lock.release();
    },
    invalidate: (pattern) => cache.invalidate('pattern', pattern),
    warm: (items) => cache.warmCache(() => items, { keyExtractor: (i) => `warm:${i.id}` }),
    getOrSet: (k, factory) => cache.getOrSet(k, factory),
    close: () => cache.disconnect(),
  };
};

/** This package with every operation traced: no-op handlers on all five events of its TracingChannel. */
const tracedAt = (dir) => async (port, tls) => {
  const noop = () => {};
  require('node:diagnostics_channel').tracingChannel('fluxor:command').subscribe({ start: noop, end: noop, asyncStart: noop, asyncEnd: noop, error: noop });
  return fluxorAt(dir)(port, tls);
};

const adapters = {
  fluxor: fluxorAt('..'),
  'fluxor-traced': tracedAt('..'),
  ioredis: (port, tls) => ioredis(port, false, tls),
  'ioredis-auto': (port, tls) => ioredis(port, true, tls),

  async 'node-redis'(port, tls) {
    const { createClient } = require('redis');
    const client = createClient({ socket: { host: '127.0.0.1', port, ...(tls && { tls: true, ca: tls.ca }) } });
    await client.connect();
    const parse = (s) => (s === null ? null : JSON.parse(s));
    return {
      get: async (k) => parse(await client.get(k)),
      set: (k, v) => client.set(k, JSON.stringify(v), { EX: TTL }),
      mget: async (keys) => (await client.mGet(keys)).map(parse),
      mset: (pairs) => {
        const m = client.multi();
        for (const [k, v] of Object.entries(pairs)) m.set(k, JSON.stringify(v), { EX: TTL });
        return m.execAsPipeline();
      },
      async lock(k) {
        const token = require('node:crypto').randomBytes(16).toString('hex');
        while ((await client.eval(ACQUIRE, { keys: [k, `${k}:fence`], arguments: [token, '10000'] })) === 0) await new Promise((r) => setTimeout(r, 1));
        await client.eval(RELEASE, { keys: [k], arguments: [token] });
      },
      async invalidate(pattern) {
        let removed = 0;
        for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 1000 })) {
          if (keys.length) removed += await client.unlink(keys);
        }
        return removed;
      },
      async warm(items) {
        for (let i = 0; i < items.length; i += 1000) {
          const m = client.multi();
          for (const item of items.slice(i, i + 1000)) m.set(`warm:${item.id}`, JSON.stringify(item), { EX: TTL });
          await m.execAsPipeline();
        }
      },
      close: () => client.quit(),
    };
  },
};

// The getOrSet workloads compare cache-aside libraries, each with Redis as
// its only layer (no in-process cache) and the same TTL.
const cacheAside = {
  async bentocache(port) {
    const { BentoCache, bentostore } = require('bentocache');
    const { redisDriver } = require('bentocache/drivers/redis');
    const bento = new BentoCache({
      default: 'redis',
      stores: { redis: bentostore().useL2Layer(redisDriver({ connection: { host: '127.0.0.1', port } })) },
    });
    return {
      getOrSet: (key, factory) => bento.getOrSet({ key, factory, ttl: TTL * 1000 }),
      close: () => bento.disconnectAll(),
    };
  },

  async 'cache-manager'(port) {
    const { createCache } = require('cache-manager');
    const { Keyv } = require('keyv');
    const KeyvRedis = require('@keyv/redis').default;
    const store = new KeyvRedis(`redis://127.0.0.1:${port}`);
    const cache = createCache({ stores: [new Keyv({ store })] });
    return {
      getOrSet: (key, factory) => cache.wrap(key, factory, TTL * 1000),
      close: () => cache.disconnect(),
    };
  },
};
Object.assign(adapters, cacheAside);

// A lock as this package takes it, so that every client does the same work:
// SET NX PX and a fencing counter in one script, released by compare-and-delete.
const ACQUIRE = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return redis.call('INCR', KEYS[2]) end return 0";
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

async function ioredis(port, enableAutoPipelining, tls) {
  const Redis = require('ioredis');
  const redis = new Redis({ host: '127.0.0.1', port, enableAutoPipelining, lazyConnect: true, tls });
  await redis.connect();
  const parse = (s) => (s === null ? null : JSON.parse(s));
  return {
    get: async (k) => parse(await redis.get(k)),
    set: (k, v) => redis.set(k, JSON.stringify(v), 'EX', TTL),
    mget: async (keys) => (await redis.mget(keys)).map(parse),
    mset: (pairs) => {
      const p = redis.pipeline();
      for (const [k, v] of Object.entries(pairs)) p.set(k, JSON.stringify(v), 'EX', TTL);
      return p.exec();
    },
    async lock(k) {
      const token = require('node:crypto').randomBytes(16).toString('hex');
      while ((await redis.eval(ACQUIRE, 2, k, `${k}:fence`, token, 10000)) === 0) await new Promise((r) => setTimeout(r, 1));
      await redis.eval(RELEASE, 1, k, token);
    },
    invalidate: (pattern) =>
      new Promise((resolve, reject) => {
        let removed = 0;
        const pending = [];
        const stream = redis.scanStream({ match: pattern, count: 1000 });
        stream.on('data', (keys) => keys.length && pending.push(redis.unlink(...keys).then((n) => (removed += n))));
        stream.on('end', () => Promise.all(pending).then(() => resolve(removed), reject));
        stream.on('error', reject);
      }),
    async warm(items) {
      for (let i = 0; i < items.length; i += 1000) {
        const p = redis.pipeline();
        for (const item of items.slice(i, i + 1000)) p.set(`warm:${item.id}`, JSON.stringify(item), 'EX', TTL);
        await p.exec();
      }
    },
    close: () => redis.quit(),
  };
}

// The near-cache workloads' clients (bench/workloads.js `near`): in-process
// tiers, each handing back what get stored. Only get, set, mset and close.
const near = {
  /** This package with its near cache. */
  async 'fluxor-local'(port) {
    const CacheModule = require('..');
    const cache = new CacheModule({ host: '127.0.0.1', port, keyPrefix: '', defaultTTL: TTL, localCache: { maxEntries: 100_000 } });
    await cache.initialize();
    // Tracking comes up in the background: wait for the first local hit.
    await cache.set('bench:ready', 1);
    for (let i = 0; i < 1000 && (await cache.getStats()).local.hits === 0; i++) {
      await cache.get('bench:ready');
      await new Promise((r) => setTimeout(r, 10));
    }
    return {
      get: (k) => cache.get(k),
      set: (k, v) => cache.set(k, v),
      mset: (pairs) => cache.mset(pairs),
      async close() {
        if (process.env.FLUXOR_BENCH_STATS) process.stderr.write(`${JSON.stringify((await cache.getStats()).local)}\n`);
        await cache.disconnect();
      },
    };
  },

  /** cache-manager 7's default store: an in-process Map (keyv), the stored object back. */
  async 'cache-manager'() {
    const { createCache } = require('cache-manager');
    const cache = createCache({ ttl: TTL * 1000 });
    return {
      get: (k) => cache.get(k),
      set: (k, v) => cache.set(k, v),
      mset: (pairs) => cache.mset(Object.entries(pairs).map(([key, value]) => ({ key, value }))),
      close: () => cache.disconnect(),
    };
  },

  /** node-redis 6's client-side cache (RESP3 tracking; a structuredClone per hit). */
  async 'node-redis-csc'(port) {
    const { createClient } = require('redis');
    const client = createClient({ socket: { host: '127.0.0.1', port }, RESP: 3, clientSideCache: { ttl: 0, maxEntries: 100_000 } });
    await client.connect();
    const parse = (s) => (s === null ? null : JSON.parse(s));
    return {
      get: async (k) => parse(await client.get(k)),
      set: (k, v) => client.set(k, JSON.stringify(v), { EX: TTL }),
      mset: (pairs) => {
        const m = client.multi();
        for (const [k, v] of Object.entries(pairs)) m.set(k, JSON.stringify(v), { EX: TTL });
        return m.execAsPipeline();
      },
      close: () => client.quit(),
    };
  },

  /** bentocache 1.6's memory tier alone, as configured by default. */
  async bentocache() {
    const { BentoCache, bentostore } = require('bentocache');
    const { memoryDriver } = require('bentocache/drivers/memory');
    const bento = new BentoCache({ default: 'memory', stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: 100_000 })) } });
    return {
      get: (k) => bento.get({ key: k }),
      set: (k, v) => bento.set({ key: k, value: v, ttl: TTL * 1000 }),
      mset: async (pairs) => {
        for (const [key, value] of Object.entries(pairs)) await bento.set({ key, value, ttl: TTL * 1000 });
      },
      close: () => bento.disconnectAll(),
    };
  },
};
Object.assign(adapters, near);

// FLUXOR_BASE=<another checkout, built> adds it as `fluxor-base`, to weigh a
// change against the build it started from in the same run.
if (process.env.FLUXOR_BASE) adapters['fluxor-base'] = fluxorAt(require('node:path').resolve(process.env.FLUXOR_BASE));

// This package with its opt-in value options, to weigh what they cost:
// `node bench/run.js --clients fluxor,fluxor-v8,fluxor-lz4 --only 1KB`
// (not among the clients run by default, bench/run.js).
const variants = {
  'fluxor-v8': fluxorAt('..', { serializer: 'v8' }),
  'fluxor-lz4': fluxorAt('..', { compression: { threshold: 512 } }),
};
Object.assign(adapters, variants);

module.exports = { adapters };
