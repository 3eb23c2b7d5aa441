'use strict';

// The one owner of errors on the JS side (src/lib.rs create_error is the one
// on the Rust side). Every error the module raises is a CacheError with a
// string `code`, except bad arguments: those stay TypeError/RangeError (code
// ERR_INVALID_ARG, as Node's own argument checks), and `instanceof
// CacheError` and isCacheError() recognise them too. Errors made in Rust
// cross as Errors with their code and are adopted here, once, where they
// enter JS (see `adopt`).

/** The TypeErrors and RangeErrors the module raised. */
const raised = new WeakSet();

class CacheError extends Error {
  /** `options`: `cause` (the error this one stems from), `redisCode` (the server's own error code). */
  constructor(code, message, options) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options?.redisCode !== undefined) this.redisCode = options.redisCode;
  }

  /** True for every error the module raises, its TypeErrors and RangeErrors included. */
  static [Symbol.hasInstance](value) {
    return isCacheError(value);
  }
}
Object.defineProperty(CacheError.prototype, 'name', { value: 'CacheError', writable: true, configurable: true });

function isCacheError(value) {
  return value !== null && typeof value === 'object' && (Object.prototype.isPrototypeOf.call(CacheError.prototype, value) || raised.has(value));
}

function cacheError(code, message, cause) {
  return new CacheError(code, message, cause === undefined ? undefined : { cause });
}

function argError(Class, message, cause) {
  const err = new Class(message, cause === undefined ? undefined : { cause });
  err.code = 'ERR_INVALID_ARG';
  raised.add(err);
  return err;
}

const typeError = (message, cause) => argError(TypeError, message, cause);
const rangeError = (message, cause) => argError(RangeError, message, cause);

/** An error made in Rust (an Error, TypeError or RangeError with its `code`) as the module's own. */
function adopt(err) {
  if (err instanceof TypeError || err instanceof RangeError) raised.add(err);
  else if (!isCacheError(err)) Object.setPrototypeOf(err, CacheError.prototype);
  return err;
}

function describe(value) {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  return `a ${typeof value}`;
}

/** A native call's result: the value, or the Error it resolved to, thrown. */
function unwrap(reply) {
  if (reply instanceof Error) throw adopt(reply);
  return reply;
}

module.exports = { CacheError, isCacheError, cacheError, typeError, rangeError, adopt, describe, unwrap };
