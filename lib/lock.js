'use strict';

// The Lock a successful cache.lock() resolves to.

const { rangeError, typeError, describe } = require('./errors');
const { ttlMs } = require('./args');

class Lock {
  #engine;
  #ttlMs;
  #released = false;
  #timer = null;

  constructor(engine, key, token, fencingToken, ttl) {
    this.#engine = engine;
    this.#ttlMs = ttl;
    /** The key as the caller gave it (unprefixed). */
    this.key = key;
    /** Random, 128 bits: the holder's proof. */
    this.token = token;
    /** Strictly increasing per key, in the order the lock was held. */
    this.fencingToken = fencingToken;
    Object.freeze(this);
  }

  /** False when the lock had expired or belongs to someone else. Harmless twice. */
  async release() {
    this.#stopExtending();
    if (this.#released) return false;
    this.#released = true;
    return unwrap(await this.#engine.lockRelease(this.key, this.token));
  }

  /** Sets the lock's ttl (seconds, default the lock's ttl); false when no longer held. */
  async extend(ttl) {
    const ms = ttl === undefined ? this.#ttlMs : lockTtlMs(ttl, 'ttl');
    if (this.#released) return false;
    return unwrap(await this.#engine.lockExtend(this.key, this.token, ms));
  }

  /** Extends at about a third of the ttl until release, or until the lock is lost. */
  startExtending() {
    const tick = async () => {
      let held = false;
      try {
        held = await this.extend();
      } catch {
        held = true; // a passing error: try again next time
      }
      if (!held) this.#stopExtending();
    };
    this.#timer = setInterval(tick, Math.max(1, Math.floor(this.#ttlMs / 3)));
    // Keeping a lock alive does not keep the process alive.
    this.#timer.unref();
  }

  #stopExtending() {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}

function unwrap(reply) {
  if (reply instanceof Error) throw reply;
  return reply;
}

/** Lock ttls are positive: a lock that never expires would outlive a crashed holder. */
function lockTtlMs(ttl, name) {
  const ms = ttlMs(ttl, name);
  if (ms === 0) throw rangeError(`${name} must be more than 0 seconds`);
  if (ms > 2 ** 31 - 1) throw rangeError(`${name} must be at most ${Math.floor((2 ** 31 - 1) / 1000)} seconds`);
  return ms;
}

function count(value, name, def, max) {
  if (value === undefined) return def;
  if (typeof value !== 'number') throw typeError(`${name} must be a number, got ${describe(value)}`);
  if (!Number.isInteger(value) || value < 0 || value > max) throw rangeError(`${name} must be a whole number from 0 to ${max}, got ${value}`);
  return value;
}

/** Validated lock options with their defaults. */
function lockOptions(options = {}) {
  if (options === null || typeof options !== 'object') throw typeError(`options must be an object, got ${describe(options)}`);
  return {
    ttlMs: options.ttl === undefined ? 30_000 : lockTtlMs(options.ttl, 'options.ttl'),
    retries: count(options.retries, 'options.retries', 10, 1_000_000),
    retryDelay: count(options.retryDelay, 'options.retryDelay', 100, 3_600_000),
    autoExtend: options.autoExtend === undefined ? false : bool(options.autoExtend, 'options.autoExtend'),
  };
}

function bool(v, name) {
  if (typeof v !== 'boolean') throw typeError(`${name} must be a boolean, got ${describe(v)}`);
  return v;
}

module.exports = { Lock, lockOptions, unwrap };
