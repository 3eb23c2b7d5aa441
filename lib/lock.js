'use strict';

// The Lock a successful cache.lock() resolves to.

const { cacheError, rangeError, typeError, describe } = require('./errors');
const { ttlMs, optionsArg } = require('./args');

class Lock {
  #run;
  #ttlMs;
  #released = false;
  #timer = null;

  /** `run(args)` sends one lock step (wire format: src/ops.rs). */
  constructor(run, key, token, fencingToken, ttl) {
    this.#run = run;
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
    return this.#run(['unlock', this.key, this.token]);
  }

  /** Sets the lock's ttl (seconds, default the lock's ttl); false when no longer held. */
  async extend(ttl) {
    const ms = ttl === undefined ? this.#ttlMs : lockTtlMs(ttl, 'ttl');
    if (this.#released) return false;
    return this.#run(['extend', this.key, this.token, String(ms)]);
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

/**
 * Takes `key` for `token`, trying `retries` more times after a jittered
 * `retryDelay` (± 50 %, so that waiting contenders do not retry in
 * lockstep). Resolves the fencing token.
 */
async function acquire(run, key, token, o) {
  for (let attempt = 1; ; attempt++) {
    const fence = await run(['lock', key, token, String(o.ttlMs)]);
    if (fence > 0) return fence;
    if (attempt > o.retries) {
      throw cacheError('ERR_LOCK_NOT_ACQUIRED', `could not acquire lock ${JSON.stringify(key)} after ${attempt} attempt${attempt === 1 ? '' : 's'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, o.retryDelay * (0.5 + Math.random())));
  }
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
function lockOptions(given) {
  const options = optionsArg(given);
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

module.exports = { Lock, acquire, lockOptions };
