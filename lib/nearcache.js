'use strict';

// The near cache (README "Near cache"): decoded values in this thread's
// memory, kept coherent by the server's invalidations (src/tracking.rs).
//
// A hit never leaves the JS thread: it is one Map lookup and one clock read,
// and hands back the very object stored, deep-frozen, so a caller cannot
// change what later reads return (a copy or a parse per hit costs 10-100x;
// README "Near cache"). A local copy is served only while
//   - tracking is up (every invalidation connection open),
//   - the server answered a PING sent less than maxSilenceMs ago (the PONG
//     comes after every invalidation sent before it), and
//   - its own expiry has not passed: the key's PTTL, read with the value,
//     counted from when the read was sent, and at most localCache.ttl.
//
// Reads race invalidations (they come on another connection): a read takes
// a ticket when it is sent, the epoch of the key's hash slot and the global
// epoch; its reply is stored only if neither moved by the time it arrives.
// An invalidation that overtakes the reply moves the slot's epoch, so the
// value it made stale is not stored; one that arrives after the reply
// evicts it. Each flush moves the global epoch.

const { typeError, rangeError, describe } = require('./errors');
const { decode, mgetWire } = require('./args');

/** What `get` returns when there is no fresh local copy. */
const MISS = Symbol('miss');
const TRUE = Promise.resolve(true);
const SLOTS = 4096;
const GLOBAL = 2 ** 32;
const DEFAULTS = Object.freeze({ maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, ttl: 60, maxSilenceMs: 300 });

/** The localCache option, checked, with defaults; null when off. */
function localCacheOptions(o) {
  if (o === undefined || o === null || o === false) return null;
  if (o === true) o = {};
  if (typeof o !== 'object' || Array.isArray(o)) throw typeError(`options.localCache must be an object, got ${describe(o)}`);
  for (const name of Object.keys(o)) {
    if (!(name in DEFAULTS)) throw typeError(`options.localCache.${name} is not an option (maxEntries, maxBytes, ttl, maxSilenceMs)`);
  }
  const out = { ...DEFAULTS };
  for (const name of Object.keys(DEFAULTS)) {
    const v = Object.hasOwn(o, name) ? o[name] : undefined;
    if (v === undefined) continue;
    if (typeof v !== 'number') throw typeError(`options.localCache.${name} must be a number, got ${describe(v)}`);
    const ok = name === 'ttl' ? v > 0 && v <= 2 ** 31 / 1000
      : name === 'maxSilenceMs' ? Number.isInteger(v) && v >= 10 && v <= 2 ** 31 - 1
      : Number.isSafeInteger(v) && v >= 1;
    if (!ok) {
      const want = name === 'ttl' ? 'a positive number of seconds' : name === 'maxSilenceMs' ? 'a whole number of milliseconds, 10 or more' : 'a whole number, 1 or more';
      throw rangeError(`options.localCache.${name} must be ${want}, got ${v}`);
    }
    out[name] = v;
  }
  return out;
}

/** A key's invalidation slot (FNV-1a). */
function slot(key) {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return h & (SLOTS - 1);
}

/** Freezes a decoded JSON value and everything in it (no recursion: any depth). */
function deepFreeze(root) {
  if (typeof root !== 'object' || root === null) return root;
  const stack = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    Object.freeze(v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) if (typeof v[i] === 'object' && v[i] !== null) stack.push(v[i]);
    } else {
      for (const k in v) if (typeof v[k] === 'object' && v[k] !== null) stack.push(v[k]);
    }
  }
  return root;
}

class NearCache {
  /**
   * key -> { value, size, expires, used, promise }, oldest first. Eviction
   * is CLOCK (second chance): a hit only marks its entry used; when room is
   * needed, a used entry at the front moves to the back unmarked and an
   * unused one goes. Least recently used out first, approximately, at no
   * cost per hit.
   */
  #map = new Map();
  #bytes = 0;
  #slots = new Uint32Array(SLOTS);
  /** key -> echoes of this instance's SETs still to come (see `writes`). */
  #echoes = new Map();
  #global = 0;
  #tracking = false;
  #up = false;
  /** performance.now() past which nothing is served (the server's silence). */
  #freshUntil = -Infinity;
  /** performance.now() minus the engine's clock, in ms (src/tracking.rs). */
  #offset;
  #o;
  #hits = 0;
  #misses = 0;
  #invalidations = 0;
  #flushes = 0;

  /** `clockUs()`: the engine's clock, to put its event times on ours. */
  constructor(options, clockUs) {
    this.#o = options;
    // Read ours first: the offset errs towards older, never fresher.
    const ours = performance.now();
    this.#offset = ours - clockUs() / 1000;
  }

  get maxSilenceMs() {
    return this.#o.maxSilenceMs;
  }

  /** The fresh local copy of `key`, or MISS. */
  get(key) {
    const e = this.#entry(key);
    return e === undefined ? MISS : e.value;
  }

  /** `get(key)` through the cache: a hit at once, a miss by `batch`. */
  read(key, batch) {
    const e = this.#entry(key);
    // A hit hands back one settled promise per copy, made once: no
    // allocation per hit. (Not frozen: async_hooks tag promises.)
    if (e !== undefined) return (e.promise ??= Promise.resolve(e.value));
    const ticket = this.#ticket(key);
    const sent = performance.now();
    return batch.run((r) => this.#fill(key, ticket, sent, r[0], Number(r[1])), ['getx', key]);
  }

  /** The fresh entry of `key`, counted as a hit or a miss. */
  #entry(key) {
    const e = this.#map.get(key);
    if (e !== undefined) {
      const now = performance.now();
      if (now < e.expires && now < this.#freshUntil) {
        e.used = true;
        this.#hits++;
        return e;
      }
      if (now >= e.expires) this.#remove(key, e);
    }
    this.#misses++;
    return undefined;
  }

  /** `mget(keys)` through the cache: one request for the misses, if any. */
  readMany(keys, batch) {
    const out = new Array(keys.length);
    const missing = [];
    for (let i = 0; i < keys.length; i++) {
      const v = this.get(keys[i]);
      if (v === MISS) missing.push(i);
      else out[i] = v;
    }
    if (missing.length === 0) return Promise.resolve(out);
    const ks = missing.map((i) => keys[i]);
    const tickets = ks.map((k) => this.#ticket(k));
    const sent = performance.now();
    const wire = mgetWire(ks);
    wire[0] = 'mgetx';
    return batch.run(
      (r) => {
        const n = ks.length;
        for (let j = 0; j < n; j++) out[missing[j]] = this.#fill(ks[j], tickets[j], sent, r[j], Number(r[n + j]));
        return out;
      },
      wire,
      ks.length,
    );
  }

  /** `exists(key)`: true at once for a fresh local copy. */
  exists(key, batch) {
    return this.#entry(key) !== undefined ? TRUE : batch.run((r) => r, ['exists', key]);
  }

  /** This instance writes `key`: its copy goes, and reads already sent are not stored. */
  evict(key) {
    this.#slots[slot(key)]++;
    const e = this.#map.get(key);
    if (e !== undefined) {
      this.#remove(key, e);
      this.#invalidations++;
    }
  }

  /**
   * This instance SETs `keys` by `run()`. Their copies go now (read-your-
   * writes), and the server's echo of each SET is expected: BCAST announces
   * this instance's own writes too, one invalidation per SET, and that echo
   * tells nothing a read sent after the write does not already know, so it
   * evicts nothing. Without this, a copy read right after a write was
   * evicted again by the write's own echo (a second miss per write). The
   * first invalidations of a key after the write are the echo or older, in
   * the server's order, so none newer than the copy is skipped. A write that
   * fails or times out may never echo: then every copy goes.
   */
  writes(keys, run) {
    for (const k of keys) {
      this.evict(k);
      if (this.#up) this.#echoes.set(k, (this.#echoes.get(k) ?? 0) + 1);
    }
    return run().then(undefined, (err) => {
      this.flush();
      throw err;
    });
  }

  /** An invalidation of `key` from the server. */
  #changed(key) {
    const echoes = this.#echoes.get(key);
    if (echoes === undefined) this.evict(key);
    else if (echoes === 1) this.#echoes.delete(key);
    else this.#echoes.set(key, echoes - 1);
  }

  /** Drops every local copy; reads already sent are not stored. */
  flush() {
    this.#echoes.clear();
    this.#global++;
    if (this.#map.size > 0 || this.#up) this.#flushes++;
    this.#map.clear();
    this.#bytes = 0;
  }

  /** Tracking started (connected): its events count from now on. */
  start() {
    this.#tracking = true;
  }

  /** Tracking stopped (disconnect): nothing is served or stored, and late events are ignored. */
  stop() {
    this.#tracking = false;
    this.#down();
  }

  /** Tracking is down: every copy goes, and none is served or stored until it is up. */
  #down() {
    this.flush();
    this.#up = false;
    this.#freshUntil = -Infinity;
  }

  /** A batch of tracking events from src/tracking.rs: `kind, atUs, keys | null` each. */
  events(batch) {
    for (let i = 0; i + 2 < batch.length; i += 3) this.event(batch[i], batch[i + 1], batch[i + 2]);
  }

  /** One tracking event. */
  event(kind, atUs, keys) {
    if (!this.#tracking) return;
    const until = atUs / 1000 + this.#offset + this.#o.maxSilenceMs;
    switch (kind) {
      case 'keys':
        for (let i = 0; i < keys.length; i++) this.#changed(keys[i]);
        break;
      case 'alive':
        if (this.#up && until > this.#freshUntil) this.#freshUntil = until;
        break;
      case 'up':
        this.flush();
        this.#up = true;
        this.#freshUntil = until;
        break;
      case 'flush':
        this.flush();
        break;
      case 'down':
        this.#down();
        break;
    }
  }

  /** `getStats().local`; `reset` starts the counters again (not what is held). */
  stats(reset = false) {
    const out = { hits: this.#hits, misses: this.#misses, entries: this.#map.size, bytes: this.#bytes, invalidations: this.#invalidations, flushes: this.#flushes };
    if (reset) this.#hits = this.#misses = this.#invalidations = this.#flushes = 0;
    return out;
  }

  /** -1 when tracking is down: such a read is never stored. */
  #ticket(key) {
    // The global epoch wraps (exact integers): a read is never in flight
    // across 2^20 flushes.
    return this.#up ? (this.#global & 0xfffff) * GLOBAL + this.#slots[slot(key)] : -1;
  }

  /** A read's reply: decoded and frozen, and stored if nothing changed since `ticket`. */
  #fill(key, ticket, sent, text, pttl) {
    if (text === null) return null;
    const value = deepFreeze(decode(text));
    // PTTL -1: no expiry; -2: gone since the GET.
    const ms = pttl === -1 ? this.#o.ttl * 1000 : Math.min(pttl, this.#o.ttl * 1000);
    if (ticket >= 0 && ms > 0 && ticket === this.#ticket(key)) this.#put(key, value, key.length + text.length, sent + ms);
    return value;
  }

  #put(key, value, size, expires) {
    const old = this.#map.get(key);
    if (old !== undefined) this.#remove(key, old);
    const { maxEntries, maxBytes } = this.#o;
    if (size > maxBytes) return;
    // Room first, so the sweep never reaches the new entry.
    while (this.#map.size >= maxEntries || this.#bytes + size > maxBytes) {
      const [oldest, e] = this.#map.entries().next().value;
      this.#map.delete(oldest);
      if (e.used) {
        e.used = false;
        this.#map.set(oldest, e);
      } else {
        this.#bytes -= e.size;
      }
    }
    this.#map.set(key, { value, size, expires, used: false, promise: undefined });
    this.#bytes += size;
  }

  #remove(key, e) {
    this.#map.delete(key);
    this.#bytes -= e.size;
  }
}

module.exports = { NearCache, localCacheOptions, deepFreeze, MISS };
