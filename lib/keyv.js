'use strict';

// `@fluxor/cache-module/keyv`: a Keyv storage adapter over a CacheModule, so
// `new Keyv({ store: new KeyvFluxor(cacheOrOptions) })` and cache-manager v7
// (`createCache({ stores: [keyv] })`) run on this cache. Keyv itself
// prefixes every key with its namespace (`ns:key`) and keeps its own
// envelope `{ value, expires }` as the text it hands over; this store keeps
// that text as it is, with Keyv's TTL (milliseconds) as the key's expiry.

const { EventEmitter } = require('node:events');
const CacheModule = require('../index.js');
const { typeError, describe } = require('./errors');

/** Keys fetched per MGET while iterating. */
const PAGE = 1000;

const escapeGlob = (s) => s.replace(/[*?[\]\\]/g, '\\$&');
/** Keyv's ms (undefined: no expiry) as the cache's seconds (0: no expiry). */
const ttlOf = (ms) => (typeof ms === 'number' && ms > 0 ? { ttl: ms / 1000 } : { ttl: 0 });
const missing = (v) => (v === null ? undefined : v);

class KeyvFluxor extends EventEmitter {
  /** Set by Keyv: the namespace its keys start with (`${namespace}:`). */
  namespace = undefined;
  /** What Keyv reads to offer `keyv.iterator()` (a Redis dialect). */
  opts;
  /** The CacheModule underneath. */
  cache;
  #owned;
  #ready = null;

  /** `cacheOrOptions`: a CacheModule (you initialize and close it), or its options (this store does both). */
  constructor(cacheOrOptions = {}) {
    super();
    if (cacheOrOptions instanceof CacheModule) {
      this.cache = cacheOrOptions;
      this.#owned = false;
    } else if (cacheOrOptions !== null && typeof cacheOrOptions === 'object' && !Array.isArray(cacheOrOptions)) {
      this.cache = new CacheModule(cacheOrOptions);
      this.#owned = true;
      // Keyv re-emits a store's 'error'; without listeners nothing is thrown.
      this.cache.on('error', (err) => this.listenerCount('error') > 0 && this.emit('error', err));
    } else {
      throw typeError(`KeyvFluxor takes a CacheModule or its options, got ${describe(cacheOrOptions)}`);
    }
    this.opts = { dialect: 'redis', url: '' };
  }

  /** The cache, connected on first use when this store made it. */
  #c() {
    if (!this.#owned) return this.cache;
    this.#ready ??= this.cache.initialize().catch((err) => {
      this.#ready = null;
      throw err;
    });
    return this.#ready;
  }

  async get(key) {
    return missing(await (await this.#c()).get(key));
  }

  async getMany(keys) {
    if (keys.length === 0) return [];
    return (await (await this.#c()).mget(keys)).map(missing);
  }

  async set(key, value, ttl) {
    return (await this.#c()).set(key, value, ttlOf(ttl));
  }

  /** `entries`: `{ key, value, ttl }`; one mset per distinct ttl. */
  async setMany(entries) {
    const cache = await this.#c();
    const byTtl = new Map();
    for (const { key, value, ttl } of entries) {
      const t = ttlOf(ttl).ttl;
      if (!byTtl.has(t)) byTtl.set(t, new Map());
      byTtl.get(t).set(key, value);
    }
    await Promise.all([...byTtl].map(([ttl, pairs]) => cache.mset(pairs, { ttl })));
    return entries.map(() => true);
  }

  async delete(key) {
    return (await this.#c()).del(key);
  }

  /** Whether any of `keys` was there. */
  async deleteMany(keys) {
    const cache = await this.#c();
    return (await Promise.all(keys.map((k) => cache.del(k)))).some(Boolean);
  }

  async has(key) {
    return (await this.#c()).exists(key);
  }

  async hasMany(keys) {
    const cache = await this.#c();
    return Promise.all(keys.map((k) => cache.exists(k)));
  }

  /** Removes this namespace's keys (every key under keyPrefix without one). */
  async clear() {
    await (await this.#c()).invalidate('pattern', this.#glob());
  }

  /** `[key, stored text]` for each key of `namespace` (Keyv strips the namespace and expiry). */
  async *iterator(namespace = this.namespace) {
    const cache = await this.#c();
    let keys = [];
    const page = async function* () {
      const values = await cache.mget(keys);
      for (let i = 0; i < keys.length; i++) if (values[i] !== null) yield [keys[i], values[i]];
      keys = [];
    };
    for await (const key of cache.scan(this.#glob(namespace), { count: PAGE })) {
      keys.push(key);
      if (keys.length === PAGE) yield* page();
    }
    if (keys.length > 0) yield* page();
  }

  /** Closes the cache if this store made it. */
  async disconnect() {
    if (this.#owned) await this.cache.disconnect();
  }

  #glob(namespace = this.namespace) {
    return namespace ? `${escapeGlob(namespace)}:*` : '*';
  }
}

module.exports = { KeyvFluxor };
module.exports.default = KeyvFluxor;
