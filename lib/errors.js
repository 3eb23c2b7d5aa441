'use strict';

// Every error the module raises carries a string `code`; bad arguments are
// TypeError/RangeError with code ERR_INVALID_ARG (see index.d.ts ErrorCode).

function cacheError(code, message, Class = Error) {
  const err = new Class(message);
  err.code = code;
  return err;
}

const typeError = (message) => cacheError('ERR_INVALID_ARG', message, TypeError);
const rangeError = (message) => cacheError('ERR_INVALID_ARG', message, RangeError);

function describe(value) {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  return `a ${typeof value}`;
}

/** A native call's result: the value, or the Error it resolved to, thrown. */
function unwrap(reply) {
  if (reply instanceof Error) throw reply;
  return reply;
}

module.exports = { cacheError, typeError, rangeError, describe, unwrap };
