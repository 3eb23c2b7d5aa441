'use strict';

// The JS face of @fluxor/cache-module: argument checks and JSON on the JS
// thread (V8 does the encoding), events and the reconnect schedule, over the
// Rust engine in binding.js. See README "Architecture".

const { EventEmitter } = require('node:events');
const { CacheEngine } = require('./binding.js');
const { CacheError, isCacheError, cacheError, typeError, adopt, describe } = require('./lib/errors');
const { toKey, ttlArg, tagsArg, optionsArg, entriesOf, wellFormed } = require('./lib/args');
const { Batcher, AT_ONCE } = require('./lib/batch');
const { KeyPatterns } = require('./lib/patterns');
const { Lock, acquire, lockOptions } = require('./lib/lock');
const { warm, warmOptions } = require('./lib/warm');
const { NearCache, localCacheOptions } = require('./lib/nearcache');
const { GetOrSet } = require('./lib/getorset');
const { trace } = require('./lib/trace');
const { serializerOf } = require('./lib/serializer');
const { scan } = require('./lib/scan');
const { randomBytes } = require('node:crypto');

const same = (reply) => reply;
const BUILT_IN_STRATEGIES = new Set(['cascade', 'tag', 'pattern']);
const defaultRetryStrategy = (times) => Math.min(times * 50, 2000);

class CacheModule extends EventEmitter {
  #engine;
  #batch;
  #retryStrategy;
  #state = 'idle'; // idle | connecting | ready | reconnecting | end | closed
  #connecting = null;
  #closing = null;
  /** Whether the last of initialize() and disconnect() asked for a connection. */
  #open = false;
  #evictionWarned = null;
  #reconnectTimer = null;
  #patterns = new KeyPatterns();
  #strategies = new Map();
  /** The near cache (lib/nearcache.js), or null when localCache is off. */
  #near = null;
  #getOrSet;
  #where; // { server, keyPrefix }, what a trace context names
  #cluster = false;
  #ser; // the values' serializer (lib/serializer.js)

  constructor(options = {}) {
    super();
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw typeError(`options must be an object, got ${describe(options)}`);
    }
    // Own properties only: one added to Object.prototype is never an option.
    const { retryStrategy = defaultRetryStrategy, localCache, serializer, ...data } = { __proto__: null, ...options };
    const local = localCacheOptions(localCache);
    this.#ser = serializerOf(serializer);
    // Local copies, and the memory store's values, are JSON text as written.
    const plainJson = this.#ser === serializerOf(undefined) && (data.compression === undefined || data.compression === false);
    if (local !== null && !plainJson) throw typeError('options.localCache works with the default JSON serializer and without compression');
    if (Object.hasOwn(data, 'tls') && data.tls !== null && typeof data.tls === 'object') data.tls = pemText(data.tls);
    if (typeof retryStrategy !== 'function') {
      throw typeError(`options.retryStrategy must be a function, got ${describe(retryStrategy)}`);
    }
    // JSON can carry a lone surrogate, but Rust's strings cannot hold one.
    wellFormed(data, 'options');
    let json;
    try {
      // Non-finite numbers become strings so the engine can name them.
      json = JSON.stringify(data, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
    } catch (err) {
      throw typeError(`options must hold plain data: ${err.message}`, err);
    }
    this.#batch = new Batcher((err) => this.#connectionLost(err), (batch) => this.#near?.events(batch));
    try {
      this.#engine = new CacheEngine(json, this.#batch.receiver);
    } catch (err) {
      throw adopt(err);
    }
    this.#cluster = data.enableCluster === true;
    this.#where = { server: this.#cluster ? 'cluster' : this.#engine.address, keyPrefix: this.#engine.keyPrefix };
    this.#batch.attach(this.#engine, this.#where);
    if (this.#engine.address.startsWith('memory:')) {
      if (local !== null) throw typeError('options.localCache needs a Redis server: the memory store is in process already');
      if (!plainJson) throw typeError('options.serializer and options.compression need a Redis server: the memory store keeps JSON text');
    }
    if (local !== null) this.#near = new NearCache(local, () => this.#engine.clock());
    this.#retryStrategy = retryStrategy;
    const near = this.#near && { read: (k) => this.#near.read(k, this.#batch), evict: (k) => this.#near.evict(k) };
    this.#getOrSet = new GetOrSet((decode, args) => this.#batch.run(decode, args), this.#engine, this.#ser, near);
  }

  /** The prefix of every stored key. */
  get keyPrefix() {
    return this.#engine.keyPrefix;
  }

  // ---- connection -------------------------------------------------------

  initialize() {
    this.#open = true;
    if (this.#state === 'ready' && this.#closing === null) return Promise.resolve(this);
    this.#connecting ??= this.#connect().finally(() => (this.#connecting = null));
    return this.#connecting;
  }

  /** Connects once a disconnect() in progress is done, unless a later disconnect() said otherwise. */
  async #connect() {
    while (this.#closing !== null) await this.#closing;
    if (!this.#open) throw notConnected();
    if (this.#state === 'ready') return this;
    this.#cancelReconnect();
    this.#state = 'connecting';
    const reply = await this.#engine.connect();
    if (reply instanceof Error) adopt(reply);
    if (!this.#open) {
      // disconnect() came last: close what this attempt opened.
      if (!(reply instanceof Error)) this.#engine.disconnect();
      this.#state = 'closed';
      throw notConnected();
    }
    if (reply instanceof Error) {
      this.#state = 'idle';
      throw reply;
    }
    this.#ready();
    this.#checkEviction(reply);
    return this;
  }

  /** The last of initialize() and disconnect() called wins, whatever is in progress. */
  disconnect() {
    this.#open = false;
    if (this.#closing === null) this.#closing = this.#close().finally(() => (this.#closing = null));
    return this.#closing;
  }

  async #close() {
    if (this.#connecting !== null) await this.#connecting.catch(() => {});
    // An initialize() after this disconnect() has won meanwhile.
    if (this.#open || this.#state === 'closed' || this.#state === 'idle') return;
    this.#cancelReconnect();
    this.#state = 'closed';
    // What was already asked for is still answered, and getOrSet's leases given back.
    this.#getOrSet.releaseLeases();
    await this.#batch.drain();
    this.#engine.disconnect();
    this.#near?.stop();
    this.emit('end');
  }

  #ready() {
    // Behind sentinels, the master's address is known from each connect on.
    if (!this.#cluster) this.#where.server = this.#engine.address;
    this.#state = 'ready';
    if (this.#near !== null) {
      this.#near.start();
      this.#engine.track(this.#near.maxSilenceMs);
    }
    this.emit('connect');
    this.emit('ready');
  }

  /**
   * `policy`: the server's maxmemory-policy when it may evict lock keys
   * (src/eviction.rs), else null. Said once per policy, as a 'warning' event
   * (which, without a listener, is dropped like any event but 'error').
   */
  #checkEviction(policy) {
    if (policy === null || policy === this.#evictionWarned) return;
    this.#evictionWarned = policy;
    const err = cacheError(
      'WARN_EVICTION_POLICY',
      `the server evicts keys under maxmemory with maxmemory-policy ${policy}: it may evict a held lock` +
        (policy.startsWith('allkeys-') ? ' and its fencing counter' : '') +
        ', so lock() and fencing tokens are not safe there (use noeviction for a server that holds locks)',
    );
    err.policy = policy;
    this.emit('warning', err);
  }

  /** An 'error' event without a listener is dropped, never thrown. */
  #emitError(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  #connectionLost(err) {
    if (this.#state !== 'ready') return;
    this.#state = 'reconnecting';
    this.#emitError(err);
    this.#scheduleReconnect(1);
  }

  #scheduleReconnect(times) {
    let delay;
    try {
      delay = this.#retryStrategy(times);
    } catch (err) {
      this.#emitError(err);
    }
    if (typeof delay !== 'number' || !(delay >= 0)) {
      // The strategy gave up: commands keep rejecting with ERR_CONNECTION
      // until initialize() is called again.
      this.#state = 'end';
      this.emit('end');
      return;
    }
    this.emit('reconnecting', delay);
    // Reconnecting alone keeps neither the process alive nor an instance
    // nobody holds any more (the timer reaches it weakly).
    const self = new WeakRef(this);
    this.#reconnectTimer = setTimeout(() => self.deref()?.#reconnect(times), delay);
    this.#reconnectTimer.unref();
  }

  /** Attempt `times` to reconnect; a failed one schedules the next by retryStrategy. */
  async #reconnect(times) {
    this.#reconnectTimer = null;
    const reply = await this.#engine.connect();
    if (reply instanceof Error) adopt(reply);
    if (this.#state !== 'reconnecting') {
      if (this.#state === 'closed') this.#engine.disconnect();
      return;
    }
    if (reply instanceof Error) {
      this.#emitError(reply);
      this.#scheduleReconnect(times + 1);
    } else {
      this.#ready();
      this.#checkEviction(reply);
    }
  }

  #cancelReconnect() {
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
  }

  // ---- the hot path -------------------------------------------------------

  get(key, options) {
    let fallback;
    let reply;
    try {
      fallback = options === undefined ? undefined : optionsArg(options).fallback;
      const k = toKey(key);
      reply = this.#near === null ? this.#batch.run(this.#ser.decode, ['get', k]) : this.#near.read(k, this.#batch);
    } catch (err) {
      return Promise.reject(err);
    }
    return fallback === undefined ? reply : withFallback(reply, fallback);
  }

  set(key, value, options) {
    try {
      const k = toKey(key);
      const stored = this.#ser.encode(value);
      const o = optionsArg(options);
      const args = [this.#ser.setOp, k, stored, ttlArg(o.ttl, 'options.ttl'), tagsArg(o.tags)];
      if (this.#near !== null) return this.#near.writes([k], () => this.#batch.run(same, args));
      return this.#batch.run(same, args);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  del(key) {
    return this.#keyOp('del', key, true);
  }

  exists(key) {
    if (this.#near === null) return this.#keyOp('exists', key);
    try {
      return this.#near.exists(toKey(key), this.#batch);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  ttl(key) {
    return this.#keyOp('ttl', key);
  }

  expire(key, ttl) {
    try {
      const k = toKey(key);
      if (ttl === undefined) throw typeError('ttl (seconds) is required');
      const args = ['expire', k, ttlArg(ttl)];
      this.#near?.evict(k);
      return this.#batch.run(same, args);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  mget(keys) {
    try {
      if (!Array.isArray(keys)) throw typeError(`keys must be an array, got ${describe(keys)}`);
      if (keys.length === 0) return Promise.resolve([]);
      const checked = new Array(keys.length);
      for (let i = 0; i < keys.length; i++) checked[i] = toKey(keys[i], `keys[${i}]`);
      if (this.#near !== null) return this.#near.readMany(checked, this.#batch);
      return this.#batch.run(this.#ser.decodeList, this.#ser.mgetWire(checked), keys.length);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  mset(pairs, options) {
    try {
      const o = optionsArg(options);
      const ttl = ttlArg(o.ttl, 'options.ttl');
      const tags = tagsArg(o.tags);
      // Every key and value is checked before anything is queued.
      const keys = [];
      const values = [];
      for (const [key, value] of entriesOf(pairs, 'pairs')) {
        const k = toKey(key, 'a key of pairs');
        keys.push(k);
        values.push(this.#ser.encode(value, `the value of ${JSON.stringify(k)}`));
      }
      if (keys.length === 0) return Promise.resolve(true);
      const wire = this.#ser.msetWire(ttl, tags, keys, values);
      if (this.#near !== null) return this.#near.writes(keys, () => this.#batch.run(same, wire, keys.length));
      return this.#batch.run(same, wire, keys.length);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The cached value, or the factory's (stored); one factory run per key across processes (lib/getorset.js). */
  getOrSet(key, factory, options) {
    return this.#getOrSet.getOrSet(key, factory, options);
  }

  // ---- key patterns, invalidation, warming -------------------------------

  /** The key for a pattern (not prefixed). Throws ERR_UNKNOWN_PATTERN or a TypeError. */
  generateKey(pattern, ...args) {
    return this.#patterns.generate(pattern, args);
  }

  registerKeyPattern(name, fn) {
    this.#patterns.register(name, fn);
  }

  registerInvalidationStrategy(name, fn) {
    if (typeof name !== 'string' || name.length === 0) throw typeError(`strategy name must be a non-empty string, got ${describe(name)}`);
    if (typeof fn !== 'function') throw typeError(`strategy ${JSON.stringify(name)} must be a function, got ${describe(fn)}`);
    this.#strategies.set(name, fn);
  }

  /** cascade(key), tag(tag), pattern(glob): the number of cache keys removed; a registered strategy: what it returns. */
  async invalidate(strategy, ...args) {
    const custom = this.#strategies.get(strategy);
    if (custom !== undefined) return custom(...args);
    if (!BUILT_IN_STRATEGIES.has(strategy)) {
      throw cacheError('ERR_UNKNOWN_STRATEGY', `unknown invalidation strategy ${typeof strategy === 'string' ? JSON.stringify(strategy) : describe(strategy)}`);
    }
    const [arg] = args;
    const what = strategy === 'cascade' ? toKey(arg) : arg;
    if (typeof what !== 'string' || what.length === 0) {
      throw typeError(`invalidate('${strategy}') needs a non-empty string, got ${describe(arg)}`);
    }
    // The server's invalidations of what this removes come on another
    // connection, maybe after this resolves: drop every local copy before
    // and after, so that reads after it see the server.
    const run = async () => {
      this.#near?.flush();
      try {
        return await this.#batch.call((id) => this.#engine.invalidate(id, strategy, what), same);
      } finally {
        this.#near?.flush();
      }
    };
    const { server, keyPrefix } = this.#where;
    return trace(run, () => ({ operation: 'invalidate', strategy, argument: what, keyPrefix, server }));
  }

  /** Loads what `warmer()` gives in pipelined batches; resolves { loaded }. */
  async warmCache(warmer, options) {
    if (typeof warmer !== 'function') throw typeError(`warmer must be a function, got ${describe(warmer)}`);
    const o = optionsArg(options);
    const settings = warmOptions(o);
    const ttl = ttlArg(o.ttl, 'options.ttl');
    const tags = tagsArg(o.tags);
    const source = await warmer();
    const ser = this.#ser;
    const write = (keys, values) => {
      const wire = ser.msetWire(ttl, tags, keys, values);
      if (this.#near !== null) return this.#near.writes(keys, () => this.#batch.run(same, wire, keys.length));
      return this.#batch.run(same, wire, keys.length);
    };
    return warm(source, settings, write, ser.encode);
  }

  // ---- keys -----------------------------------------------------------------

  /** The keys under keyPrefix matching `pattern` (unprefixed), as an async iterator. */
  scan(pattern, options) {
    return scan((start) => this.#batch.call((id) => start(id, this.#engine), same), pattern, options);
  }

  // ---- locks ----------------------------------------------------------------

  /** Acquires `key` or rejects with ERR_LOCK_NOT_ACQUIRED when the retries run out. */
  async lock(key, options) {
    const k = toKey(key);
    const o = lockOptions(options);
    const token = randomBytes(16).toString('hex');
    const run = (args) => this.#batch.run(same, args, AT_ONCE);
    const { fence, sentAt } = await acquire(run, k, token, o);
    const lock = new Lock(run, k, token, fence, o.ttlMs, sentAt);
    if (o.autoExtend) lock.startExtending();
    return lock;
  }

  /**
   * Runs `fn(lock, signal)` holding `key`, and releases the lock whatever
   * happens. Rejects with ERR_LOCK_LOST (`cause`: fn's own error, if any)
   * when the lock was lost before fn finished, even if fn resolved.
   */
  async withLock(key, fn, options) {
    if (typeof fn !== 'function') throw typeError(`fn must be a function, got ${describe(fn)}`);
    const lock = await this.lock(key, options);
    const { signal } = lock;
    let result;
    let failure;
    try {
      result = await fn(lock, signal);
    } catch (err) {
      failure = { err };
    }
    // false: the lock had expired or been taken before this release.
    const released = await lock.release().catch(() => true);
    if (signal.aborted) {
      if (failure && signal.reason.cause === undefined) signal.reason.cause = failure.err;
      throw signal.reason;
    }
    if (!released) {
      throw cacheError('ERR_LOCK_LOST', `lost the lock ${JSON.stringify(lock.key)}: it had expired or was taken by another holder before fn finished`, failure?.err);
    }
    if (failure) throw failure.err;
    return result;
  }

  // ---- monitoring -------------------------------------------------------------

  /** `{ reset: true }` starts a new window for this instance's figures. */
  async getStats(options) {
    const { reset = false } = optionsArg(options);
    if (typeof reset !== 'boolean') throw typeError(`options.reset must be a boolean, got ${describe(reset)}`);
    const stats = JSON.parse(await this.#batch.call((id) => this.#engine.stats(id, reset), same));
    const counts = this.#getOrSet.stats;
    Object.assign(stats, counts);
    if (reset) for (const name of Object.keys(counts)) counts[name] = 0;
    if (this.#near !== null) stats.local = this.#near.stats(reset);
    return stats;
  }

  /** This instance's counters and latency histograms as Prometheus text exposition. */
  metrics() {
    return this.#engine.metrics();
  }

  /** The round trip of a PING in ms (in cluster mode: every master answered). */
  async ping() {
    const started = performance.now();
    await this.#batch.run(same, ['ping'], AT_ONCE);
    return performance.now() - started;
  }

  #keyOp(op, key, writes = false) {
    try {
      const k = toKey(key);
      if (writes) this.#near?.evict(k);
      return this.#batch.run(same, [op, k]);
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

/** The tls option with its certificates as PEM text (Buffers and arrays allowed). */
function pemText(tls) {
  const text = (v) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : Array.isArray(v) ? v.map(text).join('\n') : v);
  const out = { __proto__: null, ...tls };
  for (const name of ['ca', 'cert', 'key']) if (out[name] !== undefined) out[name] = text(out[name]);
  return out;
}

const notConnected = () => cacheError('ERR_NOT_CONNECTED', 'disconnect() was called while connecting');

/** On a miss or a cache error, the fallback (a function is called once). */
async function withFallback(reply, fallback) {
  let value = null;
  try {
    value = await reply;
  } catch (err) {
    if (err.code === 'ERR_INVALID_ARG') throw err;
  }
  if (value !== null) return value;
  return typeof fallback === 'function' ? fallback() : fallback;
}

module.exports = CacheModule;
module.exports.CacheModule = CacheModule;
module.exports.default = CacheModule;
module.exports.CacheError = CacheError;
module.exports.isCacheError = isCacheError;
