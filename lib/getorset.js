'use strict';

// cache.getOrSet(key, factory, options): cache-aside in one call. One factory
// run per key at a time in this process (a Map of flights) and across
// processes (a lease in Redis, src/getorset.rs); waiters are woken by the
// holder's PUBLISH (src/wake.rs) and poll with backoff only as a safety net.
// Freshness is the key's remaining PTTL: values are stored for ttl + grace,
// and one with less than `grace` left is stale. See README "getOrSet".

const { randomBytes } = require('node:crypto');
const { cacheError, typeError, rangeError, describe } = require('./errors');
const { toKey, ttlMs, tagsArg } = require('./args');

/** After a failed factory, a stale value counts as fresh this long (at most its ttl). */
const GRACE_BACKOFF_MS = 10_000;
/** A waiter re-checks after 10, 20, 40 … ms up to this, even without a wake-up. */
const WAIT_MIN_MS = 10;
const WAIT_MAX_MS = 200;
const MAX_TIMER_MS = 2 ** 31 - 1;

const raw = (reply) => reply;
const MISS = Symbol('miss');

class GetOrSet {
  #run;
  #decode;
  #encode;
  #storeOp;
  #valueOrMiss;
  #awaitFill;
  #engine;
  #subscribed = false;
  #defaults = null;
  /** key -> the promise every concurrent caller in this process shares. */
  #flights = new Map();
  /** key -> the token of a lease this process holds while its factory runs. */
  #leases = new Map();
  stats = { factoryRuns: 0, staleServed: 0, coalesced: 0 };

  /** The near cache's `{ read(key), evict(key) }` (lib/nearcache.js), or null. */
  #near;

  /**
   * `run(args)` sends one operation on the batch path; `engine` has
   * awaitFill and the settings; `ser` is the instance's serializer
   * (lib/serializer.js); `near`: reads go through the near cache, and a
   * store evicts its copy first.
   */
  constructor(run, engine, ser, near = null) {
    this.#run = run;
    this.#decode = ser.decode;
    this.#encode = ser.encode;
    this.#storeOp = ser.setOp === 'set' ? 'gos_store' : 'gos_storev';
    /** A get's reply: the value, or MISS (a stored null reads as a miss, as for get). */
    this.#valueOrMiss = (text) => {
      const value = ser.decode(text);
      return value === null ? MISS : value;
    };
    this.#engine = engine;
    this.#near = near;
    this.#awaitFill = (key, ms) => engine.awaitFill(key, Math.max(1, Math.ceil(ms))).catch(() => false);
  }

  getOrSet(key, factory, options) {
    let k;
    let o;
    try {
      k = toKey(key);
      if (typeof factory !== 'function') throw typeError(`factory must be a function, got ${describe(factory)}`);
      // The options without any given are the same every time.
      o = options === undefined ? (this.#defaults ??= getOrSetOptions(undefined, this.#engine)) : getOrSetOptions(options, this.#engine);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#call(k, factory, o);
  }

  /** A hit costs what a get costs: one operation, one promise more. */
  #call(key, factory, o) {
    if (o.forceFresh) return this.#miss(key, factory, o, undefined);
    const onError = (err) => {
      if (err.code === 'ERR_INVALID_ARG') throw err;
      return this.#uncached(key, factory, o, undefined); // Redis unreachable
    };
    if (o.graceMs === 0 && o.refreshAt === undefined) {
      const read = this.#near === null ? this.#run(this.#valueOrMiss, ['get', key]) : this.#near.read(key);
      return read.then((value) => (value === MISS || value === null ? this.#miss(key, factory, o, undefined) : value), onError);
    }
    return this.#run(raw, ['gos_read', key]).then(([text, pttlText]) => {
      const value = this.#decode(text);
      if (value === null) return this.#miss(key, factory, o, undefined);
      const pttl = Number(pttlText);
      if (pttl !== -1 && pttl < o.graceMs) return this.#miss(key, factory, o, { value });
      if (pttl !== -1 && o.refreshAt !== undefined && pttl < o.refreshAt) this.#refresh(key, factory, o, value);
      return value;
    }, onError);
  }

  /** A miss or a stale value: joins this process's run for `key`, or starts one. */
  #miss(key, factory, o, stale) {
    const current = this.#flights.get(key);
    if (current !== undefined) {
      this.stats.coalesced++;
      return current;
    }
    return this.#fly(key, this.#flight(key, factory, o, stale, false));
  }

  /** Shares `promise` with every caller for `key` until it settles. */
  #fly(key, promise) {
    this.#flights.set(key, promise);
    const done = () => {
      if (this.#flights.get(key) === promise) this.#flights.delete(key);
    };
    promise.then(done, done);
    return promise;
  }

  /** A refresh-ahead run in the background; the caller already has its value. */
  #refresh(key, factory, o, current) {
    if (this.#flights.has(key)) return;
    this.#fly(key, this.#flight(key, factory, o, { value: current }, true)).catch(() => {});
  }

  /**
   * Takes the lease and runs the factory, or waits for whoever holds it.
   * `background`: a refresh-ahead run, which gives way to any other holder.
   */
  async #flight(key, factory, o, stale, background) {
    const token = randomBytes(16).toString('hex');
    if (!this.#subscribed) {
      // The first miss opens the wake-up subscription, so it is there by the
      // time this instance waits on another's factory.
      this.#subscribed = true;
      this.#awaitFill(key, 1);
    }
    const minPttl = background ? o.refreshAt : o.graceMs;
    const started = Date.now();
    const deadline = started + o.lockTimeout;
    const staleAt = stale !== undefined && o.timeout !== undefined ? started + o.timeout : Infinity;
    // hardTimeout bounds a waiter too, not only a factory run here.
    const hardAt = o.hardTimeout === undefined ? Infinity : started + o.hardTimeout;
    let delay = WAIT_MIN_MS;
    for (let waited = false; ; waited = true) {
      let reply;
      try {
        reply = await this.#run(raw, ['gos_lease', key, token, String(o.leaseMs), String(minPttl), o.forceFresh && !waited ? '1' : '0']);
      } catch (err) {
        if (err.code === 'ERR_INVALID_ARG') throw err;
        return background ? stale.value : this.#uncached(key, factory, o, stale);
      }
      const [state, text, , leasePttl] = reply;
      if (text !== null) {
        const value = this.#decode(text);
        if (state === 'hit') {
          if (waited) this.stats.coalesced++;
          return value;
        }
        if (value !== null) stale = { value };
      }
      if (state === 'won') return this.#runFactory(key, factory, o, stale, token);
      if (background) return stale.value;
      // Another process runs the factory: wait for its PUBLISH (or re-check
      // with backoff), take over once its lease expires, give up at lockTimeout.
      const now = Date.now();
      if (now >= staleAt) return this.#serveStale(stale);
      if (now >= hardAt) {
        if (stale !== undefined) return this.#serveStale(stale);
        throw factoryTimeout(key, o);
      }
      if (now >= deadline) return this.#uncached(key, factory, o, stale);
      const ms = Math.min(delay, Math.max(1, Number(leasePttl) + 1), deadline - now, staleAt - now, hardAt - now);
      delay = Math.min(delay * 2, WAIT_MAX_MS);
      // A PUBLISH that lands before the wait is registered is missed: it
      // costs at most `ms`, which starts small.
      await this.#awaitFill(key, ms);
    }
  }

  /**
   * Gives back every lease a running factory holds (disconnect()): the
   * factory's result can no longer be stored, so other processes need not
   * wait for the lease to expire. Queued now; settled by the next drain.
   */
  releaseLeases() {
    for (const [key, token] of this.#leases) this.#run(raw, ['gos_release', key, token, '0']).catch(() => {});
    this.#leases.clear();
  }

  #serveStale(stale) {
    this.stats.staleServed++;
    return stale.value;
  }

  /** Redis unreachable, or lockTimeout ran out: the factory runs, and its value is not stored. */
  #uncached(key, factory, o, stale) {
    return this.#runFactory(key, factory, o, stale, null);
  }

  /**
   * Runs the factory under lease `token` (null: no lease, nothing stored)
   * and resolves what the caller gets: the value, or under the soft timeout
   * or after a failure the stale value, or the error. The factory's result
   * is stored whenever it comes, unless a write came first.
   */
  #runFactory(key, factory, o, stale, token) {
    this.stats.factoryRuns++;
    const aborter = new AbortController();
    let ttl = o.ttlMs;
    let tags = o.tags;
    let skipped = false;
    const ctx = {
      key,
      stale: stale?.value,
      signal: aborter.signal,
      setTtl(seconds) {
        ttl = ttlMs(seconds, 'ctx.setTtl(seconds)');
      },
      setTags(list) {
        tags = tagsArg(list, 'ctx.setTags(tags)');
      },
      skip() {
        skipped = true;
      },
    };
    let extender = null;
    if (token !== null) {
      this.#leases.set(key, token);
      extender = setInterval(() => this.#run(raw, ['gos_extend', key, token, String(o.leaseMs)]).catch(() => {}), Math.max(1, Math.floor(o.leaseMs / 3)));
      extender.unref();
    }
    let produced;
    try {
      produced = Promise.resolve(factory(ctx));
    } catch (err) {
      produced = Promise.reject(err);
    }
    const release = (extendMs) => (token === null ? undefined : this.#run(raw, ['gos_release', key, token, String(extendMs)]).catch(() => false));
    const settled = () => {
      clearInterval(extender);
      if (token !== null && this.#leases.get(key) === token) this.#leases.delete(key);
    };
    const finished = produced.then(
      async (value) => {
        settled();
        if (value === undefined || skipped || token === null) {
          await release(0);
          return value === undefined ? null : value;
        }
        let json;
        try {
          json = this.#encode(value, 'the factory result');
        } catch (err) {
          await release(0);
          throw err;
        }
        const px = ttl === 0 ? 0 : ttl + o.graceMs;
        this.#near?.evict(key);
        await this.#run(raw, [this.#storeOp, key, token, json, String(px), tags]).catch(() => false);
        return value;
      },
      async (err) => {
        settled();
        // Fail-safe: the stale value looks fresh a little longer, so a failing source is not hit on every call.
        await release(stale !== undefined && o.ttlMs > 0 ? o.graceMs + Math.min(o.ttlMs, GRACE_BACKOFF_MS) : 0);
        throw err;
      },
    );
    finished.catch(() => {}); // settled in the background too: never unhandled
    return new Promise((resolve, reject) => {
      let soft = null;
      let hard = null;
      let done = false;
      const end = () => {
        done = true;
        clearTimeout(soft);
        clearTimeout(hard);
      };
      const fail = (err) => {
        if (done) return;
        end();
        // A factory may reject with anything, undefined included.
        if (stale !== undefined && err?.code !== 'ERR_INVALID_ARG') resolve(this.#serveStale(stale));
        else reject(err);
      };
      finished.then((value) => {
        if (done) return;
        end();
        resolve(value);
      }, fail);
      if (stale !== undefined && o.timeout !== undefined) {
        soft = setTimeout(() => {
          if (done) return;
          end();
          resolve(this.#serveStale(stale));
        }, o.timeout);
      }
      if (o.hardTimeout !== undefined) {
        hard = setTimeout(() => {
          const err = factoryTimeout(key, o);
          aborter.abort(err);
          fail(err);
        }, o.hardTimeout);
      }
    });
  }
}

function factoryTimeout(key, o) {
  return cacheError('ERR_FACTORY_TIMEOUT', `the factory for ${JSON.stringify(key)} did not finish within hardTimeout (${o.hardTimeout} ms)`);
}

/** Validated options (own properties only) with their defaults. */
function getOrSetOptions(options, engine) {
  if (options === undefined || options === null) options = {};
  else if (typeof options !== 'object' || Array.isArray(options)) throw typeError(`options must be an object, got ${describe(options)}`);
  const own = (name) => (Object.hasOwn(options, name) ? options[name] : undefined);
  const ttl = own('ttl') === undefined ? engine.defaultTtlMs : ttlMs(own('ttl'), 'options.ttl');
  const graceMs = own('grace') === undefined ? 0 : ttlMs(own('grace'), 'options.grace');
  const refreshAhead = own('refreshAhead');
  if (refreshAhead !== undefined) {
    if (typeof refreshAhead !== 'number') throw typeError(`options.refreshAhead must be a number, got ${describe(refreshAhead)}`);
    if (!(refreshAhead > 0 && refreshAhead < 1)) throw rangeError(`options.refreshAhead must be a fraction of ttl between 0 and 1 (exclusive), got ${refreshAhead}`);
  }
  const lockTimeout = ms(own('lockTimeout'), 'options.lockTimeout', 0) ?? engine.commandTimeoutMs;
  const forceFresh = own('forceFresh');
  if (forceFresh !== undefined && typeof forceFresh !== 'boolean') throw typeError(`options.forceFresh must be a boolean, got ${describe(forceFresh)}`);
  return {
    ttlMs: ttl,
    tags: tagsArg(own('tags')),
    graceMs,
    timeout: ms(own('timeout'), 'options.timeout', 0),
    hardTimeout: ms(own('hardTimeout'), 'options.hardTimeout', 1),
    // PTTL below which a value is due for a refresh-ahead run.
    refreshAt: refreshAhead === undefined || ttl === 0 ? undefined : graceMs + Math.round(ttl * (1 - refreshAhead)),
    lockTimeout,
    forceFresh: forceFresh === true,
    // The lease outlives a dead holder by at most half of what a waiter waits, so one takes over in time.
    leaseMs: Math.max(100, Math.min(Math.floor(lockTimeout / 2), 30_000)),
  };
}

function ms(value, name, min) {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw typeError(`${name} must be a number of milliseconds, got ${describe(value)}`);
  if (!(value >= min && value <= MAX_TIMER_MS)) throw rangeError(`${name} must be from ${min} to ${MAX_TIMER_MS} milliseconds, got ${value}`);
  return value;
}

module.exports = { GetOrSet };
