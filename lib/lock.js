'use strict';

// The Lock a successful cache.lock() resolves to. Losing it is never
// silent: when an extension finds the lock gone (its key deleted or taken
// by another holder), or autoExtend cannot extend it within its ttl, the
// Lock emits 'lost' and `lock.signal` aborts, both with an ERR_LOCK_LOST
// error.

const { EventEmitter } = require('node:events');
const { cacheError, rangeError, typeError, describe } = require('./errors');
const { ttlMs, optionsArg } = require('./args');

class Lock extends EventEmitter {
  #run;
  #ttlMs;
  #released = false;
  #timer = null;
  /** When (performance.now()) the lock expires unless extended again. */
  #validUntil;
  /** autoExtend: fires at #validUntil, when no extension got through. */
  #deadline = null;
  #lastError = null;
  #lost = null; // the ERR_LOCK_LOST error, once lost
  #controller = null; // made when `signal` is first read

  /**
   * `run(args)` sends one lock step (wire format: src/ops.rs); `sentAt`:
   * when (performance.now()) the acquiring step was sent.
   */
  constructor(run, key, token, fencingToken, ttl, sentAt) {
    super();
    this.#run = run;
    this.#ttlMs = ttl;
    this.#validUntil = sentAt + ttl;
    // Read-only, as the frozen Lock's were (an EventEmitter cannot be frozen).
    Object.defineProperties(this, {
      /** The key as the caller gave it (unprefixed). */
      key: { value: key, enumerable: true },
      /** Random, 128 bits: the holder's proof. */
      token: { value: token, enumerable: true },
      /** Strictly increasing per key, in the order the lock was held. */
      fencingToken: { value: fencingToken, enumerable: true },
    });
  }

  /** Aborts, with the ERR_LOCK_LOST error as its reason, when the lock is lost. */
  get signal() {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#lost) this.#controller.abort(this.#lost);
    }
    return this.#controller.signal;
  }

  /** False when the lock had expired or belongs to someone else. Harmless twice. */
  async release() {
    this.#stopExtending();
    if (this.#released) return false;
    this.#released = true;
    return this.#run(['unlock', this.key, this.token]);
  }

  /** Sets the lock's ttl (seconds, default the lock's ttl); false when no longer held (and the lock is lost). */
  async extend(ttl) {
    const ms = ttl === undefined ? this.#ttlMs : lockTtlMs(ttl, 'ttl');
    if (this.#released || this.#lost) return false;
    const sentAt = performance.now();
    const held = await this.#run(['extend', this.key, this.token, String(ms)]);
    if (this.#released || this.#lost) return held;
    if (held) {
      this.#validUntil = sentAt + ms;
      this.#lastError = null;
      if (this.#deadline) this.#armDeadline();
    } else {
      this.#lose('its key was deleted or taken by another holder');
    }
    return held;
  }

  /**
   * Extends at about a third of the ttl until release, or until the lock is
   * lost. An extension that fails (a connection error) is tried again at the
   * next tick; when none got through within the ttl, the lock is lost.
   */
  startExtending() {
    const tick = () =>
      this.extend().catch((err) => {
        this.#lastError = err;
      });
    this.#timer = setInterval(tick, Math.max(1, Math.floor(this.#ttlMs / 3)));
    // Keeping a lock alive does not keep the process alive.
    this.#timer.unref();
    this.#armDeadline();
  }

  #armDeadline() {
    clearTimeout(this.#deadline);
    const why = () => `it could not be extended within its ttl${this.#lastError ? ` (${this.#lastError.message})` : ''}`;
    this.#deadline = setTimeout(() => this.#lose(why(), this.#lastError), Math.max(0, this.#validUntil - performance.now()));
    this.#deadline.unref();
  }

  #lose(why, cause) {
    if (this.#lost || this.#released) return;
    this.#stopExtending();
    const err = cacheError('ERR_LOCK_LOST', `lost the lock ${JSON.stringify(this.key)}: ${why}`, cause ?? undefined);
    this.#lost = err;
    this.#controller?.abort(err);
    this.emit('lost', err);
  }

  #stopExtending() {
    if (this.#timer) clearInterval(this.#timer);
    clearTimeout(this.#deadline);
    this.#timer = null;
    this.#deadline = null;
  }
}

/**
 * Takes `key` for `token`, trying `retries` more times after a jittered
 * `retryDelay` (± 50 %, so that waiting contenders do not retry in
 * lockstep). Resolves the fencing token and when the winning step was sent.
 */
async function acquire(run, key, token, o) {
  for (let attempt = 1; ; attempt++) {
    const sentAt = performance.now();
    const fence = await run(['lock', key, token, String(o.ttlMs)]);
    if (fence > 0) return { fence, sentAt };
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
