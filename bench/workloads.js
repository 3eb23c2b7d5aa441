'use strict';

// The workloads of `npm run bench`. Keys and values are made up front so the
// measured loop holds only the client's own work (and JSON, which every
// client pays the same).

function objectOf(bytes) {
  const o = { id: 1, name: 'benchmark item', tags: ['a', 'b'], pad: '' };
  o.pad = 'x'.repeat(Math.max(0, bytes - JSON.stringify(o).length));
  return o;
}

const KEYS = 10_000;
const keyOf = (i) => `bench:${i % KEYS}`;

function getSet(op, bytes, concurrency) {
  const value = objectOf(bytes);
  return {
    concurrency,
    async setup(api) {
      for (let i = 0; i < KEYS; i += 500) {
        const pairs = {};
        for (let j = i; j < i + 500; j++) pairs[keyOf(j)] = value;
        await api.mset(pairs);
      }
      return { value };
    },
    op: op === 'get' ? (api, _, i) => api.get(keyOf(i)) : (api, ctx, i) => api.set(keyOf(i), ctx.value),
  };
}

const batchKeys = (i) => Array.from({ length: 100 }, (_, j) => keyOf(i * 100 + j));

const workloads = {
  'get 100B c1': getSet('get', 100, 1),
  'get 100B c64': getSet('get', 100, 64),
  'set 100B c1': getSet('set', 100, 1),
  'set 100B c64': getSet('set', 100, 64),
  'get 1KB c1': getSet('get', 1024, 1),
  'get 1KB c64': getSet('get', 1024, 64),
  'set 1KB c1': getSet('set', 1024, 1),
  'set 1KB c64': getSet('set', 1024, 64),
  'mix 80/20 c64': {
    ...getSet('get', 100, 64),
    op: (api, ctx, i) => (i % 5 === 0 ? api.set(keyOf(i), ctx.value) : api.get(keyOf(i))),
  },
  'mget 100 keys c8': {
    ...getSet('get', 100, 8),
    unit: 100,
    op: (api, _, i) => api.mget(batchKeys(i)),
  },
  'mset 100 keys c8': {
    ...getSet('get', 100, 8),
    unit: 100,
    op: (api, ctx, i) => {
      const pairs = {};
      for (const k of batchKeys(i)) pairs[k] = ctx.value;
      return api.mset(pairs);
    },
  },
  'lock acquire+release c8': {
    concurrency: 8,
    op: (api, _, i) => api.lock(`benchlock:${i % 64}`),
  },
  'invalidate pattern 200k keys': {
    kind: 'once',
    unit: 200_000,
    // bench/run.js fills the keys with DEBUG POPULATE before the run.
    populate: { count: 200_000, prefix: 'inv:' },
    op: async (api) => {
      const removed = await api.invalidate('inv:*');
      if (removed !== undefined && removed !== 200_000) throw new Error(`removed ${removed}, expected 200000`);
    },
  },
  'warmCache 100k items': {
    kind: 'once',
    unit: 100_000,
    setup: () => ({ items: Array.from({ length: 100_000 }, (_, id) => ({ id, name: `item ${id}`, price: id / 100 })) }),
    op: (api, ctx) => api.warm(ctx.items),
  },
};

// The same workloads over TLS, against a TLS port of the bench's server
// (bench/run.js makes its certificates with openssl).
for (const name of ['get 100B c1', 'get 100B c64', 'set 100B c1', 'set 100B c64', 'mix 80/20 c64', 'mget 100 keys c8']) {
  workloads[`tls ${name}`] = { ...workloads[name], tls: true };
}

// getOrSet against the cache-aside libraries (bench/adapters.js), each over
// Redis alone: hits on 1000 stored keys, and a herd on one cold key
// (bench/herd.js: processes x calls at once, a 50 ms factory).
const CACHE_ASIDE = ['fluxor', 'bentocache', 'cache-manager'];

function getOrSetHit(concurrency) {
  const value = objectOf(100);
  const factory = () => value;
  const key = (i) => `gos:${i % 1000}`;
  return {
    concurrency,
    clients: CACHE_ASIDE,
    async setup(api) {
      for (let i = 0; i < 1000; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => api.getOrSet(key(i + j), factory)));
      return {};
    },
    op: (api, _, i) => api.getOrSet(key(i), factory),
  };
}

workloads['getOrSet hit c1'] = getOrSetHit(1);
workloads['getOrSet hit c64'] = getOrSetHit(64);
workloads['getOrSet herd 4x100'] = { kind: 'herd', clients: CACHE_ASIDE, processes: 4, calls: 100, factoryMs: 50 };

// Near-cache workloads (issue #15), each with its own clients: local hits
// against other in-process tiers and this package's network get; then a
// read-heavy zipfian mix with and without the near cache.
const NEAR = ['fluxor-local', 'cache-manager', 'node-redis-csc', 'bentocache', 'fluxor'];

/** `n` key indexes drawn from a zipfian distribution (s = 0.99) over KEYS. */
function zipfian(n, s = 0.99) {
  const cdf = new Float64Array(KEYS);
  let sum = 0;
  for (let i = 0; i < KEYS; i++) cdf[i] = sum += 1 / (i + 1) ** s;
  const out = new Uint32Array(n);
  let seed = 42;
  for (let j = 0; j < n; j++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const x = (seed / 2 ** 32) * sum;
    let lo = 0;
    let hi = KEYS - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    out[j] = lo;
  }
  return out;
}

/** Reads every key a few times, so that local tiers hold them all before the clock starts. */
async function readAll(api) {
  for (let pass = 0; pass < 3; pass++) {
    for (let i = 0; i < KEYS; i += 500) await Promise.all(Array.from({ length: 500 }, (_, j) => api.get(keyOf(i + j))));
    await new Promise((r) => setTimeout(r, 50));
  }
}

function nearHit(bytes, concurrency) {
  const w = getSet('get', bytes, concurrency);
  return {
    ...w,
    clients: NEAR,
    near: true,
    async setup(api) {
      const ctx = await w.setup(api);
      await readAll(api);
      return ctx;
    },
  };
}

const near = {
  'near hit 100B c1': nearHit(100, 1),
  'near hit 100B c64': nearHit(100, 64),
  'near hit 1KB c1': nearHit(1024, 1),
  'near hit 1KB c64': nearHit(1024, 64),
  'near zipf 95/5 c64': {
    ...getSet('get', 100, 64),
    clients: ['fluxor-local', 'fluxor'],
    near: true,
    async setup(api) {
      const ctx = await getSet('get', 100, 64).setup(api);
      await readAll(api);
      return { ...ctx, draws: zipfian(1 << 20) };
    },
    op: (api, ctx, i) => {
      const k = keyOf(ctx.draws[i & ((1 << 20) - 1)]);
      return i % 20 === 0 ? api.set(k, ctx.value) : api.get(k);
    },
  },
};
Object.assign(workloads, near);

module.exports = { workloads, objectOf };
